"""The Zendesk connector against the fake Zendesk (a separate process on 127.0.0.1)."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from sladaemon.clock import FakeClock
from sladaemon.config import load_config
from sladaemon.config.models import ZendeskSourceConfig
from sladaemon.daemon.app import App
from sladaemon.model import EventKind, StatusCategory, TicketEvent
from sladaemon.sources.base import PollResult, SourceError
from sladaemon.sources.zendesk import source as zendesk_source
from sladaemon.sources.zendesk.payloads import parse_timestamp
from sladaemon.sources.zendesk.source import ZendeskSource
from tests.connectors.conftest import Closing, FakeHelpdesk, daemon_config
from tests.fakes.zendesk import AGENT_EMAIL, API_TOKEN

START = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)  # a Monday
EXPORT = "/api/v2/incremental/tickets/cursor.json"
EVENTS = "/api/v2/incremental/ticket_events.json"


def epoch(minutes: float) -> int:
    return int((START + timedelta(minutes=minutes)).timestamp())


def moment(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


class Desk:
    """Drives the fake: ``desk.ticket(minutes, ...)`` creates, ``desk.act(id, action, ...)``
    acts, ``desk.clock(minutes)`` sets the server's clock (the exports hide its last minute)."""

    def __init__(self, fake: FakeHelpdesk) -> None:
        self.fake = fake
        self.clock(0)
        fake.control("limits", {"incremental_per_minute": 1000})

    def clock(self, minutes: float) -> datetime:
        self.fake.control("clock", {"set": epoch(minutes)})
        return moment(minutes)

    def ticket(self, minutes: float, **spec: Any) -> int:
        return int(self.fake.control("tickets", {"created_at": epoch(minutes), **spec})["id"])

    def act(self, ticket: int, action: str, minutes: float | None = None, **body: Any) -> None:
        if minutes is not None:
            body["at"] = epoch(minutes)
        self.fake.control(f"tickets/{ticket}/{action}", body)


@pytest.fixture
def fake(fake_helpdesk: Callable[[str], FakeHelpdesk]) -> FakeHelpdesk:
    return fake_helpdesk("zendesk")


@pytest.fixture
def desk(fake: FakeHelpdesk) -> Desk:
    return Desk(fake)


@pytest.fixture
def connect(fake: FakeHelpdesk, closing: Closing[ZendeskSource]) -> Callable[..., ZendeskSource]:
    """``connect(cursor=None, **config)``: a source for the fake, closed after the test."""

    def build(cursor: object = None, **options: Any) -> ZendeskSource:
        data = {
            "type": "zendesk",
            "url": fake.url,
            "email": AGENT_EMAIL,
            "token": API_TOKEN,
            "timeout": "2s",
            **options,
        }
        source = ZendeskSource("zd", ZendeskSourceConfig.model_validate(data), cursor)
        source.client.export_pacer.limit = 1000
        return closing(source)

    return build


def kinds(events: list[TicketEvent]) -> list[tuple[str, str, str]]:
    return [(e.kind.value, e.status, e.category.value if e.category else "") for e in events]


def ids(events: list[TicketEvent]) -> list[tuple[str, str]]:
    return [(e.ticket_id, e.event_id) for e in events]


# ---------------------------------------------------------------------------- scenarios


async def test_a_ticket_lifecycle_becomes_events_in_order(desk: Desk, connect: Any) -> None:
    """Create, first reply, pending, customer reply, solved, reopened: each poll brings the
    events that happened since, at the times they happened."""
    source = connect()
    t = desk.ticket(
        0,
        priority="high",
        group="Support",
        channel="email",
        type="incident",
        organization=301,
        tags=["vip", "vpn"],
    )
    first = await source.poll(desk.clock(2))
    assert kinds(first.events) == [("created", "new", "new")]
    assert dict(first.events[0].fields) == {
        "priority": "high",
        "channel": "email",
        "queue": "Support",
        "group": "Support",
        "type": "incident",
        "organization": "Acme",
        "tags": "vip vpn",
    }
    assert first.events[0].at == moment(0)

    desk.act(t, "reply", 3, author="agent")
    reply = await source.poll(desk.clock(5))
    assert kinds(reply.events) == [("agent_reply", "", ""), ("status_changed", "open", "open")]
    assert {e.at for e in reply.events} == {moment(3)}

    desk.act(t, "update", 6, status="pending")
    desk.act(t, "reply", 9, author="requester")  # reopens the pending ticket
    desk.act(t, "update", 12, status="solved")
    middle = await source.poll(desk.clock(14))
    assert kinds(middle.events) == [
        ("status_changed", "pending", "pending"),
        ("customer_reply", "", ""),
        ("status_changed", "open", "open"),
        ("resolved", "solved", "solved"),
    ]
    assert [e.at for e in middle.events] == [moment(6), moment(9), moment(9), moment(12)]

    desk.act(t, "reply", 15, author="requester")  # reopens the solved ticket, same audit
    last = await source.poll(desk.clock(17))
    # The reopen first: the reply reaches an open ticket, and waits for an answer.
    assert kinds(last.events) == [("reopened", "open", "open"), ("customer_reply", "", "")]

    everything = first.events + reply.events + middle.events + last.events
    assert len(set(ids(everything))) == len(everything)
    assert (await source.poll(desk.clock(20))).events == []


async def test_native_deadlines_surface_in_due_fields(desk: Desk, connect: Any) -> None:
    """breach_at per SLA metric -> due:<metric>; a moved deadline is a new event; resolution
    prefers agent_work_time over requester_wait_time."""
    source = connect()
    t = desk.ticket(0)
    desk.act(
        t,
        "sla",
        first_reply_time="2024-05-06T10:00:00Z",
        next_reply_time=None,  # paused: no deadline
        requester_wait_time="2024-05-07T09:00:00Z",
        agent_work_time="2024-05-07T17:00:00Z",
        periodic_update_time="2024-05-06T13:00:00Z",
    )
    result = await source.poll(desk.clock(3))
    due = {k: v for e in result.events for k, v in e.fields.items() if k.startswith("due:")}
    assert due == {
        "due:first_response": "2024-05-06T10:00:00Z",
        "due:periodic_update": "2024-05-06T13:00:00Z",
        "due:resolution": "2024-05-07T17:00:00Z",
    }
    assert all(e.category is None for e in result.events if e.kind is not EventKind.CREATED)

    desk.act(t, "sla", first_reply_time="2024-05-06T10:30:00Z")
    moved = await source.poll(desk.clock(6))
    assert [dict(e.fields) for e in moved.events] == [
        {"due:first_response": "2024-05-06T10:30:00Z"}
    ]
    assert moved.events[0].event_id == "due:first_response:2024-05-06T10:30:00Z"


async def test_priority_and_group_changes_are_field_updates(desk: Desk, connect: Any) -> None:
    source = connect()
    t = desk.ticket(0, priority="low", group="Support")
    await source.poll(desk.clock(2))
    desk.act(t, "update", 3, priority="urgent", group="Tier 2")
    result = await source.poll(desk.clock(5))
    assert [(e.kind, e.status, e.category, dict(e.fields)) for e in result.events] == [
        (EventKind.STATUS_CHANGED, "new", None, {"priority": "urgent"}),
        (EventKind.STATUS_CHANGED, "new", None, {"queue": "Tier 2", "group": "Tier 2"}),
    ]


async def test_the_assignee_email_and_group_follow_every_change(desk: Desk, connect: Any) -> None:
    """The creation carries the assignee's email (lower case) and group name; a reassignment
    sets them again, an unassignment sets ``assignee`` empty."""
    source = connect()
    t = desk.ticket(0, group="Support", assignee="Dana.Lead@Example.com")
    first = await source.poll(desk.clock(2))
    created = dict(first.events[0].fields)
    assert (created["assignee"], created["group"]) == ("dana.lead@example.com", "Support")

    desk.act(t, "update", 3, assignee="agent2", group="Billing")
    desk.act(t, "update", 4, assignee=None)
    changes = await source.poll(desk.clock(6))
    assert [dict(e.fields) for e in changes.events] == [
        {"queue": "Billing", "group": "Billing"},
        {"assignee": "bea@example.com"},
        {"assignee": ""},
    ]


async def test_a_ticket_first_seen_keeps_the_assignee_it_was_created_with(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    """A ticket reassigned before it is first seen: the creation names the first assignee
    (looked up by id, as the export side-loads only the current one), the change the next."""
    source = connect()
    t = desk.ticket(0, assignee="agent")
    desk.act(t, "update", 1, assignee="agent2")
    result = await source.poll(desk.clock(3))
    assert [e.fields.get("assignee") for e in result.events] == [
        "alex@example.com",
        "bea@example.com",
    ]


async def test_who_wrote_a_comment_decides_what_it_is(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    """Private notes are internal; another end user (a CC) is a customer; an agent who is not
    in the page's sideloads is looked up once; the description is not a reply."""
    source = connect()
    t = desk.ticket(0, author="agent")  # created by an agent on the customer's behalf
    desk.act(t, "reply", 1, author="agent", public=False)
    desk.act(t, "reply", 2, author="colleague")  # an end user other than the requester
    desk.act(t, "reply", 3, author="agent2")
    first = await source.poll(desk.clock(5))
    assert [e.kind for e in first.events] == [
        EventKind.CREATED,
        EventKind.INTERNAL_NOTE,
        EventKind.CUSTOMER_REPLY,
        EventKind.AGENT_REPLY,
        EventKind.STATUS_CHANGED,
    ]
    desk.act(t, "reply", 6, author="agent2")
    fake.reset_stats()
    second = await source.poll(desk.clock(8))
    assert [e.kind for e in second.events] == [EventKind.AGENT_REPLY]
    assert fake.requests() == 2  # the export and the event export: roles are remembered


# ---------------------------------------------------------------------------- bad input


async def test_unknown_statuses_and_channels_default_and_are_reported_once(
    desk: Desk, connect: Any
) -> None:
    source = connect()
    desk.ticket(0, status="escalated", channel="carrier_pigeon")
    desk.ticket(0, status="escalated", channel="carrier_pigeon")
    desk.ticket(0, channel=4)  # a numeric via id: mail
    with capture_logs() as logs:
        result = await source.poll(desk.clock(2))
        await source.poll(desk.clock(3))
    created = [e for e in result.events if e.kind is EventKind.CREATED]
    assert [(e.status, e.category, e.fields.get("channel")) for e in created] == [
        ("escalated", StatusCategory.OPEN, "other"),
        ("escalated", StatusCategory.OPEN, "other"),
        ("new", StatusCategory.NEW, "email"),
    ]
    assert result.unknown_statuses == {"escalated"}
    channel_logs = [entry for entry in logs if entry["event"] == "unknown_channel"]
    assert channel_logs == [
        {
            "event": "unknown_channel",
            "source": "zd",
            "channel": "carrier_pigeon",
            "counted_as": "other",
            "log_level": "warning",
        }
    ]


async def test_missing_null_fields_and_odd_timestamps_are_tolerated(
    desk: Desk, connect: Any
) -> None:
    source = connect()
    a = desk.ticket(0, priority="high", group="Support")
    b = desk.ticket(0)
    c = desk.ticket(0)
    desk.act(a, "output", set={"priority": None, "via": None, "group_id": None, "tags": None})
    desk.act(b, "output", set={"created_at": "2024-05-06 09:00:00"}, drop=["updated_at", "via"])
    desk.act(c, "output", set={"created_at": "2024-05-06T11:00:00.000+02:00"})
    result = await source.poll(desk.clock(3))
    assert result.issues == []
    created = {e.ticket_id: e for e in result.events if e.kind is EventKind.CREATED}
    assert set(created) == {str(a), str(b), str(c)}
    assert all(e.at == START for e in created.values())
    assert dict(created[str(a)].fields) == {  # from audits
        "priority": "high",
        "queue": "Support",
        "group": "Support",
    }
    assert "channel" not in created[str(b)].fields


def test_timestamps_in_zendesk_and_odd_formats_become_aware_utc() -> None:
    expected = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    for text in (
        "2024-05-01T10:00:00Z",
        "2024-05-01T12:00:00+02:00",
        "2024-05-01T10:00:00+0000",
        "2024-05-01 10:00:00",
        "2024/05/01 10:00",
        "Wed, 01 May 2024 10:00:00 GMT",
        1714557600,
        "1714557600",
        1714557600000,
    ):
        assert parse_timestamp(text) == expected, text
    assert parse_timestamp(None) is None
    assert parse_timestamp("") is None
    with pytest.raises(ValueError, match="unreadable timestamp"):
        parse_timestamp("next tuesday")


async def test_an_unparsable_item_is_skipped_with_a_reason(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    source = connect()
    before = desk.ticket(0)
    fake.control("inject", {"item": {"id": 4242, "status": "open", "created_at": "soon-ish"}})
    fake.control("inject", {"item": {"subject": "no id at all"}})
    after = desk.ticket(0)
    result = await source.poll(desk.clock(3))
    assert {e.ticket_id for e in result.events} == {str(before), str(after)}
    assert [str(issue) for issue in result.issues] == [
        "line 0: ticket 4242: created_at: unreadable timestamp 'soon-ish'",
        "line 0: ticket ?: id: Field required",
    ]


async def test_an_auth_error_is_permanent_and_not_retried(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    source = connect(token="wrong")
    desk.ticket(0)
    with pytest.raises(SourceError, match="HTTP 401") as caught:
        await source.poll(desk.clock(3))
    assert caught.value.retryable is False
    assert fake.requests() == 1


async def test_a_429_storm_honours_retry_after_then_succeeds(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    source = connect()
    desk.ticket(0)
    fake.faults({"status": 429, "retry_after": 1, "count": 2})
    started = time.monotonic()
    result = await source.poll(desk.clock(3))
    assert time.monotonic() - started >= 2.0
    assert [e.kind for e in result.events] == [EventKind.CREATED]
    assert fake.control("stats")["by_path"][EXPORT] == 3


async def test_a_hanging_server_is_a_retryable_timeout(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    source = connect(timeout=timedelta(seconds=0.3))
    fake.faults({"hang": 1, "count": 5})
    with pytest.raises(SourceError, match="TimeoutError") as caught:
        await source.poll(desk.clock(3))
    assert caught.value.retryable is True
    assert source.cursor()["export"] is None


async def test_html_pages_and_malformed_json_are_retried(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    source = connect(timeout=timedelta(seconds=0.5))
    desk.ticket(0)
    fake.faults({"html": True}, {"malformed": True})
    result = await source.poll(desk.clock(3))
    assert [e.kind for e in result.events] == [EventKind.CREATED]
    fake.faults(*[{"malformed": True}] * 5)
    with pytest.raises(SourceError, match="malformed JSON") as caught:
        await source.poll(desk.clock(4))
    assert caught.value.retryable is True


async def test_a_poll_failing_mid_pagination_resumes_without_loss_or_repeats(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    """Page 2 of the export fails after its retries: nothing is delivered and the cursor stays;
    the next poll delivers every ticket once, and a restart from its cursor repeats nothing."""
    source = connect(page_size=2, timeout=timedelta(seconds=1))
    tickets = [desk.ticket(minute) for minute in (0, 0, 1, 1, 2)]
    fake.control("fail", {"path": EXPORT, "after": 1, "status": 500, "count": 5})
    now = desk.clock(4)
    with pytest.raises(SourceError, match="HTTP 500"):
        await source.poll(now)
    assert source.cursor()["export"] is None
    delivered: list[TicketEvent] = []
    result = await source.poll(now)
    delivered += result.events
    while result.more:
        result = await source.poll(now)
        delivered += result.events
    assert sorted(int(e.ticket_id) for e in delivered) == tickets
    assert len(set(ids(delivered))) == len(delivered)

    desk.act(tickets[0], "reply", 5, author="agent")
    restarted = connect(cursor=result.cursor, page_size=2)
    again = await restarted.poll(desk.clock(7))
    assert kinds(again.events) == [("agent_reply", "", ""), ("status_changed", "open", "open")]


async def test_a_restart_resumes_from_the_saved_cursor(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    source = connect()
    t = desk.ticket(0)
    cursor = (await source.poll(desk.clock(2))).cursor
    desk.act(t, "reply", 3, author="agent")
    desk.act(t, "update", 4, status="pending")
    fake.reset_stats()
    restarted = connect(cursor=cursor)
    result = await restarted.poll(desk.clock(6))
    assert kinds(result.events) == [
        ("agent_reply", "", ""),
        ("status_changed", "open", "open"),
        ("status_changed", "pending", "pending"),
    ]
    assert fake.requests() == 3  # export, event export, the agent's role


# ---------------------------------------------------------------------------- cost


async def test_request_costs(desk: Desk, connect: Any, fake: FakeHelpdesk) -> None:
    """An unchanged account costs 1 request; k changed tickets cost ceil(k / page_size) export
    pages plus one event export page."""
    source = connect(page_size=4)
    tickets = [desk.ticket(0) for _ in range(12)]
    now = desk.clock(2)
    result = await source.poll(now)
    while result.more:
        result = await source.poll(now)
    for minute in (3, 6):
        fake.reset_stats()
        assert (await source.poll(desk.clock(minute))).events == []
        assert fake.requests() == 1
    for round, k in enumerate((1, 4, 10)):
        minute = 10 + 3 * round
        for t in tickets[:k]:
            desk.act(t, "update", minute, priority=("high", "low", "urgent")[round])
        fake.reset_stats()
        result = await source.poll(desk.clock(minute + 2))
        assert len({e.ticket_id for e in result.events}) == k
        by_path = fake.control("stats")["by_path"]
        assert by_path[EXPORT] <= math.ceil(k / 4) + 1  # + an empty page when k fills the last
        assert by_path[EVENTS] == 1
        assert fake.requests() == by_path[EXPORT] + by_path[EVENTS]


async def test_the_export_rate_limit_is_enforced_by_the_fake_and_kept_by_the_source(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    """The fake allows 3 incremental requests a second here; the source paces itself to the
    same budget and is never refused. Without pacing it meets 429 and waits Retry-After."""
    fake.control("limits", {"incremental_per_minute": 3, "window": 1.0})
    source = connect()
    source.client.export_pacer.limit = 3
    source.client.export_pacer.window = 1.0
    t = desk.ticket(0)
    await source.poll(desk.clock(2))
    for minute in (3, 5):
        desk.act(t, "update", minute, priority="low" if minute == 3 else "high")
        result = await source.poll(desk.clock(minute + 1.5))
        assert len(result.events) == 1
    assert fake.control("state")["throttled"] == 0

    eager = connect()
    eager.client.export_pacer.limit = 1000
    await eager.poll(desk.clock(8))
    assert fake.control("state")["throttled"] >= 1


# ---------------------------------------------------------------------------- reconciliation


async def test_reconciliation_adds_old_tickets_and_closes_gone_ones(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    """Open tickets older than the first export window come from the search export with their
    audits; deleted, purged and merged tickets are closed as deleted / merged."""
    old = desk.ticket(-600, priority="normal")
    desk.act(old, "reply", -590, author="agent", status="pending")
    solved_long_ago = desk.ticket(-600)
    desk.act(solved_long_ago, "update", -590, status="solved")
    source = connect(reconcile_every="10m")
    first = await source.poll(desk.clock(0))
    assert kinds(first.events) == [
        ("created", "new", "new"),
        ("agent_reply", "", ""),
        ("status_changed", "pending", "pending"),
    ]
    assert first.events[0].at == moment(-600)

    deleted, purged, merged, target = (desk.ticket(1) for _ in range(4))
    await source.poll(desk.clock(3))
    desk.act(deleted, "delete")
    desk.act(merged, "merge", into=target)
    desk.act(purged, "purge")
    result = await source.poll(desk.clock(5))  # the export sees the deletion and the merge
    closed = {e.ticket_id: e.status for e in result.events if e.kind is EventKind.CLOSED}
    assert closed == {str(deleted): "deleted", str(merged): "merged"}
    result = await source.poll(desk.clock(16))  # reconciliation notices the purged one
    assert [(e.ticket_id, e.kind, e.status) for e in result.events] == [
        (str(purged), EventKind.CLOSED, "deleted")
    ]
    assert set(result.cursor["known"]) == {str(old), str(target)}


async def test_reconciliation_catches_a_lost_update(desk: Desk, connect: Any) -> None:
    """The source's state says pending, but the ticket has been open since before the export's
    position: the reconciliation corrects it."""
    source = connect(reconcile_every="10m")
    t = desk.ticket(0, status="open")
    cursor = (await source.poll(desk.clock(2))).cursor
    cursor["known"][str(t)] = ["pending", epoch(-1)]
    restarted = connect(cursor=cursor, reconcile_every="10m")
    result = await restarted.poll(desk.clock(15))
    assert kinds(result.events) == [("status_changed", "open", "open")]
    assert result.events[0].at == moment(0)


async def test_a_failing_reconciliation_does_not_hold_up_the_export(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    """The search export refused (403): the changes still arrive, the failure is logged once,
    and the reconciliation is tried again a few minutes later."""
    fake.control("fail", {"path": "/api/v2/search/export.json", "status": 403, "count": 2})
    source = connect()
    t = desk.ticket(0)
    with capture_logs() as logs:
        first = await source.poll(desk.clock(2))
        desk.act(t, "reply", 3, author="agent")
        second = await source.poll(desk.clock(5))  # within the retry delay: no new attempt
        third = await source.poll(desk.clock(8))
    assert [e.kind for e in first.events] == [EventKind.CREATED]
    assert [e.kind for e in second.events] == [EventKind.AGENT_REPLY, EventKind.STATUS_CHANGED]
    assert third.events == []
    failures = [entry for entry in logs if entry["event"] == "reconciliation_failed"]
    assert len(failures) == 1
    assert "HTTP 403" in failures[0]["error"]
    assert first.cursor["reconciled_at"] is None
    assert third.cursor["reconciled_at"] is None  # the second attempt failed too
    fake.reset_stats()
    fourth = await source.poll(desk.clock(14))
    assert fourth.cursor["reconciled_at"] == epoch(14)
    assert "/api/v2/search/export.json" in fake.control("stats")["by_path"]


async def test_an_oauth_token_without_email_is_sent_as_bearer(desk: Desk, connect: Any) -> None:
    source = connect(email=None)
    desk.ticket(0)
    result = await source.poll(desk.clock(2))
    assert [e.kind for e in result.events] == [EventKind.CREATED]


async def test_queues_limit_the_tickets_followed(desk: Desk, connect: Any) -> None:
    source = connect(queues=["billing"])
    desk.ticket(0, group="Support")
    billing = desk.ticket(0, group="Billing")
    result = await source.poll(desk.clock(2))
    assert {e.ticket_id for e in result.events} == {str(billing)}


# ---------------------------------------------------------------------------- large syncs


async def test_a_batch_needing_many_audits_is_committed_only_when_complete(
    desk: Desk, connect: Any, fake: FakeHelpdesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tickets created before the first window need their own audits; with a budget of two a
    poll, the batch comes in three polls and the export cursor moves only after the last."""
    monkeypatch.setattr(zendesk_source, "AUDIT_FETCHES_PER_POLL", 2)
    tickets = [desk.ticket(-600) for _ in range(5)]
    for t in tickets:
        desk.act(t, "reply", -590, author="agent")
        desk.act(t, "update", 0, priority="high")
    source = connect()
    now = desk.clock(2)
    polls = [await source.poll(now)]
    while polls[-1].more:
        assert polls[-1].cursor["export"] is None
        polls.append(await source.poll(now))
    assert [len({e.ticket_id for e in r.events}) for r in polls] == [2, 2, 1]
    assert polls[-1].cursor["export"] is not None
    events = [e for r in polls for e in r.events]
    for t in tickets:
        assert [e.kind for e in events if e.ticket_id == str(t)] == [
            EventKind.CREATED,
            EventKind.AGENT_REPLY,
            EventKind.STATUS_CHANGED,
            EventKind.STATUS_CHANGED,
        ]
    by_path = fake.control("stats")["by_path"]
    assert by_path[EXPORT] == 1
    assert sum(n for path, n in by_path.items() if path.endswith("/audits.json")) == 5


async def test_a_large_initial_sync_arrives_in_pieces(
    desk: Desk, connect: Any, fake: FakeHelpdesk
) -> None:
    """A backfill of 600 tickets with their audits comes over several polls (``more``), each
    ticket once, its history from the event export rather than one request per ticket."""
    loaded = fake.control("bulk", {"tickets": 600, "seed": 3, "span": 6 * 3600})
    assert loaded["tickets"] == 600
    now = moment(0)
    fake.reset_stats()
    source = connect(cursor={"start_time": epoch(-7 * 60)}, page_size=100)
    polls: list[PollResult] = [await source.poll(now)]
    while polls[-1].more:
        polls.append(await source.poll(now))
    events = [e for r in polls for e in r.events]
    assert len({e.ticket_id for e in events if e.kind is EventKind.CREATED}) == 600
    assert len(polls) > 1
    assert all(not r.issues for r in polls)
    assert len(set(ids(events))) == len(events)
    by_path = fake.control("stats")["by_path"]
    assert by_path[EXPORT] == 6
    assert not [path for path in by_path if path.endswith("/audits.json")]
    fake.reset_stats()
    assert (await source.poll(moment(1))).events == []
    assert fake.requests() == 1


# ---------------------------------------------------------------------------- the daemon


def zendesk_daemon_config(tmp_path: Path, fake: FakeHelpdesk) -> Path:
    source = {"type": "zendesk", "url": fake.url, "email": AGENT_EMAIL, "token": API_TOKEN}
    return daemon_config(
        tmp_path, {"zd": source | {"timeout": "2s"}}, hours={"mon-fri": "09:00-17:00"}
    )


async def test_the_daemon_polls_zendesk_into_its_book(
    desk: Desk, fake: FakeHelpdesk, tmp_path: Path
) -> None:
    first = desk.ticket(0, priority="high")
    second = desk.ticket(1)
    desk.act(first, "reply", 2, author="agent")
    app = App(
        load_config(zendesk_daemon_config(tmp_path, fake)),
        clock=FakeClock(desk.clock(4)),
        console=io.StringIO(),
    )
    await app.start()
    try:
        assert set(app.tickets.replays) == {("zd", str(first)), ("zd", str(second))}
        replay = app.tickets.replays[("zd", str(first))]
        assert [e.kind for e in replay.events] == [
            EventKind.CREATED,
            EventKind.AGENT_REPLY,
            EventKind.STATUS_CHANGED,
        ]
        assert app.store.cursor("zd")["known"].keys() == {str(first), str(second)}
    finally:
        await app.shutdown()
