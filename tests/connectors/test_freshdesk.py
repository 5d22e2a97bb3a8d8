"""The Freshdesk connector against the fake Freshdesk (a separate process on 127.0.0.1)."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from sladaemon.clock import FakeClock
from sladaemon.config import load_config
from sladaemon.config.models import FreshdeskSourceConfig
from sladaemon.daemon.app import App
from sladaemon.model import EventKind, StatusCategory, TicketEvent
from sladaemon.sources.base import SourceError
from sladaemon.sources.freshdesk.client import basic_auth
from sladaemon.sources.freshdesk.payloads import parse_timestamp
from sladaemon.sources.freshdesk.source import FreshdeskSource
from tests.connectors.conftest import Closing, FakeHelpdesk, daemon_config
from tests.fakes.freshdesk import DEFAULT_API_KEY

START = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)  # a Monday
NOW = START + timedelta(hours=2)  # the daemon's clock in these tests
NAMES = 2  # requests that load group and status names (first poll, reconciliation)
BULK_AGENTS = 2  # agents the fake's bulk tickets are assigned to: each read once


def at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def moment(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


class Desk:
    """Drives the fake: ``desk.ticket(...)`` creates, ``desk.act(id, "reply", at=...)`` acts."""

    def __init__(self, fake: FakeHelpdesk) -> None:
        self.fake = fake
        fake.control("clock", {"now": at(0)})

    def ticket(self, minutes: float = 0, **fields: Any) -> str:
        created = self.fake.control("tickets", {"at": at(minutes), **fields})
        return str(created["id"])

    def act(self, ticket: str, action: str, minutes: float, **body: Any) -> None:
        self.fake.control(f"tickets/{ticket}/{action}", {"at": at(minutes), **body})


@pytest.fixture
def fake(fake_helpdesk: Callable[[str], FakeHelpdesk]) -> FakeHelpdesk:
    return fake_helpdesk("freshdesk")


@pytest.fixture
def desk(fake: FakeHelpdesk) -> Desk:
    return Desk(fake)


@pytest.fixture
def connect(
    fake: FakeHelpdesk, closing: Closing[FreshdeskSource]
) -> Callable[..., FreshdeskSource]:
    """``connect(cursor=None, **config)``: a source for the fake, closed after the test."""

    def build(cursor: object = None, **options: Any) -> FreshdeskSource:
        data = {
            "type": "freshdesk",
            "url": fake.url,
            "token": DEFAULT_API_KEY,
            "timeout": "2s",
            **options,
        }
        source = FreshdeskSource("desk", FreshdeskSourceConfig.model_validate(data), cursor)
        return closing(source)

    return build


def history(events: Iterable[TicketEvent]) -> list[tuple[str, str]]:
    """(kind, status) without the field and deadline updates."""
    return [
        (e.kind.value, e.status) for e in events if not e.event_id.startswith(("fields@", "due:"))
    ]


class Received:
    """What the daemon takes in: events whose id it has not seen for that ticket."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def new(self, events: Iterable[TicketEvent]) -> list[TicketEvent]:
        fresh = [e for e in events if (e.ticket_id, e.event_id) not in self.seen]
        self.seen |= {(e.ticket_id, e.event_id) for e in events}
        return fresh


async def sync_all(source: FreshdeskSource, now: datetime = NOW) -> list[TicketEvent]:
    events: list[TicketEvent] = []
    while True:
        result = await source.poll(now)
        events.extend(result.events)
        if not result.more:
            return events


# ---------------------------------------------------------------------------- lifecycle


async def test_lifecycle_create_reply_pend_resolve_reopen(desk: Desk, connect: Any) -> None:
    """Each step arrives once, in order; a private note is no first response; a customer's
    reply to a resolved ticket comes after the reopen it caused."""
    source, daemon = connect(), Received()

    async def step() -> list[TicketEvent]:
        return daemon.new((await source.poll(NOW)).events)

    tid = desk.ticket(0, priority=3, source=1)
    first = await step()
    assert history(first) == [("created", "Open")]
    created = first[0]
    assert created.at == START and created.category is StatusCategory.OPEN
    assert dict(created.fields) == {"priority": "high", "channel": "email"}

    desk.act(tid, "note", 5, private=True)
    assert history(await step()) == []

    desk.act(tid, "reply", 10)
    replied = await step()
    assert history(replied) == [("agent_reply", "")]
    assert replied[0].at == moment(10)

    desk.act(tid, "status", 20, status=3)
    pending = await step()
    assert history(pending) == [("status_changed", "Pending")]
    assert pending[0].category is StatusCategory.PENDING

    desk.act(tid, "customer_reply", 30)  # reopens the pending ticket (Freshdesk's automation)
    assert history(await step()) == [("customer_reply", ""), ("status_changed", "Open")]

    desk.act(tid, "status", 40, status=4)
    resolved = await step()
    assert history(resolved) == [("resolved", "Resolved")]
    assert resolved[0].category is StatusCategory.SOLVED

    desk.act(tid, "customer_reply", 50)  # reopens the resolved ticket at the reply's time
    reopened = await step()
    # The reopen first: the reply reaches an open ticket, and waits for an answer.
    assert history(reopened) == [("reopened", "Open"), ("customer_reply", "")]
    assert all(e.at == moment(50) for e in reopened)
    assert (await source.poll(NOW)).events == []  # nothing changed: nothing sent at all


async def test_first_sight_rebuilds_the_history_from_stats(desk: Desk, connect: Any) -> None:
    tid = desk.ticket(0, priority=2, source=3)
    desk.act(tid, "reply", 5)
    desk.act(tid, "customer_reply", 20)
    desk.act(tid, "reply", 25, status=3)
    events = (await connect().poll(NOW)).events
    assert [(e.kind.value, e.status, e.at) for e in events] == [
        ("created", "Open", moment(0)),
        ("agent_reply", "", moment(5)),
        ("customer_reply", "", moment(20)),
        ("agent_reply", "", moment(25)),
        ("status_changed", "Pending", moment(25)),
        ("status_changed", "Pending", moment(25)),  # the field update, with the status
    ]
    assert events[-1].category is StatusCategory.PENDING and events[-1].fields["channel"] == "phone"
    assert len({e.event_id for e in events}) == len(events)


async def test_reading_again_gives_the_same_event_ids(desk: Desk, connect: Any) -> None:
    """Ids come from the data: a fresh source (or an overlapping read) produces the same ones."""
    tid = desk.ticket(0, priority=4, fr_due_by=at(60))
    desk.act(tid, "reply", 5)
    desk.act(tid, "status", 30, status=4)
    first = [e.event_id for e in (await connect().poll(NOW)).events]
    again = [e.event_id for e in (await connect().poll(NOW)).events]
    assert first == again and len(set(first)) == len(first)


# ---------------------------------------------------------------------------- fields, deadlines


async def test_native_deadlines_and_field_changes(
    fake: FakeHelpdesk, desk: Desk, connect: Any
) -> None:
    fake.control("groups", {"id": 7, "name": "Billing"})
    fake.control("groups", {"id": 8, "name": "Network"})
    tid = desk.ticket(0, priority=2, group_id=7, fr_due_by=at(60), due_by=at(480), type="Incident")
    source = connect()
    events = (await source.poll(NOW)).events
    assert events[0].fields["queue"] == "Billing" and events[0].fields["type"] == "Incident"
    due = [e for e in events if e.event_id.startswith("due:")]
    assert len(due) == 1 and due[0].category is None and due[0].kind is EventKind.STATUS_CHANGED
    assert dict(due[0].fields) == {
        "due:first_response": "2024-05-06T10:00:00Z",
        "due:resolution": "2024-05-06T17:00:00Z",
    }

    desk.act(tid, "deadlines", 20, fr_due_by=at(90))
    moved = [e for e in (await source.poll(NOW)).events if e.event_id.startswith("due:")]
    assert moved[0].fields["due:first_response"] == "2024-05-06T10:30:00Z"

    desk.act(tid, "update", 30, priority=4, group_id=8)
    update = [e for e in (await source.poll(NOW)).events if e.event_id.startswith("fields@")]
    assert len(update) == 1
    assert update[0].kind is EventKind.STATUS_CHANGED and update[0].status == "Open"
    assert update[0].fields["priority"] == "urgent" and update[0].fields["queue"] == "Network"
    assert update[0].at == moment(30)


async def test_the_assigned_agent_email_and_group_follow_every_change(
    fake: FakeHelpdesk, desk: Desk, connect: Any
) -> None:
    """``responder_id`` becomes the agent's email (lower case), read once per agent; the group
    name is ``group``; an unassignment empties ``assignee``."""
    fake.control("groups", {"id": 7, "name": "Billing"})
    fake.control("agents", {"id": 21, "email": "Dana.Lead@Example.com", "name": "Dana"})
    fake.control("agents", {"id": 22, "email": "bo@example.com", "name": "Bo"})
    first = desk.ticket(0, group_id=7, responder_id=21)
    desk.ticket(1, responder_id=21)
    source = connect()
    events = (await source.poll(NOW)).events
    created = [e for e in events if e.kind is EventKind.CREATED]
    assert [(e.fields.get("assignee"), e.fields.get("group")) for e in created] == [
        ("dana.lead@example.com", "Billing"),
        ("dana.lead@example.com", None),
    ]
    assert fake.control("stats")["by_path"]["/api/v2/agents/21"] == 1

    desk.act(first, "update", 10, responder_id=22)
    moved = [e for e in (await source.poll(NOW)).events if e.event_id.startswith("fields@")]
    assert (moved[0].fields["assignee"], moved[0].fields["group"]) == ("bo@example.com", "Billing")
    desk.act(first, "update", 20, responder_id=None, group_id=None)
    cleared = [e for e in (await source.poll(NOW)).events if e.event_id.startswith("fields@")]
    assert (cleared[0].fields["assignee"], cleared[0].fields["group"]) == ("", "")


async def test_a_group_without_a_name_is_named_by_its_id(desk: Desk, connect: Any) -> None:
    desk.ticket(0, group_id=42)  # no such group: the name lookup finds nothing
    events = (await connect().poll(NOW)).events
    assert events[0].fields["queue"] == "42"


# ---------------------------------------------------------------------------- bad input


async def test_unknown_statuses_and_channels(fake: FakeHelpdesk, desk: Desk, connect: Any) -> None:
    fake.control("statuses", {"id": 6, "name": "Waiting on Third Party"})
    fake.control("statuses", {"id": 7, "name": "With Vendor"})
    fake.control("statuses", {"id": 8, "name": "Escalated"})
    custom = desk.ticket(0, status=6, source=13)
    by_name = desk.ticket(0, status=7, source=13)
    by_number = desk.ticket(0, status=8, source=99)
    source = connect(statuses={"with vendor": "on_hold", "8": "pending"})
    with capture_logs() as logs:
        result = await source.poll(NOW)
        desk.act(custom, "update", 10, priority=2)
        second = await source.poll(NOW)
    created = {e.ticket_id: e for e in result.events if e.kind is EventKind.CREATED}
    assert created[custom].status == "Waiting on Third Party"
    assert created[custom].category is StatusCategory.OPEN
    assert created[by_name].category is StatusCategory.ON_HOLD
    assert created[by_number].category is StatusCategory.PENDING
    assert result.unknown_statuses == {"Waiting on Third Party"}
    assert second.unknown_statuses == {"Waiting on Third Party"}  # the daemon logs it once
    assert {created[t].fields["channel"] for t in (custom, by_name, by_number)} == {"other"}
    unknown = [entry for entry in logs if entry["event"] == "unknown_channel"]
    assert sorted(entry["channel"] for entry in unknown) == ["13", "99"]


async def test_configured_channels_and_statuses_override_the_defaults(
    desk: Desk, connect: Any
) -> None:
    desk.ticket(0, source=5, status=4)  # Twitter; Resolved
    source = connect(channels={"twitter": "social"}, statuses={"Resolved": "closed"})
    source_events = (await source.poll(NOW)).events
    assert source_events == []  # a closed ticket is not loaded by the first sync
    late = desk.ticket(100, source=5)
    desk.act(late, "status", 105, status=4)
    events = (await source.poll(NOW)).events
    assert events[0].fields["channel"] == "social"
    assert next(e.kind for e in events if e.status == "Resolved") is EventKind.CLOSED


async def test_missing_fields_odd_timestamps_and_unparsable_items(
    fake: FakeHelpdesk, desk: Desk, connect: Any
) -> None:
    fake.control(
        "raw",
        {
            "updated_at": at(1),
            "item": {
                "id": 901,
                "created_at": "2024-05-06 09:00:00",
                "updated_at": "2024-05-06T11:01:00+02:00",
                "status": "2",
                "priority": None,
                "source": None,
                "group_id": None,
                "tags": None,
                "due_by": "not a date",
                "stats": None,
            },
        },
    )
    fake.control("raw", {"updated_at": at(2), "item": {"id": 902, "created_at": "yesterday"}})
    fake.control("raw", {"updated_at": at(3), "item": ["not", "an", "object"]})
    fake.control(
        "raw",
        {
            "updated_at": at(4),
            "item": {
                "id": 903,
                "created_at": 1714986000,
                "updated_at": "1714986240000",
                "status": 3,
                "priority": 9,
                "stats": {
                    "first_responded_at": "Mon, 06 May 2024 09:02:00 GMT",
                    "status_updated_at": "2024-05-06T09:04:00.000+00:00",
                    "pending_since": "garbage",
                },
            },
        },
    )
    regular = desk.ticket(5)
    result = await connect().poll(NOW)
    created = {e.ticket_id: e for e in result.events if e.kind is EventKind.CREATED}
    assert set(created) == {"901", "903", regular}
    assert created["901"].at == START and dict(created["901"].fields) == {}
    assert [e.at for e in result.events if e.ticket_id == "903"][:3] == [
        START,
        moment(2),
        moment(4),
    ]
    assert created["903"].fields["priority"] == "9"
    reasons = sorted(issue.message for issue in result.issues)
    assert len(reasons) == 2
    assert reasons[0].startswith("ticket 902: ") and "yesterday" in reasons[0]
    assert reasons[1].startswith("ticket ?: ")


def test_timestamps_in_odd_formats_are_read_as_utc() -> None:
    expected = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
    for text in (
        "2024-05-06T09:00:00Z",
        "2024-05-06T11:00:00+02:00",
        "2024-05-06T14:30:00+0530",
        "2024-05-06 09:00:00",
        "2024/05/06 09:00:00",
        "2024-05-06T09:00:00.000Z",
        "2024-05-06 09:00:00 UTC",
        "Mon, 06 May 2024 09:00:00 GMT",
        "1714986000",
        1714986000,
        1714986000000,
    ):
        assert parse_timestamp(text) == expected, text
    assert parse_timestamp("2024-05-06") == datetime(2024, 5, 6, tzinfo=UTC)
    assert parse_timestamp(None) is None and parse_timestamp("") is None
    with pytest.raises(ValueError, match="unreadable"):
        parse_timestamp("yesterday")


# ---------------------------------------------------------------------------- failures


async def test_bad_credentials_fail_at_once_without_retrying(
    fake: FakeHelpdesk, desk: Desk, connect: Any
) -> None:
    desk.ticket(0)
    with pytest.raises(SourceError) as failure:
        await connect(token="wrong-key").poll(NOW)
    assert failure.value.retryable is False
    assert fake.requests() == 1


async def test_a_429_storm_waits_for_retry_after_then_succeeds(
    fake: FakeHelpdesk, desk: Desk, connect: Any
) -> None:
    desk.ticket(0)
    fake.faults({"status": 429, "retry_after": 1, "count": 2})
    started = time.monotonic()
    result = await connect().poll(NOW)
    assert time.monotonic() - started >= 2.0
    assert len(result.events) == 1
    assert fake.requests() == 3 + NAMES


async def test_a_hanging_server_times_out_as_a_retryable_error(
    fake: FakeHelpdesk, connect: Any
) -> None:
    fake.faults({"hang": 1.5, "count": 5})
    with pytest.raises(SourceError) as failure:
        await connect(timeout=timedelta(seconds=0.3)).poll(NOW)
    assert failure.value.retryable is True
    assert fake.requests() == 5


async def test_html_pages_and_malformed_json_are_retried(
    fake: FakeHelpdesk, desk: Desk, connect: Any
) -> None:
    desk.ticket(0)
    fake.faults({"html": True}, {"malformed": True})
    result = await connect().poll(NOW)
    assert len(result.events) == 1
    assert fake.requests() == 3 + NAMES
    fake.faults({"html": True, "count": 5})
    with pytest.raises(SourceError) as failure:
        await connect().poll(NOW)
    assert failure.value.retryable is True


async def test_a_failed_page_neither_skips_nor_repeats(
    fake: FakeHelpdesk, desk: Desk, connect: Any
) -> None:
    """Page 1 arrives, page 2 fails after retries: the poll raises, the cursor stays, and the
    next poll (or a restarted source) resumes with page 2."""
    for k in range(13):
        desk.ticket(k)
    expected = {e.event_id + "/" + e.ticket_id for e in await sync_all(connect())}

    source = connect(page_size=5)
    source.pages_per_poll = 1
    first = await source.poll(NOW)
    assert first.more and len(first.events) == 5
    fake.control("fail_list", {"after": 0, "status": 503, "count": 5})
    with pytest.raises(SourceError):
        await source.poll(NOW)
    restarted = connect(cursor=first.cursor, page_size=5)
    resumed = await sync_all(restarted)
    again = await sync_all(source)
    assert [e.event_id for e in resumed] == [e.event_id for e in again]
    delivered = [e.event_id + "/" + e.ticket_id for e in [*first.events, *resumed]]
    assert len(delivered) == len(set(delivered)) and set(delivered) == expected


async def test_a_run_of_equal_updated_at_longer_than_a_page(desk: Desk, connect: Any) -> None:
    for _ in range(12):
        desk.ticket(0)  # a bulk import: every ticket updated in the same second
    source = connect(page_size=5)
    events = await sync_all(source)
    assert len({e.ticket_id for e in events}) == 12
    assert len(events) == 12


# ---------------------------------------------------------------------------- reconciliation


async def test_reconciliation_closes_deleted_spam_vanished_and_merged(
    fake: FakeHelpdesk, desk: Desk, connect: Any
) -> None:
    deleted, spam, vanished, merged, kept = (desk.ticket(k) for k in range(5))
    source, daemon = connect(reconcile_every="30m"), Received()
    daemon.new((await source.poll(NOW)).events)
    desk.act(deleted, "delete", 10)
    desk.act(spam, "spam", 10)
    fake.control(f"tickets/{vanished}/purge", {})
    fake.control("merge", {"primary": kept, "secondary": [merged], "at": at(10)})
    quiet = daemon.new((await source.poll(NOW + timedelta(minutes=1))).events)
    assert history(quiet) == [("closed", "Closed")]  # the merge shows as a closing
    assert quiet[0].ticket_id == merged

    fake.reset_stats()
    result = await source.poll(NOW + timedelta(minutes=31))
    closed = {e.ticket_id: e.status for e in result.events if e.kind is EventKind.CLOSED}
    assert closed == {deleted: "deleted", spam: "spam", vanished: "deleted"}
    assert all(e.category is StatusCategory.CLOSED for e in result.events if e.ticket_id in closed)
    # changes + deleted + spam listings, names, and one read per held ticket (two left)
    assert fake.requests() == 3 + NAMES + 2
    assert set(result.cursor["held"]) == {kept}
    fake.reset_stats()
    assert (await source.poll(NOW + timedelta(minutes=32))).events == []
    assert fake.requests() == 1


async def test_reconciliation_finds_updates_that_showed_up_late(desk: Desk, connect: Any) -> None:
    """A change visible only after the polls passed its updated_at (replica lag beyond the
    overlap) is found by the next reconciliation, which re-reads since the previous one."""
    desk.ticket(0)
    source = connect(reconcile_every="30m")
    await source.poll(NOW)
    desk.ticket(10)
    await source.poll(NOW + timedelta(minutes=1))
    late = desk.ticket(5)  # updated_at 09:05, listed only now
    assert (await source.poll(NOW + timedelta(minutes=2))).events == []
    found = await source.poll(NOW + timedelta(minutes=31))
    assert {e.ticket_id for e in found.events} == {late}


async def test_only_watched_queues_and_moving_out_closes(
    fake: FakeHelpdesk, desk: Desk, connect: Any
) -> None:
    fake.control("groups", {"id": 7, "name": "Billing"})
    fake.control("groups", {"id": 8, "name": "Network"})
    billing = desk.ticket(0, group_id=7)
    desk.ticket(0, group_id=8)
    desk.ticket(0)
    source = connect(queues=["billing"])
    result = await source.poll(NOW)
    assert {e.ticket_id for e in result.events} == {billing}
    desk.act(billing, "update", 10, group_id=8)
    moved = (await source.poll(NOW)).events
    assert [(e.ticket_id, e.kind, e.status) for e in moved] == [
        (billing, EventKind.CLOSED, "unwatched")
    ]


async def test_finished_tickets_load_only_when_they_finished_in_the_window(
    desk: Desk, connect: Any
) -> None:
    old = desk.ticket(0)
    desk.act(old, "status", 5, status=5)
    source = connect()
    assert (await source.poll(NOW)).events == []
    short = desk.ticket(20)
    desk.act(short, "reply", 22)
    desk.act(short, "status", 25, status=5)
    desk.act(old, "update", 30, tags=["archived"])  # touched, but closed long before
    events = (await source.poll(NOW)).events
    assert {e.ticket_id for e in events} == {short}
    assert history(events) == [("created", "Open"), ("agent_reply", ""), ("closed", "Closed")]


# ---------------------------------------------------------------------------- cursor and cost


async def test_costs_of_a_large_sync_an_idle_poll_and_a_few_changes(
    fake: FakeHelpdesk, connect: Any
) -> None:
    fake.control("bulk", {"tickets": 1000, "seed": 7})
    source = connect()
    fake.reset_stats()
    polls, events = 0, list[TicketEvent]()
    while True:
        result = await source.poll(NOW)
        polls, events = polls + 1, [*events, *result.events]
        if not result.more:
            break
    assert polls == 2  # at most ten pages per poll: the daemon ingests as it goes
    assert fake.requests() <= math.ceil(1000 / 100) + 1 + NAMES + BULK_AGENTS
    held = result.cursor["held"]
    assert len({e.ticket_id for e in events}) == len(held) > 500

    fake.reset_stats()
    assert (await source.poll(NOW)).events == []
    assert fake.requests() == 1

    changed = sorted(held, key=int)[:10]
    fake.control("clock", {"advance": 60})
    for tid in changed:
        fake.control(f"tickets/{tid}/reply", {})
    fake.reset_stats()
    result = await source.poll(NOW)
    assert {e.ticket_id for e in result.events} == set(changed)
    assert fake.requests() <= math.ceil(10 / 100) + 1


async def test_the_cursor_carries_over_a_restart(
    fake: FakeHelpdesk, desk: Desk, connect: Any
) -> None:
    tid = desk.ticket(0)
    desk.act(tid, "reply", 10)
    daemon = Received()
    first = await connect().poll(NOW)
    daemon.new(first.events)
    desk.act(tid, "customer_reply", 30)
    fake.reset_stats()
    restarted = connect(cursor=first.cursor)
    result = await restarted.poll(NOW)
    assert history(daemon.new(result.events)) == [("customer_reply", "")]
    assert "created" not in {e.event_id for e in result.events}  # older than the last delivery
    assert fake.requests() == 1 + NAMES
    assert fake.requests() == 1 + NAMES


async def test_the_fake_sends_freshdesk_rate_limit_headers(fake: FakeHelpdesk) -> None:
    fake.control("ratelimit", {"total": 3, "window": 60})
    headers = {"Authorization": basic_auth(DEFAULT_API_KEY)}
    async with aiohttp.ClientSession(headers=headers) as session:
        url = f"{fake.url}/api/v2/tickets?include=stats"
        async with session.get(url) as response:
            assert response.headers["X-Ratelimit-Total"] == "3"
            assert response.headers["X-Ratelimit-Used-CurrentRequest"] == "2"
            assert response.headers["X-Ratelimit-Remaining"] == "1"
        async with session.get(url) as response:
            assert response.status == 429
            assert 0 < int(response.headers["Retry-After"]) <= 60
    fake.control("ratelimit", {"total": 100})
    async with (
        aiohttp.ClientSession(headers={"Authorization": basic_auth("wrong")}) as session,
        session.get(f"{fake.url}/api/v2/tickets") as response,
    ):
        assert response.status == 401
        assert (await response.json())["code"] == "invalid_credentials"


# ---------------------------------------------------------------------------- the daemon


async def test_the_daemon_ingests_freshdesk_tickets(
    fake: FakeHelpdesk, desk: Desk, tmp_path: Path
) -> None:
    tid = desk.ticket(0, priority=3, fr_due_by=at(60), due_by=at(480))
    desk.act(tid, "reply", 10)
    desk_source = {"type": "freshdesk", "url": fake.url, "token": DEFAULT_API_KEY, "timeout": "2s"}
    config = daemon_config(tmp_path, {"desk": desk_source})
    app = App(
        load_config(config), clock=FakeClock(START + timedelta(minutes=15)), console=io.StringIO()
    )
    await app.start()
    try:
        replay = app.tickets.replays[("desk", tid)]
        assert replay.fields["priority"] == "high"
        assert replay.fields["due:first_response"] == "2024-05-06T10:00:00Z"
        assert [e.kind for e in replay.events][:2] == [EventKind.CREATED, EventKind.AGENT_REPLY]
        assert app.store.cursor("desk")["held"] == {tid: int(START.timestamp() * 1000) + 600_000}
    finally:
        await app.shutdown()
