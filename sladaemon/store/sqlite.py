"""The daemon's state in one SQLite file: ticket events, source cursors, the outbox, the
cycles the predictor learnt from tickets whose events are gone, when monitoring of each source
began, and where a simulated clock stopped.

The outbox is the durable record of every notification: a row is written (``pending``) before
any attempt, marked ``sending`` while a receiver is being called, and ``delivered`` only once
the receiver accepted it. Its unique key — (source, ticket, metric, cycle, level) plus the
receiver — makes a second insert of the same escalation a no-op, across re-polls, reloads and
restarts. Rows found ``sending`` at start-up were interrupted mid-call: they are sent again,
flagged as possible duplicates with the same id (a receiver may have accepted one an instant
before a crash). WAL mode with ``synchronous=NORMAL`` survives the process being killed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sladaemon.calendar import from_us, to_us
from sladaemon.model import EventKind, Metric, StatusCategory, TicketEvent
from sladaemon.predict.learnt import LearntCycle
from sladaemon.store.backup import backup, opened

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    category TEXT,
    fields TEXT NOT NULL,
    event_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_by_ticket ON events (source, ticket_id);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events (source, ticket_id, event_id)
    WHERE event_id != '';
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    receiver TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    due_at TEXT NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    delivered_at REAL,
    possible_duplicate INTEGER NOT NULL DEFAULT 0,
    target INTEGER NOT NULL DEFAULT 0,
    UNIQUE (key, receiver, target)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS quarantine (
    source TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (source, ticket_id, reason)
);
CREATE TABLE IF NOT EXISTS learnt_cycles (
    source TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    cycle INTEGER NOT NULL,
    policy TEXT NOT NULL,
    priority TEXT NOT NULL,
    queue TEXT NOT NULL,
    started_us INTEGER NOT NULL,
    ended_us INTEGER,
    elapsed_us INTEGER NOT NULL,
    PRIMARY KEY (source, ticket_id, metric, cycle)
);
CREATE TABLE IF NOT EXISTS monitoring (
    source TEXT PRIMARY KEY,
    since_us INTEGER,
    summarized INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS simulated_time (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    at_us INTEGER NOT NULL
);
"""


# Columns added after a table's first release: (table, column, definition). A state file made by
# an earlier version gets them on open, before the indexes that use them are created.
ADDED_COLUMNS = (("events", "event_id", "TEXT NOT NULL DEFAULT ''"),)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    for table, column, definition in ADDED_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if present and column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


@dataclass(frozen=True, slots=True)
class OutboxItem:
    key: str
    receiver: str
    kind: str
    payload: Mapping[str, Any]
    due_at: datetime
    target: int = 0  # which URL of the receiver


@dataclass(frozen=True, slots=True)
class SentRow:
    """A notification as the board shows it."""

    key: str
    receiver: str
    kind: str
    state: str  # pending, sending, delivered, failed
    created_at: float
    delivered_at: float | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    key: str
    receiver: str
    target: int
    kind: str
    payload: Mapping[str, Any]
    due_at: str
    attempts: int
    possible_duplicate: bool


class StateStore:
    """All persistent state. Calls are short and synchronous (one file, one writer)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.created = False  # the file did not exist: a first start, or it was lost
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.created = not self.path.exists()
            # Owner-only from the first byte (SQLite gives its -wal and -shm files the same).
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        with opened(self.path):
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            _add_missing_columns(self._db)
            self._db.executescript(SCHEMA)
            self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()

    @property
    def connection(self) -> sqlite3.Connection:
        """The open database, for the tables another component keeps (escalation chains)."""
        return self._db

    def backup(self) -> Path:
        """A consistent copy of the whole state beside it (see store/backup.py)."""
        return backup(self._db, self.path)

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(sql, rows)

    # ------------------------------------------------------------------ events

    def add_events(self, source: str, events: Iterable[TicketEvent]) -> None:
        self._write(_INSERT_EVENT, (_event_row(source, e) for e in events))

    def save_poll(self, source: str, events: Iterable[TicketEvent], cursor: Any) -> None:
        """A poll's events and the cursor after them, in one transaction: a crash never keeps
        one without the other."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(_INSERT_EVENT, (_event_row(source, e) for e in events))
            if cursor is not None:
                self._db.execute(_UPSERT_CURSOR, (source, json.dumps(cursor)))

    def load_events(
        self, source: str, ticket_id: str | None = None
    ) -> dict[str, list[TicketEvent]]:
        tickets: dict[str, list[TicketEvent]] = {}
        rows = self._db.execute(
            "SELECT ticket_id, at_us, kind, status, category, fields, event_id FROM events "
            "WHERE source = ? AND (? IS NULL OR ticket_id = ?) ORDER BY seq",
            (source, ticket_id, ticket_id),
        )
        for ticket_id, at_us, kind, status, category, fields, event_id in rows:
            tickets.setdefault(ticket_id, []).append(
                TicketEvent(
                    ticket_id=ticket_id,
                    at=from_us(at_us),
                    kind=EventKind(kind),
                    status=status,
                    category=StatusCategory(category) if category else None,
                    fields=MappingProxyType(json.loads(fields)) if fields != "{}" else {},
                    event_id=event_id,
                )
            )
        return tickets

    def forget_tickets(
        self, source: str, ticket_ids: Iterable[str], learnt: Iterable[LearntCycle] = ()
    ) -> None:
        """Delete tickets' events, keeping in the same transaction what the predictor learnt
        from them."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "DELETE FROM events WHERE source = ? AND ticket_id = ?",
                ((source, t) for t in ticket_ids),
            )
            self._db.executemany(_UPSERT_LEARNT, (_learnt_row(source, c) for c in learnt))

    def forget_source(self, source: str) -> None:
        for table in ("events", "cursors", "learnt_cycles", "quarantine"):
            self._write(f"DELETE FROM {table} WHERE source = ?", [(source,)])

    # ------------------------------------------------------------------ learnt cycles

    def learnt(self, source: str) -> list[LearntCycle]:
        """The cycles of the source's tickets that left the state file (see LearntCycle)."""
        rows = self._db.execute(
            "SELECT ticket_id, metric, cycle, policy, priority, queue, started_us, ended_us, "
            "elapsed_us FROM learnt_cycles WHERE source = ?",
            (source,),
        )
        metrics = {m.value: m for m in Metric}
        return [
            LearntCycle(ticket, metrics[metric], cycle, policy, priority, queue, *times)
            for ticket, metric, cycle, policy, priority, queue, *times in rows
            if metric in metrics
        ]

    def prune_learnt(self, before: datetime) -> int:
        """Forget learnt cycles that ended (or, never met, started) before ``before``."""
        with self._db:
            self._db.execute("BEGIN")
            cursor = self._db.execute(
                "DELETE FROM learnt_cycles WHERE COALESCE(ended_us, started_us) < ?",
                (to_us(before),),
            )
        return cursor.rowcount

    # ------------------------------------------------------------------ quarantine

    def quarantine(self, source: str, entries: Iterable[tuple[str, str]]) -> int:
        """Note input set aside: (ticket id, reason), each pair once. Returns how many were
        new."""
        before = self._db.total_changes
        self._write(
            "INSERT OR IGNORE INTO quarantine (source, ticket_id, reason, at) VALUES (?, ?, ?, ?)",
            ((source, ticket, reason, time.time()) for ticket, reason in entries),
        )
        return self._db.total_changes - before

    def quarantined(self, source: str, ticket_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT reason FROM quarantine WHERE source = ? AND ticket_id = ? ORDER BY at",
            (source, ticket_id),
        )
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ cursors

    def cursor(self, source: str) -> Any:
        row = self._db.execute("SELECT value FROM cursors WHERE source = ?", (source,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_cursor(self, source: str, value: Any) -> None:
        self._write(_UPSERT_CURSOR, [(source, json.dumps(value))])

    # ------------------------------------------------------------------ monitoring start

    def monitoring(self, source: str) -> tuple[datetime | None, bool] | None:
        """When monitoring of ``source`` began (None: before anything could tell, or the state
        was lost) and whether what was overdue then was summed up; None for a source new to
        this file."""
        row = self._db.execute(
            "SELECT since_us, summarized FROM monitoring WHERE source = ?", (source,)
        ).fetchone()
        if row is None:
            return None
        return (from_us(row[0]) if row[0] is not None else None), bool(row[1])

    def set_monitoring(self, source: str, since: datetime | None, summarized: bool) -> None:
        self._write(
            "INSERT OR REPLACE INTO monitoring (source, since_us, summarized) VALUES (?, ?, ?)",
            [(source, to_us(since) if since is not None else None, int(summarized))],
        )

    # ------------------------------------------------------------------ simulated time

    def simulated_time(self) -> datetime | None:
        """Where the daemon's clock stood when it last stopped, if that clock was simulated
        (the simulator, a replay); None when it ran on real time."""
        row = self._db.execute("SELECT at_us FROM simulated_time").fetchone()
        return from_us(row[0]) if row else None

    def set_simulated_time(self, at: datetime | None) -> None:
        if at is None:
            self._write("DELETE FROM simulated_time", [()])
        else:
            self._write("INSERT OR REPLACE INTO simulated_time VALUES (0, ?)", [(to_us(at),)])

    # ------------------------------------------------------------------ outbox

    def enqueue(self, items: Iterable[OutboxItem], now: float | None = None) -> int:
        """Insert new notifications; already-known (key, receiver) pairs are ignored.
        Returns how many were new."""
        now = time.time() if now is None else now
        before = self._db.total_changes
        self._write(
            "INSERT OR IGNORE INTO outbox (key, receiver, target, kind, payload, due_at, "
            "created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    i.key,
                    i.receiver,
                    i.target,
                    i.kind,
                    json.dumps(dict(i.payload)),
                    i.due_at.isoformat(),
                    now,
                    now,
                )
                for i in items
            ),
        )
        return self._db.total_changes - before

    def claim_due(
        self,
        now: float | None = None,
        limit: int = 64,
        skip_receivers: Iterable[str] = (),
        longest_wait: float | None = None,
    ) -> list[OutboxRow]:
        """Pending rows whose attempt is due, marked ``sending`` (none for ``skip_receivers``).
        With ``longest_wait``, a row due further ahead than that is due now: the system clock
        was stepped back after it was scheduled."""
        now = time.time() if now is None else now
        stepped = now + longest_wait if longest_wait is not None else float("inf")
        skipped = list(skip_receivers)
        marks = ",".join("?" for _ in skipped)
        with self._db:  # one write transaction: a row is claimed by one caller only
            self._db.execute("BEGIN IMMEDIATE")
            rows = self._db.execute(
                "SELECT id, key, receiver, target, kind, payload, due_at, attempts, "
                "possible_duplicate "
                "FROM outbox WHERE state = 'pending' "
                "AND (next_attempt_at <= ? OR next_attempt_at > ?) "
                + (f"AND receiver NOT IN ({marks}) " if skipped else "")
                + "ORDER BY next_attempt_at, id LIMIT ?",
                (now, stepped, *skipped, limit),
            ).fetchall()
            self._db.executemany(
                "UPDATE outbox SET state = 'sending' WHERE id = ?", ((r[0],) for r in rows)
            )
        return [
            OutboxRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], bool(r[8]))
            for r in rows
        ]

    def delivered(self, row_id: int, now: float | None = None) -> None:
        self._write(
            "UPDATE outbox SET state = 'delivered', delivered_at = ?, attempts = attempts + 1 "
            "WHERE id = ?",
            [(time.time() if now is None else now, row_id)],
        )

    def retry_later(
        self,
        row_id: int,
        next_attempt_at: float,
        error: str,
        *,
        count: bool = True,
        maybe_sent: bool = False,
    ) -> None:
        """Back to pending until ``next_attempt_at``; ``count`` an attempt that failed;
        ``maybe_sent``: the receiver may have taken it (it did not answer in time), so the
        next attempt says it may be a duplicate."""
        self._write(
            "UPDATE outbox SET state = 'pending', attempts = attempts + ?, next_attempt_at = ?, "
            "last_error = COALESCE(NULLIF(?, ''), last_error), "
            "possible_duplicate = MAX(possible_duplicate, ?) WHERE id = ?",
            [(1 if count else 0, next_attempt_at, error, int(maybe_sent), row_id)],
        )

    def failed(self, row_id: int, error: str) -> None:
        self._write(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ? "
            "WHERE id = ?",
            [(error, row_id)],
        )

    def release_unfinished(self) -> int:
        """At start-up: rows left ``sending`` by a crash go back to pending, flagged."""
        before = self._db.total_changes
        self._write(
            "UPDATE outbox SET state = 'pending', possible_duplicate = 1 WHERE state = 'sending'",
            [()],
        )
        return self._db.total_changes - before

    def next_attempt_at(self) -> float | None:
        row = self._db.execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'"
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def outbox_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        return {state: int(n) for state, n in rows}

    def receivers_of(self, key_prefix: str, kinds: Iterable[str]) -> list[str]:
        """Receivers that were sent (or are being sent) one of ``kinds`` under a key prefix."""
        wanted = list(kinds)
        marks = ",".join("?" for _ in wanted)
        rows = self._db.execute(
            f"SELECT DISTINCT receiver FROM outbox WHERE key LIKE ? ESCAPE '\\' "
            f"AND kind IN ({marks}) AND state != 'failed'",
            (_like_prefix(key_prefix), *wanted),
        ).fetchall()
        return [r[0] for r in rows]

    def payloads_of(self, key_prefix: str, kind: str) -> list[dict[str, Any]]:
        """The payload of each key of ``kind`` under a key prefix (one per key), by key."""
        rows = self._db.execute(
            "SELECT key, MIN(payload) FROM outbox WHERE key LIKE ? ESCAPE '\\' AND kind = ? "
            "GROUP BY key ORDER BY key",
            (_like_prefix(key_prefix), kind),
        ).fetchall()
        return [json.loads(r[1]) for r in rows]

    def sent_under(self, key_prefix: str) -> list[SentRow]:
        """The outbox rows whose key starts with ``key_prefix``, oldest first (the key's unique
        index makes this a range read)."""
        rows = self._db.execute(
            "SELECT key, receiver, kind, state, created_at, delivered_at, last_error FROM outbox "
            "WHERE key >= ? AND key < ? ORDER BY created_at, id",
            (key_prefix, key_prefix + "\U0010ffff"),
        ).fetchall()
        return [SentRow(*r) for r in rows]

    def digests_with(self, item_prefix: str) -> list[SentRow]:
        """The digests (kind ``group``) that carried an item whose key starts with
        ``item_prefix`` (a scan of the digests: for one ticket's page)."""
        rows = self._db.execute(
            "SELECT key, receiver, kind, state, created_at, delivered_at, last_error FROM outbox "
            "WHERE kind = 'group' AND instr(payload, ?) > 0 ORDER BY created_at, id",
            (json.dumps(item_prefix)[1:-1],),
        ).fetchall()
        return [SentRow(*r) for r in rows]


_INSERT_EVENT = (  # an event id already stored (an overlapping poll) is not stored twice
    "INSERT OR IGNORE INTO events "
    "(source, ticket_id, at_us, kind, status, category, fields, event_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_CURSOR = (
    "INSERT INTO cursors (source, value) VALUES (?, ?) "
    "ON CONFLICT (source) DO UPDATE SET value = excluded.value"
)


_UPSERT_LEARNT = """
INSERT OR REPLACE INTO learnt_cycles (source, ticket_id, metric, cycle, policy, priority, queue,
    started_us, ended_us, elapsed_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def _learnt_row(source: str, c: LearntCycle) -> tuple[Any, ...]:
    return (
        source,
        c.ticket_id,
        c.metric.value,
        c.cycle,
        c.policy,
        c.priority,
        c.queue,
        c.started_us,
        c.ended_us,
        c.elapsed_us,
    )


def _event_row(source: str, e: TicketEvent) -> tuple[Any, ...]:
    return (
        source,
        e.ticket_id,
        to_us(e.at),
        e.kind.value,
        e.status,
        e.category.value if e.category else None,
        json.dumps(dict(e.fields)) if e.fields else "{}",
        e.event_id,
    )


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
