"""SLA engine semantics: clocks per metric, pauses, ladders, policy changes."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.config import Config, load_config
from sladaemon.model import (
    EventKind,
    Metric,
    MetricState,
    SlaEventKind,
    StatusCategory,
    TicketEvent,
)
from sladaemon.sla.engine import TicketEvaluation, evaluate

K = EventKind
S = StatusCategory
CONFIG = """
calendars:
  office: {timezone: UTC, hours: {mon-fri: "09:00-17:00"}}
  always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
receivers:
  team: {urls: ["console://"]}
policies:
  - name: urgent
    match: {priority: urgent}
    calendar: office
    targets: {first_response: 1h, next_response: 2h, periodic_update: 4h, resolution: 8h}
    escalation:
      - {at: 50%, notify: [team]}
      - {at: breach, notify: [team]}
      - {at: breach+30m, notify: [team]}
  - name: standard
    calendar: office
    targets: {first_response: 4h, resolution: {high: 8h, default: 16h}}
"""
MON = datetime(2024, 1, 8, tzinfo=UTC)  # a Monday


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = Path(tmp_path_factory.mktemp("cfg")) / "c.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    return load_config(path, environ={})


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=hour, minutes=minute)


def ev(
    t: datetime, kind: EventKind, category: StatusCategory | None = None, **fields: str
) -> TicketEvent:
    return TicketEvent("T", t, kind, category=category, fields=fields)


def run(cfg: Config, events: list[TicketEvent], now: datetime) -> TicketEvaluation:
    return evaluate(events, cfg.policies, now)


def fired(result: TicketEvaluation, metric: str) -> list[tuple[str, str | None, datetime]]:
    return [(e.kind.value, e.level, e.at) for e in result.timeline if e.metric.value == metric]


def test_first_response_met_before_deadline(cfg: Config) -> None:
    r = run(
        cfg,
        [ev(at(0, 10), K.CREATED, priority="urgent"), ev(at(0, 10, 20), K.AGENT_REPLY)],
        at(0, 12),
    )
    st = r.metrics[Metric.FIRST_RESPONSE]
    assert st.state is MetricState.MET
    assert st.business_elapsed == timedelta(minutes=20)
    assert fired(r, "first_response") == [("met", None, at(0, 10, 20))]


def test_deadline_at_closing_is_the_next_opening(cfg: Config) -> None:
    """Created 16:30 with 1h: 30 min today, 30 min tomorrow -> Tue 09:30; the breach fires then,
    not at night."""
    r = run(cfg, [ev(at(0, 16, 30), K.CREATED, priority="urgent")], at(1, 12))
    st = r.metrics[Metric.FIRST_RESPONSE]
    assert st.deadline == at(1, 9, 30)
    assert fired(r, "first_response") == [
        ("warning", "50%", at(0, 17)),  # earliest instant 30 min are used: Mon 17:00
        ("breach", "breach", at(1, 9, 30)),
        ("escalation", "breach+30m", at(1, 10)),
    ]
    assert st.state is MetricState.BREACHED


def test_exact_deadline_without_time_left_is_next_opening(cfg: Config) -> None:
    """Mon 09:00 + 8h on 09-17 is Tue 09:00 (DESIGN: latest instant with elapsed <= target)."""
    r = run(cfg, [ev(at(0, 9), K.CREATED, priority="high")], at(0, 10))
    assert r.policy is not None and r.policy.name == "standard"
    assert r.metrics[Metric.RESOLUTION].deadline == at(1, 9)


def test_reply_exactly_at_the_deadline_is_met(cfg: Config) -> None:
    r = run(
        cfg, [ev(at(0, 10), K.CREATED, priority="urgent"), ev(at(0, 11), K.AGENT_REPLY)], at(0, 12)
    )
    assert r.metrics[Metric.FIRST_RESPONSE].state is MetricState.MET
    assert [k for k, _, _ in fired(r, "first_response")] == ["warning", "met"]


def test_pending_pauses_resolution_and_customer_reply_resumes(cfg: Config) -> None:
    events = [
        ev(at(0, 9), K.CREATED, priority="urgent"),
        ev(at(0, 10), K.AGENT_REPLY, S.PENDING),
        ev(at(1, 9), K.CUSTOMER_REPLY),  # no status: back to open, as helpdesks do
        ev(at(1, 10), K.AGENT_REPLY),
        ev(at(1, 11), K.RESOLVED),
    ]
    r = run(cfg, events, at(2, 9))
    res = r.metrics[Metric.RESOLUTION]
    # running Mon 09-10 and Tue 09-11: 3h; pending Mon 10:00 .. Tue 09:00 does not count.
    assert res.state is MetricState.MET
    assert res.business_elapsed == timedelta(hours=3)
    assert res.pauses == ((at(0, 10), at(1, 9)),)
    nxt = r.metrics[Metric.NEXT_RESPONSE]
    assert nxt.state is MetricState.MET and nxt.business_elapsed == timedelta(hours=1)


def test_paused_clock_has_no_deadline_and_fires_nothing(cfg: Config) -> None:
    events = [
        ev(at(0, 9), K.CREATED, priority="urgent"),
        ev(at(0, 9, 30), K.AGENT_REPLY, S.PENDING),
    ]
    r = run(cfg, events, at(10, 9))
    res = r.metrics[Metric.RESOLUTION]
    assert res.state is MetricState.PAUSED
    assert res.deadline is None and res.paused_since == at(0, 9, 30)
    assert res.remaining == timedelta(hours=7, minutes=30)
    assert fired(r, "resolution") == []
    assert r.upcoming == ()


def test_reopen_resumes_the_resolution_clock(cfg: Config) -> None:
    events = [
        ev(at(0, 9), K.CREATED, priority="urgent"),
        ev(at(0, 10), K.AGENT_REPLY),
        ev(at(0, 15), K.RESOLVED),  # 6h used
        ev(at(1, 9), K.REOPENED),
    ]
    r = run(cfg, events, at(1, 12))
    res = r.metrics[Metric.RESOLUTION]
    assert res.cycle == 0
    assert res.business_elapsed == timedelta(hours=9)
    assert res.state is MetricState.BREACHED
    # 2h left after the reopen at Tue 09:00 -> deadline Tue 11:00.
    assert ("breach", "breach", at(1, 11)) in fired(r, "resolution")
    assert ("met", None, at(0, 15)) in fired(r, "resolution")


@pytest.mark.parametrize(
    "reply_category",
    [None, S.SOLVED],
    ids=["reply-without-status", "reply-with-the-solved-status-it-arrived-to"],
)
@pytest.mark.parametrize("reopen_follows", [True, False], ids=["reopen-recorded", "no-reopen"])
def test_a_customer_reply_to_a_solved_ticket_reopens_it_and_waits_for_an_answer(
    cfg: Config, reply_category: StatusCategory | None, reopen_follows: bool
) -> None:
    """Helpdesks reopen a solved ticket on a customer's reply and record the reopen in the
    same second after it (RT, Zendesk) or not at all in the log at hand: either way the reply
    starts a next-response cycle at its instant and the resolution clock resumes there."""
    events = [
        ev(at(0, 9), K.CREATED, priority="urgent"),
        ev(at(0, 10), K.AGENT_REPLY),
        ev(at(0, 11), K.RESOLVED),  # 2h of resolution used
        ev(at(0, 13), K.CUSTOMER_REPLY, reply_category),
    ]
    if reopen_follows:
        events.append(ev(at(0, 13), K.REOPENED))
    r = run(cfg, events, at(0, 14))
    assert r.category is S.OPEN
    nxt = r.metrics[Metric.NEXT_RESPONSE]
    assert (nxt.state, nxt.started_at, nxt.deadline) == (MetricState.RUNNING, at(0, 13), at(0, 15))
    res = r.metrics[Metric.RESOLUTION]
    # 6h left from Mon 13:00 on office hours: Tue 11:00.
    assert (res.state, res.cycle, res.deadline) == (MetricState.RUNNING, 0, at(1, 11))
    periodic = [c for c in r.cycles if c.metric is Metric.PERIODIC_UPDATE]
    assert [(c.started_at, c.state) for c in periodic][-1] == (at(0, 13), MetricState.RUNNING)


def test_next_response_cycles_are_numbered(cfg: Config) -> None:
    events = [
        ev(at(0, 9), K.CREATED, priority="urgent"),
        ev(at(0, 9, 30), K.AGENT_REPLY),
        ev(at(0, 10), K.CUSTOMER_REPLY),
        ev(at(0, 10, 30), K.CUSTOMER_REPLY),  # same cycle: the oldest unanswered reply counts
        ev(at(0, 11), K.AGENT_REPLY),
        ev(at(0, 12), K.CUSTOMER_REPLY),
    ]
    r = run(cfg, events, at(0, 16))
    cycles = [c for c in r.cycles if c.metric.value == "next_response"]
    assert [(c.cycle, c.state, c.business_elapsed) for c in cycles] == [
        (0, MetricState.MET, timedelta(hours=1)),
        (1, MetricState.BREACHED, timedelta(hours=4)),
    ]
    assert ("breach", "breach", at(0, 14)) in fired(r, "next_response")


def test_periodic_update_measures_gaps_between_agent_updates(cfg: Config) -> None:
    events = [
        ev(at(0, 9), K.CREATED, priority="urgent"),
        ev(at(0, 9, 10), K.AGENT_REPLY),
        ev(at(0, 12), K.AGENT_REPLY),
        ev(at(1, 9), K.AGENT_REPLY),  # 5h of business time after Mon 12:00: breached
    ]
    r = run(cfg, events, at(1, 10))
    cycles = [c for c in r.cycles if c.metric.value == "periodic_update"]
    assert [(c.cycle, c.state) for c in cycles] == [
        (0, MetricState.MET),
        (1, MetricState.BREACHED),
        (2, MetricState.RUNNING),
    ]
    assert cycles[1].breached_at == at(0, 16)


def test_upcoming_levels_are_the_future_ladder(cfg: Config) -> None:
    r = run(cfg, [ev(at(0, 9), K.CREATED, priority="urgent")], at(0, 9, 10))
    first = [(e.kind, e.level, e.at) for e in r.upcoming if e.metric.value == "first_response"]
    assert first == [
        (SlaEventKind.WARNING, "50%", at(0, 9, 30)),
        (SlaEventKind.BREACH, "breach", at(0, 10)),
        (SlaEventKind.ESCALATION, "breach+30m", at(0, 10, 30)),
    ]
    assert all(e.at > at(0, 9, 10) for e in r.upcoming)


def test_priority_change_moves_the_ticket_and_catches_up_once(cfg: Config) -> None:
    """Normal -> urgent after 40 min: the urgent policy's 50% was already passed, so it is
    sent at the change, once; the breach follows at the urgent deadline."""
    events = [
        ev(at(0, 9), K.CREATED, priority="normal"),
        ev(at(0, 9, 40), K.STATUS_CHANGED, S.OPEN, priority="urgent"),
    ]
    r = run(cfg, events, at(0, 12))
    assert r.policy is not None and r.policy.name == "urgent"
    assert fired(r, "first_response") == [
        ("warning", "50%", at(0, 9, 40)),
        ("breach", "breach", at(0, 10)),
        ("escalation", "breach+30m", at(0, 10, 30)),
    ]


def test_policy_order_not_name_decides(cfg: Config) -> None:
    r = run(cfg, [ev(at(0, 9), K.CREATED, priority="low")], at(0, 10))
    assert r.policy is not None and r.policy.name == "standard"
    assert r.skipped_policies == (("urgent", "priority is 'low', policy wants 'urgent'"),)


def test_missing_priority_target_is_not_applicable(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "calendars: {c: {timezone: UTC, hours: {mon-fri: '09:00-17:00'}}}\n"
        "policies:\n  - {name: p, calendar: c, targets: {resolution: {high: 4h}}}\n"
    )
    cfg = load_config(path, environ={})
    r = evaluate([ev(at(0, 9), K.CREATED, priority="low")], cfg.policies, at(0, 10))
    st = r.metrics[Metric.RESOLUTION]
    assert st.state is MetricState.NOT_APPLICABLE
    assert st.reason == "no resolution target for priority 'low'"


def test_solving_without_reply_stops_first_response(cfg: Config) -> None:
    events = [ev(at(0, 9), K.CREATED, priority="urgent"), ev(at(0, 9, 30), K.RESOLVED)]
    r = run(cfg, events, at(0, 12))
    assert r.metrics[Metric.FIRST_RESPONSE].state is MetricState.MET
    assert r.metrics[Metric.RESOLUTION].state is MetricState.MET


def test_out_of_order_events_are_refused(cfg: Config) -> None:
    with pytest.raises(ValueError, match="out of order"):
        run(cfg, [ev(at(0, 10), K.CREATED), ev(at(0, 9), K.AGENT_REPLY)], at(0, 12))
