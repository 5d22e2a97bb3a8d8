"""Breach prediction through the running daemon, on virtual time: a fake clock, a real CSV
file, console receivers, the SQLite outbox."""

from __future__ import annotations

import re
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.scenario.harness import DaemonHarness, stamp

NOW = datetime(2024, 3, 11, 9, 0, tzinfo=UTC)  # a Monday


class PredictHarness(DaemonHarness):
    """A daemon whose CSV holds a history of answered tickets before ``NOW``."""

    def __init__(self, tmp_path: Path, answered_after_minutes: list[int]) -> None:
        rows = []
        # The history: one ticket every 4 hours over the past days, answered after the given
        # minutes (cycled), so the predictor has finished cycles to learn from.
        start = NOW - timedelta(hours=4 * len(answered_after_minutes))
        for n, minutes in enumerate(answered_after_minutes):
            created = start + timedelta(hours=4 * n)
            replied = created + timedelta(minutes=minutes)
            rows.append(f"H{n},{stamp(created)},created,new,normal,email,support\n")
            rows.append(f"H{n},{stamp(replied)},agent_reply,open,,,\n")
        config = textwrap.dedent(
            f"""
                calendars:
                  always: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}
                receivers:
                  oncall: {{urls: ["console://"]}}
                  leads: {{urls: ["console://"]}}
                policies:
                  - name: support
                    calendar: always
                    targets: {{first_response: 1h}}
                    escalation:
                      - {{at: predicted, notify: [oncall]}}
                      - {{at: breach, notify: [oncall]}}
                predict:
                  threshold: 0.5
                  early: 0.95
                  lead: 20m
                  min_history: 10
                  queue_alerts: {{notify: [leads]}}
                sources:
                  desk: {{type: csv, path: {tmp_path / "events.csv"}, poll_interval: 1h}}
                daemon:
                  state: {tmp_path / "state.sqlite"}
                  http: {{enabled: false}}
                """
        )
        super().__init__(tmp_path, config, NOW, "".join(rows))

    def titles(self, kind: str) -> list[str]:
        return self.lines(f"[{kind.upper()}]")

    def body_of(self, title: str) -> list[str]:
        lines = self.console.getvalue().splitlines()
        at = lines.index(title)
        body = []
        for line in lines[at + 1 :]:
            if not line.startswith("    "):
                break
            body.append(line.strip())
        return body


@pytest.fixture
async def spread(tmp_path: Path) -> AsyncIterator[PredictHarness]:
    """History answered after 10..110 minutes, evenly: half of the cycles miss a 1 h target,
    and of those still waiting after 40 minutes, 5 in 7 do."""
    h = PredictHarness(tmp_path, [10 + (n * 100) // 39 for n in range(40)])
    yield h
    await h.stop()


async def test_a_waiting_ticket_is_warned_once_at_its_last_call_with_a_clear_message(
    spread: PredictHarness,
) -> None:
    h = spread
    await h.start()
    h.add("N1", NOW, "created", "new")
    await h.poll()
    assert h.titles("predicted_breach") == [], "P = 50 % at creation: below early (95 %)"
    await h.advance(39)
    assert h.titles("predicted_breach") == []
    await h.advance(1)  # 09:40: the deadline (10:00) is exactly the 20 minute lead away
    (title,) = h.titles("predicted_breach")
    match = re.fullmatch(
        r"\[PREDICTED_BREACH\] SLA breach predicted: ticket N1 first_response (\d+)% likely "
        r"to breach at Mon 2024-03-11 10:00 UTC",
        title,
    )
    assert match, title
    assert 50 <= int(match.group(1)) < 100
    body = h.body_of(title)
    assert "deadline: 2024-03-11T10:00:00Z (Mon 2024-03-11 10:00 UTC)" in body
    assert f"probability of breach: {match.group(1)}%" in body
    assert any(line.startswith("why: ") and "went past 1h" in line for line in body)
    assert "id: desk/N1/first_response/0/predicted" in body
    assert not [line for line in body if "nan" in line.lower()]
    await h.advance(30)  # the breach follows at 10:00; the prediction is not repeated
    assert len(h.titles("predicted_breach")) == 1
    assert len(h.titles("breach")) == 1
    assert h.app is not None
    sent = h.app.metrics.predicted_breaches.labels("desk", "support", "first_response")
    assert sent._value.get() == 1


async def test_a_restart_never_repeats_a_predicted_breach(spread: PredictHarness) -> None:
    h = spread
    await h.start()
    h.add("N1", NOW, "created", "new")
    await h.poll()
    await h.advance(41)
    assert len(h.titles("predicted_breach")) == 1
    await h.stop()
    await h.start()  # the same state file: history and the open ticket are replayed
    await h.advance(5)
    assert len(h.titles("predicted_breach")) == 1, "durably once, across restarts"


async def test_a_ticket_answered_before_its_last_call_is_never_warned(
    spread: PredictHarness,
) -> None:
    h = spread
    await h.start()
    h.add("N1", NOW, "created", "new")
    await h.poll()
    await h.advance(30)
    h.add("N1", NOW + timedelta(minutes=30), "agent_reply", "open")
    await h.poll()
    await h.advance(60)
    assert h.titles("predicted_breach") == [] and h.titles("breach") == []


async def test_a_hopeless_ticket_is_warned_when_it_arrives(tmp_path: Path) -> None:
    """When every past cycle took two hours against a one hour target, a new ticket is
    warned at once (P >= early), its full lead ahead."""
    h = PredictHarness(tmp_path, [120] * 40)
    try:
        await h.start()
        h.add("N1", NOW, "created", "new")
        await h.poll()
        (title,) = h.titles("predicted_breach")
        assert "ticket N1 first_response" in title and "likely to breach at" in title
    finally:
        await h.stop()


async def test_a_queue_alert_goes_out_once_when_the_forecast_turns_bad(tmp_path: Path) -> None:
    """Eight tickets arrive at once in a queue that answers a few a day: the forecast says
    they will miss their first response, and the leads hear it once."""
    h = PredictHarness(tmp_path, [50] * 40)
    try:
        await h.start()
        for n in range(8):
            h.add(f"Q{n}", NOW, "created", "new")
        await h.poll()
        await h.advance(2)
        (title,) = h.titles("queue")
        assert re.fullmatch(
            r"\[QUEUE\] Queue forecast: support: backlog 8 and \w+ \(arrivals [\d.]+/h, "
            r"throughput [\d.]+/h\); \d ticket?s? will miss first response within the next "
            r"4h of business time unless throughput rises by [\d.]+/h",
            title,
        ), title
        await h.advance(10)
        assert len(h.titles("queue")) == 1, "not again while the forecast stays the same"
        assert h.app is not None
        assert h.app.metrics.queue_alerts.labels("desk", "support")._value.get() == 1
    finally:
        await h.stop()


async def test_what_was_learnt_from_closed_tickets_survives_a_restart(
    spread: PredictHarness,
) -> None:
    """Closed tickets leave the state file with their events; their cycles stay as learnt
    cycles, so after a restart the predictor still has its history."""
    h = spread
    for n in range(40):
        h.add(f"H{n}", NOW - timedelta(minutes=1), "closed", "closed")
    app = await h.start()
    assert app.store.load_events("desk") == {}
    learnt = app.store.learnt("desk")
    assert len(learnt) == 40 and all(c.ended_us is not None for c in learnt)
    await h.stop()

    app = await h.start()  # the CSV cursor is past the history: only the learnt cycles tell
    h.add("N1", NOW, "created", "new")
    await h.poll()
    await h.advance(40)
    assert len(h.titles("predicted_breach")) == 1, "warned at its last call, as before"
    await h.stop()

    app = await h.start()
    assert app.store.prune_learnt(NOW + timedelta(days=1)) == 40  # without them: no history
    await h.stop()
    app = await h.start()
    (risk,) = app.prediction.predictor.assess(app.prediction.predictor.refreshed_at or 0)
    assert risk.probability is None and "finished first_response cycles" in risk.reason


async def test_solved_tickets_evicted_when_idle_leave_their_cycles_behind(
    spread: PredictHarness,
) -> None:
    h = spread
    for n in range(40):
        h.add(f"H{n}", NOW - timedelta(minutes=1), "resolved", "solved")
    app = await h.start()
    assert len(app.store.load_events("desk")) == 40 and app.store.learnt("desk") == []
    await h.advance(15 * 24 * 60, step_minutes=24 * 60)  # past the 14 day retention
    app.sweep()
    assert app.store.load_events("desk") == {} and len(app.tickets) == 0
    assert sorted(c.ticket_id for c in app.store.learnt("desk")) == sorted(
        f"H{n}" for n in range(40)
    )
