"""The Supervisor: every loop of the daemon runs under it, and no loop ends silently.

A loop that raises is restarted after a capped backoff (``escalate.retry.retry_delay``, from
1 s up to ``MAX_RESTART``). Its failure is logged with the traceback (``loop_crashed``),
counted, told to the operator once per episode with the error's text, and shown in
``/healthz`` at once (``failing``). Once the restarted loop has run ``HEALTHY_AFTER`` seconds
without raising, the episode ends (``loop_recovered``). ``dead_for`` says how long the oldest
failing loop has been failing, so housekeeping can stop feeding systemd's watchdog and let
systemd restart a daemon that does not recover. Intervals are measured on the monotonic
clock.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sladaemon.escalate.deliver import OperatorAlert
from sladaemon.escalate.retry import retry_delay
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics

FIRST_RESTART = 1.0  # seconds before the first restart of a crashed loop
MAX_RESTART = 60.0  # seconds between restarts, at most
HEALTHY_AFTER = 30.0  # seconds a restarted loop runs without raising before it counts as well

LoopFactory = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class LoopFailure:
    since: float  # monotonic: when the episode began
    since_wall: float  # Unix time of the same instant, for messages
    error: str
    crashes: int = 1


@dataclass(eq=False)
class Supervisor:
    metrics: DaemonMetrics
    operator_alert: OperatorAlert
    first_restart: float = FIRST_RESTART
    max_restart: float = MAX_RESTART
    healthy_after: float = HEALTHY_AFTER
    failing: dict[str, LoopFailure] = field(default_factory=dict, init=False)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _rng: random.Random = field(default_factory=random.Random, init=False)

    def __post_init__(self) -> None:
        self.log = get_logger("sladaemon.supervise")

    def start(self, name: str, loop: LoopFactory) -> asyncio.Task[None]:
        """Run ``loop()`` as task ``name``, restarting it whenever it raises."""
        self.metrics.loop_up.labels(name).set(1)
        task = asyncio.create_task(self._supervise(name, loop), name=name)
        self._tasks[name] = task
        return task

    async def stop(self, name: str | None = None) -> None:
        """Cancel one loop, or all."""
        names = [name] if name is not None else list(self._tasks)
        tasks = [t for n in names if (t := self._tasks.pop(n, None)) is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for n in names:
            self.failing.pop(n, None)

    def dead_for(self) -> float:
        """Seconds the longest-failing loop has been failing (0 when all are well)."""
        now = time.monotonic()
        return max((now - f.since for f in self.failing.values()), default=0.0)

    async def _supervise(self, name: str, loop: LoopFactory) -> None:
        crashes = 0
        while True:
            run = asyncio.create_task(loop(), name=f"{name}:run")
            try:
                if name in self.failing:
                    done, _ = await asyncio.wait({run}, timeout=self.healthy_after)
                    if not done:
                        self._recovered(name)
                        crashes = 0
                await run
                self.log.error("loop_ended", loop=name)  # loops run until cancelled
                raise RuntimeError(f"loop {name} returned")
            except asyncio.CancelledError:
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
                raise
            except Exception as exc:
                crashes += 1
                self._crashed(name, exc)
            delay = retry_delay(crashes, self.first_restart, self.max_restart, self._rng)
            await asyncio.sleep(delay)

    def _crashed(self, name: str, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        self.metrics.loop_crashes.labels(name).inc()
        self.metrics.loop_up.labels(name).set(0)
        self.log.error(
            "loop_crashed",
            loop=name,
            error=error,
            traceback="".join(traceback.format_exception(exc)),
        )
        failure = self.failing.get(name)
        if failure is not None:
            failure.crashes += 1
            failure.error = error
            return
        failure = self.failing[name] = LoopFailure(time.monotonic(), time.time(), error)
        self.operator_alert(
            "loop_crashed",
            name,
            f"the daemon's {name} loop failed and is being restarted: {error}",
            failure.since_wall,
        )

    def _recovered(self, name: str) -> None:
        failure = self.failing.pop(name, None)
        self.metrics.loop_up.labels(name).set(1)
        if failure is not None:
            self.log.info("loop_recovered", loop=name, crashes=failure.crashes)
            self.operator_alert(
                "loop_recovered", name, f"the daemon's {name} loop runs again", time.time()
            )
