"""Inhibition on virtual time: a breach takes the place of its metric's warning still waiting
in a group, a rule of the config holds what it targets while its source fires, and a stale
source holds its tickets' alerts until it is polled again."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from tests.scenario.test_noise_scenarios import MONDAY, Harness, config_text

ONE_LEVEL = "escalation: [{at: breach}]"


def text(tmp_path: Path, route: str, escalation: str = ONE_LEVEL) -> str:
    return config_text(tmp_path, route).replace(
        "escalation: [{at: breach}, {at: breach+30m}]", escalation
    )


def items(h: Harness) -> list[tuple[str, str, str]]:
    """(receiver, ticket, level) of every item of every digest sent."""
    return [
        (receiver, str(i["ticket_id"]), str(i["level"]))
        for receiver, _, payload in h.messages()
        for i in payload.get("items", [])
    ]


async def test_a_breach_in_the_same_group_wait_goes_out_alone(tmp_path: Path) -> None:
    route = """
route:
  receiver: desk
  group_by: [queue]
  group_wait: 20m
"""
    h = Harness(
        tmp_path,
        text(tmp_path, route, "escalation: [{at: 75%}, {at: breach}]"),
        MONDAY - timedelta(hours=1),
    )
    h.add("W1", MONDAY - timedelta(hours=1), "created", "new", queue="billing")
    try:
        app = await h.start()
        await h.advance(70, step_minutes=1)  # 75% at +45m, breach at +60m, the flush at +65m
        assert items(h) == [("desk", "W1", "breach")]
        assert app.metrics.notifications_inhibited.labels("desk")._value.get() == 1
    finally:
        await h.stop()


async def test_a_configured_rule_holds_its_targets_while_its_source_fires(tmp_path: Path) -> None:
    route = """
route:
  receiver: desk
  group_by: [queue]
  group_wait: 30s
inhibit_defaults: false
inhibit_rules:
  - source_matchers: [queue=billing, kind=breach]
    target_matchers: [queue=sales]
    equal: [metric]
"""
    h = Harness(tmp_path, text(tmp_path, route), MONDAY - timedelta(hours=1))
    created = MONDAY - timedelta(hours=1)
    h.add("B1", created, "created", "new", queue="billing")
    h.add("S1", created, "created", "new", queue="sales")
    h.add("T1", created, "created", "new", queue="tech")
    try:
        app = await h.start()
        await h.advance(65, step_minutes=1)  # all three breach at +60m
        assert sorted(items(h)) == [("desk", "B1", "breach"), ("desk", "T1", "breach")]
        assert app.metrics.notifications_inhibited.labels("desk")._value.get() == 1
    finally:
        await h.stop()


async def test_a_stale_source_holds_its_tickets_alerts_until_it_recovers(tmp_path: Path) -> None:
    route = """
route:
  receiver: desk
  group_by: [queue]
  group_wait: 30s
  group_interval: 5m
"""
    h = Harness(tmp_path, text(tmp_path, route), MONDAY - timedelta(hours=1))
    h.add("X1", MONDAY - timedelta(hours=1), "created", "new", queue="billing")
    try:
        app = await h.start()
        await h.advance(30, step_minutes=1)
        aside = tmp_path / "events.aside"
        h.events.rename(aside)
        await h.poll()  # fails, as every poll does from now on
        health = app.pollers["desk"].health
        assert health.last_error
        health.last_success = time.monotonic() - health.stale_after - 1  # as /healthz sees it
        await h.advance(40, step_minutes=1)  # the breach at +60m
        assert items(h) == []
        assert app.metrics.notifications_inhibited.labels("desk")._value.get() == 1
        aside.rename(h.events)
        await h.poll()  # succeeds: the source is fresh again
        await h.advance(10, step_minutes=1)
        assert items(h) == [("desk", "X1", "breach")]
    finally:
        await h.stop()
