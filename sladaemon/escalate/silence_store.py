"""Silences kept in the state file, and ``SilenceBook``, the view the Router asks.

Each write is one committed transaction, and moves a version counter: the book reloads only
when the version moved (one indexed read per question). Expired silences are kept and listed
for ``RETENTION`` (5 days), then pruned by the next write.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sladaemon.escalate.silences import (
    RETENTION,
    STATES,
    Silence,
    SilenceError,
    expired,
    silencing,
)
from sladaemon.matchers import parse_matcher
from sladaemon.store.sqlite import StateStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_us INTEGER NOT NULL,
    ends_us INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    expired_us INTEGER,
    expired_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS silences_version (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO silences_version (one, version) VALUES (1, 0);
"""
_COLUMNS = (
    "id, matchers, starts_us, ends_us, created_by, comment, created_us, expired_us, expired_by"
)
_ENDED = "MIN(ends_us, COALESCE(expired_us, ends_us))"


class UnknownSilence(SilenceError):
    """No silence has this id (or it was pruned)."""


class SilenceStore:
    def __init__(self, store: StateStore) -> None:
        self._db: sqlite3.Connection = store.connection
        self._db.executescript(SCHEMA)

    def add(self, silence: Silence) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                f"INSERT INTO silences ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", _row(silence)
            )
            self._changed(silence.created_at)

    def expire(self, silence_id: str, by: str, now: datetime) -> Silence:
        """End a silence now; raises UnknownSilence, or SilenceError when it ended already."""
        with self._db:
            self._db.execute("BEGIN")
            found = self.get(silence_id)
            if found is None:
                raise UnknownSilence(f"no silence {silence_id!r}")
            ended = expired(found, now, by)
            self._db.execute(
                "UPDATE silences SET expired_us=?, expired_by=? WHERE id=?",
                (_us(now), by, silence_id),
            )
            self._changed(now)
        return ended

    def get(self, silence_id: str) -> Silence | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM silences WHERE id=?", (silence_id,))
        found = row.fetchone()
        return _silence(found) if found else None

    def listed(self, now: datetime, *, include_expired: bool = False) -> list[Silence]:
        """Active and pending silences (and, with ``include_expired``, those expired within
        RETENTION), by start."""
        since = now - RETENTION if include_expired else now
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM silences WHERE {_ENDED} > ? ORDER BY starts_us, id",
            (_us(since),),
        )
        return [_silence(r) for r in rows]

    def counts(self, now: datetime) -> dict[str, int]:
        """How many silences are in each state (expired ones within RETENTION)."""
        counts: dict[str, int] = dict.fromkeys(STATES, 0)
        for silence in self.listed(now, include_expired=True):
            counts[silence.state(now)] += 1
        return counts

    def version(self) -> int:
        (version,) = self._db.execute("SELECT version FROM silences_version").fetchone()
        return int(version)

    def _changed(self, now: datetime) -> None:
        """Within a write: prune what ended before RETENTION, and move the version."""
        self._db.execute(f"DELETE FROM silences WHERE {_ENDED} < ?", (_us(now - RETENTION),))
        self._db.execute("UPDATE silences_version SET version = version + 1")


class SilenceBook:
    """The silences that are active or may become so, reloaded when the store changed."""

    def __init__(self, store: SilenceStore) -> None:
        self.store = store
        self._version = -1
        self._silences: list[Silence] = []

    def silencing(self, labels: Mapping[str, str], now: datetime) -> Silence | None:
        """The first active silence whose matchers all match ``labels``, or None."""
        version = self.store.version()
        if version != self._version:
            self._silences = self.store.listed(now)
            self._version = version
        return silencing(self._silences, labels, now)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def _at(us: object) -> datetime:
    return _EPOCH + timedelta(microseconds=int(str(us)))


def _row(s: Silence) -> tuple[object, ...]:
    return (
        s.id, json.dumps([str(m) for m in s.matchers]), _us(s.starts_at), _us(s.ends_at),
        s.created_by, s.comment, _us(s.created_at),
        None if s.expired_at is None else _us(s.expired_at), s.expired_by,
    )  # fmt: skip


def _silence(r: tuple[object, ...]) -> Silence:
    return Silence(
        id=str(r[0]),
        matchers=tuple(parse_matcher(m) for m in json.loads(str(r[1]))),
        starts_at=_at(r[2]),
        ends_at=_at(r[3]),
        created_by=str(r[4]),
        comment=str(r[5]),
        created_at=_at(r[6]),
        expired_at=None if r[7] is None else _at(r[7]),
        expired_by=str(r[8]),
    )
