"""A first start against an old backlog, on virtual time: the tickets already past a ladder
level when monitoring began are summed up once per receiver, not dropped in silence."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.scenario.harness import DaemonHarness

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)  # a Monday
FRIDAY = START - timedelta(days=3)


def config_text(tmp_path: Path) -> str:
    return textwrap.dedent(
        f"""
        calendars:
          office: {{timezone: UTC, hours: {{mon-fri: "09:00-17:00"}}}}
        receivers:
          leads: {{urls: ["console://"]}}
          oncall: {{urls: ["console://"]}}
          ops: {{urls: ["console://"]}}
        policies:
          - name: support
            calendar: office
            targets: {{first_response: 1h}}
            escalation:
              - {{at: 50%, notify: [leads]}}
              - {{at: breach, notify: [oncall]}}
              - {{at: breach+30m, notify: [oncall, leads]}}
        sources:
          desk:
            type: csv
            path: {tmp_path / "events.csv"}
            poll_interval: 1h
            ticket_url: "https://desk.example.com/t/{{ticket_id}}"
        daemon:
          state: {tmp_path / "state.sqlite"}
          operator: ops
          http: {{enabled: false}}
        """
    )


class Harness(DaemonHarness):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, config_text(tmp_path), START)

    def summaries(self) -> dict[str, str]:
        """The summary rows in the outbox: receiver -> message body."""
        assert self.app is not None
        with contextlib.closing(sqlite3.connect(self.app.store.path)) as db:
            rows = db.execute(
                "SELECT receiver, payload FROM outbox WHERE kind = 'overdue_at_start'"
            ).fetchall()
        return {receiver: json.loads(payload)["body"] for receiver, payload in rows}


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    yield h
    await h.stop()


def old_backlog(h: Harness) -> None:
    """Friday's tickets, the daemon first started on Monday 09:00 (catch_up: 1 h)."""
    h.add("A", FRIDAY, "created", "new")  # 50 %, breach and breach+30m on Friday morning
    h.add("B", FRIDAY.replace(hour=16, minute=30), "created", "new")  # 50 % at Fri 17:00
    h.add("C", FRIDAY, "created", "new")
    h.add("C", FRIDAY + timedelta(minutes=40), "agent_reply", "open")  # met after its 50 %


async def test_a_first_start_sums_up_the_tickets_already_overdue_once_per_receiver(
    harness: Harness,
) -> None:
    old_backlog(harness)
    with capture_logs() as logs:
        app = await harness.start()
    summaries = harness.summaries()
    assert set(summaries) == {"leads", "oncall"}
    leads, oncall = summaries["leads"].splitlines(), summaries["oncall"].splitlines()
    assert leads[0].startswith(
        "2 tickets of desk were already past a ladder level when monitoring began "
        "(2024-01-08T09:00:00Z)"
    )
    assert "per metric: first_response 2" in leads
    assert "  ticket A https://desk.example.com/t/A: first_response breach+30m" in leads
    assert "  ticket B https://desk.example.com/t/B: first_response 50%" in leads
    assert oncall[0].startswith("1 ticket of desk was already past a ladder level")
    assert "  ticket A https://desk.example.com/t/A: first_response breach+30m" in oncall
    assert not any("ticket B" in line or "ticket C" in line for line in oncall)
    assert not any("ticket C" in line for line in leads), "C was met before monitoring began"
    # Not one by one, and not as "skipped" to the operator: the summary says it.
    assert sorted(harness.lines("[")) == [
        "[OVERDUE_AT_START] 1 ticket of desk was already past a ladder level when monitoring began",
        "[OVERDUE_AT_START] 2 tickets of desk were already past a ladder level when monitoring "
        "began",
    ]
    (logged,) = [e for e in logs if e["event"] == "overdue_at_start"]
    assert logged["tickets"] == 2 and logged["per_metric"] == {"first_response": 2}
    assert logged["most_overdue"] == ["A", "B"]
    assert logged["receivers"] == ["leads", "oncall"]
    assert not [e for e in logs if e["event"] == "sla_events_skipped"]
    assert app.metrics.overdue_at_start.labels("desk")._value.get() == 2

    await harness.advance(30)  # Monday 09:30: B breaches, told as usual
    assert any("ticket B first_response breached" in t for t in harness.lines("["))

    harness.add("D", START + timedelta(minutes=30), "created", "new")
    await harness.poll()
    await harness.stop()
    await harness.clock.advance(timedelta(hours=3))  # down while D passes all its levels
    with capture_logs() as logs:
        await harness.start()  # monitored before: neither a new summary nor the old again
    assert not [e for e in logs if e["event"] == "overdue_at_start"]
    assert len(harness.summaries()) == 2
    assert sum("monitoring began" in t for t in harness.lines("[")) == 2
    assert any(
        "SLA events older than daemon.catch_up were not sent" in t for t in harness.lines("[")
    )
