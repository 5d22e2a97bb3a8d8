"""A source poller's schedule: a permanent failure (401) is tried again within a minute, and a
reload wakes it at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sladaemon.clock import FakeClock
from sladaemon.config.models import CsvSourceConfig
from sladaemon.daemon.pollers import SourcePoller, next_delay
from sladaemon.metrics import DaemonMetrics
from sladaemon.sources.base import PollResult, SourceError


class RefusingSource:
    """Answers 401 until ``fixed`` is set."""

    name = "desk"
    persistent = True

    def __init__(self) -> None:
        self.fixed = False
        self.polls = 0

    async def poll(self, now: datetime) -> PollResult:
        self.polls += 1
        if not self.fixed:
            raise SourceError("HTTP 401 Unauthorized", retryable=False, status=401)
        return PollResult()

    async def close(self) -> None:
        return None


def failing(p: SourcePoller) -> bool:
    return p.health.failing_since is not None


def poller(source: RefusingSource, tmp_path: Path) -> SourcePoller:
    cfg = CsvSourceConfig(type="csv", path=tmp_path / "e.csv", poll_interval=timedelta(seconds=1))
    return SourcePoller(
        "desk",
        source,
        cfg,
        FakeClock(datetime(2024, 1, 8, tzinfo=UTC)),
        DaemonMetrics(),
        lambda name, result: None,
        lambda *alert: None,
    )


def test_a_refused_source_is_tried_again_within_a_minute_and_a_failing_one_backs_off() -> None:
    assert next_delay(None, 1.0, 1.0) == 60.0  # 401/403: a minute, not five
    assert next_delay(None, 60.0, 600.0) == 600.0  # never more often than the interval
    assert [next_delay(False, d, 1.0) for d in (1.0, 2.0, 256.0, 300.0)] == [2, 4, 300, 300]
    assert next_delay(False, 1.0, 600.0) == 600.0
    assert next_delay(True, 300.0, 5.0) == 5.0


async def test_waking_a_refused_source_polls_it_at_once(tmp_path: Path) -> None:
    source = RefusingSource()
    p = poller(source, tmp_path)
    running = asyncio.create_task(p.run())
    try:
        for _ in range(200):  # the first poll comes after the 1 s interval
            if source.polls:
                break
            await asyncio.sleep(0.02)
        assert source.polls == 1 and failing(p)
        source.fixed = True  # the credentials are fixed and the config reloaded
        p.wake()
        for _ in range(50):
            if not failing(p):
                break
            await asyncio.sleep(0.02)
        assert source.polls == 2 and not failing(p)  # not a minute later
    finally:
        running.cancel()
