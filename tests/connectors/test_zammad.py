"""The Zammad connector against a fake Zammad process (and one run of the real daemon)."""

from __future__ import annotations

import io
import json
import math
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from sladaemon.clock import FakeClock
from sladaemon.config import load_config
from sladaemon.config.models import ZammadSourceConfig
from sladaemon.daemon.app import App
from sladaemon.model import EventKind, StatusCategory, TicketEvent
from sladaemon.sources.base import PollResult, SourceError
from sladaemon.sources.channels import ChannelMap
from sladaemon.sources.zammad.mapping import (
    DEFAULT_CHANNELS,
    Seen,
    TicketDetails,
    ticket_events,
)
from sladaemon.sources.zammad.mapping import zammad_statuses as default_statuses
from sladaemon.sources.zammad.payloads import ZammadHistoryEntry, ZammadTicket, parse_timestamp
from sladaemon.sources.zammad.source import ZammadSource
from tests.connectors.conftest import Closing, FakeHelpdesk, daemon_config
from tests.fakes.zammad import DROP, TOKEN

SEARCH = "/api/v1/tickets/search"

MakeSource = Callable[..., ZammadSource]


@pytest.fixture
def fake(fake_helpdesk: Callable[[str], FakeHelpdesk]) -> FakeHelpdesk:
    return fake_helpdesk("zammad")


def source_config(fake: FakeHelpdesk, **overrides: Any) -> ZammadSourceConfig:
    values: dict[str, Any] = {
        "type": "zammad",
        "url": fake.url,
        "token": TOKEN,
        "timeout": timedelta(seconds=2),
    }
    values.update(overrides)
    return ZammadSourceConfig.model_validate(values)


@pytest.fixture
def make_source(fake: FakeHelpdesk, closing: Closing[ZammadSource]) -> MakeSource:

    def make(cursor: object = None, **overrides: Any) -> ZammadSource:
        source = ZammadSource("desk", source_config(fake, **overrides), cursor)
        return closing(source)

    return make


def now() -> datetime:
    return datetime.now(UTC)


async def poll_all(source: ZammadSource, at: datetime | None = None) -> list[PollResult]:
    results = [await source.poll(at or now())]
    while results[-1].more:
        results.append(await source.poll(at or now()))
    return results


def kinds(events: list[TicketEvent]) -> list[tuple[str, str]]:
    return [(e.kind.value, e.status) for e in events]


def new_ticket(fake: FakeHelpdesk, **spec: Any) -> int:
    return int(fake.control("tickets", spec)["id"])


def api(fake: FakeHelpdesk, path: str) -> Any:
    request = urllib.request.Request(
        f"{fake.url}{path}", headers={"Authorization": f"Token token={TOKEN}"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())


def searches(fake: FakeHelpdesk) -> int:
    return int(fake.control("stats")["by_path"].get(SEARCH, 0))


# ---------------------------------------------------------------------- lifecycle


async def test_create_reply_pend_close_reopen_become_events_in_order(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    ticket = new_ticket(fake, title="Printer on fire", group="Support", priority="3 high")
    source = make_source()

    first = await source.poll(now())
    assert kinds(first.events) == [("created", "new"), ("customer_reply", "")]
    created = first.events[0]
    assert created.ticket_id == str(ticket) and created.category is StatusCategory.NEW
    assert dict(created.fields) == {
        "priority": "3 high",
        "queue": "Support",
        "group": "Support",
        "channel": "email",
        "number": str(31000 + ticket),
        "customer": "customer@example.com",
    }

    fake.control("articles", {"ticket_id": ticket, "sender": "Agent", "type": "note"})
    fake.control("articles", {"ticket_id": ticket, "sender": "Agent", "internal": True})
    fake.control("articles", {"ticket_id": ticket, "sender": "Agent", "type": "email"})
    replies = await source.poll(now())
    assert kinds(replies.events) == [
        ("internal_note", ""),  # a public note is not a communication
        ("internal_note", ""),  # an internal email neither
        ("agent_reply", ""),  # the first response
    ]

    fake.control("update", {"ticket_id": ticket, "state": "pending reminder"})
    pended = await source.poll(now())
    assert kinds(pended.events) == [("status_changed", "pending reminder")]
    assert pended.events[0].category is StatusCategory.PENDING

    fake.control("update", {"ticket_id": ticket, "state": "closed"})
    closed = await source.poll(now())
    assert kinds(closed.events) == [("closed", "closed")]
    assert closed.events[0].category is StatusCategory.CLOSED

    # A customer follow-up reopens it. The daemon let the closed ticket go, so the whole
    # history comes again, under the same event ids.
    fake.control("articles", {"ticket_id": ticket, "sender": "Customer", "type": "email"})
    reopened = await source.poll(now())
    earlier = first.events + replies.events + pended.events + closed.events
    assert reopened.events[: len(earlier)] == earlier
    # The reopen first: the follow-up reaches an open ticket, and waits for an answer.
    assert kinds(reopened.events[len(earlier) :]) == [("reopened", "open"), ("customer_reply", "")]
    assert reopened.events[-2].category is StatusCategory.OPEN

    assert (await source.poll(now())).events == []  # nothing is delivered twice


async def test_first_response_follows_zammad_rules_for_senders_types_and_visibility(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    ticket = new_ticket(fake, type="web")
    outbound = new_ticket(fake, sender="Agent", type="phone")  # an agent's outbound call
    for article in (
        {"sender": "System", "type": "email"},  # an auto-reply
        {"sender": "Agent", "type": "sms", "internal": True},
        {"sender": "Agent", "type": "phone"},
        {"sender": "Customer", "type": "web"},
        {"sender": "Agent", "type": "telegram personal-message"},
    ):
        fake.control("articles", {"ticket_id": ticket, **article})
    result = await source_poll(make_source)
    by_ticket = {
        t: [e.kind for e in result.events if e.ticket_id == str(t)] for t in (ticket, outbound)
    }
    assert by_ticket[ticket] == [
        EventKind.CREATED,
        EventKind.CUSTOMER_REPLY,
        EventKind.INTERNAL_NOTE,
        EventKind.INTERNAL_NOTE,
        EventKind.AGENT_REPLY,
        EventKind.CUSTOMER_REPLY,
        EventKind.AGENT_REPLY,
    ]
    assert by_ticket[outbound] == [EventKind.CREATED, EventKind.AGENT_REPLY]
    created = next(e for e in result.events if e.ticket_id == str(outbound))
    assert created.fields["channel"] == "phone"


async def source_poll(make_source: MakeSource) -> PollResult:
    return await make_source().poll(now())


async def test_native_deadlines_surface_in_due_fields_once_per_value(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    ticket = new_ticket(fake)
    source = make_source()
    await source.poll(now())
    fake.control(
        "deadlines",
        {
            "ticket_id": ticket,
            "first_response": "2030-01-07T11:00:00Z",
            "update": "2030-01-07T13:00:00.250Z",
            "close": "2030-01-08T09:00:00Z",
        },
    )
    result = await source.poll(now())
    assert [dict(e.fields) for e in result.events] == [
        {"due:first_response": "2030-01-07T11:00:00.000Z"},
        {"due:periodic_update": "2030-01-07T13:00:00.250Z"},
        {"due:resolution": "2030-01-08T09:00:00.000Z"},
    ]
    assert all(e.kind is EventKind.STATUS_CHANGED and e.category is None for e in result.events)
    assert result.events[0].event_id == "due:first_response:2030-01-07T11:00:00.000Z"

    fake.control("deadlines", {"ticket_id": ticket, "close": "2030-01-09T09:00:00Z"})
    moved = await source.poll(now())
    assert [(e.event_id, dict(e.fields)) for e in moved.events] == [
        (
            "due:resolution:2030-01-09T09:00:00.000Z",
            {"due:resolution": "2030-01-09T09:00:00.000Z"},
        )
    ]


async def test_priority_and_group_changes_keep_the_status_and_set_the_fields(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    ticket = new_ticket(fake, state="open")
    source = make_source()
    await source.poll(now())
    fake.control("update", {"ticket_id": ticket, "priority": "3 high", "group": "Sales"})
    result = await source.poll(now())
    assert [(e.kind, e.status, e.category, dict(e.fields)) for e in result.events] == [
        (EventKind.STATUS_CHANGED, "open", None, {"priority": "3 high"}),
        (EventKind.STATUS_CHANGED, "open", None, {"queue": "Sales", "group": "Sales"}),
    ]


async def test_the_owner_email_and_group_follow_every_change(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    """The creation names the owner by email (lower case, not the login) and the group; an
    owner change sets ``assignee`` again, an unassignment empties it. Owners are read once:
    from the history's assets, else one ``GET /users/{id}`` each."""
    ticket = new_ticket(fake, state="open", group="Support", owner="Dana.Lead@Example.com")
    other = new_ticket(fake, state="open", owner="Dana.Lead@Example.com")
    source = make_source()
    first = await source.poll(now())
    created = {e.ticket_id: dict(e.fields) for e in first.events if e.kind is EventKind.CREATED}
    assert created[str(ticket)]["assignee"] == "dana.lead@example.com"
    assert created[str(ticket)]["group"] == "Support"
    assert created[str(other)]["assignee"] == "dana.lead@example.com"
    assert fake.control("stats")["by_path"]["/api/v1/users/2"] == 1

    fake.control("update", {"ticket_id": ticket, "owner": "bo@example.com"})
    fake.control("update", {"ticket_id": ticket, "owner": None})
    changes = await source.poll(now())
    assert [dict(e.fields) for e in changes.events] == [
        {"assignee": "bo@example.com"},
        {"assignee": ""},
    ]
    assert not any(path.startswith("/api/v1/users/3") for path in fake.control("stats")["by_path"])


async def test_a_ticket_first_seen_keeps_the_owner_it_was_created_with(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    ticket = new_ticket(fake, state="open", owner="ann@example.com")
    fake.control("update", {"ticket_id": ticket, "owner": "bo@example.com"})
    result = await make_source().poll(now())
    assert [e.fields.get("assignee") for e in result.events if "assignee" in e.fields] == [
        "ann@example.com",
        "bo@example.com",
    ]


async def test_only_watched_groups_are_followed_and_leaving_them_closes_the_ticket(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    support = new_ticket(fake, group="Support")
    sales = new_ticket(fake, group="Sales")
    source = make_source(queues=["Support"])
    first = await source.poll(now())
    assert {e.ticket_id for e in first.events} == {str(support)}

    fake.control("update", {"ticket_id": support, "group": "Sales"})
    fake.control("update", {"ticket_id": sales, "group": "Support"})
    moved = await source.poll(now())
    left = [e for e in moved.events if e.ticket_id == str(support)]
    assert kinds(left) == [("closed", "moved")]
    arrived = [e for e in moved.events if e.ticket_id == str(sales)]
    assert arrived[0].kind is EventKind.CREATED and arrived[0].fields["queue"] == "Sales"
    assert dict(arrived[-1].fields) == {"queue": "Support", "group": "Support"}


async def test_merged_and_deleted_tickets_are_closed(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    merged = new_ticket(fake)
    target = new_ticket(fake)
    deleted = new_ticket(fake)
    source = make_source()
    await source.poll(now())

    fake.control("merge", {"ticket_id": merged, "into": target})
    result = await source.poll(now())
    assert kinds([e for e in result.events if e.ticket_id == str(merged)]) == [("closed", "merged")]
    assert [e for e in result.events if e.ticket_id == str(target)] == []  # old articles moved

    fake.control("delete", {"ticket_id": deleted})
    assert (await source.poll(now())).events == []  # the change feed cannot see a deletion
    later = now() + timedelta(hours=1)  # reconciliation is due
    gone = await source.poll(later)
    assert [(e.ticket_id, e.kind, e.status, e.category) for e in gone.events] == [
        (str(deleted), EventKind.CLOSED, "deleted", StatusCategory.CLOSED)
    ]
    assert (await source.poll(later + timedelta(hours=1))).events == []


async def test_reconciliation_catches_an_update_the_search_missed(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    lost = new_ticket(fake)
    source = make_source()
    await source.poll(now())
    fake.control("index", {"ticket_id": lost, "visible": False})  # the index lags behind
    fake.control("update", {"ticket_id": lost, "state": "open"})
    fake.control("clock", {"advance": 600})
    new_ticket(fake)  # moves the checkpoint well past the lost update
    assert [e.ticket_id for e in (await source.poll(now())).events] == [str(lost + 1)] * 2
    fake.control("index", {"ticket_id": lost, "visible": True})
    assert (await source.poll(now())).events == []  # behind the overlap window

    reconciled = await source.poll(now() + timedelta(hours=1))
    assert kinds(reconciled.events) == [("status_changed", "open")]
    assert reconciled.events[0].ticket_id == str(lost)


# ---------------------------------------------------------------------- bad input


async def test_unknown_statuses_and_channels_get_defaults_and_are_reported_once(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    ticket = new_ticket(fake, type="carrier pigeon")
    fake.control("update", {"ticket_id": ticket, "state": "escalated to vendor"})
    source = make_source()
    with capture_logs() as logs:
        result = await source.poll(now())
        new_ticket(fake, type="carrier pigeon")
        again = await source.poll(now())
    assert result.events[0].fields["channel"] == "other"
    status = next(e for e in result.events if e.kind is EventKind.STATUS_CHANGED)
    assert (status.status, status.category) == ("escalated to vendor", StatusCategory.OPEN)
    assert result.unknown_statuses == again.unknown_statuses == {"escalated to vendor"}
    assert again.events[0].fields["channel"] == "other"
    reported = [entry for entry in logs if entry["event"] == "unknown_channel"]
    assert reported == [
        {
            "event": "unknown_channel",
            "source": "desk",
            "channel": "carrier pigeon",
            "counted_as": "other",
            "log_level": "warning",
        }
    ]


async def test_missing_null_fields_and_odd_timestamps_are_read(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    ticket = new_ticket(fake)
    fake.control(
        "raw",
        {
            "ticket_id": ticket,
            "fields": {
                "priority": None,
                "priority_id": None,
                "group": DROP,
                "organization": None,
                "customer": {"name": "Ada Lovelace"},
                "number": 31999,
                "create_article_type": None,
                "created_at": "2024-05-01 10:00:00 +0200",
                "close_escalation_at": "2024-05-02 08:00:00 UTC",
                "first_response_escalation_at": "",
            },
        },
    )
    article = api(fake, f"/api/v1/ticket_articles/by_ticket/{ticket}")[0]["id"]
    fields = {"created_at": 1714550400123, "type": None, "sender": None, "internal": "false"}
    fake.control("raw", {"article_id": article, "fields": fields})
    result = await make_source().poll(now())
    created, reply, due = result.events
    assert created.at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert dict(created.fields) == {
        "channel": "email",  # from create_article_type_id
        "number": "31999",
        "customer": "Ada Lovelace",
    }
    assert reply.kind is EventKind.CUSTOMER_REPLY  # sender_id 2
    assert reply.at == datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=UTC)
    assert dict(due.fields) == {"due:resolution": "2024-05-02T08:00:00.000Z"}
    assert result.issues == []


def test_timestamps_in_the_formats_zammad_and_its_proxies_send() -> None:
    expected = datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    for text in (
        "2024-05-01T10:00:00.123Z",
        "2024-05-01T10:00:00.123000000Z",
        "2024-05-01 10:00:00.123 UTC",
        "2024-05-01T12:00:00.123+02:00",
        "2024-05-01T12:00:00.123+0200",
        "2024-05-01 10:00:00.123",
        1714557600123,
        "1714557600.123",
    ):
        assert parse_timestamp(text) == expected, text
    assert parse_timestamp(None) is None and parse_timestamp(" ") is None
    with pytest.raises(ValueError, match="unreadable timestamp"):
        parse_timestamp("last tuesday")


def test_a_state_change_the_history_does_not_show_lands_at_updated_at() -> None:
    ticket = ZammadTicket.model_validate(
        {"id": 7, "state": "closed", "updated_at": "2024-05-01T10:00:00Z", "article_count": 0}
    )
    seen = Seen(datetime(2024, 5, 1, 9, tzinfo=UTC), fingerprint=1)  # it was open
    events = ticket_events(
        TicketDetails(ticket, None, []),
        statuses=default_statuses({}),
        channels=ChannelMap(DEFAULT_CHANNELS),
        seen=seen,
    )
    assert [(e.kind, e.status, e.at) for e in events] == [
        (EventKind.CLOSED, "closed", datetime(2024, 5, 1, 10, tzinfo=UTC))
    ]
    removed = ticket.model_copy(update={"state": "removed"})
    history = [
        ZammadHistoryEntry.model_validate(
            {
                "id": 3,
                "object": "Ticket",
                "type": "updated",
                "attribute": "state",
                "value_from": "open",
                "value_to": "removed",
                "created_at": "2024-05-01T09:30:00Z",
            }
        )
    ]
    events = ticket_events(
        TicketDetails(removed, None, history),
        statuses=default_statuses({}),
        channels=ChannelMap(DEFAULT_CHANNELS),
        seen=seen,
    )
    assert [(e.kind, e.status, e.category) for e in events] == [
        (EventKind.CLOSED, "deleted", StatusCategory.CLOSED)
    ]


async def test_an_unparsable_item_is_skipped_with_a_reason_and_the_rest_processed(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    first, broken, third = (new_ticket(fake) for _ in range(3))
    fake.control("raw", {"ticket_id": broken, "fields": {"updated_at": "yesterday-ish"}})
    article = api(fake, f"/api/v1/ticket_articles/by_ticket/{third}")[0]["id"]
    fake.control("raw", {"article_id": article, "fields": {"created_at": "soon"}})
    result = await make_source().poll(now())
    assert kinds(result.events) == [("created", "new"), ("customer_reply", ""), ("created", "new")]
    assert {e.ticket_id for e in result.events} == {str(first), str(third)}
    assert [issue.message for issue in result.issues] == [
        f"ticket {broken}: updated_at: unreadable timestamp 'yesterday-ish'",
        f"ticket {third}: article {article}: created_at: unreadable timestamp 'soon'",
    ]


# ---------------------------------------------------------------------- HTTP failures


@pytest.mark.parametrize(("token", "status"), [("wrong-token", 401), (None, 403)])
async def test_auth_errors_are_permanent_and_not_retried(
    fake: FakeHelpdesk, make_source: MakeSource, token: str | None, status: int
) -> None:
    new_ticket(fake)
    source = make_source(token=token)
    with pytest.raises(SourceError, match=f"HTTP {status}") as failure:
        await source.poll(now())
    assert failure.value.retryable is False
    assert fake.requests() == 1


async def test_a_429_storm_is_waited_out_as_retry_after_asks(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    new_ticket(fake)
    fake.faults({"status": 429, "retry_after": 1, "count": 2})
    started = time.monotonic()
    result = await make_source().poll(now())
    assert time.monotonic() - started >= 1.9
    assert kinds(result.events) == [("created", "new"), ("customer_reply", "")]
    assert fake.requests() == 2 + 3  # two refusals, then search, articles, history


async def test_a_proxy_rate_limit_is_respected_and_the_poll_completes(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    for _ in range(2):
        new_ticket(fake)
    fake.control("proxy_limit", {"limit": 2, "window": 1})
    started = time.monotonic()
    result = await make_source().poll(now())
    assert time.monotonic() - started >= 0.9  # five requests through two per second
    assert Counter(e.kind for e in result.events) == {
        EventKind.CREATED: 2,
        EventKind.CUSTOMER_REPLY: 2,
    }


async def test_a_hanging_server_times_out_as_a_retryable_error(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    fake.faults({"hang": 1, "count": 5})
    source = make_source(timeout=timedelta(seconds=0.3))
    with pytest.raises(SourceError, match="gave up after 5 attempts") as failure:
        await source.poll(now())
    assert failure.value.retryable is True


async def test_html_pages_and_malformed_json_are_retried(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    new_ticket(fake)
    fake.faults({"html": True}, {"malformed": True})
    source = make_source(timeout=timedelta(seconds=0.5))
    result = await source.poll(now())
    assert [e.kind for e in result.events] == [EventKind.CREATED, EventKind.CUSTOMER_REPLY]
    assert fake.requests() == 2 + 3

    fake.faults({"html": True, "count": 5})
    with pytest.raises(SourceError, match="HTML page") as failure:
        await source.poll(now())
    assert failure.value.retryable is True


async def test_a_poll_failing_mid_pagination_is_redone_without_loss_or_repeats(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    tickets = [new_ticket(fake) for _ in range(9)]
    source = make_source(page_size=2, timeout=timedelta(seconds=0.5))
    source.pages_per_poll = 2
    delivered = list((first := await source.poll(now())).events)
    assert first.more

    fake.control("fail_search", {"after": 1, "status": 503, "count": 5})
    with pytest.raises(SourceError, match="HTTP 503"):
        await source.poll(now())  # its first page was fetched, its second failed

    # A source restarted from the last saved cursor and the failed source itself go on alike.
    restarted = make_source(cursor=first.cursor, page_size=2)
    restarted.pages_per_poll = 2
    for result in await poll_all(source):
        delivered.extend(result.events)
    replayed = [e for r in await poll_all(restarted) for e in r.events]
    assert replayed == delivered[len(first.events) :]

    created = Counter(e.ticket_id for e in delivered if e.kind is EventKind.CREATED)
    assert created == Counter(str(t) for t in tickets)
    assert len({(e.ticket_id, e.event_id) for e in delivered}) == len(delivered)


# ---------------------------------------------------------------------- cost


async def test_an_unchanged_poll_costs_one_request_and_changes_cost_pages_plus_details(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    page_size = 4
    tickets = [new_ticket(fake, state="open") for _ in range(12)]
    fake.control("clock", {"advance": 600})  # the tickets are older than the overlap
    source = make_source(page_size=page_size)
    await poll_all(source)

    fake.reset_stats()
    unchanged = await source.poll(now())
    assert fake.requests() == 1
    assert unchanged.events == [] and unchanged.cursor is None

    changed = tickets[1:11]
    for ticket in changed:
        fake.control("articles", {"ticket_id": ticket, "sender": "Agent", "type": "email"})
    fake.reset_stats()
    result = await source.poll(now())
    assert [e.kind for e in result.events] == [EventKind.AGENT_REPLY] * len(changed)
    assert searches(fake) <= math.ceil(len(changed) / page_size) + 1
    assert fake.requests() == searches(fake) + len(changed)  # articles only: no state moved


async def test_the_first_sync_reads_open_tickets_a_few_pages_per_poll(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    fake.control("bulk", {"tickets": 60, "seed": 5})
    fake.control("clock", {"advance": 600})
    open_ids = {
        str(t["id"])
        for t in api(fake, "/api/v1/tickets?per_page=100&expand=true")
        if t["state"] not in ("closed", "merged", "removed")
    }
    source = make_source(page_size=10)
    source.pages_per_poll = 2
    fake.reset_stats()
    results = await poll_all(source)
    assert [r.more for r in results] == [True] * (len(results) - 1) + [False]
    assert len(results) > 1
    created = [e.ticket_id for r in results for e in r.events if e.kind is EventKind.CREATED]
    assert sorted(created) == sorted(open_ids)
    assert searches(fake) <= math.ceil(len(open_ids) / 10) + 1

    restarted = make_source(cursor=results[-1].cursor)
    fake.reset_stats()
    assert (await restarted.poll(now())).events == []
    assert fake.requests() == 1


# ---------------------------------------------------------------------- the daemon


async def test_the_daemon_follows_zammad_tickets_and_resumes_after_a_restart(
    fake: FakeHelpdesk, tmp_path: Path
) -> None:
    waiting = new_ticket(fake, priority="3 high")
    answered = new_ticket(fake)
    fake.control("articles", {"ticket_id": answered, "sender": "Agent", "type": "email"})
    done = new_ticket(fake)
    fake.control("update", {"ticket_id": done, "state": "closed"})
    fake.control("clock", {"advance": 600})
    config = daemon_config(
        tmp_path, {"zammad": {"type": "zammad", "url": fake.url, "token": TOKEN}}
    )
    app = App(load_config(config), clock=FakeClock(now()), console=io.StringIO())
    await app.start()
    try:
        assert set(app.tickets.replays) == {("zammad", str(waiting)), ("zammad", str(answered))}
        assert app.tickets.replays[("zammad", str(waiting))].fields["priority"] == "3 high"
        assert app.store.cursor("zammad") is not None
    finally:
        await app.shutdown()

    fake.reset_stats()
    again = App(load_config(config), clock=FakeClock(now()), console=io.StringIO())
    await again.start()
    try:
        assert set(again.tickets.replays) == {("zammad", str(waiting)), ("zammad", str(answered))}
        assert fake.requests() == 1
    finally:
        await again.shutdown()
