"""Housekeeping, once a second: source freshness, outbox gauges, systemd's watchdog; once an
hour, ``sweep`` (idle tickets out of memory, old KPI facts and learnt cycles pruned)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sladaemon.daemon.pollers import SourcePoller
from sladaemon.daemon.systemd import SystemdNotifier
from sladaemon.metrics import DaemonMetrics
from sladaemon.store.sqlite import StateStore

TICK = 1.0  # seconds between rounds
SWEEP_EVERY = 3600.0  # seconds between sweeps


@dataclass(eq=False)
class Housekeeping:
    pollers: Mapping[str, SourcePoller]
    sweep: Callable[[], None]
    store: StateStore
    metrics: DaemonMetrics
    systemd: SystemdNotifier
    status: Callable[[], str]

    async def run(self) -> None:
        interval = self.systemd.watchdog_interval
        last_ping = 0.0
        last_sweep = time.time()
        while True:
            now = time.time()
            if now - last_sweep >= SWEEP_EVERY:
                last_sweep = now
                self.sweep()
            for poller in self.pollers.values():
                poller.check_fresh(now)
            for state, n in self.store.outbox_counts().items():
                self.metrics.outbox.labels(state).set(n)
            if interval is not None and now - last_ping >= interval:
                self.systemd.watchdog()
                self.systemd.status(self.status())
                last_ping = now
            await asyncio.sleep(TICK)
