"""The daemon on virtual time: a fake clock, a real CSV file of events, console receivers."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path

from sladaemon.clock import FakeClock
from sladaemon.config import load_config
from sladaemon.daemon.app import App

HEADER = "ticket_id,timestamp,event,status,priority,channel,queue\n"
SETTLE_LIMIT = 30.0  # seconds of real time; console delivery drains in milliseconds


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
        """Wait until the outbox is drained: nothing owed is due now and no delivery is in
        flight. Raises when that does not happen within ``SETTLE_LIMIT`` seconds, naming what
        is still owed, so that a check that nothing was sent cannot pass on a stalled delivery.
        """
        assert self.app is not None
        deadline = time.monotonic() + SETTLE_LIMIT
        while True:
            await asyncio.sleep(0.01)  # woken timers post, the delivery loop claims and sends
            owed = self.owed_now()
            if not owed and not self.app.deliverer.in_flight:
                return
            if time.monotonic() > deadline:
                in_flight = len(self.app.deliverer.in_flight)
                raise AssertionError(
                    f"the outbox did not drain within {SETTLE_LIMIT:g}s; {in_flight} deliveries"
                    " in flight; still owed (key, receiver, state, attempts, last error):\n"
                    + "\n".join(map(str, owed))
                )

    def owed_now(self) -> list[tuple[str, str, str, int, str | None]]:
        """Outbox rows being sent or pending with their attempt due (retry instants are wall
        time)."""
        assert self.app is not None
        with contextlib.closing(sqlite3.connect(self.app.store.path)) as db:
            rows = db.execute(
                "SELECT key, receiver, state, attempts, last_error FROM outbox "
                "WHERE state = 'sending' OR (state = 'pending' AND next_attempt_at <= ?) "
                "ORDER BY id",
                (time.time(),),
            )
            return [(key, receiver, state, n, error) for key, receiver, state, n, error in rows]

    def lines(self, prefix: str) -> list[str]:
        return [line for line in self.console.getvalue().splitlines() if line.startswith(prefix)]
