"""Housekeeping, once a second: writes the outbox could not write before, source freshness,
outbox gauges, systemd's watchdog; every 15 minutes a backup of the state file; once an hour,
``sweep`` (idle tickets out of memory, old KPI facts and learnt cycles pruned); a last
backup when the daemon stops.

The watchdog is fed only while every supervised loop is well or has been failing for less than
``WATCHDOG_PATIENCE``: a daemon that cannot recover by itself is restarted by systemd. The
intervals are measured on the monotonic clock, so a step of the wall clock moves none of them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sladaemon.daemon.pollers import SourcePoller
from sladaemon.daemon.supervise import Supervisor
from sladaemon.daemon.systemd import SystemdNotifier
from sladaemon.escalate.outbox import Outbox
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.store.backup import BACKUP_EVERY

TICK = 1.0  # seconds between rounds
SWEEP_EVERY = 3600.0  # seconds between sweeps
OUTBOX_STATES = frozenset({"pending", "sending", "delivered", "failed"})
WATCHDOG_PATIENCE = 300.0  # seconds a loop may fail before systemd is left to restart us


@dataclass(eq=False)
class Housekeeping:
    pollers: Mapping[str, SourcePoller]
    supervisor: Supervisor
    outbox: Outbox
    sweep: Callable[[], None]
    metrics: DaemonMetrics
    systemd: SystemdNotifier
    status: Callable[[], str]

    def __post_init__(self) -> None:
        self.log = get_logger("sladaemon.housekeeping")

    async def run(self) -> None:
        try:
            await self._rounds()
        finally:  # stopping: a last backup of the state as it is left
            self.backup()

    def backup(self) -> None:
        try:
            self.outbox.store.backup()
        except (sqlite3.Error, OSError) as exc:
            self.metrics.state_write_errors.labels("backup").inc()
            self.log.error("state_backup_failed", error=str(exc))

    async def _rounds(self) -> None:
        interval = self.systemd.watchdog_interval
        last_ping = 0.0
        last_sweep = last_backup = time.monotonic()
        withheld = False
        while True:
            now = time.monotonic()
            self.outbox.flush()
            if now - last_sweep >= SWEEP_EVERY:
                last_sweep = now
                self.sweep()
            if now - last_backup >= BACKUP_EVERY:
                last_backup = now
                await asyncio.to_thread(self.backup)
            for poller in self.pollers.values():
                poller.check_fresh(now)
            counts = self.outbox.store.outbox_counts()
            for state in OUTBOX_STATES | counts.keys():  # a state emptied reads 0, not its last
                self.metrics.outbox.labels(state).set(counts.get(state, 0))
            dead_for = self.supervisor.dead_for()
            if dead_for > WATCHDOG_PATIENCE and not withheld:
                self.log.error("watchdog_withheld", failing=sorted(self.supervisor.failing))
            withheld = dead_for > WATCHDOG_PATIENCE
            if interval is not None and now - last_ping >= interval and not withheld:
                self.systemd.watchdog()
                self.systemd.status(self.status())
                last_ping = now
            await asyncio.sleep(TICK)
