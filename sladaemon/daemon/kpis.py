"""KPI facts: which tickets' facts changed, writing them to the ledger, the KPI gauges.

* ``note`` records the tickets whose facts changed — new events (closed tickets too), a cycle
  decided, an escalation level reached (the first escalation's instant is kept: the replay
  knows that a level fired, not when).
* ``run`` writes them in steps of ``FACTS_CHUNK`` tickets, so 100,000 tickets loading at once
  never hold up the timers; a state-file error is logged and retried after a minute.
* ``figures`` serves the rolling window's KPIs to the metrics collector, recounted at most
  every ``KPI_CACHE`` clock seconds.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

from sladaemon.clock import Clock
from sladaemon.config import Config
from sladaemon.escalate.book import Fired
from sladaemon.logs import get_logger
from sladaemon.model import SlaEventKind, TicketKey
from sladaemon.report.kpi import KpiReport, TicketFacts, ticket_facts
from sladaemon.report.ledger import KpiLedger
from sladaemon.sla.engine import TicketReplay

FACTS_CHUNK = 2000  # tickets whose facts are written in one step (~60 ms)
KPI_CACHE = 300.0  # clock seconds the KPI gauges are reused (a window of days moves slowly)
RETRY_AFTER_ERROR = 60.0  # seconds before the state file is tried again
# Facts change when a cycle's outcome is decided or an escalation level is reached.
_KPI_EVENTS = frozenset(
    {SlaEventKind.BREACH, SlaEventKind.ESCALATION, SlaEventKind.MET, SlaEventKind.MET_LATE}
)


@dataclass(eq=False)
class KpiFacts:
    ledger: KpiLedger
    replays: Mapping[TicketKey, TicketReplay]
    config: Config
    clock: Clock
    wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _changed: dict[TicketKey, TicketReplay] = field(default_factory=dict, init=False)
    _escalated: dict[TicketKey, datetime] = field(default_factory=dict, init=False)
    _figures: KpiReport | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.log = get_logger("sladaemon.kpis")

    @property
    def pending(self) -> int:
        return len(self._changed)

    def reconfigure(self, config: Config) -> None:
        self.config = config
        self._figures = None

    def note(self, touched: Mapping[TicketKey, TicketReplay], fired: Iterable[Fired]) -> None:
        self._changed.update(touched)
        for f in fired:
            e = f.event
            if e.kind not in _KPI_EVENTS:
                continue
            key = (f.source, e.ticket_id)
            if key not in self._changed:
                replay = self.replays.get(key)
                if replay is None:
                    continue
                self._changed[key] = replay
            if e.kind is SlaEventKind.ESCALATION:
                first = self._escalated.get(key)
                if first is None or e.at < first:
                    self._escalated[key] = e.at
        if self._changed:
            self.wake.set()

    def write(self, keys: Iterable[TicketKey] | None = None, limit: int = 0) -> int:
        """Write the facts of changed tickets: those of ``keys``, or the oldest changes (at
        most ``limit``, 0: all). Returns how many tickets were written."""
        if keys is None:
            keys = list(self._changed) if limit <= 0 else list(islice(self._changed, limit))
        by_source: dict[str, list[TicketKey]] = {}
        for key in keys:
            by_source.setdefault(key[0], []).append(key)
        written = 0
        for source, source_keys in by_source.items():
            for start in range(0, len(source_keys), FACTS_CHUNK):  # bounded memory
                written += self._record(source, source_keys[start : start + FACTS_CHUNK])
        return written

    def write_closed(self, keys: list[TicketKey]) -> None:
        """Closed tickets' facts at once (their events leave the state file); when the file
        refuses them they stay noted and the loop writes them later."""
        if not keys:
            return
        try:
            self.write(keys)
        except (sqlite3.Error, OSError) as exc:
            self.log.error("kpi_facts_failed", error=str(exc), waiting=len(self._changed))
            self.wake.set()

    def _record(self, source: str, keys: list[TicketKey]) -> int:
        """Write these tickets' facts; they leave the changed set only once written."""
        facts: list[TicketFacts] = []
        for key in keys:
            replay = self._changed.get(key)
            if replay is not None and replay.events:
                facts.append(ticket_facts(replay, self._escalated.get(key)))
        if facts:
            self.ledger.record(source, facts)
        for key in keys:
            self._changed.pop(key, None)
            self._escalated.pop(key, None)
        return len(facts)

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            started, written = time.monotonic(), 0
            try:
                while self._changed:
                    written += self.write(limit=FACTS_CHUNK)
                    await asyncio.sleep(0)
                self._changed, self._escalated = {}, {}  # an emptied dict keeps its size
            except (sqlite3.Error, OSError) as exc:
                self.log.error("kpi_facts_failed", error=str(exc), waiting=len(self._changed))
                await asyncio.sleep(RETRY_AFTER_ERROR)
                self.wake.set()
                continue
            if written >= FACTS_CHUNK:
                seconds = round(time.monotonic() - started, 2)
                self.log.info("kpi_facts_written", tickets=written, seconds=seconds)

    def prune(self) -> None:
        """Forget facts older than anything a KPI window or report (which compares with the
        period before its own) reaches."""
        periods = (2 * r.period + timedelta(hours=1) for r in self.config.reports)  # DST: +1h
        reach = max([self.config.daemon.kpi_window, *periods])
        forgotten = self.ledger.prune(self.clock.now(), reach)
        if forgotten:
            self.log.info("kpi_facts_pruned", tickets=forgotten)

    def figures(self) -> KpiReport | None:
        """The KPIs of the rolling window ending now (cached; the last good on error)."""
        now = self.clock.now()
        age = (now - self._figures.end).total_seconds() if self._figures is not None else None
        if age is None or not 0 <= age < KPI_CACHE:
            zone = self.config.report_timezone(None)
            try:
                self._figures = self.ledger.report(now - self.config.daemon.kpi_window, now, zone)
            except sqlite3.Error as exc:  # keep serving the last figures; say why
                self.log.error("kpi_count_failed", error=str(exc))
        return self._figures
