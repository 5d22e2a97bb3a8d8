"""Housekeeping, once a second: writes the outbox could not write before, source freshness,
outbox gauges, systemd's watchdog; once an hour, ``sweep`` (idle tickets out of memory, old
KPI facts and learnt cycles pruned).

The watchdog is fed only while every supervised loop is well or has been failing for less than
``WATCHDOG_PATIENCE``: a daemon that cannot recover by itself is restarted by systemd. The
intervals are measured on the monotonic clock, so a step of the wall clock moves none of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sladaemon.daemon.pollers import SourcePoller
from sladaemon.daemon.supervise import Supervisor
from sladaemon.daemon.systemd import SystemdNotifier
from sladaemon.escalate.outbox import Outbox
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics

TICK = 1.0  # seconds between rounds
SWEEP_EVERY = 3600.0  # seconds between sweeps
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

    async def run(self) -> None:
        log = get_logger("sladaemon.housekeeping")
        interval = self.systemd.watchdog_interval
        last_ping = 0.0
        last_sweep = time.monotonic()
        withheld = False
        while True:
            now = time.monotonic()
            self.outbox.flush()
            if now - last_sweep >= SWEEP_EVERY:
                last_sweep = now
                self.sweep()
            for poller in self.pollers.values():
                poller.check_fresh(now)
            for state, n in self.outbox.store.outbox_counts().items():
                self.metrics.outbox.labels(state).set(n)
            dead_for = self.supervisor.dead_for()
            if dead_for > WATCHDOG_PATIENCE and not withheld:
                log.error("watchdog_withheld", failing=sorted(self.supervisor.failing))
            withheld = dead_for > WATCHDOG_PATIENCE
            if interval is not None and now - last_ping >= interval and not withheld:
                self.systemd.watchdog()
                self.systemd.status(self.status())
                last_ping = now
            await asyncio.sleep(TICK)
