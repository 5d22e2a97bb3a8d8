"""The daemon on virtual time: a fake clock, a real CSV file, the console receiver."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.config import load_config
from sladaemon.daemon.app import App
from tests.scenario.harness import DaemonHarness

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)  # a Monday


def config_text(tmp_path: Path, targets: str = "{first_response: 1h, resolution: 8h}") -> str:
    return textwrap.dedent(
        f"""
        calendars:
          office: {{timezone: UTC, hours: {{mon-fri: "09:00-17:00"}}}}
        receivers:
          console: {{urls: ["console://"], send_resolved: true}}
          ops: {{urls: ["console://"]}}
        policies:
          - name: support
            calendar: office
            targets: {targets}
            escalation:
              - {{at: 50%, notify: [console]}}
              - {{at: breach, notify: [console]}}
              - {{at: breach+30m, notify: [console]}}
        sources:
          desk: {{type: csv, path: {tmp_path / "events.csv"}, poll_interval: 1h}}
        daemon:
          state: {tmp_path / "state.sqlite"}
          operator: ops
          http: {{enabled: false}}
        """
    )


class Harness(DaemonHarness):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, config_text(tmp_path), START)

    def titles(self) -> list[str]:
        return self.lines("[")


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    yield h
    await h.stop()


async def test_levels_fire_at_their_instants_independent_of_polling(harness: Harness) -> None:
    harness.add("T1", START, "created", "new")
    await harness.start()
    await harness.advance(29)
    assert harness.titles() == []
    await harness.advance(1)  # 09:30, 50 % of 1 h, though the next poll is an hour away
    assert harness.titles() == [
        "[WARNING] SLA warning: ticket T1 first_response at 50% of target, 30m left"
    ]
    await harness.advance(30)
    await harness.advance(30)
    assert harness.titles()[1:] == [
        "[BREACH] SLA breached: ticket T1 first_response breached",
        "[ESCALATION] SLA escalation: ticket T1 first_response overdue by 30m (breach+30m)",
    ]


async def test_a_reply_cancels_pending_levels_and_send_resolved_follows_a_breach(
    harness: Harness,
) -> None:
    harness.add("T1", START, "created", "new")
    harness.add("T2", START, "created", "new")
    await harness.start()
    await harness.advance(20)
    harness.add("T1", START + timedelta(minutes=20), "agent_reply", "open")
    await harness.poll()
    await harness.advance(70)  # T2 breaches at 10:00; T1 was answered in time
    harness.add("T2", START + timedelta(minutes=95), "agent_reply", "open")
    await harness.poll()
    await harness.settle()
    titles = harness.titles()
    assert not any("ticket T1 first_response" in t for t in titles)
    assert "[BREACH] SLA breached: ticket T2 first_response breached" in titles
    assert titles[-1] == "[RESOLVED] SLA met late: ticket T2 first_response met after its breach"


async def test_restart_never_repeats_what_was_sent(harness: Harness) -> None:
    harness.add("T1", START, "created", "new")
    app = await harness.start()
    await harness.advance(61)
    sent_before = len(harness.titles())
    assert sent_before == 2  # 50 % and breach
    await app.shutdown()
    harness.app = App(load_config(harness.config), clock=harness.clock, console=harness.console)
    await harness.app.start()
    await harness.advance(40)
    titles = harness.titles()
    assert len(titles) == 3, titles  # only breach+30m is new
    assert titles[-1].startswith("[ESCALATION]")


async def test_pending_status_pauses_and_resumes_the_clock(harness: Harness) -> None:
    harness.add("T1", START, "created", "new")
    harness.add("T1", START + timedelta(minutes=10), "agent_reply", "pending")
    await harness.start()
    await harness.advance(8 * 60, step_minutes=30)
    assert not any("resolution" in t for t in harness.titles()), "paused: nothing fires"
    harness.add("T1", START + timedelta(hours=8), "customer_reply", "")
    await harness.poll()
    # 10 min were used before the pause; 50 % of 8 h = 4 h is reached 3h50m after 17:00 ->
    # Tue 12:50 on the 09-17 calendar.
    await harness.advance(20 * 60, step_minutes=10)
    warning = [t for t in harness.titles() if "resolution at 50%" in t]
    assert warning == ["[WARNING] SLA warning: ticket T1 resolution at 50% of target, 4h left"]
    assert "at: 2024-01-09T12:50:00Z" in harness.console.getvalue()


async def test_reload_validates_first_and_applies_new_targets(harness: Harness) -> None:
    harness.add("T1", START, "created", "new")
    app = await harness.start()
    harness.config.write_text("policies: [oops\n")
    assert await app.reload() is False, "a bad config keeps the old one running"
    await harness.advance(30)
    assert len(harness.titles()) == 1
    harness.config.write_text(config_text(harness.tmp_path, "{first_response: 2h}"))
    assert await app.reload() is True
    await harness.advance(61)  # 1h target would have breached at 10:00; now 2h -> 11:00
    assert not any("breached" in t for t in harness.titles())
    await harness.advance(60)
    assert any("breached" in t for t in harness.titles())


async def test_garbage_lines_are_skipped_and_the_rest_processed(harness: Harness) -> None:
    with harness.events.open("a") as f:
        f.write("this,is,not,a,valid,row,at all\n\x00\x01garbage\n")
    harness.add("T1", START, "created", "new")
    app = await harness.start()
    assert len(app.tickets) == 1
    await harness.advance(31)
    assert len(harness.titles()) == 1


async def test_a_customer_reply_to_a_solved_ticket_waits_for_an_answer(tmp_path: Path) -> None:
    """CSV rows as a helpdesk records them: the customer's reply, still showing the solved
    status it arrived to, then the reopen it caused, in the same second. The reply starts a
    next-response clock, whose levels are alerted."""
    targets = "{first_response: 1h, next_response: 1h, resolution: 8h}"
    h = DaemonHarness(tmp_path, config_text(tmp_path, targets), START)
    h.add("T1", START, "created", "new")
    h.add("T1", START + timedelta(minutes=10), "agent_reply", "open")
    h.add("T1", START + timedelta(minutes=20), "resolved", "solved")
    h.add("T1", START + timedelta(minutes=30), "customer_reply", "solved")
    h.add("T1", START + timedelta(minutes=30), "reopened", "open")
    try:
        await h.start()
        await h.advance(90)  # to 10:30, one business hour after the reply
        assert [line for line in h.lines("[") if "next_response" in line] == [
            "[WARNING] SLA warning: ticket T1 next_response at 50% of target, 30m left",
            "[BREACH] SLA breached: ticket T1 next_response breached",
        ]
    finally:
        await h.stop()


async def test_native_deadlines_are_cross_checked_and_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source that reports the helpdesk's own deadline (the ``due:<metric>`` field): one that
    agrees is quiet, one 30 min off is a ``deadline_mismatch``; ``explain`` shows both."""
    from sladaemon.cli import main

    h = Harness(tmp_path)
    h.events.write_text(
        "ticket_id,timestamp,event,status,priority,channel,queue,due:first_response\n"
        "A,2024-01-08T09:00:00Z,created,new,normal,email,support,2024-01-08T10:00:00Z\n"
        "B,2024-01-08T09:00:00Z,created,new,normal,email,support,2024-01-08T10:30:00Z\n"
    )
    app = await h.start()
    mismatches = app.metrics.deadline_mismatches.labels("desk", "first_response")
    assert mismatches._value.get() == 1
    await app.shutdown()
    h.app = None
    assert (
        main(
            [
                "explain",
                "--config",
                str(h.config),
                "--source",
                "desk",
                "B",
                "--at",
                "2024-01-08T09:10:00Z",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "helpdesk  2024-01-08T10:30:00Z (+30m vs ours)" in out
    assert (
        main(
            [
                "explain",
                "--config",
                str(h.config),
                "--source",
                "desk",
                "A",
                "--json",
                "--at",
                "2024-01-08T09:10:00Z",
            ]
        )
        == 0
    )
    data = __import__("json").loads(capsys.readouterr().out)
    assert data["metrics"]["first_response"]["helpdesk_deadline"] == "2024-01-08T10:00:00Z"
    assert data["metrics"]["first_response"]["deadline"] == "2024-01-08T10:00:00Z"


async def test_a_poison_row_is_quarantined_and_never_stops_the_rest_nor_a_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row dated 9999-12-31 is stored like any other; it is set aside with its reason, the
    other tickets are alerted, and the next start does not trip over it."""
    from sladaemon.cli import main

    h = Harness(tmp_path)
    h.add("P1", START, "created", "new")
    h.add("P1", datetime(9999, 12, 31, tzinfo=UTC), "agent_reply")
    h.add("T1", START, "created", "new")
    app = await h.start()
    await h.advance(30)
    assert h.titles() == [
        "[WARNING] SLA warning: ticket P1 first_response at 50% of target, 30m left",
        "[WARNING] SLA warning: ticket T1 first_response at 50% of target, 30m left",
    ]
    assert app.metrics.quarantined.labels("desk")._value.get() == 1
    assert app.store.quarantined("desk", "P1") == [
        "9999-12-31 is outside the instants sladaemon accepts (1970 to 2199)"
    ]
    await h.stop()
    app = await h.start()  # the stored poison row is read again: set aside again, no crash
    assert len(app.tickets) == 2
    await h.stop()
    code = main(["explain", "--config", str(h.config), "--source", "desk", "P1"])
    captured = capsys.readouterr()
    assert code == 0 and "quarantined by the daemon: 9999-12-31 is outside" in captured.err
    assert "first_response" in captured.out


async def test_a_forward_clock_step_tells_the_operator_what_it_skipped(harness: Harness) -> None:
    """A VM resumed after 2.5 h: levels older than catch_up (1 h) are not sent, and the
    operator is told so rather than left with a counter."""
    harness.add("T1", START, "created", "new")
    await harness.start()
    await harness.advance(150, step_minutes=150)  # one jump from 09:00 to 11:30
    assert harness.titles() == [
        "[ESCALATION] SLA escalation: ticket T1 first_response overdue by 30m (breach+30m)",
        "[OPERATOR] sladaemon: 2 SLA events older than daemon.catch_up were not sent (the "
        "oldest: ticket T1 first_response at 2024-01-08T09:30:00Z): downtime, a step of the "
        "system clock or a first start on an old backlog",
    ]
