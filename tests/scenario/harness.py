"""The daemon on virtual time: a fake clock, a real CSV file of events, console receivers."""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, timedelta
from pathlib import Path

from sladaemon.clock import FakeClock
from sladaemon.config import load_config
from sladaemon.daemon.app import App

HEADER = "ticket_id,timestamp,event,status,priority,channel,queue\n"


def stamp(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class DaemonHarness:
    """``config`` follows ``tmp_path/events.csv`` as source ``desk``; ``rows`` start it."""

    step_minutes: float = 1  # clock steps of ``advance``
    channel = "email"  # of the rows ``add`` writes, unless given
    queue = "support"

    def __init__(self, tmp_path: Path, config: str, start: datetime, rows: str = "") -> None:
        self.tmp_path = tmp_path
        self.events = tmp_path / "events.csv"
        self.events.write_text(HEADER + rows)
        self.config = tmp_path / "config.yaml"
        self.config.write_text(config)
        self.clock = FakeClock(start)
        self.console = io.StringIO()
        self.app: App | None = None

    def add(
        self,
        ticket: str,
        at: datetime,
        event: str,
        status: str = "",
        channel: str | None = None,
        queue: str | None = None,
    ) -> None:
        channel = self.channel if channel is None else channel
        queue = self.queue if queue is None else queue
        with self.events.open("a") as f:
            f.write(f"{ticket},{stamp(at)},{event},{status},normal,{channel},{queue}\n")

    async def start(self) -> App:
        self.app = App(load_config(self.config, environ={}), clock=self.clock, console=self.console)
        await self.app.start()
        await self.settle()
        return self.app

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.shutdown()
            self.app = None

    async def poll(self) -> None:
        assert self.app is not None
        await self.app.pollers["desk"].poll()
        await self.settle()

    async def advance(self, minutes: float, step_minutes: float | None = None) -> None:
        step = timedelta(minutes=step_minutes or self.step_minutes)
        await self.clock.advance(timedelta(minutes=minutes), step)
        await self.settle()

    async def settle(self) -> None:
        """Let the delivery loop drain the outbox (console delivery needs no waiting)."""
        assert self.app is not None
        for _ in range(100):
            await asyncio.sleep(0.01)
            if (
                not self.app.store.outbox_counts().get("pending")
                and not self.app.deliverer.in_flight
            ):
                return

    def lines(self, prefix: str) -> list[str]:
        return [line for line in self.console.getvalue().splitlines() if line.startswith(prefix)]
