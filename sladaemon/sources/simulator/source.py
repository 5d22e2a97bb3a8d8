"""The built-in synthetic helpdesk as a live source, in simulated time.

Its tickets are not persistent: the state file keeps them after the daemon stops (for
``explain`` and ``report``) and drops them when it starts again, never replaying them. Each run
numbers them afresh under its own prefix, so a restart never mixes two runs' tickets.
"""

from __future__ import annotations

import time
from datetime import datetime

from sladaemon.config.models import SimulatorSourceConfig
from sladaemon.sources.base import PollResult
from sladaemon.sources.simulator.simulation import HelpdeskSimulation, SimulationSettings


class SimulatorSource:
    persistent = False

    def __init__(self, name: str, cfg: SimulatorSourceConfig, start: datetime) -> None:
        self.name = name
        self.cfg = cfg
        settings = SimulationSettings(
            seed=cfg.seed,
            tickets_per_hour=cfg.tickets_per_hour,
            agents=cfg.agents,
            timezone=cfg.timezone,
        )
        run = format(int(time.time()) % 36**5, "x")
        begin = (cfg.start or start) - cfg.warmup
        self.simulation = HelpdeskSimulation(settings, begin, id_prefix=f"SIM-{run}-")

    async def poll(self, now: datetime) -> PollResult:
        return PollResult(events=self.simulation.advance(now))

    async def close(self) -> None:
        return None
