"""Clocks: the only place that reads wall time.

The daemon asks its clock for ``now`` and waits on it; pure code is handed ``now``. A
``ScaledClock`` runs faster than real time (replays and the simulator), a ``FakeClock`` only
moves when a test advances it, so scenario tests never sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class Clock(Protocol):
    speed: float  # clock seconds per real second

    def now(self) -> datetime: ...

    async def wait(self, wake: asyncio.Event, until: datetime | None) -> None:
        """Return when ``wake`` is set or the clock reaches ``until`` (None: only ``wake``)."""
        ...


class SystemClock:
    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def wait(self, wake: asyncio.Event, until: datetime | None) -> None:
        await _wait(wake, None if until is None else (until - self.now()).total_seconds())


class ScaledClock:
    """Clock time = ``origin`` + ``speed`` × real time elapsed since creation."""

    def __init__(self, origin: datetime, speed: float) -> None:
        if origin.tzinfo is None:
            raise ValueError("the clock origin must be aware")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.origin = origin.astimezone(UTC)
        self.speed = speed
        self._started = time.monotonic()

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=(time.monotonic() - self._started) * self.speed)

    async def wait(self, wake: asyncio.Event, until: datetime | None) -> None:
        delay = None if until is None else (until - self.now()).total_seconds() / self.speed
        await _wait(wake, delay)


async def run_at_instants(
    clock: Clock,
    wake: asyncio.Event,
    next_instant: Callable[[], datetime | None],
    fire: Callable[[], None],
) -> None:
    """The loop of every timer queue: ``fire`` whenever the clock reaches ``next_instant()``
    (None: nothing is scheduled) or ``wake`` is set (the schedule changed), until cancelled."""
    while True:
        await clock.wait(wake, next_instant())
        wake.clear()
        fire()


async def _wait(wake: asyncio.Event, delay: float | None) -> None:
    if delay is not None and delay <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout=delay)


class FakeClock:
    """A clock that moves only when told to. ``advance`` wakes every waiter whose instant has
    come, and lets the event loop run so woken tasks can act before it returns."""

    speed = 1.0

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)
        self._waiters: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    async def wait(self, wake: asyncio.Event, until: datetime | None) -> None:
        if until is not None and until <= self._now:
            return
        loop = asyncio.get_running_loop()
        reached: asyncio.Future[None] = loop.create_future()
        if until is not None:
            self._waiters.append((until, reached))
        waker = asyncio.ensure_future(wake.wait())
        either: list[asyncio.Future[Any]] = [waker, reached]
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            if not reached.done():
                reached.cancel()
            self._waiters = [(t, f) for t, f in self._waiters if f is not reached]

    async def advance(self, delta: timedelta, step: timedelta | None = None) -> None:
        """Move time forward, in steps (default: one), letting woken tasks run at each."""
        target = self._now + delta
        step = step or delta
        while self._now < target:
            self._now = min(self._now + step, target)
            for until, future in list(self._waiters):
                if until <= self._now and not future.done():
                    future.set_result(None)
            for _ in range(20):  # let woken tasks run to their next await
                await asyncio.sleep(0)
