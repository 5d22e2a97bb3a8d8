"""The daemon's stages one at a time, on a fake clock, without building the App: the ticket
tracker, the router, the outbox, the deliverer, a source poller, the report scheduler, the
KPI facts and the supervisor of the loops."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.clock import FakeClock
from sladaemon.config import Config, load_config
from sladaemon.daemon.kpis import KpiFacts
from sladaemon.daemon.pollers import SourcePoller
from sladaemon.daemon.reports import ReportScheduler
from sladaemon.daemon.supervise import Supervisor
from sladaemon.daemon.tickets import TicketTracker
from sladaemon.escalate.deliver import Deliverer
from sladaemon.escalate.outbox import Outbox, cycle_prefix, sla_key
from sladaemon.escalate.route import Router
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import EventKind, Metric, NotificationKind, SlaEventKind, TicketEvent
from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.report.ledger import KpiLedger
from sladaemon.sources.base import PollResult, SourceError
from sladaemon.store.sqlite import OutboxItem, StateStore

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)  # a Monday


def config(tmp_path: Path, catch_up: str = "1h", reports: str = "[]") -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            calendars:
              always: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}
            receivers:
              team: {{urls: ["console://", "console://"], send_resolved: true}}
              quiet: {{urls: ["console://"]}}
              ops: {{urls: ["console://"]}}
            policies:
              - name: support
                calendar: always
                targets: {{first_response: 1h}}
                escalation:
                  - {{at: 50%, notify: [team]}}
                  - {{at: breach, notify: [team, quiet]}}
            sources:
              desk:
                type: csv
                path: {tmp_path / "events.csv"}
                ticket_url: "https://desk.example.com/t/{{ticket_id}}"
            reports: {reports}
            daemon:
              state: {tmp_path / "state.sqlite"}
              operator: ops
              catch_up: {catch_up}
              delivery: {{first_retry: 1s, max_retry: 2s, max_attempts: 2}}
              http: {{enabled: false}}
            """
        )
    )
    return load_config(path, environ={})


def event(ticket: str, at: datetime, kind: EventKind, **fields: str) -> TicketEvent:
    return TicketEvent(ticket, at, kind, fields=fields)


@dataclass
class Stages:
    config: Config
    clock: FakeClock
    store: StateStore
    metrics: DaemonMetrics
    console: io.StringIO
    notifier: AppriseNotifier
    outbox: Outbox
    router: Router

    def deliverer(self, alerts: list[tuple[str, str, str, float]]) -> Deliverer:
        """A Deliverer on these stages; operator alerts are collected in ``alerts``."""
        settings = self.config.daemon.delivery
        return Deliverer(
            self.store,
            self.notifier,
            settings,
            self.outbox.posted,
            self.clock,
            self.metrics,
            lambda *alert: alerts.append(alert),
        )

    def pending(self) -> list[tuple[str, str, int]]:
        rows = self.store.claim_due(now=1e12, limit=1000)
        for row in rows:
            self.store.retry_later(row.id, 0.0, "", count=False)
        return sorted((row.key, row.receiver, row.target) for row in rows)


@pytest.fixture
def stages(tmp_path: Path) -> Iterator[Stages]:
    cfg = config(tmp_path)
    console = io.StringIO()
    store = StateStore(cfg.daemon.state)
    metrics = DaemonMetrics()
    notifier = AppriseNotifier(cfg.receivers, console)
    outbox = Outbox(store, notifier, metrics)
    router = Router(cfg, outbox, notifier, metrics)
    yield Stages(cfg, FakeClock(START), store, metrics, console, notifier, outbox, router)
    notifier.close(wait=False)
    store.close()


async def test_the_cross_check_reports_a_differing_deadline_and_fires_nothing_itself(
    stages: Stages,
) -> None:
    """Polled an hour late, a ticket whose levels have passed hands them to the timers: the
    comparison with the helpdesk's deadline must not swallow them."""
    tracker = TicketTracker(stages.config.policies, stages.store, stages.clock, stages.metrics)
    await stages.clock.advance(timedelta(hours=2))
    created = event("T1", START, EventKind.CREATED, **{"due:first_response": "2024-01-08T10:30Z"})
    changes = tracker.ingest(
        "desk", PollResult(events=[created]), stages.config.sources["desk"], persistent=True
    )
    assert changes.fired == [] and list(changes.touched) == [("desk", "T1")]
    mismatches = stages.metrics.deadline_mismatches.labels("desk", "first_response")
    assert mismatches._value.get() == 1
    fired = tracker.fire_due()
    assert [(f.event.kind, f.event.level) for f in fired] == [
        (SlaEventKind.WARNING, "50%"),
        (SlaEventKind.BREACH, "breach"),
    ]
    assert stages.store.load_events("desk")["T1"][0].ticket_id == "T1"


async def test_the_router_fans_out_per_url_and_skips_what_is_older_than_catch_up(
    stages: Stages,
) -> None:
    tracker = TicketTracker(stages.config.policies, stages.store, stages.clock, stages.metrics)
    tracker.ingest(
        "desk",
        PollResult(events=[event("OLD", START, EventKind.CREATED)]),
        stages.config.sources["desk"],
        persistent=False,
    )
    tracker.ingest(
        "desk",
        PollResult(events=[event("NEW", START + timedelta(hours=2), EventKind.CREATED)]),
        stages.config.sources["desk"],
        persistent=False,
    )
    await stages.clock.advance(timedelta(hours=3, minutes=30))
    stages.router.sla_events(tracker.fire_due(), stages.clock.now())
    # OLD's levels (09:30, 10:00) are over an hour old; NEW's (11:30, 12:00) are not.
    assert stages.pending() == [
        ("desk/NEW/first_response/0/50%", "team", 0),
        ("desk/NEW/first_response/0/50%", "team", 1),
        ("desk/NEW/first_response/0/breach", "quiet", 0),
        ("desk/NEW/first_response/0/breach", "team", 0),
        ("desk/NEW/first_response/0/breach", "team", 1),
        ("operator/sla_events_skipped/desk/2024-01-08T12:30:00+00:00", "ops", 0),
    ]  # what was skipped is told to the operator, never dropped silently
    assert stages.metrics.sla_events_skipped.labels("desk")._value.get() == 2


async def test_a_metric_met_late_is_told_only_to_send_resolved_receivers_told_of_its_breach(
    stages: Stages,
) -> None:
    tracker = TicketTracker(stages.config.policies, stages.store, stages.clock, stages.metrics)
    desk = stages.config.sources["desk"]
    tracker.ingest(
        "desk", PollResult(events=[event("T1", START, EventKind.CREATED)]), desk, persistent=False
    )
    await stages.clock.advance(timedelta(hours=1, minutes=5))
    stages.router.sla_events(tracker.fire_due(), stages.clock.now())
    reply = event("T1", START + timedelta(hours=1, minutes=10), EventKind.AGENT_REPLY)
    changes = tracker.ingest("desk", PollResult(events=[reply]), desk, persistent=False)
    stages.router.sla_events(changes.fired, stages.clock.now())
    late = [(k, r) for k, r, _ in stages.pending() if k.endswith("/met_late")]
    assert late == [("desk/T1/first_response/0/met_late", "team")] * 2  # quiet: no send_resolved
    told = stages.outbox.receivers_told("desk", "T1", Metric.FIRST_RESPONSE, 0, ["breach"])
    assert sorted(told) == ["quiet", "team"]


def test_the_outbox_writes_once_per_key_and_url_and_wakes_the_deliverer(stages: Stages) -> None:
    payload = {"id": "k1", "kind": "operator", "summary": "hello", "at": "2024-01-08T09:00:00Z"}
    with stages.outbox.batch():
        stages.outbox.post("k1", NotificationKind.OPERATOR, payload, START, ["team"])
        assert not stages.outbox.posted.is_set()  # written when the batch ends
    assert stages.outbox.posted.is_set()
    stages.outbox.posted.clear()
    stages.outbox.post("k1", NotificationKind.OPERATOR, payload, START, ["team"])
    assert not stages.outbox.posted.is_set()  # nothing new
    assert stages.pending() == [("k1", "team", 0), ("k1", "team", 1)]


async def test_sla_keys_share_the_prefix_of_their_cycle(stages: Stages) -> None:
    tracker = TicketTracker(stages.config.policies, stages.store, stages.clock, stages.metrics)
    tracker.ingest(
        "desk",
        PollResult(events=[event("T_1", START, EventKind.CREATED)]),
        stages.config.sources["desk"],
        persistent=False,
    )
    await stages.clock.advance(timedelta(hours=1))
    (warning, breach) = tracker.fire_due()
    prefix = cycle_prefix("desk", "T_1", Metric.FIRST_RESPONSE, 0)
    assert sla_key("desk", warning.event) == prefix + "50%"
    assert sla_key("desk", breach.event) == prefix + "breach"


async def test_the_deliverer_retries_then_gives_up_and_tells_the_operator(stages: Stages) -> None:
    alerts: list[tuple[str, str, str, float]] = []
    payload = {"id": "k2", "kind": "breach", "ticket_id": "T9", "metric": "first_response"}
    stages.store.enqueue([OutboxItem("k2", "nowhere", "breach", payload, START, 0)])
    deliverer = stages.deliverer(alerts)
    sent, failed = await deliverer.drain()
    assert (sent, failed) == (0, 1)
    assert stages.store.outbox_counts() == {"failed": 1}  # an unknown receiver never heals
    assert alerts and alerts[0][0] == "delivery_failed" and "k2" in alerts[0][2]


async def test_the_deliverer_sends_each_url_once(stages: Stages) -> None:
    payload = {"id": "k3", "kind": "operator", "summary": "hi", "at": "2024-01-08T09:00:00Z"}
    stages.outbox.post("k3", NotificationKind.OPERATOR, payload, START, ["team"])
    deliverer = stages.deliverer([])
    task = asyncio.create_task(deliverer.run())
    for _ in range(100):
        await asyncio.sleep(0.01)
        if stages.store.outbox_counts() == {"delivered": 2}:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert stages.store.outbox_counts() == {"delivered": 2}
    assert stages.console.getvalue().count("[OPERATOR] sladaemon: hi") == 2


class ScriptedSource:
    """A source whose polls follow a script: an exception to raise or events to return."""

    persistent = False

    def __init__(self, script: list[Exception | PollResult]) -> None:
        self.name = "desk"
        self.script = script

    async def poll(self, now: datetime) -> PollResult:
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    async def close(self) -> None:
        return None


async def test_a_poller_reports_a_permanent_failure_at_once_and_its_recovery(
    stages: Stages,
) -> None:
    results: list[PollResult] = []
    alerts: list[tuple[str, str, str, float]] = []
    source = ScriptedSource(
        [
            SourceError("401 Unauthorized", retryable=False),
            SourceError("still 401", retryable=False),
            PollResult(events=[event("T1", START, EventKind.CREATED)], more=True),
            PollResult(unknown_statuses={"On Fire"}),
        ]
    )
    poller = SourcePoller(
        "desk",
        source,
        stages.config.sources["desk"],
        stages.clock,
        stages.metrics,
        lambda name, result: results.append(result),
        lambda *alert: alerts.append(alert),
    )
    assert await poller.poll_all() is None  # permanent: the caller waits long
    assert await poller.poll_all() is None
    assert [a[0] for a in alerts] == ["source_failing"]  # once, not per poll
    failing_since = poller.health.failing_since
    assert failing_since is not None and "401" in poller.health.last_error
    assert await poller.poll_all() is True  # both pieces of the backlog
    recovered = poller.health.failing_since is None
    assert len(results) == 2 and recovered
    assert stages.metrics.poll_errors.labels("desk")._value.get() == 2
    poller.check_fresh(poller.health.started + 3600)  # an hour without success: stale
    poller.check_fresh(poller.health.started + 3601)
    assert [a[0] for a in alerts] == ["source_failing", "source_stale"]
    poller.health.last_success = poller.health.started + 3700
    poller.check_fresh(poller.health.started + 3701)
    assert [a[0] for a in alerts] == ["source_failing", "source_stale", "source_recovered"]


async def test_the_report_scheduler_sends_the_latest_due_report_and_counts_the_missed(
    tmp_path: Path,
) -> None:
    daily = '[{name: daily, every: "daily 08:00", period: 1d, receiver: team, format: text}]'
    cfg = config(tmp_path, reports=daily)
    clock = FakeClock(START)  # Monday 09:00: today's 08:00 is within catch_up
    ledger = KpiLedger(cfg.daemon.state)
    kpis = KpiFacts(ledger, {}, cfg, clock)
    sent: list[datetime] = []
    metrics = DaemonMetrics()
    scheduler = ReportScheduler(cfg, kpis, clock, metrics, lambda _, due, report: sent.append(due))
    assert scheduler.run_due() == START + timedelta(hours=23)  # next: Tuesday 08:00
    assert sent == [START - timedelta(hours=1)]
    assert scheduler.run_due() is not None and len(sent) == 1  # each instant once
    await clock.advance(timedelta(days=3))  # down over Tue, Wed; Thu 08:00 is an hour ago
    scheduler.run_due()
    assert sent[1:] == [START + timedelta(days=3, hours=-1)]
    assert metrics.reports_skipped.labels("daily")._value.get() == 2
    ledger.close()


async def test_kpi_facts_keep_the_first_escalation_and_write_what_changed(stages: Stages) -> None:
    tracker = TicketTracker(stages.config.policies, stages.store, stages.clock, stages.metrics)
    ledger = KpiLedger(stages.config.daemon.state)
    kpis = KpiFacts(ledger, tracker.replays, stages.config, stages.clock)
    desk = stages.config.sources["desk"]
    changes = tracker.ingest(
        "desk", PollResult(events=[event("T1", START, EventKind.CREATED)]), desk, persistent=True
    )
    kpis.note(changes.touched, changes.fired)
    assert kpis.pending == 1 and kpis.wake.is_set()
    assert kpis.write() == 1 and kpis.pending == 0
    await stages.clock.advance(timedelta(hours=2))
    kpis.note({}, tracker.fire_due())  # the breach decides the cycle: its facts change
    assert kpis.pending == 1 and kpis.write() == 1
    figures = kpis.figures()
    assert figures is not None and figures.end == stages.clock.now()
    ledger.close()


async def test_a_crashed_loop_is_logged_told_restarted_and_recovers() -> None:
    metrics = DaemonMetrics()
    alerts: list[tuple[str, str, str, float]] = []
    supervisor = Supervisor(
        metrics,
        lambda *alert: alerts.append(alert),
        first_restart=0.01,
        max_restart=0.02,
        healthy_after=0.2,
    )
    runs: list[int] = []
    forever = asyncio.Event()

    async def flaky() -> None:
        runs.append(1)
        if len(runs) <= 2:
            raise sqlite3.OperationalError("database is locked")
        await forever.wait()

    supervisor.start("kpis", flaky)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(runs) == 3:
            break
    assert len(runs) == 3  # restarted twice
    failure = supervisor.failing["kpis"]
    assert failure.crashes == 2 and "database is locked" in failure.error
    assert supervisor.dead_for() > 0
    assert [(kind, text) for kind, _, text, _ in alerts] == [
        ("loop_crashed", "the daemon's kpis loop failed and is being restarted: "
         "OperationalError: database is locked"),
    ]  # fmt: skip
    assert metrics.loop_crashes.labels("kpis")._value.get() == 2
    await asyncio.sleep(0.3)  # runs well for longer than healthy_after
    assert supervisor.failing == {} and supervisor.dead_for() == 0
    assert [kind for kind, *_ in alerts] == ["loop_crashed", "loop_recovered"]
    await supervisor.stop()
    assert runs == [1, 1, 1]


async def test_a_ticket_link_carries_the_ticket_id_url_encoded(stages: Stages) -> None:
    tracker = TicketTracker(stages.config.policies, stages.store, stages.clock, stages.metrics)
    desk = stages.config.sources["desk"]
    created = event("A/B 1?x", START, EventKind.CREATED)
    tracker.ingest("desk", PollResult(events=[created]), desk, persistent=False)
    await stages.clock.advance(timedelta(minutes=30))
    stages.router.sla_events(tracker.fire_due(), stages.clock.now())
    (row, _) = stages.store.claim_due(now=1e12)
    assert row.payload["link"] == "https://desk.example.com/t/A%2FB%201%3Fx"
