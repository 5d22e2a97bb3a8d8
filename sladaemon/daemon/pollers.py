"""One SourcePoller per source: its schedule, its backoff, its health.

* It polls every ``poll_interval`` with ±10 % jitter, and again at once while the source says
  more is waiting (a large backlog comes in pieces).
* A failed poll doubles the wait, up to 5 minutes (at least the interval); a permanent error
  (401/403) is tried again every minute (fixed credentials work without a restart), tells
  the operator at once, and ``wake`` (a reload) tries at once.
* Health is edge-triggered: ``poll_failed`` when it starts failing, ``poll_recovered`` when a
  poll succeeds again; ``check_fresh`` reports ``source_stale`` (log and operator) once no poll
  has succeeded for ``stale_after``, and ``source_recovered`` when one does.
* ``sync``, while set (the App's start-up sync), counts what each poll brings (see
  ``daemon/sync.py``); ``on_caught_up`` is told each time the source has nothing more waiting.
* What a successful poll brings goes to ``on_result``; rows the source skipped and statuses it
  did not know are logged here (each unknown status once). When ``on_result`` fails (the state
  file refused the events), the error is logged with its traceback, told to the operator and
  shown in ``/healthz`` at once, and the source is reopened from the last stored cursor so the
  same events come again on the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sladaemon.clock import Clock
from sladaemon.config.models import SourceConfig
from sladaemon.daemon.sync import SyncProgress
from sladaemon.escalate.deliver import OperatorAlert
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.sources.base import PollResult, Source, SourceError

POLL_TIMEOUT = 120.0  # seconds a poll may take before it counts as failed
MAX_BACKOFF = 300.0  # seconds between polls of a failing source, at most
PERMANENT_BACKOFF = 60.0  # seconds between polls of a source refused with 401/403
SKIPPED_LOGGED = 20  # skipped rows logged per poll (all are counted)

PollHandler = Callable[[str, PollResult], None]


def next_delay(outcome: bool | None, delay: float, interval: float) -> float:
    """Seconds until the next poll, after one with ``outcome`` (as ``poll_all`` returns it)
    that followed a wait of ``delay``."""
    if outcome is True:
        return interval
    if outcome is None:  # permanent: retrying soon will not help, but a fix may come any time
        return max(interval, PERMANENT_BACKOFF)
    return min(max(delay * 2, interval), max(interval, MAX_BACKOFF))


@dataclass
class SourceHealth:
    """Freshness is measured on the monotonic clock (a step of the wall clock neither stales
    a source nor hides one); the ``*_wall`` stamps are for messages."""

    stale_after: float
    started: float  # monotonic
    started_wall: float
    last_success: float | None = None  # monotonic
    last_success_wall: float | None = None
    failing_since: float | None = None  # Unix time, for messages
    last_error: str = ""
    ingest_error: str = ""  # the daemon's own failure to take what a poll brought
    stale: bool = False

    def fresh(self, now: float) -> bool:
        """``now``: monotonic."""
        reference = self.last_success if self.last_success is not None else self.started
        return now - reference <= self.stale_after

    def succeeded(self) -> None:
        self.failing_since, self.ingest_error = None, ""
        self.last_success, self.last_success_wall = time.monotonic(), time.time()


@dataclass(eq=False)
class SourcePoller:
    name: str
    source: Source
    cfg: SourceConfig
    clock: Clock
    metrics: DaemonMetrics
    on_result: PollHandler
    operator_alert: OperatorAlert
    reopen: Callable[[], Source] | None = None  # a fresh source from the stored cursor
    on_caught_up: Callable[[str], None] | None = None  # nothing more waiting after a poll
    sync: SyncProgress | None = None  # set while the App waits for this source's sync
    health: SourceHealth = field(init=False)
    _unknown_statuses: set[str] = field(default_factory=set, init=False)
    _reopen_needed: bool = field(default=False, init=False)
    _rng: random.Random = field(default_factory=random.Random, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        stale_after = self.cfg.stale_after.total_seconds()
        self.health = SourceHealth(stale_after, time.monotonic(), time.time())
        self.log = get_logger("sladaemon.poll")

    @property
    def loop_name(self) -> str:
        return f"poll:{self.name}"

    async def close(self) -> None:
        await self.source.close()

    def wake(self) -> None:
        """Poll now rather than at the end of the current wait."""
        self._wake.set()

    async def run(self) -> None:
        interval = self.cfg.poll_interval.total_seconds()
        delay = interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay * self._rng.uniform(0.9, 1.1))
            self._wake.clear()
            delay = next_delay(await self.poll_all(), delay, interval)

    async def poll_all(self) -> bool | None:
        """Poll until the source has nothing more waiting. True when every poll succeeded,
        False after a failure that may pass, None after a permanent one."""
        while True:
            outcome, more = await self.poll()
            if outcome is True and not more and self.on_caught_up is not None:
                self.on_caught_up(self.name)
            if outcome is not True or not more:
                return outcome
            await asyncio.sleep(0)

    async def poll(self) -> tuple[bool | None, bool]:
        """One poll: (outcome as for ``poll_all``, whether more is waiting)."""
        started = time.monotonic()
        try:
            if self._reopen_needed:
                await self._reopen()
            result = await asyncio.wait_for(self.source.poll(self.clock.now()), POLL_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._failed(exc), False
        self.metrics.poll_duration.labels(self.name).observe(time.monotonic() - started)
        self._report_input(result)
        try:
            self.on_result(self.name, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. the state file refused the events: read them again
            self._reopen_needed = self.reopen is not None
            return self._ingest_failed(exc), False
        self.metrics.last_poll.labels(self.name).set(time.time())
        if self.sync is not None:
            self.sync.note(result)
        health = self.health
        if health.failing_since is not None:
            self.log.info("poll_recovered", source=self.name)
        health.succeeded()
        return True, result.more

    def check_fresh(self, now: float) -> None:
        """Update the up gauge; report the edges to stale and back (``now``: monotonic)."""
        health = self.health
        fresh = health.fresh(now)
        self.metrics.source_up.labels(self.name).set(1 if fresh else 0)
        if not fresh and not health.stale:
            health.stale = True
            since = health.last_success_wall or health.started_wall
            self.log.error("source_stale", source=self.name, since=since, error=health.last_error)
            self.operator_alert(
                "source_stale",
                self.name,
                f"source {self.name} has had no successful poll since "
                f"{datetime.fromtimestamp(since, UTC).isoformat()}: {health.last_error}",
                since,
            )
        elif fresh and health.stale:
            health.stale = False
            self.log.info("source_recovered", source=self.name)
            self.operator_alert(
                "source_recovered", self.name, f"source {self.name} is polled again", time.time()
            )

    async def _reopen(self) -> None:
        """A fresh source from the last cursor the state file holds, so what the failed
        ingest had read comes again."""
        assert self.reopen is not None
        fresh = self.reopen()
        old, self.source = self.source, fresh
        self._reopen_needed = False
        await old.close()
        self.log.info("source_reopened", source=self.name)

    def _ingest_failed(self, exc: Exception) -> bool:
        error = f"ingest failed: {type(exc).__name__}: {exc}"
        self.log.error(
            "ingest_failed",
            source=self.name,
            error=error,
            traceback="".join(traceback.format_exception(exc)),
        )
        first = not self.health.ingest_error
        self.health.ingest_error = error
        self._failed(exc)
        self.health.last_error = error
        if first:
            self.operator_alert(
                "ingest_failed",
                self.name,
                f"events of source {self.name} could not be processed; retrying: {error}",
                time.time(),
            )
        return False

    def _failed(self, exc: Exception) -> bool | None:
        health = self.health
        self.metrics.poll_errors.labels(self.name).inc()
        health.last_error = str(exc) if isinstance(exc, SourceError) else repr(exc)
        permanent = isinstance(exc, SourceError) and not exc.retryable
        if health.failing_since is None:
            health.failing_since = time.time()
            self.log.error("poll_failed", source=self.name, error=health.last_error)
            if permanent:  # e.g. 401/403: say so now rather than after stale_after
                self.operator_alert(
                    "source_failing",
                    self.name,
                    f"source {self.name} fails and retrying will not help: {health.last_error}",
                    health.failing_since,
                )
        return None if permanent else False

    def _report_input(self, result: PollResult) -> None:
        for issue in result.issues[:SKIPPED_LOGGED]:
            self.log.warning(
                "input_row_skipped", source=self.name, line=issue.line, reason=issue.message
            )
        if result.issues:
            self.metrics.rows_skipped.labels(self.name).inc(len(result.issues))
        for status in sorted(result.unknown_statuses - self._unknown_statuses):
            self.log.warning("unknown_status", source=self.name, status=status, counted_as="open")
            self._unknown_statuses.add(status)
