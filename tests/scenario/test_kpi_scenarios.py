"""KPI metrics and scheduled reports of the daemon, on virtual time (a fake clock, a real CSV
file and state file, console receivers)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sladaemon.cli import main
from sladaemon.clock import FakeClock
from sladaemon.config import load_config
from sladaemon.daemon.app import App
from sladaemon.eventlog import read_events
from sladaemon.report.ledger import compute_kpis
from tests.scenario.harness import DaemonHarness

START = datetime(2024, 1, 8, 7, 0, tzinfo=UTC)  # Monday 08:00 in Berlin
DUE = datetime(2024, 1, 8, 8, 0, tzinfo=UTC)  # the weekly report: Monday 09:00 in Berlin


def config_text(tmp_path: Path) -> str:
    return textwrap.dedent(
        f"""
        calendars:
          office: {{timezone: Europe/Berlin, hours: {{mon-fri: "09:00-17:00"}}}}
        receivers:
          console: {{urls: ["console://"]}}
          leads: {{urls: ["console://"]}}
        policies:
          - name: support
            calendar: office
            targets: {{first_response: 1h, resolution: 8h}}
            escalation:
              - {{at: breach, notify: [console]}}
              - {{at: breach+30m, notify: [console]}}
        sources:
          desk: {{type: csv, path: {tmp_path / "events.csv"}, poll_interval: 1h}}
        reports:
          - {{name: weekly, every: "mon 09:00", calendar: office, period: 7d, receiver: leads}}
        daemon:
          state: {tmp_path / "state.sqlite"}
          kpi_window: 7d
          http: {{enabled: false}}
        """
    )


class Harness(DaemonHarness):
    step_minutes = 5
    channel = queue = ""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, config_text(tmp_path), START)

    async def jump_to(self, t: datetime) -> None:
        """Move the clock while no daemon runs (downtime)."""
        await self.clock.advance(t - self.clock.now())

    def reports(self) -> list[str]:
        return self.lines("[REP")

    def last_week(self) -> None:
        """A week of history: one ticket answered in time, one answered late."""
        self.add("W1", START - timedelta(days=6), "created", "new", channel="email")
        self.add("W1", START - timedelta(days=6, minutes=-20), "agent_reply", "open")
        self.add("W2", START - timedelta(days=5), "created", "new", channel="web")
        self.add("W2", START - timedelta(days=4), "agent_reply", "open")


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    yield h
    await h.stop()


def sample(app: App, name: str, **labels: str) -> float | None:
    return app.metrics.registry.get_sample_value(name, labels)


async def test_a_report_goes_out_once_at_its_local_instant_and_never_again(
    harness: Harness,
) -> None:
    harness.last_week()
    await harness.start()
    await harness.advance(55)
    assert harness.reports() == []
    await harness.advance(5)  # 09:00 in Berlin
    assert harness.reports() == ["[REPORT] Support KPIs weekly: 2024-01-01 to 2024-01-08"]
    body = harness.console.getvalue()
    assert "Support KPIs 2024-01-01 08:00 .. 2024-01-08 08:00 UTC (days in Europe/Berlin)" in body
    assert "tickets created         2 (0.3 a day)" in body
    await harness.advance(120)
    await harness.stop()
    await harness.start()  # a restart within catch_up of the instant: already handled
    await harness.advance(10)
    assert len(harness.reports()) == 1
    app = harness.app
    assert app is not None
    assert sample(app, "sladaemon_escalations_sent_total", receiver="leads", kind="report") is None


async def test_a_report_missed_during_downtime_is_sent_once_on_start(harness: Harness) -> None:
    harness.last_week()
    await harness.start()
    await harness.advance(30)
    await harness.stop()
    await harness.jump_to(DUE + timedelta(minutes=20))  # down over the instant, back within 1 h
    app = await harness.start()
    assert harness.reports() == ["[REPORT] Support KPIs weekly: 2024-01-01 to 2024-01-08"]
    assert sample(app, "sladaemon_reports_generated_total", report="weekly") == 1
    assert sample(app, "sladaemon_escalations_sent_total", receiver="leads", kind="report") == 1
    await harness.stop()
    await harness.start()
    assert len(harness.reports()) == 1, "not sent again"


async def test_a_report_missed_for_longer_than_catch_up_is_counted_and_logged(
    harness: Harness,
) -> None:
    harness.last_week()
    await harness.start()
    await harness.stop()
    await harness.jump_to(DUE + timedelta(weeks=2, hours=3))  # two instants missed
    with capture_logs() as logs:
        app = await harness.start()
    assert harness.reports() == []
    assert sample(app, "sladaemon_reports_skipped_total", report="weekly") == 3
    skipped = [e for e in logs if e["event"] == "report_skipped"]
    assert [e["due"] for e in skipped] == [
        "2024-01-08T08:00:00Z",
        "2024-01-15T08:00:00Z",
        "2024-01-22T08:00:00Z",
    ]
    await harness.stop()
    app = await harness.start()
    assert sample(app, "sladaemon_reports_skipped_total", report="weekly") is None, "once"
    await harness.advance(7 * 24 * 60 - 3 * 60, step_minutes=60)
    assert harness.reports() == ["[REPORT] Support KPIs weekly: 2024-01-22 to 2024-01-29"]


async def test_reports_keep_their_local_time_across_dst(harness: Harness) -> None:
    # Berlin springs forward on Sunday 2024-03-31: the next Monday 09:00 is 07:00 UTC.
    harness.clock = FakeClock(datetime(2024, 3, 29, 12, 0, tzinfo=UTC))
    await harness.start()
    await harness.advance(3 * 24 * 60 - 5 * 60 - 1, step_minutes=60)  # Mon 06:59 UTC
    assert harness.reports() == []
    await harness.advance(1, step_minutes=1)
    assert harness.reports() == ["[REPORT] Support KPIs weekly: 2024-03-25 to 2024-04-01"]
    assert "2024-03-25 08:00 .. 2024-04-01 07:00 UTC" in harness.console.getvalue()


async def test_kpi_metrics_agree_with_the_report_and_outlive_closed_tickets(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.last_week()
    t0 = START + timedelta(hours=1)  # Monday 09:00 in Berlin
    # A: answered in 20 min, solved, closed (its events then leave the state file).
    harness.add("A", t0, "created", "new", channel="email", queue="l1")
    harness.add("A", t0 + timedelta(minutes=20), "agent_reply", "open")
    harness.add("A", t0 + timedelta(hours=1), "resolved", "solved")
    harness.add("A", t0 + timedelta(hours=2), "closed", "closed")
    # B: never answered: breaches at 10:00 Berlin, escalates at 10:30.
    harness.add("B", t0 + timedelta(minutes=5), "created", "new", channel="web", queue="l1")
    # C: moved to another queue, answered, solved, reopened.
    harness.add("C", t0 + timedelta(minutes=10), "created", "new", channel="web", queue="l1")
    harness.add("C", t0 + timedelta(minutes=40), "agent_reply", "open", queue="l2")
    harness.add("C", t0 + timedelta(hours=3), "resolved", "solved")
    harness.add("C", t0 + timedelta(hours=4), "reopened", "open")
    await harness.start()
    await harness.advance(6 * 60 + 7, step_minutes=1)  # 15:07 in Berlin
    app = harness.app
    assert app is not None
    now = harness.clock.now()
    cfg = load_config(harness.config)
    log = read_events(harness.events, cfg.status_map("desk"))
    expected = compute_kpis(
        log.tickets, cfg.policies, now - timedelta(days=7), now, "Europe/Berlin"
    )

    def figures(app: App) -> dict[str, float | None]:
        out: dict[str, float | None] = {
            "backlog": sample(app, "sladaemon_kpi_backlog_tickets"),
            "reopen": sample(app, "sladaemon_kpi_reopen_ratio"),
            "escalation": sample(app, "sladaemon_kpi_escalation_ratio"),
            "fcr": sample(app, "sladaemon_kpi_first_contact_resolution_ratio"),
            "solved": sample(app, "sladaemon_kpi_solved_tickets"),
            "fr_median": sample(
                app, "sladaemon_kpi_first_response_seconds", clock="business", statistic="median"
            ),
            "fr_mean_wall": sample(
                app, "sladaemon_kpi_first_response_seconds", clock="calendar", statistic="mean"
            ),
        }
        for c in expected.compliance:
            labels = {"policy": c.policy, "metric": c.metric, "channel": c.channel}
            out[f"{c.metric}/{c.channel}"] = sample(
                app, "sladaemon_kpi_sla_compliance_ratio", **labels
            )
        for channel in ("email", "web"):
            out[f"new/{channel}"] = sample(app, "sladaemon_kpi_new_tickets", channel=channel)
            out[f"today/{channel}"] = sample(
                app, "sladaemon_kpi_new_tickets_today", channel=channel
            )
        return out

    by_metric = {(c.metric, c.channel): c.percent for c in expected.compliance}
    want = {
        "backlog": expected.backlog,
        "reopen": (expected.reopen.percent or 0) / 100,
        "escalation": (expected.escalation.percent or 0) / 100,
        "fcr": (expected.first_contact_resolution.percent or 0) / 100,
        "solved": expected.reopen.denominator,
        "fr_median": expected.first_response_business.median_s,
        "fr_mean_wall": expected.first_response_calendar.mean_s,
        **{f"{m}/{ch}": (p or 0) / 100 for (m, ch), p in by_metric.items()},
        "new/email": 2,
        "new/web": 3,
        "today/email": 1,
        "today/web": 2,
    }
    assert figures(app) == pytest.approx(want)
    # By hand: W1, W2, B and C are open; of A and C (solved), C reopened; W1 and W2 (their
    # resolution, 8 business hours) and B (first response) reached breach+30m, C moved queue.
    assert (expected.backlog, expected.reopen.numerator, expected.reopen.denominator) == (4, 1, 2)
    assert (expected.escalation.numerator, expected.escalation.denominator) == (4, 5)
    assert sample(app, "sladaemon_kpi_sla_compliance_target_ratio") == 0.95
    assert sample(app, "sladaemon_kpi_window_seconds") == 7 * 86_400
    assert app.store.load_events("desk", "A") == {}, "a closed ticket's events are gone"
    before = figures(app)
    await harness.stop()
    app = await harness.start()
    assert figures(app) == before, "the facts of closed tickets live on in the ledger"

    # `report` without --events reads the same ledger from the state file.
    args = ["report", "--config", str(harness.config), "--until", now.isoformat()]
    capsys.readouterr()  # the daemon's log so far
    assert main([*args, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["backlog"], data["reopen"]["numerator"], data["reopen"]["denominator"]) == (
        4,
        1,
        2,
    )
    assert data["created_per_channel"] == {"email": 2, "web": 3}
    assert data["first_response_business"] == {
        "count": expected.first_response_business.count,
        "mean_s": pytest.approx(expected.first_response_business.mean_s),
        "median_s": pytest.approx(expected.first_response_business.median_s),
        "p90_s": pytest.approx(expected.first_response_business.p90_s),
    }
    assert main([*args, "--source", "elsewhere"]) == 2
    assert main([*args, "--timezone", "Mars/Olympus"]) == 2
