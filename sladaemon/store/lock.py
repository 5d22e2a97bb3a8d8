"""One daemon per state file: an exclusive ``flock`` on ``<state>.lock``.

``run`` and ``once`` hold it while they work; a second one is refused with the holder's pid
instead of sending what the first is sending. The kernel drops the lock when the holder's
process ends, killed or not, so a stale lock never blocks a restart. Commands that only read
the state (``explain --source``, ``report --source``) take no lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sladaemon.errors import StateLockedError


class StateLock:
    def __init__(self, state: Path) -> None:
        self.path = state.with_name(state.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateLockedError(
                f"another sladaemon (pid {holder}) is using the state file {self.path.stem}; "
                "stop it first, or give this one its own daemon.state"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def unusable_state(state: Path) -> str | None:
    """Why a daemon could not keep its state at ``state`` (the directory cannot be created,
    the file or its lock cannot be opened for writing), or None. Creates the directory and
    the lock file, as the daemon would."""
    existing = state.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():  # mkdir would only say "File exists"
        return f"cannot write the state file here: {existing}: Not a directory"
    try:
        state.parent.mkdir(parents=True, exist_ok=True)
        for path in (state.with_name(state.name + ".lock"), state):
            if path.exists() or path.name.endswith(".lock"):
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        return f"cannot write the state file here:{where}: {exc.strerror or exc}"
    return None
