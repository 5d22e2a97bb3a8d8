"""The KPI ledger: every ticket's ``TicketFacts`` in SQLite, and the KPIs of a period counted
from them (definitions in report/kpi.py).

The daemon keeps its ledger in the state file: a ticket's facts are rewritten whenever it
changes and stay after it is closed (when its events are deleted), so a rolling window still
counts it, across restarts; ``prune`` drops what no window or report can reach any more.
``sladaemon report`` fills an in-memory ledger from a history. Either way the same queries
count the figures, so the daemon's metrics, its scheduled reports and the command agree.

Calls are synchronous and may come from two threads: the event loop writes, a Prometheus
scrape counts. Counting reads through a connection of its own (WAL lets it read while the
other writes), so a scrape never holds up the daemon's writes; a lock per connection keeps
each one to a single thread at a time.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import chain
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from sladaemon.calendar import to_us
from sladaemon.model import Metric, MetricState, TicketEvent
from sladaemon.report.kpi import (
    ESCALATION_TARGET,
    HISTORY_NEEDED,
    REOPEN_TARGET,
    ComplianceCell,
    KpiReport,
    Rate,
    TicketFacts,
    TimeStats,
    day_volumes,
    period_facts,
)
from sladaemon.sla.policy import SlaPolicy

SCHEMA = """
CREATE TABLE IF NOT EXISTS kpi_tickets (
    source TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    policy TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    done_us INTEGER,
    first_solved_us INTEGER,
    reopened_us INTEGER,
    replies_before_solve INTEGER NOT NULL,
    escalated_us INTEGER,
    PRIMARY KEY (source, ticket_id)
);
-- Two covering indexes serve the many small counts (volume per day, compliance); the other
-- counts scan: cheaper than keeping more indexes up to date at every change.
CREATE INDEX IF NOT EXISTS kpi_tickets_created
    ON kpi_tickets (created_us, channel, escalated_us);
CREATE TABLE IF NOT EXISTS kpi_cycles (
    source TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    cycle INTEGER NOT NULL,
    policy TEXT NOT NULL,
    channel TEXT NOT NULL,
    outcome TEXT NOT NULL,
    decided_us INTEGER NOT NULL,
    started_us INTEGER NOT NULL,
    ended_us INTEGER,
    business_us INTEGER NOT NULL,
    PRIMARY KEY (source, ticket_id, metric, cycle)
);
CREATE INDEX IF NOT EXISTS kpi_cycles_decided
    ON kpi_cycles (decided_us, policy, metric, channel, outcome);
CREATE TABLE IF NOT EXISTS report_runs (
    report TEXT PRIMARY KEY,
    last_due_us INTEGER NOT NULL
);
"""

# The first escalation is kept across rewrites: a ticket's replay remembers which levels it
# reached but not when, so the instant comes from the SLA event once and must not be lost.
_UPSERT_TICKET = """
INSERT INTO kpi_tickets (source, ticket_id, channel, policy, created_us, done_us,
    first_solved_us, reopened_us, replies_before_solve, escalated_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source, ticket_id) DO UPDATE SET
    channel = excluded.channel, policy = excluded.policy, created_us = excluded.created_us,
    done_us = excluded.done_us, first_solved_us = excluded.first_solved_us,
    reopened_us = excluded.reopened_us, replies_before_solve = excluded.replies_before_solve,
    escalated_us = MIN(COALESCE(excluded.escalated_us, kpi_tickets.escalated_us),
                       COALESCE(kpi_tickets.escalated_us, excluded.escalated_us))
"""
_INSERT_CYCLE = """
INSERT OR REPLACE INTO kpi_cycles (source, ticket_id, metric, cycle, policy, channel, outcome,
    decided_us, started_us, ended_us, business_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


class KpiLedger:
    def __init__(self, path: Path | str) -> None:
        in_memory = str(path) == ":memory:"
        if not in_memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = _connect(path)
        if not in_memory:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._reader = self._db if in_memory else _connect(path)
        self._read_lock = self._lock if in_memory else threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._read_lock:
            if self._reader is not self._db:
                self._reader.close()

    # ------------------------------------------------------------------ writing

    def record(self, source: str, facts: Iterable[TicketFacts]) -> int:
        """Write (or rewrite) tickets' facts. Returns how many tickets."""
        tickets: list[tuple[Any, ...]] = []
        keys: list[tuple[str, str]] = []
        cycles: list[tuple[Any, ...]] = []
        for f in facts:
            keys.append((source, f.ticket_id))
            tickets.append(
                (
                    source,
                    f.ticket_id,
                    f.channel,
                    f.policy,
                    f.created_us,
                    f.done_us,
                    f.first_solved_us,
                    f.reopened_us,
                    f.replies_before_solve,
                    f.escalated_us,
                )
            )
            cycles.extend(
                (
                    source,
                    f.ticket_id,
                    c.metric.value,
                    c.cycle,
                    f.policy,
                    f.channel,
                    c.outcome.value,
                    c.decided_us,
                    c.started_us,
                    c.ended_us,
                    c.business_us,
                )
                for c in f.cycles
            )
        if not keys:
            return 0
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM kpi_cycles WHERE source = ? AND ticket_id = ?", keys)
            self._db.executemany(_UPSERT_TICKET, tickets)
            self._db.executemany(_INSERT_CYCLE, cycles)
        return len(keys)

    def forget_source(self, source: str) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM kpi_tickets WHERE source = ?", (source,))
            self._db.execute("DELETE FROM kpi_cycles WHERE source = ?", (source,))

    def prune(self, now: datetime, reach: timedelta) -> int:
        """Forget what no period ending at ``now`` or later and ``reach`` long can count:
        solved tickets that changed before it (kept for the volume baselines while they were
        created within HISTORY_NEEDED of it) and cycles decided before it. Returns the number
        of tickets forgotten."""
        start = to_us(now - reach)
        baseline = to_us(now - reach - HISTORY_NEEDED)
        with self._lock, self._db:
            self._db.execute("BEGIN")
            before = self._db.total_changes
            self._db.execute(
                "DELETE FROM kpi_tickets WHERE done_us < ? AND created_us < ? "
                "AND COALESCE(reopened_us, 0) < ? AND COALESCE(escalated_us, 0) < ?",
                (start, baseline, start, start),
            )
            forgotten = self._db.total_changes - before
            self._db.execute(
                "DELETE FROM kpi_cycles WHERE decided_us < ? AND COALESCE(ended_us, ?) < ?",
                (start, start, start),
            )
        return forgotten

    # ------------------------------------------------------------------ scheduled reports

    def last_due(self, report: str) -> int | None:
        """The last scheduled instant (µs) of a report that was handled: queued or skipped."""
        with self._read_lock:
            row = self._reader.execute(
                "SELECT last_due_us FROM report_runs WHERE report = ?", (report,)
            ).fetchone()
        return int(row[0]) if row else None

    def set_last_due(self, report: str, due_us: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO report_runs (report, last_due_us) VALUES (?, ?) "
                "ON CONFLICT (report) DO UPDATE SET last_due_us = excluded.last_due_us",
                (report, due_us),
            )

    def __len__(self) -> int:
        with self._read_lock:
            (n,) = self._reader.execute("SELECT COUNT(*) FROM kpi_tickets").fetchone()
        return int(n)

    # ------------------------------------------------------------------ counting

    def report(
        self, start: datetime, end: datetime, timezone: str = "UTC", source: str | None = None
    ) -> KpiReport:
        """The KPIs of [start, end), days in ``timezone``; of one source, or of all."""
        zone = ZoneInfo(timezone)
        lo, hi = to_us(start), to_us(end)
        report = KpiReport(start=start, end=end, timezone=timezone)
        with self._read_lock, _snapshot(self._reader) as db:

            def query(sql: str, **params: Any) -> sqlite3.Cursor:
                if source is not None:
                    sql = sql.replace("WHERE ", "WHERE source = :source AND ", 1)
                return db.execute(sql, {"lo": lo, "hi": hi, "source": source, **params})

            cells: dict[tuple[str, str, str], list[int]] = {}
            for policy, metric, channel, outcome, n in query(
                "SELECT policy, metric, channel, outcome, COUNT(*) FROM kpi_cycles "
                "WHERE decided_us >= :lo AND decided_us < :hi "
                "GROUP BY policy, metric, channel, outcome"
            ):
                cell = cells.setdefault((policy, metric, channel), [0, 0])
                cell[0 if outcome == MetricState.MET.value else 1] += n
            report.compliance = [
                ComplianceCell(p, m, c, met, breached)
                for (p, m, c), (met, breached) in sorted(cells.items())
            ]
            for metric in (Metric.FIRST_RESPONSE, Metric.RESOLUTION):
                rows = query(
                    "SELECT business_us, ended_us - started_us FROM kpi_cycles "
                    "WHERE metric = :metric AND ended_us >= :lo AND ended_us < :hi",
                    metric=metric.value,
                )
                flat = np.fromiter(chain.from_iterable(rows), dtype=np.float64)
                values = flat.reshape(-1, 2) / 1e6
                business, wall = TimeStats.of(values[:, 0]), TimeStats.of(values[:, 1])
                if metric is Metric.FIRST_RESPONSE:
                    report.first_response_business = business
                    report.first_response_calendar = wall
                else:
                    report.resolution_business = business
                    report.resolution_calendar = wall
            escalated = 0
            for channel, n, up in query(
                "SELECT channel, COUNT(*), SUM(escalated_us IS NOT NULL AND escalated_us < :hi) "
                "FROM kpi_tickets WHERE created_us >= :lo AND created_us < :hi GROUP BY channel"
            ):
                report.created_per_channel[channel] = n
                escalated += up
            report.created = sum(report.created_per_channel.values())
            (report.backlog,) = query(
                "SELECT COUNT(*) FROM kpi_tickets WHERE created_us < :hi "
                "AND (done_us IS NULL OR done_us >= :hi)"
            ).fetchone()
            solved, reopened, first_contact = query(
                "SELECT COUNT(*), "
                "COALESCE(SUM(reopened_us IS NOT NULL AND reopened_us < :hi), 0), "
                "COALESCE(SUM(replies_before_solve = 1 "
                "AND (reopened_us IS NULL OR reopened_us >= :hi)), 0) "
                "FROM kpi_tickets WHERE first_solved_us >= :lo AND first_solved_us < :hi"
            ).fetchone()
            (earliest,) = query("SELECT MIN(created_us) FROM kpi_tickets WHERE 1").fetchone()
            channels = [
                c
                for (c,) in query(
                    "SELECT DISTINCT channel FROM kpi_tickets "
                    "WHERE created_us >= :since AND created_us < :hi ORDER BY channel",
                    since=to_us(start - HISTORY_NEEDED),
                )
            ]

            def count(a: int, b: int) -> dict[str, int]:
                return dict(
                    query(
                        "SELECT channel, COUNT(*) FROM kpi_tickets "
                        "WHERE created_us >= :a AND created_us < :b GROUP BY channel",
                        a=a,
                        b=b,
                    ).fetchall()
                )

            report.volume = day_volumes(count, channels, earliest, start, end, zone)
        days = max(1.0, (end - start).total_seconds() / 86_400)
        report.daily_volume = report.created / days
        report.reopen = Rate(int(reopened), int(solved), REOPEN_TARGET)
        report.escalation = Rate(int(escalated), report.created, ESCALATION_TARGET)
        report.first_contact_resolution = Rate(int(first_contact), int(solved))
        return report


def compute_kpis(
    tickets: Mapping[str, Sequence[TicketEvent]],
    policies: Sequence[SlaPolicy],
    start: datetime,
    end: datetime,
    timezone: str = "UTC",
) -> KpiReport:
    """The KPIs of [start, end) from ticket histories (each in time order), counted in an
    in-memory ledger."""
    ledger = KpiLedger(":memory:")
    try:
        ledger.record("", period_facts(tickets, policies, start, end))
        return ledger.report(start, end, timezone)
    finally:
        ledger.close()


@contextmanager
def _snapshot(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction: every query of a count sees the same facts."""
    db.execute("BEGIN")
    try:
        yield db
    finally:
        db.execute("COMMIT")


def _connect(path: Path | str) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 5000")
    db.execute("PRAGMA cache_size = -1024")  # KiB; the OS caches the file as well
    return db
