"""The helpdesk's own deadlines (``due:`` fields): the metric each stands for, and the
tracker's cross-check, which compares only the helpdesk's newest values, each with the clock
it stands for."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sladaemon.clock import FakeClock
from sladaemon.config import Config, load_config
from sladaemon.daemon.tickets import TicketTracker
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import EventKind, Metric, StatusCategory, TicketEvent, native_due_metrics
from sladaemon.sla.native import native_deadlines, stands_for
from sladaemon.sources.base import PollResult
from sladaemon.store.sqlite import StateStore

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)  # a Monday
RT_DUE = "due:first_response|resolution"


def minutes(n: int) -> datetime:
    return START + timedelta(minutes=n)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------- the metric a due stands for


def test_a_due_field_names_its_metrics_in_order() -> None:
    assert native_due_metrics("due:resolution") == (Metric.RESOLUTION,)
    assert native_due_metrics(RT_DUE) == (Metric.FIRST_RESPONSE, Metric.RESOLUTION)
    assert native_due_metrics("due:someday") == ()
    assert native_due_metrics("priority") == ()


@pytest.mark.parametrize(
    ("first_response", "resolution", "expected"),
    [
        (minutes(60), minutes(30), Metric.RESOLUTION),  # the resolve goal comes first
        (minutes(30), minutes(60), Metric.FIRST_RESPONSE),
        (minutes(30), minutes(30), Metric.FIRST_RESPONSE),  # a tie: RT keeps the response one
        (None, minutes(30), Metric.RESOLUTION),  # no first-response clock of ours
    ],
)
def test_an_earliest_of_due_stands_for_the_metric_whose_deadline_comes_first(
    first_response: datetime | None, resolution: datetime, expected: Metric
) -> None:
    ours = {Metric.RESOLUTION: resolution}
    if first_response is not None:
        ours[Metric.FIRST_RESPONSE] = first_response
    assert stands_for((Metric.FIRST_RESPONSE, Metric.RESOLUTION), ours) is expected
    assert native_deadlines({RT_DUE: "x", "queue": "vip"}, ours) == {expected: "x"}


def test_cleared_dues_and_dues_without_a_clock_of_ours_stand_for_nothing() -> None:
    ours = {Metric.RESOLUTION: minutes(30)}
    assert native_deadlines({"due:resolution": "", RT_DUE: ""}, ours) == {}
    assert native_deadlines({"due:next_response|periodic_update": "x"}, ours) == {}


# ---------------------------------------------------------------------- the tracker's cross-check


CONFIG = """
calendars:
  always: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}
receivers:
  team: {{urls: ["console://"]}}
policies:
  - name: vip
    match: {{queue: vip}}
    calendar: always
    targets: {{first_response: 30m, next_response: 1h, resolution: 8h}}
  - name: express
    match: {{queue: express}}
    calendar: always
    targets: {{first_response: 1h, resolution: 30m}}
  - name: support
    calendar: always
    targets: {{first_response: 1h, next_response: 1h, resolution: 8h}}
sources:
  desk: {{type: csv, path: {events}}}
daemon:
  state: {state}
  http: {{enabled: false}}
"""


class Desk:
    """A tracker fed poll by poll; the mismatches it counted and logged."""

    def __init__(self, config: Config, store: StateStore) -> None:
        self.config = config
        self.metrics = DaemonMetrics()
        self.tracker = TicketTracker(config.policies, store, FakeClock(START), self.metrics)
        self.logged: list[tuple[str, str, str]] = []

    def poll(self, *events: TicketEvent) -> None:
        with capture_logs() as logs:
            source = self.config.sources["desk"]
            self.tracker.ingest("desk", PollResult(events=list(events)), source, persistent=True)
        self.logged += [
            (entry["ticket"], entry["metric"], entry["helpdesk"])
            for entry in logs
            if entry["event"] == "deadline_mismatch"
        ]

    def counted(self, metric: Metric) -> float:
        value: float = self.metrics.deadline_mismatches.labels("desk", metric.value)._value.get()
        return value


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            CONFIG.format(events=tmp_path / "events.csv", state=tmp_path / "state.sqlite")
        )
    )
    config = load_config(path, environ={})
    store = StateStore(config.daemon.state)
    yield Desk(config, store)
    store.close()


def event(
    at: datetime, kind: EventKind, category: StatusCategory | None = None, /, **fields: str
) -> TicketEvent:
    return TicketEvent("T1", at, kind, category=category, fields=fields)


def due(metric: str, at: datetime) -> dict[str, str]:
    return {f"due:{metric}": iso(at)}


def test_a_single_due_is_compared_with_the_clock_it_stands_for(desk: Desk) -> None:
    """RT's one Due for a level whose resolve goal comes first is the resolution deadline:
    agreeing with ours it is quiet; 20 minutes off, it is a resolution mismatch."""
    created = event(START, EventKind.CREATED, queue="express", **{RT_DUE: iso(minutes(30))})
    desk.poll(created)
    assert desk.logged == []
    desk.poll(event(minutes(1), EventKind.STATUS_CHANGED, **{RT_DUE: iso(minutes(50))}))
    assert desk.logged == [("T1", "resolution", minutes(50).isoformat())]
    assert (desk.counted(Metric.RESOLUTION), desk.counted(Metric.FIRST_RESPONSE)) == (1, 0)


def test_a_deadline_kept_from_an_earlier_phase_is_not_compared_again(desk: Desk) -> None:
    """The resolution deadline the helpdesk showed while an agent had the last word is not
    the one it shows once the customer wrote again; a pause since moved ours. Only the newest
    value, the next-response deadline, is compared: once agreeing, once 30 minutes off."""
    desk.poll(event(START, EventKind.CREATED, **due("first_response", minutes(60))))
    desk.poll(
        event(minutes(10), EventKind.AGENT_REPLY),
        event(minutes(10), EventKind.STATUS_CHANGED, **due("resolution", minutes(480))),
    )
    desk.poll(
        event(minutes(20), EventKind.CUSTOMER_REPLY),
        event(minutes(20), EventKind.STATUS_CHANGED, **due("next_response", minutes(80))),
    )
    on_hold, open_ = StatusCategory.ON_HOLD, StatusCategory.OPEN
    desk.poll(
        event(minutes(30), EventKind.STATUS_CHANGED, on_hold),
        event(minutes(90), EventKind.STATUS_CHANGED, open_),  # both clocks moved an hour
        event(minutes(90), EventKind.STATUS_CHANGED, **due("next_response", minutes(140))),
    )
    assert desk.logged == []
    desk.poll(event(minutes(91), EventKind.STATUS_CHANGED, **due("next_response", minutes(170))))
    assert desk.logged == [("T1", "next_response", minutes(170).isoformat())]
    assert desk.counted(Metric.RESOLUTION) == 0


@pytest.mark.parametrize("delivered_again", [False, True], ids=["kept", "delivered-again"])
def test_a_met_first_response_re_evaluated_after_a_queue_move_is_not_compared(
    desk: Desk, delivered_again: bool
) -> None:
    """The first response was met under a 1 h target; the move to the vip queue re-evaluates
    it under 30 min. The helpdesk's first-response deadline, kept in the ticket or sent again
    with the move, is history: only the resolution deadline it sends is compared."""
    desk.poll(
        event(START, EventKind.CREATED, queue="support", **due("first_response", minutes(60)))
    )
    desk.poll(event(minutes(10), EventKind.AGENT_REPLY))
    sent = {**due("resolution", minutes(480))}
    if delivered_again:
        sent.update(due("first_response", minutes(60)))
    desk.poll(event(minutes(40), EventKind.STATUS_CHANGED, queue="vip", **sent))
    assert desk.tracker.replays[("desk", "T1")].policy is not None
    assert desk.tracker.replays[("desk", "T1")].policy.name == "vip"
    assert desk.logged == []
    assert desk.counted(Metric.FIRST_RESPONSE) == 0
