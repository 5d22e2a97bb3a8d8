"""Safety of the state file: a rolling backup, an integrity check, a restore.

* ``backup`` copies the open database with SQLite's online backup API into ``<state>.backup``
  (written beside it and renamed, so a crash never leaves half a backup); the daemon takes one
  every ``BACKUP_EVERY`` and at shutdown.
* ``check`` runs ``PRAGMA integrity_check`` on a file; ``restore`` moves a damaged state file
  aside (``<state>.damaged-<time>``) and puts the backup in its place, after checking it.
* ``opened`` turns SQLite's "file is not a database" into an error that says what happened and
  what to do.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sladaemon.errors import StateFileError

BACKUP_EVERY = 900.0  # seconds between rolling backups of the state file
T = TypeVar("T")


def backup_path(state: Path) -> Path:
    return state.with_name(state.name + ".backup")


def backup(db: sqlite3.Connection, state: Path) -> Path:
    """Copy the open database to ``<state>.backup``, atomically."""
    target = backup_path(state)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    copy = sqlite3.connect(partial)
    try:
        db.backup(copy)
    finally:
        copy.close()
    partial.chmod(0o600)
    partial.replace(target)
    return target


def lost_state(state: Path, created: bool) -> str | None:
    """What to tell the operator when the state file had to be created although a backup of
    an earlier one exists (it was deleted), or None."""
    if not created or not backup_path(state).exists():
        return None
    return (
        f"the state file {state} was missing and is created afresh: levels older than "
        "daemon.catch_up are not sent again; to go back to the last backup, stop the daemon "
        "and run `sladaemon state restore`"
    )


def check(path: Path) -> str:
    """'ok', or what is wrong with the database at ``path``."""
    if not path.exists():
        return "missing"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("PRAGMA integrity_check").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    problems = [str(r[0]) for r in rows if r[0] != "ok"]
    return "; ".join(problems[:5]) if problems else "ok"


def restore(state: Path) -> Path | None:
    """Put the backup in place of the state file; the old one is kept beside it, renamed.
    Returns where the old file went (None when there was none)."""
    source = backup_path(state)
    verdict = check(source)
    if verdict != "ok":
        raise StateFileError(f"the backup {source} cannot be used: {verdict}")
    kept = None
    if state.exists():
        kept = state.with_name(f"{state.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        state.replace(kept)
    for suffix in ("-wal", "-shm"):
        state.with_name(state.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(source, state)
    state.chmod(0o600)
    return kept


@contextmanager
def opened(state: Path) -> Iterator[None]:
    """Raise ``StateFileError`` with guidance for a state file SQLite cannot read."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise
        has_backup = backup_path(state).exists()
        advice = (
            "stop the daemon and run `sladaemon state restore --config FILE` to put the last "
            "backup in its place"
            if has_backup
            else "move it aside to start with an empty state (alerts older than "
            "daemon.catch_up are then not sent again)"
        )
        raise StateFileError(f"the state file {state} is damaged ({exc}): {advice}") from None


def guarded(state: Path, call: Callable[[], T]) -> T:
    with opened(state):
        return call()
