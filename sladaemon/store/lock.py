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
