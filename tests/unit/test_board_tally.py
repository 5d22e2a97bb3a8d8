"""The board's per-queue figures: daily volume over the last week (or the days seen), each
ticket counted once; compliance today from the cycles decided since local midnight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sladaemon.board.tally import QueueTally
from sladaemon.model import EventKind, Metric, SlaEvent, SlaEventKind, TicketEvent
from sladaemon.sla.engine import TicketReplay

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def replay(ticket: str, created: datetime, queue: str) -> TicketReplay:
    r = TicketReplay(ticket, ())
    r.feed(TicketEvent(ticket, created, EventKind.CREATED, fields={"queue": queue}))
    return r


def test_volume_per_day_counts_each_ticket_once_within_the_week() -> None:
    tally = QueueTally(ZoneInfo("Europe/Berlin"))
    touched = {
        ("d", f"B{i}"): replay(f"B{i}", NOW - timedelta(hours=10 * i), "billing") for i in range(20)
    }  # one every 10 h: 17 of them within the 7 days, the first 160 h ago
    touched[("d", "S1")] = replay("S1", NOW - timedelta(days=8), "support")  # too old
    tally.note_tickets(touched, set(), NOW)
    tally.note_tickets(touched, set(touched), NOW)  # known to the board: not counted again
    (billing,) = tally.figures({("d", "billing"): 4}, NOW)
    assert (billing.queue, billing.backlog) == ("billing", 4)
    assert billing.daily_volume == 17 / (161 / 24)  # the hours since the first one seen
    assert billing.backlog_limit == 0.1 * billing.daily_volume
    assert billing.over_limit  # 4 open against 10 % of 2.5 a day


def test_fewer_days_seen_count_as_what_they_are() -> None:
    tally = QueueTally(ZoneInfo("UTC"))
    tally.note_tickets({("d", "A"): replay("A", NOW - timedelta(hours=47), "q")}, set(), NOW)
    tally.note_tickets({("d", "B"): replay("B", NOW - timedelta(hours=1), "q")}, set(), NOW)
    (q,) = tally.figures({}, NOW)
    assert q.daily_volume == 1.0  # 2 tickets in the 48 hours seen


def test_compliance_today_counts_met_and_breached_cycles_since_local_midnight() -> None:
    tally = QueueTally(ZoneInfo("Europe/Berlin"))
    queues = {("d", "A"): "billing", ("d", "B"): "billing"}

    def event(ticket: str, kind: SlaEventKind, at: datetime) -> tuple[str, SlaEvent]:
        return "d", SlaEvent(ticket, "p", Metric.FIRST_RESPONSE, kind, at, None)

    midnight = datetime(2026, 3, 9, 23, tzinfo=UTC)  # 00:00 in Berlin
    tally.note_events(
        [
            event("A", SlaEventKind.MET, NOW),
            event("B", SlaEventKind.BREACH, NOW),
            event("A", SlaEventKind.WARNING, NOW),  # not a decision
            event("B", SlaEventKind.MET, midnight - timedelta(minutes=1)),  # yesterday
        ],
        queues,
        NOW,
    )
    (billing,) = tally.figures({}, NOW)
    assert (billing.met_today, billing.breached_today, billing.compliance) == (1, 1, 50.0)
    tomorrow = NOW + timedelta(days=1)
    (billing,) = tally.figures({("d", "billing"): 1}, tomorrow)
    assert (billing.met_today, billing.breached_today, billing.compliance) == (0, 0, None)
