"""Escalation chains, acks and the audit trail, kept in the state file.

Each write is one committed transaction before the caller goes on: an ack is on disk before it
is answered, a chain's page counter moves only after the page's outbox rows are written (a crash
between the two re-posts the same outbox key, which is a no-op, so a page is never sent twice).
``used_links`` remembers the ack links already used: a replayed link is refused.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sladaemon.escalate.chains import Chain, Page
from sladaemon.model import Metric
from sladaemon.store.sqlite import StateStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS chains (
    key TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    cycle INTEGER NOT NULL,
    level TEXT NOT NULL,
    name TEXT NOT NULL,
    pages TEXT NOT NULL,
    ack_timeout_us INTEGER NOT NULL,
    started_us INTEGER NOT NULL,
    state TEXT NOT NULL,
    next_page INTEGER NOT NULL,
    shift_us INTEGER NOT NULL,
    acked_by TEXT NOT NULL DEFAULT '',
    acked_via TEXT NOT NULL DEFAULT '',
    acked_us INTEGER,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chains_by_ticket ON chains (source, ticket_id);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    chain TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    via TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_ticket ON audit (source, ticket_id);
CREATE TABLE IF NOT EXISTS used_links (
    link TEXT PRIMARY KEY,
    used_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    chain: str
    at_us: int
    action: str  # paged, acked, unacked, ack_lapsed, escalated, met, done, ...
    actor: str  # who: the person acking, or who was paged
    via: str  # link, cli, api, slack; or the receiver a page went through
    detail: str = ""


class ChainStore:
    def __init__(self, store: StateStore) -> None:
        self._db: sqlite3.Connection = store.connection
        self._db.executescript(SCHEMA)

    def insert(self, chain: Chain, payload: dict[str, object], audit: AuditEntry) -> bool:
        """Start ``chain`` unless a chain with its key exists; True when it is new."""
        with self._db:
            self._db.execute("BEGIN")
            cur = self._db.execute(
                "INSERT OR IGNORE INTO chains (key, source, ticket_id, metric, cycle, level, "
                "name, pages, ack_timeout_us, started_us, state, next_page, shift_us, acked_by, "
                "acked_via, acked_us, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (*_row(chain), json.dumps(payload)),
            )
            if cur.rowcount:
                self._audit(chain, [audit])
            return bool(cur.rowcount)

    def save(self, chain: Chain, audit: Iterable[AuditEntry] = ()) -> None:
        """The chain's new state and what happened to it, in one transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "UPDATE chains SET state=?, next_page=?, shift_us=?, acked_by=?, acked_via=?, "
                "acked_us=? WHERE key=?",
                (
                    chain.state,
                    chain.next_page,
                    chain.shift_us,
                    chain.acked_by,
                    chain.acked_via,
                    chain.acked_us,
                    chain.key,
                ),
            )
            self._audit(chain, audit)

    def get(self, key: str) -> tuple[Chain, dict[str, object]] | None:
        row = self._db.execute(f"SELECT {_COLUMNS}, payload FROM chains WHERE key=?", (key,))
        found = row.fetchone()
        return (_chain(found[:-1]), json.loads(found[-1])) if found else None

    def live(self) -> list[tuple[Chain, dict[str, object]]]:
        """Every chain still active or acked (what the daemon schedules at start)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS}, payload FROM chains WHERE state IN ('active', 'acked')"
        )
        return [(_chain(r[:-1]), json.loads(r[-1])) for r in rows]

    def note(self, source: str, ticket_id: str, entry: AuditEntry) -> None:
        """Something that happened to a ticket's notifications outside a chain (a silence
        held it): into the same audit trail."""
        with self._db:
            self._db.execute(
                "INSERT INTO audit (source, ticket_id, chain, at_us, action, actor, via, detail) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (source, ticket_id, entry.chain, entry.at_us, entry.action, entry.actor,
                 entry.via, entry.detail),
            )  # fmt: skip

    def of_ticket(self, source: str | None, ticket_id: str) -> list[Chain]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM chains WHERE ticket_id=? AND (? IS NULL OR source=?) "
            "ORDER BY started_us",
            (ticket_id, source, source),
        )
        return [_chain(r) for r in rows]

    def audit(self, source: str | None, ticket_id: str) -> list[tuple[str, AuditEntry]]:
        """The ticket's audit trail, oldest first, with each entry's source."""
        rows = self._db.execute(
            "SELECT source, chain, at_us, action, actor, via, detail FROM audit "
            "WHERE ticket_id=? AND (? IS NULL OR source=?) ORDER BY at_us, seq",
            (ticket_id, source, source),
        )
        return [(r[0], AuditEntry(*r[1:])) for r in rows]

    def link_used(self, link_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM used_links WHERE link=?", (link_id,)).fetchone()
        return row is not None

    def use_link(self, link_id: str) -> bool:
        """Note an ack link as used; False when it was used before (a replay)."""
        with self._db:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO used_links (link, used_at) VALUES (?, ?)",
                (link_id, time.time()),
            )
        return bool(cur.rowcount)

    def prune(self, ended_before_us: int) -> int:
        """Forget chains ended before ``ended_before_us`` (their audit trail stays)."""
        with self._db:
            cur = self._db.execute(
                "DELETE FROM chains WHERE state IN ('met', 'done') AND started_us < ?",
                (ended_before_us,),
            )
        return cur.rowcount

    def _audit(self, chain: Chain, entries: Iterable[AuditEntry]) -> None:
        self._db.executemany(
            "INSERT INTO audit (source, ticket_id, chain, at_us, action, actor, via, detail) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (
                (
                    chain.source,
                    chain.ticket_id,
                    e.chain,
                    e.at_us,
                    e.action,
                    e.actor,
                    e.via,
                    e.detail,
                )
                for e in entries
            ),
        )


_COLUMNS = (
    "key, source, ticket_id, metric, cycle, level, name, pages, ack_timeout_us, started_us, "
    "state, next_page, shift_us, acked_by, acked_via, acked_us"
)


def _row(c: Chain) -> tuple[object, ...]:
    pages = json.dumps([[p.offset_us, list(p.notify)] for p in c.pages])
    return (
        c.key, c.source, c.ticket_id, c.metric.value, c.cycle, c.level, c.name, pages,
        c.ack_timeout_us, c.started_us, c.state, c.next_page, c.shift_us, c.acked_by,
        c.acked_via, c.acked_us,
    )  # fmt: skip


def _chain(r: tuple[object, ...]) -> Chain:
    pages = tuple(
        Page(n, int(offset), tuple(notify))
        for n, (offset, notify) in enumerate(json.loads(str(r[7])))
    )
    return Chain(
        key=str(r[0]),
        source=str(r[1]),
        ticket_id=str(r[2]),
        metric=Metric(str(r[3])),
        cycle=int(str(r[4])),
        level=str(r[5]),
        name=str(r[6]),
        pages=pages,
        ack_timeout_us=int(str(r[8])),
        started_us=int(str(r[9])),
        state=str(r[10]),  # type: ignore[arg-type]
        next_page=int(str(r[11])),
        shift_us=int(str(r[12])),
        acked_by=str(r[13]),
        acked_via=str(r[14]),
        acked_us=None if r[15] is None else int(str(r[15])),
    )
