"""Ticket facts and the KPI ledger: what each ticket contributes, and when it counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.calendar import to_us
from sladaemon.clock import FakeClock
from sladaemon.config import Config, load_config
from sladaemon.daemon.kpis import KpiFacts
from sladaemon.model import EventKind as K
from sladaemon.model import Metric, MetricState, TicketEvent
from sladaemon.report.kpi import history_facts, ticket_facts
from sladaemon.report.ledger import KpiLedger, compute_kpis
from sladaemon.sla.engine import TicketReplay
from tests.unit.test_report import CONFIG, MON

DAY = timedelta(days=1)


def at(day: float, hour: float = 0) -> datetime:
    return MON + timedelta(days=day, hours=hour)


def ev(ticket: str, when: datetime, kind: K, **fields: str) -> TicketEvent:
    return TicketEvent(ticket, when, kind, fields=fields)


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    return load_config(path, environ={})


def replayed(cfg: Config, events: list[TicketEvent]) -> TicketReplay:
    replay = TicketReplay(events[0].ticket_id, cfg.policies)
    for e in events:
        replay.feed(e)
    return replay


def test_facts_say_when_each_thing_happened(cfg: Config) -> None:
    events = [
        ev("A", at(0, 9), K.CREATED, channel="email", queue="l1"),
        ev("A", at(0, 9.5), K.AGENT_REPLY),
        ev("A", at(0, 11), K.RESOLVED),
        ev("A", at(1, 9), K.REOPENED, queue="l2"),
        ev("A", at(1, 10), K.AGENT_REPLY),
        ev("A", at(1, 11), K.RESOLVED),
    ]
    facts = ticket_facts(replayed(cfg, events))
    assert (facts.channel, facts.policy) == ("email", "desk")
    assert facts.created_us == to_us(at(0, 9))
    assert facts.first_solved_us == to_us(at(0, 11))
    assert facts.reopened_us == to_us(at(1, 9))
    assert facts.escalated_us == to_us(at(1, 9)), "the move to another queue"
    assert facts.done_us == to_us(at(1, 11))
    assert facts.replies_before_solve == 1
    cycles = {c.metric: c for c in facts.cycles}
    first = cycles[Metric.FIRST_RESPONSE]
    assert first.outcome is MetricState.MET and first.decided_us == to_us(at(0, 9.5))
    assert first.business_us == 30 * 60 * 10**6
    resolution = cycles[Metric.RESOLUTION]  # 2 h, reopened, 2 h more: one cycle of 4 h
    assert resolution.outcome is MetricState.MET
    assert resolution.business_us == 4 * 3600 * 10**6
    assert resolution.decided_us == resolution.ended_us == to_us(at(1, 11))


def test_an_open_ticket_within_target_has_nothing_decided(cfg: Config) -> None:
    facts = ticket_facts(replayed(cfg, [ev("B", at(0, 9), K.CREATED)]))
    assert facts.cycles == () and facts.done_us is None and facts.channel == "unknown"


def test_a_breached_cycle_counts_once_in_the_period_it_breached(cfg: Config) -> None:
    tickets = {
        "L": [ev("L", at(0, 9), K.CREATED, channel="web"), ev("L", at(1, 10), K.AGENT_REPLY)]
    }
    monday = compute_kpis(tickets, cfg.policies, at(0), at(1))
    tuesday = compute_kpis(tickets, cfg.policies, at(1), at(2))
    cells = {c.metric: (c.met, c.breached) for c in monday.compliance}
    assert cells["first_response"] == (0, 1), "breached at Monday 10:00"
    assert cells["resolution"] == (0, 1), "breached at Monday 17:00"
    assert not any(c.metric == "first_response" for c in tuesday.compliance)
    assert tuesday.first_response_business.count == 1, "the answer itself came on Tuesday"
    assert tuesday.first_response_business.mean_s == 25 * 3600


def test_the_first_escalation_is_kept_when_facts_are_rewritten(cfg: Config) -> None:
    events = [ev("E", at(0, 9), K.CREATED, channel="web")]
    ledger = KpiLedger(":memory:")
    escalated = history_facts("E", events, cfg.policies, at(0, 12))  # breach+1h at 11:00
    assert escalated.escalated_us == to_us(at(0, 11))
    ledger.record("desk", [escalated])
    later = [*events, ev("E", at(0, 13), K.AGENT_REPLY)]
    ledger.record("desk", [ticket_facts(replayed(cfg, later))])  # the replay knows no instant
    report = ledger.report(at(0), at(1))
    assert (report.escalation.numerator, report.escalation.denominator) == (1, 1)


def test_prune_forgets_only_what_no_period_can_count(cfg: Config) -> None:
    old_done = [
        ev("OLD", at(0, 9), K.CREATED, channel="web"),
        ev("OLD", at(0, 9.5), K.AGENT_REPLY),
        ev("OLD", at(0, 10), K.RESOLVED),
    ]
    old_open = [ev("OPEN", at(0, 9), K.CREATED, channel="web")]
    ledger = KpiLedger(":memory:")
    ledger.record(
        "desk",
        [history_facts(t[0].ticket_id, t, cfg.policies, at(1)) for t in (old_done, old_open)],
    )
    assert ledger.prune(at(30), timedelta(days=7)) == 0, "created within the baseline reach"
    assert ledger.prune(at(40), timedelta(days=7)) == 1, "solved, and older than every reach"
    report = ledger.report(at(33), at(40))
    assert report.backlog == 1, "an open ticket stays however old"
    assert report.compliance == [], "cycles decided before the reach are gone"


def test_a_day_cut_short_is_compared_with_the_same_hours_of_earlier_weeks(cfg: Config) -> None:
    tickets: dict[str, list[TicketEvent]] = {}
    for week in range(1, 5):
        monday = at(-7 * week)
        for hour in (8, 15):  # two a Monday: one in the morning, one in the afternoon
            ticket = f"W{week}-{hour}"
            tickets[ticket] = [ev(ticket, monday + timedelta(hours=hour), K.CREATED, channel="web")]
    for hour in (8, 9):
        tickets[f"N{hour}"] = [ev(f"N{hour}", at(0, hour), K.CREATED, channel="web")]
    noon = compute_kpis(tickets, cfg.policies, at(0), at(0, 12))
    (today,) = noon.volume
    assert (today.tickets, today.baseline, today.spike) == (2, 1.0, True)
    evening = compute_kpis(tickets, cfg.policies, at(0), at(1))
    (whole,) = evening.volume
    assert (whole.tickets, whole.baseline, whole.spike) == (2, 2.0, False)


def test_days_are_local_days_of_the_report_zone_across_dst(cfg: Config) -> None:
    # Berlin springs forward on 2026-03-29: Sunday has 23 hours.
    saturday_night = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # Sunday 00:30 CET
    sunday_night = datetime(2026, 3, 29, 22, 30, tzinfo=UTC)  # Monday 00:30 CEST
    tickets = {
        "S": [ev("S", saturday_night, K.CREATED, channel="web")],
        "M": [ev("M", sunday_night, K.CREATED, channel="web")],
    }
    start, end = datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 30, 12, tzinfo=UTC)
    berlin = compute_kpis(tickets, cfg.policies, start, end, "Europe/Berlin")
    utc = compute_kpis(tickets, cfg.policies, start, end, "UTC")
    assert [(f"{v.day:%a}", v.tickets) for v in berlin.volume] == [
        ("Sat", 0),
        ("Sun", 1),
        ("Mon", 1),
    ]
    assert [(f"{v.day:%a}", v.tickets) for v in utc.volume] == [
        ("Sat", 1),
        ("Sun", 1),
        ("Mon", 0),
    ]


def test_the_state_file_ledger_survives_a_reopen(cfg: Config, tmp_path: Path) -> None:
    events = [
        ev("C", at(0, 9), K.CREATED, channel="phone"),
        ev("C", at(0, 9.25), K.AGENT_REPLY),
        ev("C", at(0, 10), K.CLOSED),
    ]
    ledger = KpiLedger(tmp_path / "state.sqlite")
    ledger.record("desk", [ticket_facts(replayed(cfg, events))])
    ledger.close()
    again = KpiLedger(tmp_path / "state.sqlite")
    report = again.report(at(0), at(1))
    again.close()
    assert report.created_per_channel == {"phone": 1}
    assert report.first_contact_resolution.numerator == 1
    assert report.backlog == 0


def test_facts_stay_while_a_report_compares_with_the_period_before_its_own(
    cfg: Config, tmp_path: Path
) -> None:
    """A daily report of the last 7 days, due on day 10, covers days 3–10 and compares with
    days -4–3: a cycle decided on day 0 must outlive the hourly prune until then."""
    path = tmp_path / "weekly.yaml"
    path.write_text(
        CONFIG
        + "reports: [{every: 'daily 00:00', period: 7d, receiver: team}]\n"
        + "daemon: {kpi_window: 1d}\n"
    )
    weekly = load_config(path, environ={})
    ledger = KpiLedger(":memory:")
    answered = [
        ev("A", at(0, 9), K.CREATED, channel="web"),
        ev("A", at(0, 9.5), K.AGENT_REPLY),
        ev("A", at(0, 10), K.RESOLVED),
    ]
    ledger.record("desk", [history_facts("A", answered, cfg.policies, at(1))])
    KpiFacts(ledger, {}, weekly, FakeClock(at(10))).prune()
    before = ledger.report(at(-4), at(3))
    assert [(c.metric, c.met) for c in before.compliance] == [
        ("first_response", 1),
        ("resolution", 1),
    ]
