"""The Request Tracker connector against a fake RT 5 REST2 process (and one run of the
real daemon). The real RT is exercised by tests/integration/test_rt_real.py."""

from __future__ import annotations

import asyncio
import io
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
from sladaemon.config.models import RequestTrackerSourceConfig
from sladaemon.daemon.app import App
from sladaemon.model import EventKind, Metric, MetricState, StatusCategory, TicketEvent
from sladaemon.sla.engine import evaluate
from sladaemon.sla.explain import explain_json
from sladaemon.sla.native import native_deadlines
from sladaemon.sources.base import PollResult, SourceError
from sladaemon.sources.channels import ChannelMap
from sladaemon.sources.rt.mapping import (
    DEFAULT_CHANNELS,
    DUE_FIELDS,
    MappingContext,
    TicketTrail,
    map_ticket,
)
from sladaemon.sources.rt.payloads import RtTicket, RtTransaction, parse_rt_time
from sladaemon.sources.rt.source import RequestTrackerSource, decode_ranges, encode_ranges
from sladaemon.statuses import StatusMap
from tests.conftest import RecordedWaits
from tests.connectors.conftest import Closing, FakeHelpdesk, daemon_config
from tests.fakes.rt import TOKEN

TICKETS = "/REST/2.0/tickets"
TRANSACTIONS = "/REST/2.0/transactions"

MakeSource = Callable[..., RequestTrackerSource]


@pytest.fixture
def fake(fake_helpdesk: Callable[[str], FakeHelpdesk]) -> FakeHelpdesk:
    return fake_helpdesk("rt")


def source_config(fake: FakeHelpdesk, **overrides: Any) -> RequestTrackerSourceConfig:
    values: dict[str, Any] = {
        "type": "rt",
        "url": fake.url,
        "token": TOKEN,
        "overlap": "2s",
        "timeout": "2s",
        "statuses": {"waiting for customer": "pending"},
    }
    values.update(overrides)
    return RequestTrackerSourceConfig.model_validate(values)


@pytest.fixture
def make_source(fake: FakeHelpdesk, closing: Closing[RequestTrackerSource]) -> MakeSource:

    def make(cursor: object = None, **overrides: Any) -> RequestTrackerSource:
        attempts = overrides.pop("max_attempts", 3)
        source = RequestTrackerSource(
            "rt",
            source_config(fake, **overrides),
            cursor,
            first_backoff=0.01,
            max_attempts=attempts,
        )
        return closing(source)

    return make


def now() -> datetime:
    return datetime.now(UTC)


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_ticket(fake: FakeHelpdesk, **body: Any) -> int:
    body.setdefault("requestor", "customer@example.com")
    return int(fake.control("tickets", body)["id"])


def act(fake: FakeHelpdesk, ticket: int, action: str, **body: Any) -> None:
    fake.control(f"tickets/{ticket}/{action}", body)


async def settle() -> None:
    """Let the current second pass: RT dates have one-second resolution, so a ticket read in
    the second of its last change is read once more."""
    await asyncio.sleep(1.0 - time.time() % 1.0 + 0.05)


async def poll_all(source: RequestTrackerSource, at: datetime | None = None) -> list[PollResult]:
    results = [await source.poll(at or now())]
    while results[-1].more:
        results.append(await source.poll(at or now()))
    return results


def by_path(fake: FakeHelpdesk) -> Counter[str]:
    return Counter(fake.control("stats")["by_path"])


def story(events: list[TicketEvent]) -> list[tuple[str, str]]:
    """Kinds and statuses, without the native deadline updates."""
    return [
        (e.kind.value, e.status) for e in events if not any(k.startswith("due:") for k in e.fields)
    ]


def dues(events: list[TicketEvent]) -> list[dict[str, str]]:
    """The due fields each event sets; the ones it clears are left out ({}: Due unset)."""
    return [
        {k: v for k, v in e.fields.items() if v}
        for e in events
        if any(k.startswith("due:") for k in e.fields)
    ]


# ---------------------------------------------------------------------- scenarios


async def test_a_ticket_life_becomes_events_in_order(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    """Create, note, first reply, pending, customer reply, stalled, resolve, reopen."""
    source = make_source()
    ticket = new_ticket(fake, priority=50, sla="standard", channel="Email", queue="Support")
    first = await source.poll(now())
    act(fake, ticket, "comment", by="agent")
    act(fake, ticket, "correspond", by="agent")  # the first response; RT opens a new ticket
    act(fake, ticket, "status", status="waiting for customer")
    act(fake, ticket, "correspond", by="customer")  # RT keeps the status
    act(fake, ticket, "status", status="stalled")
    act(fake, ticket, "status", status="resolved")
    act(fake, ticket, "correspond", by="customer")  # RT reopens a resolved ticket
    second = await source.poll(now())

    created = first.events[0]
    assert created.kind is EventKind.CREATED and created.event_id == "created"
    assert dict(created.fields) == {
        "priority": "50",
        "queue": "Support",
        "group": "Support",
        "sla": "standard",
        "channel": "email",
    }
    assert story(first.events + second.events) == [
        ("created", "new"),
        ("internal_note", ""),
        ("agent_reply", ""),
        ("status_changed", "open"),
        ("status_changed", "waiting for customer"),
        ("customer_reply", "waiting for customer"),
        ("status_changed", "stalled"),
        ("resolved", "resolved"),
        ("reopened", "open"),  # RT's scrip reopens it after the reply, in the same second
        ("customer_reply", "open"),  # which reaches an open ticket, and waits for an answer
    ]
    categories = [e.category for e in second.events]
    assert StatusCategory.PENDING in categories and StatusCategory.ON_HOLD in categories
    times = [e.at for e in first.events + second.events]
    assert times == sorted(times)
    assert second.unknown_statuses == set()


async def test_first_response_comes_from_a_correspondence_by_a_non_requestor(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    """Requestor replies and comments are not responses; the owner answering is, even when
    the owner is also a requestor (RT's rule for SLA "outside actors")."""
    asking = new_ticket(fake, requestor="bob@example.com")
    act(fake, asking, "correspond", by="bob@example.com")
    act(fake, asking, "comment", by="agent")
    owned = new_ticket(fake, requestor="alice@example.com")
    act(fake, owned, "set", owner="alice@example.com")
    act(fake, owned, "correspond", by="alice@example.com")
    events = (await make_source().poll(now())).events
    replies = [(e.ticket_id, e.kind) for e in events if e.kind.value.endswith(("reply", "note"))]
    assert replies == [
        (str(asking), EventKind.CUSTOMER_REPLY),
        (str(asking), EventKind.INTERNAL_NOTE),
        (str(owned), EventKind.AGENT_REPLY),
    ]


async def test_rt_due_is_filed_as_the_earliest_of_the_goals_rt_computed_it_from(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    """RT's Due is min(Response, Resolve) while a requestor waits (first, then next
    response), min(KeepInLoop, Resolve) after an agent's answer; each Due clears the fields
    of the others and an unset Due clears them all (RT shows one Due)."""
    source = make_source()
    ticket = new_ticket(fake, sla="standard", due="2030-01-07T10:00:00Z")
    act(fake, ticket, "correspond", by="agent")
    act(fake, ticket, "due", due="2030-01-09T10:00:00Z")
    act(fake, ticket, "status", status="stalled")
    act(fake, ticket, "due", due=None)  # RT unsets Due on an ignored status
    act(fake, ticket, "status", status="open")
    act(fake, ticket, "due", due="2030-01-09T10:00:05Z")
    act(fake, ticket, "correspond", by="customer")
    act(fake, ticket, "due", due="2030-01-08T11:00:00Z")
    act(fake, ticket, "correspond", by="customer")
    act(fake, ticket, "due", due="2030-01-09T10:00:05Z")  # min(Response, Resolve) = Resolve
    plain = new_ticket(fake, due="2030-01-07T10:00:00Z")  # no SLA level: a hand-set Due
    events = (await source.poll(now())).events
    mine = [e for e in events if e.ticket_id == str(ticket)]
    assert dues(mine) == [
        {"due:first_response|resolution": "2030-01-07T10:00:00Z"},
        {"due:periodic_update|resolution": "2030-01-09T10:00:00Z"},
        {},
        {"due:periodic_update|resolution": "2030-01-09T10:00:05Z"},
        {"due:next_response|resolution": "2030-01-08T11:00:00Z"},
        {"due:next_response|resolution": "2030-01-09T10:00:05Z"},
    ]
    due_events = [e for e in mine if any(k.startswith("due:") for k in e.fields)]
    assert all(set(e.fields) == set(DUE_FIELDS) for e in due_events)
    assert all(e.category is None and e.kind is EventKind.STATUS_CHANGED for e in due_events)
    assert len({e.event_id for e in due_events}) == 6, "one event per Set Due transaction"
    assert not dues([e for e in events if e.ticket_id == str(plain)])


async def test_field_changes_carry_the_new_values(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    source = make_source()
    ticket = new_ticket(fake, priority=10, custom_fields={"Severity": "low"})
    await source.poll(now())
    act(fake, ticket, "set", priority=90)
    act(fake, ticket, "set", queue="Escalations")
    act(fake, ticket, "set", sla="gold", channel="phone", custom_fields={"Severity": "high"})
    events = (await source.poll(now())).events
    assert [dict(e.fields) for e in events] == [
        {"priority": "90"},
        {"queue": "Escalations", "group": "Escalations"},
        {"sla": "gold"},
        {"cf.severity": "high"},
        {"channel": "phone"},
    ]
    assert all(e.kind is EventKind.STATUS_CHANGED and e.category is None for e in events)
    assert all(e.status == "new" for e in events), "the status stays as it was"


async def test_a_ticket_first_seen_after_changes_starts_from_its_original_values(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    ticket = new_ticket(fake, priority=10, queue="General")
    act(fake, ticket, "set", priority=90, queue="Escalations")
    act(fake, ticket, "status", status="open")
    events = (await make_source().poll(now())).events
    assert events[0].kind is EventKind.CREATED
    assert events[0].status == "new"
    assert dict(events[0].fields) == {"priority": "10", "queue": "General", "group": "General"}
    assert [dict(e.fields) for e in events[1:3]] == [
        {"priority": "90"},
        {"queue": "Escalations", "group": "Escalations"},
    ]


async def test_the_owner_email_and_queue_follow_every_change(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    """The owner's email (lower case) is ``assignee`` and the queue is ``group``; owner changes
    of every kind, recorded with user numbers, are looked up once per user; Nobody empties
    ``assignee``."""
    source = make_source()
    ticket = new_ticket(fake, queue="Support", owner="Dana.Lead@Example.com")
    first = await source.poll(now())
    created = dict(first.events[0].fields)
    assert (created["assignee"], created["group"]) == ("dana.lead@example.com", "Support")

    act(fake, ticket, "set", owner="bo", owner_by="Give")
    act(fake, ticket, "set", owner="Nobody", owner_by="Untake")
    act(fake, ticket, "set", owner="bo", owner_by="Take")
    second = await source.poll(now())
    assert [dict(e.fields) for e in second.events] == [
        {"assignee": "bo@example.com"},
        {"assignee": ""},
        {"assignee": "bo@example.com"},
    ]
    users = {path: n for path, n in by_path(fake).items() if "/user/" in path}
    assert users and all(n == 1 for n in users.values())


async def test_a_ticket_first_seen_keeps_the_owner_it_was_created_with(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    ticket = new_ticket(fake, owner="ann@example.com")
    act(fake, ticket, "set", owner="bo")
    events = (await make_source().poll(now())).events
    assert [e.fields.get("assignee") for e in events if "assignee" in e.fields] == [
        "ann@example.com",
        "bo@example.com",
    ]


# ---------------------------------------------------------------------- bad input


async def test_unknown_statuses_and_channels_fall_back_and_are_reported_once(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    source = make_source()
    first = new_ticket(fake, status="triage", channel="carrier pigeon")
    second = new_ticket(fake, status="triage", channel="carrier pigeon")
    with capture_logs() as logs:
        result = await source.poll(now())
        act(fake, first, "status", status="escalated")
        again = await source.poll(now())
    assert result.unknown_statuses == {"triage"}
    assert again.unknown_statuses == {"triage", "escalated"}
    created = [e for e in result.events if e.kind is EventKind.CREATED]
    assert {e.ticket_id for e in created} == {str(first), str(second)}
    assert all(e.category is StatusCategory.OPEN for e in created)
    assert all(e.fields["channel"] == "other" for e in created)
    warnings = [entry for entry in logs if entry["event"] == "unknown_channel"]
    assert warnings == [
        {
            "event": "unknown_channel",
            "source": "rt",
            "channel": "carrier pigeon",
            "counted_as": "other",
            "log_level": "warning",
        }
    ]


async def test_missing_and_null_fields_are_tolerated(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    ticket = new_ticket(fake, priority=50, sla="standard")
    fake.control(
        f"tickets/{ticket}/raw",
        {
            "Priority": None,
            "Queue": None,
            "Owner": None,
            "Requestor": None,
            "SLA": None,
            "Due": None,
            "CustomFields": None,
            "Created": None,
            "Status": None,
        },
    )
    act(fake, ticket, "correspond", by="customer@example.com")
    events = (await make_source().poll(now())).events
    assert events[0].kind is EventKind.CREATED
    assert dict(events[0].fields) == {}
    # Without requestors nobody is an outside actor: the reply counts as an agent's.
    assert [e.kind for e in events[1:]] == [EventKind.AGENT_REPLY]


async def test_timestamps_in_odd_formats_are_read_as_utc(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    ticket = new_ticket(fake)
    act(fake, ticket, "correspond", by="agent")
    act(fake, ticket, "comment", by="agent")
    txns = fake.control(f"tickets/{ticket}/transactions")
    create, reply, status, comment = (t["id"] for t in txns)
    fake.control(f"transactions/{create}/raw", {"Created": "2024-05-01 10:00:00"})
    fake.control(f"transactions/{reply}/raw", {"Created": "2024-05-01T12:30:00+02:00"})
    fake.control(f"transactions/{status}/raw", {"Created": "Wed May  1 10:45:00 2024"})
    fake.control(f"transactions/{comment}/raw", {"Created": 1714560300})
    fake.control(f"tickets/{ticket}/raw", {"LastUpdated": "2024-05-01T10:45:00.123456Z"})
    events = (await make_source().poll(now())).events
    assert [e.at for e in events] == [
        datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 30, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 45, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 45, tzinfo=UTC),
    ]


def test_rt_time_parsing() -> None:
    assert parse_rt_time("1970-01-01T00:00:00Z") is None
    assert parse_rt_time("1970-01-01 00:00:00") is None
    assert parse_rt_time("") is None and parse_rt_time(None) is None
    assert parse_rt_time("Not set") is None
    assert parse_rt_time("2024-05-01T10:00:00Z") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_rt_time("2024-05-01T10:00:00-0330") == datetime(2024, 5, 1, 13, 30, tzinfo=UTC)
    assert parse_rt_time("Wed, 01 May 2024 10:00:00 GMT") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_rt_time(1714557600000) == datetime(2024, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a date"):
        parse_rt_time("next tuesday-ish")


async def test_an_item_that_fails_to_parse_is_skipped_with_a_reason_once(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    good = new_ticket(fake)
    bad = new_ticket(fake)
    other = new_ticket(fake)
    fake.control(f"tickets/{bad}/raw", {"LastUpdated": "yesterday-ish"})
    act(fake, other, "correspond", by="agent")
    broken_txn = fake.control(f"tickets/{other}/transactions")[1]["id"]
    fake.control(f"transactions/{broken_txn}/raw", {"Created": "soon"})
    source = make_source()
    result = await source.poll(now())
    assert {e.ticket_id for e in result.events} == {str(good), str(other)}
    messages = sorted(i.message for i in result.issues)
    assert messages == [
        f"ticket {bad}: LastUpdated: not a date: 'yesterday-ish'",
        f"ticket {other}: transaction {broken_txn}: Created: not a date: 'soon'",
    ]
    assert all(i.line == 0 for i in result.issues)
    again = await source.poll(now())
    assert again.issues == [], "each skipped item is reported once"


async def test_an_auth_error_is_permanent_and_not_retried(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    new_ticket(fake)
    fake.reset_stats()
    with pytest.raises(SourceError) as error:
        await make_source(token="wrong", max_attempts=5).poll(now())
    assert error.value.retryable is False
    assert fake.requests() == 1


async def test_basic_auth_with_user_and_password(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    new_ticket(fake)
    source = make_source(token=None, user="root", password="password")
    assert len((await source.poll(now())).events) == 1
    with pytest.raises(SourceError) as error:
        await make_source(token=None, user="root", password="nope").poll(now())
    assert error.value.retryable is False
    with pytest.raises(SourceError, match="needs a token"):
        await make_source(token=None).poll(now())


async def test_a_429_storm_waits_for_retry_after_then_succeeds(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    new_ticket(fake)
    source = make_source(max_attempts=5)
    fake.faults({"status": 429, "retry_after": 0.3, "count": 3})
    fake.reset_stats()
    started = time.monotonic()
    result = await source.poll(now())
    assert time.monotonic() - started >= 0.9
    assert len(result.events) == 1
    assert by_path(fake)[TICKETS] == 4


async def test_a_hanging_server_times_out_as_a_retryable_error(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    source = make_source(timeout=timedelta(seconds=0.3), max_attempts=2)
    fake.faults({"hang": 3, "count": 2})
    started = time.monotonic()
    with pytest.raises(SourceError) as error:
        await source.poll(now())
    assert error.value.retryable is True
    assert time.monotonic() - started < 5.0, "well before the two hung answers (3 s each)"


@pytest.mark.parametrize("fault", [{"html": True}, {"malformed": True}, {"status": 502}])
async def test_html_pages_malformed_json_and_5xx_are_retried(
    fake: FakeHelpdesk, make_source: MakeSource, fault: dict[str, Any]
) -> None:
    new_ticket(fake)
    source = make_source()
    fake.faults(fault)
    fake.reset_stats()
    assert len((await source.poll(now())).events) == 1
    assert by_path(fake)[TICKETS] == 2


async def test_a_wrong_url_is_a_permanent_error(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    fake.reset_stats()
    with pytest.raises(SourceError) as error:
        await make_source(url=fake.url + "/nothing-here", max_attempts=5).poll(now())
    assert error.value.retryable is False
    assert fake.requests() == 1


async def test_rate_limit_headers_of_a_proxy_in_front_of_rt(
    fake: FakeHelpdesk, make_source: MakeSource, http_waits: RecordedWaits
) -> None:
    """RT sends no rate-limit headers; a proxy in front of it may. They are read, and a
    generous budget does not slow polling down: no request waits."""
    new_ticket(fake)
    fake.control("config", {"rate_limit": 1000})
    request = urllib.request.Request(
        f"{fake.url}{TICKETS}?query=id>0", headers={"Authorization": f"token {TOKEN}"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        assert response.headers["X-RateLimit-Limit"] == "1000"
        assert response.headers["X-RateLimit-Remaining"] == "999"
    assert len((await make_source().poll(now())).events) == 1
    assert http_waits.seconds == []


# ---------------------------------------------------------------------- incremental sync


async def test_a_failure_mid_pagination_loses_and_repeats_nothing(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    """Pages 1-5 in a first poll, then page 2 of the next poll fails: that poll raises,
    the cursor stays, and the next poll resumes. Every ticket arrives once."""
    fake.control("bulk", {"tickets": 650, "seed": 3, "resolved_share": 0})
    source = make_source()
    delivered: list[TicketEvent] = []
    first = await source.poll(now())
    delivered += first.events
    assert first.more
    fake.control("config", {"fail": {"path": TICKETS, "page": 2, "status": 500, "count": 3}})
    with pytest.raises(SourceError):
        await source.poll(now())
    for result in await poll_all(source):
        delivered += result.events
    created = Counter(e.ticket_id for e in delivered if e.kind is EventKind.CREATED)
    assert len(created) == 650 and set(created.values()) == {1}
    ids = Counter((e.ticket_id, e.event_id) for e in delivered)
    assert max(ids.values()) == 1, "nothing delivered twice"


async def test_a_restart_in_the_middle_of_a_walk_goes_on_where_it_stopped(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    """650 tickets changed in the same second: a walk cut off after five pages resumes
    after its last ticket, also in a new process."""
    fake.control("bulk", {"tickets": 650, "seed": 4, "resolved_share": 0})
    first = await make_source().poll(now())
    assert first.more and first.cursor["resume"] is not None
    rest = await poll_all(make_source(cursor=first.cursor))
    created = Counter(
        e.ticket_id for r in [first, *rest] for e in r.events if e.kind is EventKind.CREATED
    )
    assert len(created) == 650 and set(created.values()) == {1}


async def test_a_restart_resumes_from_the_cursor_without_rereading(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    for _ in range(3):
        new_ticket(fake)
    await settle()
    results = await poll_all(make_source())
    fake.reset_stats()
    restarted = make_source(cursor=results[-1].cursor)
    assert (await restarted.poll(now())).events == []
    assert fake.requests() == 1
    ticket = new_ticket(fake)
    events = (await restarted.poll(now())).events
    assert [e.ticket_id for e in events] == [str(ticket)]


async def test_what_a_poll_costs(fake: FakeHelpdesk, make_source: MakeSource) -> None:
    """Initial sync of 1,000 tickets; an unchanged poll is one request; ten changed tickets
    cost one search and one history search."""
    fake.control("bulk", {"tickets": 1000, "seed": 7, "resolved_share": 0})
    source = make_source()
    fake.reset_stats()
    results = await poll_all(source)
    initial = fake.requests()
    created = sum(e.kind is EventKind.CREATED for r in results for e in r.events)
    assert created == 1000
    assert by_path(fake)[TICKETS] <= math.ceil(1000 / 100) + len(results)
    assert initial <= 80
    await settle()
    await source.poll(now())  # settles the tickets read in the last second

    fake.reset_stats()
    assert (await source.poll(now())).events == []
    unchanged = fake.requests()
    assert unchanged == 1

    for ticket in range(1, 11):
        act(fake, ticket, "correspond", by="agent")
    await settle()
    fake.reset_stats()
    events = (await source.poll(now())).events
    changed = fake.requests()
    assert {e.ticket_id for e in events} == {str(t) for t in range(1, 11)}
    assert by_path(fake)[TICKETS] <= math.ceil(10 / 100) + 1
    assert changed == 2
    print(f"\nRT requests: initial 1000 {initial}, unchanged {unchanged}, 10 changed {changed}")


@pytest.mark.parametrize(
    ("paging", "tickets"),
    [
        ({"hide_totals": True}, 230),
        ({"hide_totals": True, "legacy_paging": True}, 230),
        ({"hide_totals": True, "legacy_paging": True, "clamp_pages": True}, 200),
    ],
)
async def test_paging_without_totals_or_with_clamped_pages_reads_everything_once(
    fake: FakeHelpdesk, make_source: MakeSource, paging: dict[str, bool], tickets: int
) -> None:
    """RT hides totals from users who may not see every match (before 5.0.5 it then sends
    no next_page either: a full page is followed by a look at the next one), and a page
    past the end may come back clamped to the last page."""
    fake.control("bulk", {"tickets": tickets, "seed": 5, "resolved_share": 0})
    fake.control("config", paging)
    fake.reset_stats()
    results = await poll_all(make_source())
    created = Counter(e.ticket_id for r in results for e in r.events if e.kind is EventKind.CREATED)
    assert len(created) == tickets and set(created.values()) == {1}
    assert by_path(fake)[TICKETS] == 3


async def test_a_change_that_becomes_visible_late_is_read_within_the_overlap(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    new_ticket(fake)
    await settle()
    source = make_source(overlap="1m")
    await source.poll(now())
    thirty_seconds_ago = (now() - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    late = new_ticket(fake, at=thirty_seconds_ago)  # older than the checkpoint
    events = (await source.poll(now())).events
    assert [(e.ticket_id, e.kind) for e in events] == [(str(late), EventKind.CREATED)]


async def test_only_the_watched_queues_are_read(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    support = new_ticket(fake, queue="Support")
    new_ticket(fake, queue="Sales")
    source = make_source(queues=["Support", "Escalations"])
    assert {e.ticket_id for e in (await source.poll(now())).events} == {str(support)}


# ---------------------------------------------------------------------- reconciliation


async def test_reconciliation_closes_deleted_merged_and_moved_tickets(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    deleted, merged, target, moved, kept = (new_ticket(fake, queue="Support") for _ in range(5))
    source = make_source(queues=["Support"], reconcile_every="1h")
    await settle()
    await source.poll(now())
    act(fake, deleted, "delete")
    act(fake, merged, "merge", into=target)
    act(fake, moved, "set", queue="Sales")
    quiet = await source.poll(now())
    assert not [e for e in quiet.events if e.kind is EventKind.CLOSED]
    later = await source.poll(now() + timedelta(hours=2))
    closed = {e.ticket_id: e.status for e in later.events if e.kind is EventKind.CLOSED}
    assert closed == {str(deleted): "deleted", str(merged): "merged", str(moved): "moved"}
    assert all(
        e.category is StatusCategory.CLOSED for e in later.events if e.kind is EventKind.CLOSED
    )
    assert decode_ranges(later.cursor["open"]) == {target, kept}


async def test_reconciliation_catches_tickets_and_changes_the_sweeps_missed(
    fake: FakeHelpdesk, make_source: MakeSource
) -> None:
    """A change whose LastUpdated lags behind the checkpoint (a database replica, say) and a
    ticket that appeared with an old timestamp are found by the next reconciliation."""
    hour_ago = (now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    two_hours_ago = (now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    lagging = new_ticket(fake, at=two_hours_ago)
    new_ticket(fake)
    source = make_source(reconcile_every="30m")
    await source.poll(now())
    act(fake, lagging, "correspond", by="agent", at=hour_ago)
    late = new_ticket(fake, at=hour_ago)
    assert (await source.poll(now())).events == []
    found = (await source.poll(now() + timedelta(hours=1))).events
    assert [(e.ticket_id, e.kind) for e in found if e.kind is not EventKind.STATUS_CHANGED] == [
        (str(lagging), EventKind.AGENT_REPLY),
        (str(late), EventKind.CREATED),
    ]


# ---------------------------------------------------------------------- the daemon


async def test_the_daemon_follows_rt_tickets(fake: FakeHelpdesk, tmp_path: Path) -> None:
    waiting = new_ticket(fake, priority=90, sla="standard", due="2030-01-07T10:00:00Z")
    answered = new_ticket(fake)
    act(fake, answered, "correspond", by="agent")
    done = new_ticket(fake)
    act(fake, done, "status", status="rejected")
    config = daemon_config(tmp_path, {"desk": {"type": "rt", "url": fake.url, "token": TOKEN}})
    app = App(load_config(config), clock=FakeClock(now()), console=io.StringIO())
    await app.start()
    try:
        assert set(app.tickets.replays) == {("desk", str(waiting)), ("desk", str(answered))}
        replay = app.tickets.replays[("desk", str(waiting))]
        assert replay.fields["priority"] == "90"
        filed = native_deadlines(replay.fields, replay.deadlines())
        assert filed == {Metric.FIRST_RESPONSE: "2030-01-07T10:00:00Z"}
        assert app.store.cursor("desk") is not None
    finally:
        await app.shutdown()


async def test_a_customer_reply_to_a_resolved_rt_ticket_waits_for_an_answer(
    fake: FakeHelpdesk, tmp_path: Path
) -> None:
    """RT reopens a resolved ticket on a requestor's correspondence, in the same second: the
    reply starts the next-response clock."""
    ticket = new_ticket(fake)
    act(fake, ticket, "correspond", by="agent")
    act(fake, ticket, "status", status="resolved")
    act(fake, ticket, "correspond", by="customer")
    targets = {"first_response": "1h", "next_response": "1h", "resolution": "8h"}
    source = {"desk": {"type": "rt", "url": fake.url, "token": TOKEN}}
    config = daemon_config(tmp_path, source, targets=targets)
    app = App(load_config(config), clock=FakeClock(now()), console=io.StringIO())
    await app.start()
    try:
        replay = app.tickets.replays[("desk", str(ticket))]
        reply = next(e for e in replay.events if e.kind is EventKind.CUSTOMER_REPLY)
        status = evaluate(replay.events, app.config.policies, now()).metrics[Metric.NEXT_RESPONSE]
        assert (status.state, status.started_at) == (MetricState.RUNNING, reply.at)
        assert status.deadline == reply.at + timedelta(hours=1)
    finally:
        await app.shutdown()


async def test_rts_due_for_a_level_whose_resolve_goal_comes_first_is_the_resolution_deadline(
    fake: FakeHelpdesk, tmp_path: Path
) -> None:
    """A level that resolves within 30 minutes and answers within an hour: RT's Due at
    creation is min(Response, Resolve), the resolve deadline. It is compared with ours, and
    agrees; ``explain`` shows it beside resolution."""
    created = now().replace(microsecond=0) - timedelta(minutes=5)
    due = created + timedelta(minutes=30)
    ticket = new_ticket(fake, sla="express", at=iso(created), due=iso(due))
    targets = {"first_response": "1h", "resolution": "30m"}
    source = {"desk": {"type": "rt", "url": fake.url, "token": TOKEN, "tolerance": "2s"}}
    config = daemon_config(tmp_path, source, targets=targets)
    app = App(load_config(config), clock=FakeClock(now()), console=io.StringIO())
    with capture_logs() as logs:
        await app.start()
    try:
        replay = app.tickets.replays[("desk", str(ticket))]
        evaluation = evaluate(replay.events, app.config.policies, now())
        assert evaluation.metrics[Metric.RESOLUTION].deadline == due
        assert explain_json(evaluation)["metrics"]["resolution"]["helpdesk_deadline"] == iso(due)
        assert "helpdesk_deadline" not in explain_json(evaluation)["metrics"]["first_response"]
        assert not [entry for entry in logs if entry["event"] == "deadline_mismatch"]
        mismatches = app.metrics.deadline_mismatches
        assert mismatches.labels("desk", "first_response")._value.get() == 0
    finally:
        await app.shutdown()


# ---------------------------------------------------------------------- pure parts


def test_open_ticket_ids_are_stored_as_ranges() -> None:
    ids = {1, 2, 3, 7, 9, 10}
    assert encode_ranges(ids) == "1-3,7,9-10"
    assert decode_ranges("1-3,7,9-10") == ids
    assert decode_ranges("") == set()


def test_a_history_read_in_two_parts_maps_like_one() -> None:
    ticket = RtTicket.model_validate(
        {
            "id": "5",
            "Status": "open",
            "LastUpdated": "2024-05-01T11:00:00Z",
            "Requestor": [{"id": "c@example.com"}],
            "SLA": "standard",
            "Queue": {"id": "1", "Name": "General"},
        }
    )
    raw = [
        {
            "id": 1,
            "Type": "Create",
            "Creator": {"id": "c@example.com"},
            "Created": "2024-05-01 09:00:00",
        },
        {
            "id": 2,
            "Type": "Set",
            "Field": "Due",
            "NewValue": "2024-05-01 10:00:00",
            "Created": "2024-05-01 09:00:00",
        },
        {
            "id": 3,
            "Type": "Correspond",
            "Creator": {"id": "root"},
            "Created": "2024-05-01 09:30:00",
        },
        {
            "id": 4,
            "Type": "Status",
            "OldValue": "new",
            "NewValue": "open",
            "Created": "2024-05-01 09:30:00",
        },
        {
            "id": 5,
            "Type": "Correspond",
            "Creator": {"id": "c@example.com"},
            "Created": "2024-05-01 10:30:00",
        },
        {
            "id": 6,
            "Type": "Set",
            "Field": "Due",
            "NewValue": "2024-05-01 11:30:00",
            "Created": "2024-05-01 10:30:00",
        },
    ]
    history = [RtTransaction.model_validate(r) for r in raw]
    context = MappingContext(StatusMap({"open": StatusCategory.OPEN}), ChannelMap(DEFAULT_CHANNELS))
    whole = map_ticket(ticket, history, None, context)
    head = map_ticket(ticket, history[:3], None, context)
    tail = map_ticket(ticket, history, head.trail, context)
    assert [e.event_id for e in head.events + tail.events] == [e.event_id for e in whole.events]
    assert dues(whole.events) == [
        {"due:first_response|resolution": "2024-05-01T10:00:00Z"},
        {"due:next_response|resolution": "2024-05-01T11:30:00Z"},
    ]
    assert isinstance(whole.trail, TicketTrail) and whole.trail.last_txn_id == 6


def test_a_due_without_history_is_taken_from_the_ticket() -> None:
    """When the history holds no Set Due (RT's SLA scrips off, say), the ticket's current
    Due is used, at its LastUpdated, for the goal the history says it tracks."""
    ticket = RtTicket.model_validate(
        {
            "id": 8,
            "Status": "new",
            "Created": "2024-05-01T09:00:00Z",
            "LastUpdated": "2024-05-01T09:05:00Z",
            "Due": "2024-05-01T10:00:00Z",
            "SLA": "standard",
            "Requestor": [{"id": "c@example.com"}],
        }
    )
    create = RtTransaction.model_validate(
        {"id": 1, "Type": "Create", "Creator": {"id": "c@example.com"}, "Created": 1714554000}
    )
    context = MappingContext(StatusMap(), ChannelMap(DEFAULT_CHANNELS))
    mapped = map_ticket(ticket, [create], None, context)
    assert [e.at for e in mapped.events[1:]] == [datetime(2024, 5, 1, 9, 5, tzinfo=UTC)]
    assert dues(mapped.events) == [{"due:first_response|resolution": "2024-05-01T10:00:00Z"}]
    again = map_ticket(ticket, [create], mapped.trail, context)
    assert again.events == []
