"""The harness's ``settle`` waits for the outbox to drain, however long delivery takes, and
fails loudly when it does not: a check that nothing was sent never passes on a stall."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.notify.message import Notification
from sladaemon.notify.outcome import DeliveryOutcome
from tests.scenario import harness as harness_module
from tests.scenario.harness import DaemonHarness

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)  # a Monday
BREACH_KEY = "desk/T1/first_response/0/breach"


def config_text(tmp_path: Path) -> str:
    return textwrap.dedent(
        f"""
        calendars:
          always: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}
        receivers:
          console: {{urls: ["console://"]}}
        policies:
          - name: support
            calendar: always
            targets: {{first_response: 1h}}
            escalation: [{{at: breach, notify: [console]}}]
        sources:
          desk: {{type: csv, path: {tmp_path / "events.csv"}, poll_interval: 1h}}
        daemon:
          state: {tmp_path / "state.sqlite"}
          http: {{enabled: false}}
        """
    )


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[DaemonHarness]:
    h = DaemonHarness(tmp_path, config_text(tmp_path), START)
    h.add("T1", START, "created", "new")
    yield h
    await h.stop()


def slow_sends(notifier: AppriseNotifier, until: asyncio.Event) -> None:
    """Make the notifier's sends wait for ``until`` before they go out."""
    send = notifier.send

    async def held(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        await until.wait()
        return await send(receiver, target, message)

    notifier.send = held  # type: ignore[method-assign]


async def test_settle_waits_for_a_delivery_that_takes_longer_than_a_second(
    harness: DaemonHarness,
) -> None:
    app = await harness.start()
    released = asyncio.Event()
    slow_sends(app.notifier, released)
    asyncio.get_running_loop().call_later(1.5, released.set)
    await harness.advance(60)
    assert harness.lines("[BREACH]") == ["[BREACH] SLA breached: ticket T1 first_response breached"]


async def test_settle_fails_naming_what_is_owed_when_a_delivery_stalls(
    harness: DaemonHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await harness.start()
    released = asyncio.Event()
    slow_sends(app.notifier, released)
    monkeypatch.setattr(harness_module, "SETTLE_LIMIT", 0.3)
    try:
        with pytest.raises(AssertionError, match="did not drain") as stalled:
            await harness.advance(60)
        assert f"('{BREACH_KEY}', 'console', 'sending', 0, None)" in str(stalled.value)
        assert harness.lines("[BREACH]") == []
    finally:
        released.set()
