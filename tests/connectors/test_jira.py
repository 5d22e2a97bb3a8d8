"""The Jira Service Management connector against the fake site (a separate process)."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from sladaemon.clock import FakeClock
from sladaemon.config import load_config
from sladaemon.config.models import JiraSourceConfig
from sladaemon.daemon.app import App
from sladaemon.model import EventKind, Metric, MetricState, StatusCategory, TicketEvent
from sladaemon.sources.base import PollResult, SourceError
from sladaemon.sources.jira.client import jql_time
from sladaemon.sources.jira.payloads import parse_jira_time
from sladaemon.sources.jira.source import JiraSource
from tests.connectors.conftest import Closing, FakeHelpdesk, daemon_config
from tests.fakes.jira import EMAIL, TOKEN

Make = Callable[..., JiraSource]


@pytest.fixture
def fake(fake_helpdesk: Callable[[str], FakeHelpdesk]) -> FakeHelpdesk:
    return fake_helpdesk("jira")


@pytest.fixture
def make_source(fake: FakeHelpdesk, closing: Closing[JiraSource]) -> Make:

    def make(cursor: object = None, **settings: Any) -> JiraSource:
        data: dict[str, Any] = {
            "type": "jira",
            "url": fake.url,
            "email": EMAIL,
            "token": TOKEN,
            "jql": "project = HELP",
            "timeout": timedelta(seconds=2),
            **settings,
        }
        source = JiraSource("desk", JiraSourceConfig.model_validate(data), cursor)
        return closing(source)

    return make


def now() -> datetime:
    return datetime.now(UTC)


def of(result: PollResult, key: str) -> list[TicketEvent]:
    return [e for e in result.events if e.ticket_id == key]


def kinds(events: list[TicketEvent]) -> list[EventKind]:
    return [e.kind for e in events]


def ms(moment_ms: int) -> datetime:
    return datetime.fromtimestamp(moment_ms / 1000, UTC)


def iso(moment_ms: int) -> str:
    return ms(moment_ms).strftime("%Y-%m-%dT%H:%M:%SZ")


def due(events: list[TicketEvent], metric: Metric) -> list[str]:
    name = f"due:{metric.value}"
    return [e.fields[name] for e in events if name in e.fields]


# ---------------------------------------------------------------------------- scenarios


async def test_a_request_lifecycle_becomes_ordered_events_with_stable_ids(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    source = make_source()
    ticket = fake.control("issues", {"priority": "High", "channel": "email"})
    key = ticket["key"]
    delivered: list[tuple[str, str]] = []

    first = await source.poll(now())
    created = of(first, key)
    assert kinds(created) == [EventKind.CREATED]
    assert created[0].at == ms(ticket["created_ms"])
    assert created[0].status == "Waiting for support"
    assert created[0].category is StatusCategory.OPEN
    assert dict(created[0].fields) == {
        "priority": "High",
        "channel": "email",
        "queue": "HELP",
        "project": "Help Desk",
        "request_type": "Get IT help",
        "issue_type": "[System] Service request",
    }
    delivered += [(e.ticket_id, e.event_id) for e in first.events]

    fake.control(f"issues/{key}/comment", {"author": "agent", "public": True})
    fake.control(f"issues/{key}/comment", {"author": "agent", "public": False})
    fake.control(f"issues/{key}/comment", {"author": "customer", "public": True})
    fake.control(f"issues/{key}/status", {"status": "Waiting for customer"})
    fake.control(f"issues/{key}/priority", {"priority": "Highest"})
    second = await source.poll(now())
    events = of(second, key)
    assert kinds(events) == [
        EventKind.AGENT_REPLY,
        EventKind.INTERNAL_NOTE,
        EventKind.CUSTOMER_REPLY,
        EventKind.STATUS_CHANGED,
        EventKind.STATUS_CHANGED,
    ]
    assert (events[3].status, events[3].category) == (
        "Waiting for customer",
        StatusCategory.PENDING,
    )
    assert events[4].category is None and dict(events[4].fields) == {"priority": "Highest"}
    assert events[4].status == "Waiting for customer"
    delivered += [(e.ticket_id, e.event_id) for e in second.events]

    fake.control(f"issues/{key}/status", {"status": "Resolved"})
    third = await source.poll(now())
    assert [(e.kind, e.category) for e in of(third, key)] == [
        (EventKind.RESOLVED, StatusCategory.SOLVED)
    ]
    fake.control(f"issues/{key}/status", {"status": "Waiting for support"})
    fourth = await source.poll(now())
    assert [(e.kind, e.category) for e in of(fourth, key)] == [
        (EventKind.REOPENED, StatusCategory.OPEN)
    ]
    fake.control(f"issues/{key}/status", {"status": "Closed"})
    fifth = await source.poll(now())
    assert kinds(of(fifth, key)) == [EventKind.CLOSED]
    delivered += [(e.ticket_id, e.event_id) for r in (third, fourth, fifth) for e in r.events]
    assert len(delivered) == len(set(delivered))

    # The daemon lets a closed ticket go: reopening it delivers its whole history again.
    fake.control(f"issues/{key}/status", {"status": "In Progress"})
    revived = of(await source.poll(now()), key)
    assert kinds(revived)[0] is EventKind.CREATED and kinds(revived)[-1] is EventKind.REOPENED
    assert [e.event_id for e in revived[:-1]] == [e for t, e in delivered if t == key]

    restarted = make_source(source.state.to_cursor())
    assert (await restarted.poll(now())).events == []


async def test_the_assignee_email_follows_every_change(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    """``assignee`` is the assignee's email in lower case; account ids of earlier assignees
    in the changelog are read once each; an unassignment empties it; Jira sets no group."""
    source = make_source()
    key = fake.control("issues", {"assignee": "Dana.Lead@Example.com"})["key"]
    created = of(await source.poll(now()), key)
    assert created[0].fields["assignee"] == "dana.lead@example.com"
    assert "group" not in created[0].fields

    fake.control(f"issues/{key}/assignee", {"assignee": "bo@example.com"})
    fake.control(f"issues/{key}/assignee", {"assignee": None})
    fake.reset_stats()
    changes = of(await source.poll(now()), key)
    assert [dict(e.fields) for e in changes] == [{"assignee": "bo@example.com"}, {"assignee": ""}]
    assert fake.control("stats")["by_path"]["/rest/api/3/user"] == 1  # bo; Dana was known


async def test_a_request_first_seen_keeps_the_assignee_it_was_created_with(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    key = fake.control("issues", {"assignee": "ann@example.com"})["key"]
    fake.control(f"issues/{key}/assignee", {"assignee": "bo@example.com"})
    events = of(await make_source().poll(now()), key)
    assert [e.fields.get("assignee") for e in events if "assignee" in e.fields] == [
        "ann@example.com",
        "bo@example.com",
    ]


async def test_who_wrote_a_public_comment_decides_agent_or_customer_reply(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    """JSM's "Comment: For Customers": any non-customer public comment answers the customer,
    automation included; the reporter, other portal customers and unknown authors do not."""
    source = make_source()
    key = fake.control("issues", {})["key"]
    for author in ("customer", "other_customer", "none", "app", "agent"):
        fake.control(f"issues/{key}/comment", {"author": author, "public": True})
    result = await source.poll(now())
    assert kinds(of(result, key)) == [
        EventKind.CREATED,
        EventKind.CUSTOMER_REPLY,
        EventKind.CUSTOMER_REPLY,
        EventKind.CUSTOMER_REPLY,
        EventKind.AGENT_REPLY,
        EventKind.AGENT_REPLY,
    ]


async def test_native_sla_deadlines_surface_as_due_fields(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    source = make_source()
    goals = {"Time to first response": 3600, "Time to resolution": 8 * 3600}
    ticket = fake.control("issues", {"sla": {**goals, "Time to close after resolution": 60}})
    key, created_ms = ticket["key"], ticket["created_ms"]
    first = of(await source.poll(now()), key)
    assert due(first, Metric.FIRST_RESPONSE) == [iso(created_ms + 3_600_000)]
    assert due(first, Metric.RESOLUTION) == [iso(created_ms + 8 * 3_600_000)]
    assert all(e.category is None for e in first if e.fields.keys() & {"due:resolution"})

    fake.control(f"issues/{key}/comment", {"author": "agent"})  # first response met
    fake.control(f"issues/{key}/status", {"status": "Waiting for customer"})  # clock paused
    paused = of(await source.poll(now()), key)
    assert due(paused, Metric.FIRST_RESPONSE) == due(paused, Metric.RESOLUTION) == []

    fake.control("config", {"advance": 600})
    fake.control(f"issues/{key}/status", {"status": "Waiting for support"})
    resumed = of(await source.poll(now()), key)
    moved = due(resumed, Metric.RESOLUTION)
    assert len(moved) == 1
    shift = parse_jira_time(moved[0]) - ms(created_ms + 8 * 3_600_000)
    assert timedelta(seconds=599) <= shift <= timedelta(seconds=602)
    ids = [e.event_id for e in first + paused + resumed]
    assert len(ids) == len(set(ids))


async def test_without_sla_fields_the_service_desk_sla_endpoint_is_used(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    fake.control("config", {"hide_sla_fields": True})
    source = make_source()
    ticket = fake.control("issues", {"sla": {"Time to first response": 1800}})
    result = await source.poll(now())
    assert due(of(result, ticket["key"]), Metric.FIRST_RESPONSE) == [
        iso(ticket["created_ms"] + 1_800_000)
    ]
    paths = fake.control("stats")["by_path"]
    assert paths[f"/rest/servicedeskapi/request/{ticket['key']}/sla"] == 1


# ---------------------------------------------------------------------------- bad input


async def test_unknown_statuses_and_channels_get_defaults_and_are_reported_once(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    source = make_source()
    odd = fake.control("issues", {"channel": "carrier pigeon"})["key"]
    fake.control("issues", {"channel": "carrier pigeon"})
    fake.control(f"issues/{odd}/status", {"status": "Frobnicating", "category": "undefined"})
    triage = fake.control("issues", {"status": "Triage", "category": "indeterminate"})["key"]
    with capture_logs() as logs:
        result = await source.poll(now())
        await source.poll(now())
    assert result.unknown_statuses == {"Frobnicating"}
    created = of(result, odd)[0]
    assert created.fields["channel"] == "other"
    assert of(result, odd)[1].category is StatusCategory.OPEN
    assert of(result, triage)[0].category is StatusCategory.OPEN  # its Jira category
    warnings = [entry for entry in logs if entry["event"] == "unknown_channel"]
    assert [(w["channel"], w["counted_as"]) for w in warnings] == [("carrier pigeon", "other")]

    configured = make_source(
        statuses={"Frobnicating": "on_hold"}, channels={"carrier pigeon": "post"}
    )
    again = await configured.poll(now())
    assert again.unknown_statuses == set()
    assert of(again, odd)[0].fields["channel"] == "post"
    assert of(again, odd)[1].category is StatusCategory.ON_HOLD


async def test_missing_null_fields_and_odd_timestamps_are_tolerated(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    source = make_source()
    bare = fake.control(
        "issues", {"priority": None, "reporter": None, "request_type": None, "channel": None}
    )
    fake.control(f"issues/{bare['key']}/comment", {"author": "none"})
    fake.control(f"issues/{bare['key']}/raw", {"fields": {"status": None, "comment": None}})
    formats = {}
    for fmt in ("epoch_ms", "z", "space", "nanos"):
        ticket = fake.control("issues", {"time_format": fmt})
        formats[ticket["key"]] = ticket["created_ms"]
    result = await source.poll(now())
    assert result.issues == []
    events = of(result, bare["key"])
    assert kinds(events) == [EventKind.CREATED, EventKind.CUSTOMER_REPLY]
    assert events[0].status == "" and events[0].category is None
    assert dict(events[0].fields) == {
        "queue": "HELP",
        "project": "Help Desk",
        "issue_type": "[System] Service request",
    }
    for key, created_ms in formats.items():
        expected = ms(created_ms)
        if key.endswith(("-3", "-4")):  # formats with whole seconds only
            expected = expected.replace(microsecond=0)
        assert of(result, key)[0].at == expected


async def test_an_unparsable_item_is_skipped_with_a_reason_and_the_page_goes_on(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    source = make_source()
    keys = fake.control("issues", {"count": 4})["keys"]
    fake.control(
        f"issues/{keys[1]}/raw",
        {"item": {"id": "x", "key": keys[1], "fields": {"created": "yesterday at noon"}}},
    )
    fake.control(f"issues/{keys[2]}/raw", {"item": ["not", "an", "issue"]})
    result = await source.poll(now())
    assert sorted({e.ticket_id for e in result.events}) == sorted([keys[0], keys[3]])
    reasons = [issue.message for issue in result.issues]
    assert len(reasons) == 2
    assert reasons[0].startswith(f"ticket {keys[1]}: fields.created")
    assert reasons[1].startswith("ticket ?:")
    assert (await source.poll(now())).issues == []  # reported once, not at every poll


async def test_wrong_credentials_fail_at_once_without_retries(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    source = make_source(token="not-the-token")
    with pytest.raises(SourceError) as failure:
        await source.poll(now())
    assert failure.value.retryable is False
    assert fake.requests() == 1

    without_token = make_source(token=None)
    with pytest.raises(SourceError) as missing:
        await without_token.poll(now())
    assert missing.value.retryable is False
    assert fake.requests() == 1


async def test_a_429_storm_is_waited_out_with_retry_after(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    source = make_source()
    fake.control("issues", {})
    fake.faults({"status": 429, "retry_after": 0.3, "count": 3})
    started = time.monotonic()
    result = await source.poll(now())
    assert time.monotonic() - started >= 0.85
    assert len(result.events) == 1
    assert fake.requests() == 3 + 4  # three refusals, then myself, field, status, search


async def test_a_hanging_server_times_out_as_a_retryable_error(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    source = make_source(timeout=timedelta(milliseconds=300))
    fake.faults({"hang": 3, "count": 5})
    started = time.monotonic()
    with pytest.raises(SourceError) as failure:
        await source.poll(now())
    assert failure.value.retryable is True
    assert "TimeoutError" in str(failure.value)
    assert time.monotonic() - started < 5.0, "well before the five hung answers (3 s each)"


async def test_html_pages_are_retried_and_persistent_malformed_json_fails_retryably(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    source = make_source()
    fake.control("issues", {})
    fake.faults({"html": True, "count": 2})
    assert len((await source.poll(now())).events) == 1
    fake.faults({"malformed": True, "count": 5})
    with pytest.raises(SourceError) as failure:
        await source.poll(now())
    assert failure.value.retryable is True
    assert "malformed JSON" in str(failure.value)


async def test_a_failure_mid_pagination_neither_loses_nor_repeats_events(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    source = make_source(page_size=10, timeout=timedelta(seconds=1))
    first_keys = fake.control("issues", {"count": 25})["keys"]
    fake.control("fail_continuations", {"count": 5})  # every retry of page 2 fails
    with pytest.raises(SourceError):
        await source.poll(now())
    assert source.state.checkpoint_ms is None and source.state.tickets == {}

    delivered: list[tuple[str, str]] = []
    result = await source.poll(now())
    delivered += [(e.ticket_id, e.event_id) for e in result.events]
    assert sorted(t for t, e in delivered if e == "created") == sorted(first_keys)
    assert result.cursor is not None

    for key in first_keys[:3]:
        fake.control(f"issues/{key}/comment", {"author": "agent"})
    later_keys = fake.control("issues", {"count": 20})["keys"]
    checkpoint = source.state.checkpoint_ms
    fake.control("fail_continuations", {"count": 5})
    with pytest.raises(SourceError):
        await source.poll(now())
    assert source.state.checkpoint_ms == checkpoint

    resumed = await source.poll(now())
    delivered += [(e.ticket_id, e.event_id) for e in resumed.events]
    assert len(delivered) == len(set(delivered))
    assert sorted(t for t, _ in delivered if _ == "created") == sorted(first_keys + later_keys)
    assert (
        kinds([e for e in resumed.events if e.ticket_id in first_keys])
        == [EventKind.AGENT_REPLY] * 3
    )


# ---------------------------------------------------------------------------- cost


async def test_an_unchanged_poll_is_one_search_and_changes_cost_a_page(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    page_size = 100
    source = make_source(page_size=page_size)
    keys = fake.control("issues", {"count": 30})["keys"]
    await source.poll(now())

    fake.reset_stats()
    unchanged = await source.poll(now())
    assert (unchanged.events, fake.requests()) == ([], 1)
    assert (await source.poll(now())).cursor is None  # nothing moved: nothing to save

    for key in keys[:10]:
        fake.control(f"issues/{key}/comment", {"author": "agent"})
    fake.reset_stats()
    changed = await source.poll(now())
    assert len(changed.events) == 10
    assert fake.requests() <= math.ceil(10 / page_size) + 1

    restarted = make_source(source.state.to_cursor(), page_size=page_size)
    fake.reset_stats()
    assert (await restarted.poll(now())).events == []
    assert fake.requests() == 1


async def test_a_large_initial_sync_comes_in_pieces_and_completes(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    fake.control("bulk", {"tickets": 1000, "seed": 3})
    source = make_source(page_size=100)
    created: set[str] = set()
    polls = 0
    while True:
        result = await source.poll(now())
        polls += 1
        created |= {e.ticket_id for e in result.events if e.kind is EventKind.CREATED}
        if not result.more:
            break
    assert polls >= 2
    assert 800 <= len(created) < 1000  # the requests resolved before the first poll stay out
    assert len(source.state.tickets) == len(created)
    fake.reset_stats()
    assert (await source.poll(now())).events == []
    assert fake.requests() == 1


async def test_long_histories_are_completed_in_bulk(fake: FakeHelpdesk, make_source: Make) -> None:
    fake.control("config", {"comment_cap": 5})
    source = make_source()
    key = fake.control("issues", {})["key"]
    for n in range(8):
        fake.control(f"issues/{key}/comment", {"author": "agent" if n % 2 else "customer"})
    for n in range(21):
        fake.control(f"issues/{key}/status", {"status": "In Progress" if n % 2 else "Pending"})
    for _ in range(25):  # the search carries the 40 most recent histories only
        fake.control(f"issues/{key}/touch", {})
    result = await source.poll(now())
    events = of(result, key)
    assert kinds(events).count(EventKind.AGENT_REPLY) == 4
    assert kinds(events).count(EventKind.CUSTOMER_REPLY) == 4
    assert kinds(events).count(EventKind.STATUS_CHANGED) == 21
    assert events[0].status == "Waiting for support"
    paths = fake.control("stats")["by_path"]
    assert paths["/rest/api/3/changelog/bulkfetch"] == 1
    assert paths[f"/rest/api/3/issue/{key}/comment"] == 1


# ---------------------------------------------------------------------------- reconciliation


async def test_reconciliation_closes_deleted_and_moved_requests_and_finds_lost_ones(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    source = make_source(reconcile_every=timedelta(minutes=30))
    keys = fake.control("issues", {"count": 3})["keys"]
    await source.poll(now())
    fake.control(f"issues/{keys[0]}/delete", {})
    fake.control(f"issues/{keys[1]}/move", {"project": "OPS"})
    fake.control("bulk", {"tickets": 1, "seed": 9})  # updated hours ago: never in the window

    quiet = await source.poll(now())
    assert [e for e in quiet.events if e.kind is EventKind.CLOSED] == []

    result = await source.poll(now() + timedelta(minutes=31))
    closed = {(e.ticket_id, e.status) for e in result.events if e.kind is EventKind.CLOSED}
    assert closed == {(keys[0], "deleted"), (keys[1], "moved")}
    assert all(e.category is StatusCategory.CLOSED for e in result.events if e.status == "moved")
    found = {e.ticket_id for e in result.events if e.kind is EventKind.CREATED}
    assert found == {"HELP-4"}
    assert set(source.state.tickets) == {keys[2], "HELP-4"}


async def test_queues_limit_the_projects_and_zones_shape_the_date_literal(
    fake: FakeHelpdesk, make_source: Make
) -> None:
    fake.control("config", {"zone": "Asia/Kolkata"})  # UTC+05:30
    source = make_source(jql="project in (HELP, OPS) ORDER BY created DESC", queues=["OPS"])
    fake.control("issues", {"project": "HELP"})
    ops = fake.control("issues", {"project": "OPS"})["key"]
    first = await source.poll(now())
    assert {e.ticket_id for e in first.events} == {ops}
    fake.control(f"issues/{ops}/comment", {"author": "agent"})
    assert kinds((await source.poll(now())).events) == [EventKind.AGENT_REPLY]


def test_jql_date_literals_are_never_later_than_the_instant() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert jql_time(datetime(2024, 5, 1, 10, 7, 59, tzinfo=UTC), berlin) == "2024/05/01 12:07"
    # 00:45 UTC on 2024-10-27 is 02:45 CEST, a wall time that occurs twice that night
    assert jql_time(datetime(2024, 10, 27, 0, 45, tzinfo=UTC), berlin) == "2024/10/27 01:45"


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T12:00:00.000+0200",
        "2024-05-01T10:00:00Z",
        "2024-05-01 10:00:00+00:00",
        "2024-05-01T10:00:00.000000123+00:00",
        "2024/05/01 10:00",
        "1714557600000",
        1714557600,
    ],
)
def test_timestamps_in_odd_formats_parse_to_utc(text: object) -> None:
    assert parse_jira_time(text) == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------- daemon


async def test_the_daemon_loads_jira_requests_into_its_book(
    fake: FakeHelpdesk, tmp_path: Path
) -> None:
    replied = fake.control("issues", {"priority": "High", "channel": "email"})["key"]
    waiting = fake.control("issues", {"priority": "Low"})["key"]
    fake.control(f"issues/{replied}/comment", {"author": "agent"})
    desk_source = {"type": "jira", "url": fake.url, "email": EMAIL, "token": TOKEN}
    desk_source |= {"jql": "project = HELP", "timeout": "5s"}
    targets = {"first_response": "4h", "resolution": "2h"}
    config = daemon_config(tmp_path, {"desk": desk_source}, targets=targets)
    clock = FakeClock(now())
    app = App(load_config(config), clock=clock, console=io.StringIO())
    await app.start()
    try:
        book = app.tickets.replays
        assert {("desk", replied), ("desk", waiting)} <= set(book)
        assert book[("desk", replied)].fields["channel"] == "email"
        states = {
            key: book[("desk", key)].evaluate(clock.now()).metrics[Metric.FIRST_RESPONSE].state
            for key in (replied, waiting)
        }
        assert states == {replied: MetricState.MET, waiting: MetricState.RUNNING}
        assert app.store.cursor("desk")["checkpoint_ms"] is not None
    finally:
        await app.shutdown()
