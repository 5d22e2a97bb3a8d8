"""The board's index against the SLA engine: for random histories on an office calendar (nights,
weekends, pauses, replies), the state and business time left the index derives from two fixed
instants per row agree with a fresh per-ticket evaluation at many later instants; rows follow
their tickets as they change and close; the soonest breach comes first; filters and counts."""

from __future__ import annotations

import random
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.board.index import BREACHED, PREDICTED, WARNING, BoardIndex, Prediction
from sladaemon.calendar import to_us
from sladaemon.config import Config, load_config
from sladaemon.model import EventKind, Metric, MetricState, StatusCategory, TicketEvent
from sladaemon.sla.engine import TicketReplay, evaluate

CONFIG = """
calendars:
  office: {timezone: Europe/Berlin, hours: {mon-fri: ["09:00-12:00", "13:00-17:00"]}}
policies:
  - name: urgent
    match: {priority: urgent}
    calendar: office
    targets: {first_response: 1h, next_response: 2h, resolution: 8h}
    escalation: [{at: 60%}, {at: 90%}, {at: breach}]
  - name: standard
    calendar: office
    targets: {first_response: 4h, resolution: 16h}
"""
MON = datetime(2024, 3, 25, 6, tzinfo=UTC)  # the week Berlin turns to summer time
K = EventKind


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = Path(tmp_path_factory.mktemp("cfg")) / "c.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    return load_config(path, environ={})


def history(rng: random.Random, ticket: str) -> list[TicketEvent]:
    t = MON + timedelta(minutes=rng.randrange(0, 5 * 24 * 60))
    fields = {
        "priority": rng.choice(["urgent", "normal"]),
        "queue": rng.choice(["billing", "support"]),
        "channel": rng.choice(["email", "chat"]),
    }
    events = [TicketEvent(ticket, t, K.CREATED, category=StatusCategory.NEW, fields=fields)]
    for _ in range(rng.randrange(0, 5)):
        t += timedelta(minutes=rng.randrange(5, 600))
        kind, category = rng.choice(
            [
                (K.AGENT_REPLY, StatusCategory.OPEN),
                (K.AGENT_REPLY, StatusCategory.PENDING),
                (K.CUSTOMER_REPLY, StatusCategory.OPEN),
            ]
        )
        events.append(TicketEvent(ticket, t, kind, category=category))
    return events


def replay_of(events: list[TicketEvent], cfg: Config) -> TicketReplay:
    replay = TicketReplay(events[0].ticket_id, cfg.policies)
    for e in events:
        replay.feed(e)
    return replay


def test_states_and_time_left_agree_with_the_engine_at_every_instant(cfg: Config) -> None:
    rng = random.Random(4)
    histories = {("desk", f"T{i}"): history(rng, f"T{i}") for i in range(120)}
    index = BoardIndex(capacity=8)  # grows on the way
    index.update({k: replay_of(h, cfg) for k, h in histories.items()}, [])
    checked = 0
    for step in range(40):
        now = MON + timedelta(days=3, minutes=step * 97 + rng.randrange(60), seconds=7)
        selection = index.select(to_us(now), {}, None, 10_000)
        left = index.left_us(selection.rows, to_us(now))
        for slot, state, left_us in zip(selection.rows, selection.states, left, strict=True):
            row = index.row(slot)
            events = [e for e in histories[row.key] if e.at <= now]
            if len(events) < len(histories[row.key]):
                continue  # the index holds the whole history: later events are not yet known
            status = evaluate(events, cfg.policies, now).metrics[row.metric]
            assert status.state in (MetricState.RUNNING, MetricState.PAUSED, MetricState.BREACHED)
            assert (state == BREACHED) == (status.state is MetricState.BREACHED), (row, now)
            levels = [lv for lv in _levels(cfg, row.policy) if lv < 1.0] or [0.75]
            assert status.target is not None
            warned = status.business_elapsed >= min(levels) * status.target
            if state != BREACHED:
                assert (state == WARNING) == warned, (row, now, status)
            assert status.remaining is not None
            assert left_us == status.remaining // timedelta(microseconds=1), (row, now)
            checked += 1
    assert checked > 2000


def _levels(cfg: Config, policy: str) -> list[float]:
    found = next(p for p in cfg.policies if p.name == policy)
    return [level.fraction for level in found.ladder if not level.predicted]


def test_rows_follow_their_ticket_and_leave_when_it_closes(cfg: Config) -> None:
    events = [
        TicketEvent("A", MON + timedelta(hours=4), K.CREATED, category=StatusCategory.NEW,
                    fields={"priority": "urgent", "queue": "billing"}),
    ]  # fmt: skip
    index = BoardIndex()
    index.update({("desk", "A"): replay_of(events, cfg)}, [])
    assert {index.row(s).metric for s in index.slots_of(("desk", "A"))} == {
        Metric.FIRST_RESPONSE,
        Metric.RESOLUTION,
    }
    events.append(TicketEvent("A", MON + timedelta(hours=5), K.AGENT_REPLY,
                              category=StatusCategory.OPEN))  # fmt: skip
    index.update({("desk", "A"): replay_of(events, cfg)}, [])
    metrics = {index.row(s).metric for s in index.slots_of(("desk", "A"))}
    assert Metric.FIRST_RESPONSE not in metrics and Metric.RESOLUTION in metrics
    assert len(index) == len(metrics)
    index.update({}, [("desk", "A")])
    assert len(index) == 0 and ("desk", "A") not in index.number
    assert index.next_change(to_us(MON)) is None


def test_soonest_breach_first_with_filters_counts_and_predictions(cfg: Config) -> None:
    index = BoardIndex()
    replays = {}
    # Monday 09:00 in Berlin is 08:00 UTC: T1 at 09:00, T2 at 09:30, T0 at 10:30 local.
    for i, (minutes, queue) in enumerate([(210, "billing"), (120, "support"), (150, "billing")]):
        created = MON + timedelta(minutes=minutes)
        fields = {"priority": "urgent", "queue": queue}
        replays[("desk", f"T{i}")] = replay_of(
            [TicketEvent(f"T{i}", created, K.CREATED, category=StatusCategory.NEW, fields=fields)],
            cfg,
        )
    index.update(replays, [])
    now = to_us(MON + timedelta(hours=4))  # T1 and T2 have breached their first response
    first = index.select(now, {}, None, 2)
    assert first.matching == 6 and len(first.rows) == 2
    tickets = [index.row(s).key[1] for s in first.rows]
    assert tickets == ["T1", "T2"]  # both first responses, the earlier-created first
    billing = index.select(now, {"queue": "billing", "metric": "first_response"}, None, 10)
    assert [index.row(s).key[1] for s in billing.rows] == ["T2", "T0"]
    index.predict(("desk", "T0"), Metric.FIRST_RESPONSE, 0, Prediction(0.8, "queue rising"))
    predicted = index.select(now, {}, "predicted", 10)
    assert predicted.per_state["predicted"] == 1 and len(predicted.rows) == 1
    assert index.states(now)[predicted.rows[0]] == PREDICTED
    later = to_us(MON + timedelta(days=2))
    assert index.select(later, {"queue": "support"}, None, 10).per_state["breached"] == 2
    assert index.select(now, {"queue": "nowhere"}, None, 10).matching == 0
    assert index.queue_backlog() == {("desk", "billing"): 2, ("desk", "support"): 1}
    # The next change is T0's first-response warning: 60 % of 1 h after it was created.
    assert index.next_change(now) == to_us(MON + timedelta(minutes=210 + 36))
