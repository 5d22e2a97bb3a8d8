"""Scheduled KPI reports: when each is due, and its figures handed to the router.

Each scheduled instant is handled once (the ledger remembers the last one per report): sent
if it is at most ``daemon.catch_up`` old, otherwise counted and logged as skipped — after
downtime only the latest missed instant can still be sent. A report's period ends at its
instant and starts at the same local wall-clock time ``period`` earlier ("mon 09:00" covers
Monday 09:00 to Monday 09:00, across a DST change too); the period before it, as long, is
counted too, for the report's trends.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sladaemon.calendar import from_us, to_us
from sladaemon.clock import Clock
from sladaemon.config import Config
from sladaemon.config.models import ReportConfig
from sladaemon.daemon.kpis import RETRY_AFTER_ERROR, KpiFacts
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.notify.message import iso
from sladaemon.report.kpi import KpiReport
from sladaemon.report.schedule import Every

MAX_MISSED_REPORTS = 1000  # missed instants counted after downtime, per report

ReportHandler = Callable[[ReportConfig, datetime, KpiReport], None]


@dataclass(eq=False)
class ReportScheduler:
    config: Config
    kpis: KpiFacts
    clock: Clock
    metrics: DaemonMetrics
    on_report: ReportHandler
    wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        self.log = get_logger("sladaemon.reports")

    def reconfigure(self, config: Config) -> None:
        self.config = config
        self.wake.set()

    async def run(self) -> None:
        while True:
            try:
                nxt = self.run_due()
            except (sqlite3.Error, OSError) as exc:  # the state file: try again shortly
                self.log.error("report_failed", error=str(exc))
                nxt = self.clock.now() + timedelta(seconds=RETRY_AFTER_ERROR)
            await self.clock.wait(self.wake, nxt)
            self.wake.clear()

    def run_due(self) -> datetime | None:
        """Send the reports that are due; return the next instant any report is due."""
        now = self.clock.now()
        nxt: datetime | None = None
        if self.config.reports and self.kpis.pending:
            self.kpis.write()  # a report counts every change so far
        for cfg in self.config.reports:
            zone = ZoneInfo(self.config.report_timezone(cfg.calendar))
            every = Every.parse(cfg.every)
            self._run(cfg, every, zone, now)
            following = every.following(now, zone)
            nxt = following if nxt is None else min(nxt, following)
        return nxt

    def _run(self, cfg: ReportConfig, every: Every, zone: ZoneInfo, now: datetime) -> None:
        catch_up = self.config.daemon.catch_up
        last_us = self.kpis.ledger.last_due(cfg.key)
        if last_us is None:  # a new report: only an instant within catch_up is owed
            due = [every.latest(now, zone)]
            missed = [] if now - due[0] <= catch_up else due
        else:
            due, t = [], from_us(last_us)
            while len(due) < MAX_MISSED_REPORTS and (t := every.following(t, zone)) <= now:
                due.append(t)
            missed = [t for t in due if now - t > catch_up or t != due[-1]]
        if last_us is not None:
            for at in missed:
                self.metrics.reports_skipped.labels(cfg.key).inc()
                self.log.warning("report_skipped", report=cfg.key, due=iso(at))
        if due and due[-1] not in missed:
            self._send(cfg, due[-1], zone)
        if due:
            self.kpis.ledger.set_last_due(cfg.key, to_us(due[-1]))

    def _send(self, cfg: ReportConfig, due: datetime, zone: ZoneInfo) -> None:
        start = wall_clock_before(due, cfg.period, zone)
        report = self.kpis.ledger.report(start, due, zone.key)
        previous_start = wall_clock_before(start, cfg.period, zone)
        report.previous = self.kpis.ledger.report(previous_start, start, zone.key)  # for trends
        self.on_report(cfg, due, report)
        self.metrics.reports_generated.labels(cfg.key).inc()
        self.log.info("report_queued", report=cfg.key, due=iso(due), receivers=cfg.receiver)


def wall_clock_before(at: datetime, period: timedelta, zone: ZoneInfo) -> datetime:
    """The instant ``period`` before ``at`` on the wall clock of ``zone`` (across a DST change,
    seven days are 167 or 169 hours)."""
    wall = at.astimezone(zone).replace(tzinfo=None) - period
    return wall.replace(tzinfo=zone).astimezone(UTC)
