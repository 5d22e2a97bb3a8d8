"""The KPIs support leads track, computed from ticket histories.

Definitions (a period is [start, end)):

* **SLA compliance** per policy × metric × channel: cycles whose outcome was decided in the
  period — a met cycle when it stopped, a breached one at its breach instant — counted as
  met / (met + breached). Each cycle counts once. Target >= 95 %.
* **First response time** (mean, median, p90), business time on the metric's calendar and
  calendar (wall) time, over first responses given in the period.
* **Resolution time** (mean, median, p90), business and calendar, over tickets resolved in the
  period.
* **Backlog**: tickets open at the end of the period, against 10 % of the average daily volume
  (a common rule of thumb for a healthy backlog).
* **Volume** per channel and day (created tickets; days in the report's time zone). A day is a
  **spike** when it exceeds the trailing same-weekday baseline (the mean of the same weekday in
  the four weeks before it, where history has them) by more than 20 %. A day cut short by the
  end of the period is compared with the same part of those days (up to the same wall time).
* **Reopen rate**: tickets first solved in the period that were reopened afterwards (moved out
  of solved or closed) before its end. Target < 5 %.
* **Escalation rate**: tickets created in the period that moved to another queue after creation
  or reached an escalation level of their ladder (a level after the breach, e.g. breach+30m).
  Target < 10 %.
* **First-contact resolution**: tickets first solved in the period with exactly one agent reply
  up to that solve and not reopened.

Each ticket is first reduced to its ``TicketFacts``: time-stamped facts that stay true until
the ticket changes (pure, from its replay). The figures of a period are then counted over the
facts by ``KpiLedger`` (report/ledger.py) — in memory for ``sladaemon report``
(``compute_kpis`` there, over ``period_facts``), in the state file for the daemon, which keeps
the facts of closed tickets after their events are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from sladaemon.calendar import to_us
from sladaemon.model import EventKind, Metric, MetricState, SlaEventKind, TicketEvent
from sladaemon.sla.engine import TicketReplay, next_category
from sladaemon.sla.policy import SlaPolicy

COMPLIANCE_TARGET = 95.0  # percent; at or above is good
REOPEN_TARGET = 5.0  # percent; below is good
ESCALATION_TARGET = 10.0  # percent; below is good
BACKLOG_SHARE = 0.1  # a healthy backlog stays under this share of the daily volume
SPIKE_FACTOR = 1.2
BASELINE_WEEKS = 4
HISTORY_NEEDED = timedelta(weeks=BASELINE_WEEKS, days=1)  # before a period, for its baselines
UNKNOWN_CHANNEL = "unknown"


@dataclass(frozen=True)
class TimeStats:
    count: int
    mean_s: float | None
    median_s: float | None
    p90_s: float | None

    @classmethod
    def of(cls, values: Sequence[float] | npt.NDArray[np.float64]) -> TimeStats:
        if len(values) == 0:
            return cls(0, None, None, None)
        arr = np.asarray(values, dtype=float)
        median, p90 = np.percentile(arr, [50, 90])
        return cls(len(arr), float(arr.mean()), float(median), float(p90))


@dataclass(frozen=True)
class ComplianceCell:
    policy: str
    metric: str
    channel: str
    met: int
    breached: int

    @property
    def percent(self) -> float | None:
        total = self.met + self.breached
        return 100.0 * self.met / total if total else None


@dataclass(frozen=True)
class DayVolume:
    day: date
    channel: str
    tickets: int
    baseline: float | None
    spike: bool


@dataclass(frozen=True)
class Rate:
    numerator: int
    denominator: int
    target: float | None = None  # percent; below is good

    @property
    def percent(self) -> float | None:
        return 100.0 * self.numerator / self.denominator if self.denominator else None


@dataclass
class KpiReport:
    start: datetime
    end: datetime
    timezone: str
    compliance: list[ComplianceCell] = field(default_factory=list)
    first_response_business: TimeStats = TimeStats(0, None, None, None)
    first_response_calendar: TimeStats = TimeStats(0, None, None, None)
    resolution_business: TimeStats = TimeStats(0, None, None, None)
    resolution_calendar: TimeStats = TimeStats(0, None, None, None)
    created: int = 0
    created_per_channel: dict[str, int] = field(default_factory=dict)
    backlog: int = 0
    daily_volume: float = 0.0
    volume: list[DayVolume] = field(default_factory=list)
    reopen: Rate = Rate(0, 0, REOPEN_TARGET)
    escalation: Rate = Rate(0, 0, ESCALATION_TARGET)
    first_contact_resolution: Rate = Rate(0, 0)
    previous: KpiReport | None = None  # the period before, as long (trends in the HTML page)

    @property
    def backlog_limit(self) -> float:
        return BACKLOG_SHARE * self.daily_volume

    @property
    def compliance_percent(self) -> float | None:
        """SLA compliance over every policy, metric and channel: met / decided cycles."""
        met = sum(c.met for c in self.compliance)
        decided = met + sum(c.breached for c in self.compliance)
        return 100.0 * met / decided if decided else None


# ---------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class CycleFact:
    """A cycle of an SLA metric whose outcome is known (µs since the epoch)."""

    metric: Metric
    cycle: int
    started_us: int
    ended_us: int | None  # None: still running (and already breached)
    outcome: MetricState  # MET or BREACHED
    decided_us: int  # the breach instant, or the stop of a met cycle
    business_us: int  # business time counted; final once ended


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What one ticket contributes to the KPIs, true until its next event (µs instants)."""

    ticket_id: str
    channel: str
    policy: str
    created_us: int
    done_us: int | None  # since when it is solved or closed; None while open
    first_solved_us: int | None
    reopened_us: int | None  # first move out of solved/closed after the first solve
    replies_before_solve: int  # agent replies up to the first solve (or so far)
    escalated_us: int | None  # first queue change or first escalation level
    cycles: tuple[CycleFact, ...] = ()


def ticket_facts(replay: TicketReplay, escalated_at: datetime | None = None) -> TicketFacts:
    """The facts of a replayed ticket. ``escalated_at``: the first escalation level it reached,
    when known (the replay keeps which levels fired, not when)."""
    facts = _event_facts(replay.ticket_id, replay.events, escalated_at)
    cycles: list[CycleFact] = []
    for clock in replay.clocks:
        for c in clock.cycles:
            if c.ended is not None:
                outcome = c.outcome or MetricState.MET
                breached = outcome is MetricState.BREACHED and c.breached_at is not None
                decided = c.breached_at if breached else c.ended
            elif c.breached_at is not None:
                outcome, decided = MetricState.BREACHED, c.breached_at
            else:
                continue  # running within target: nothing decided yet
            assert decided is not None
            cycles.append(
                CycleFact(clock.metric, c.number, c.start, c.ended, outcome, decided, c.elapsed)
            )
    policy = replay.policy.name if replay.policy else ""
    return TicketFacts(
        facts.ticket_id,
        facts.channel,
        policy,
        facts.created_us,
        facts.done_us,
        facts.first_solved_us,
        facts.reopened_us,
        facts.replies_before_solve,
        facts.escalated_us,
        tuple(cycles),
    )


def _event_facts(
    ticket_id: str, events: Sequence[TicketEvent], escalated_at: datetime | None
) -> TicketFacts:
    """The ticket-level facts, from its events in time order (no SLA cycles)."""
    channel = next((e.fields["channel"] for e in events if e.fields.get("channel")), "")
    escalated = to_us(escalated_at) if escalated_at is not None else None
    first_queue: str | None = None
    category = None
    done_us = first_solved = reopened = None
    replies = 0
    for e in events:
        t = to_us(e.at)
        queue = e.fields.get("queue")
        if queue:
            if first_queue is None:
                first_queue = queue
            elif queue != first_queue and (escalated is None or t < escalated):
                escalated = t
        was_done = category is not None and category.is_done
        category = next_category(category, e)
        done = category is not None and category.is_done
        if e.kind is EventKind.AGENT_REPLY and first_solved is None:
            replies += 1
        if done and not was_done:
            done_us = t
            if first_solved is None:
                first_solved = t
        elif was_done and not done:
            done_us = None
            if reopened is None:
                reopened = t
    return TicketFacts(
        ticket_id=ticket_id,
        channel=channel or UNKNOWN_CHANNEL,
        policy="",
        created_us=to_us(events[0].at),
        done_us=done_us,
        first_solved_us=first_solved,
        reopened_us=reopened,
        replies_before_solve=replies,
        escalated_us=escalated,
    )


def history_facts(
    ticket_id: str, events: Sequence[TicketEvent], policies: Sequence[SlaPolicy], end: datetime
) -> TicketFacts:
    """The facts of a ticket history as they stood just before ``end``."""
    replay = TicketReplay(ticket_id, policies)
    for event in events:
        if event.at >= end:
            break
        replay.feed(event)
    replay.advance(to_us(end))  # ladder instants before the end: breaches, escalations
    escalations = [e.at for e in replay.timeline if e.kind is SlaEventKind.ESCALATION]
    return ticket_facts(replay, min(escalations, default=None))


def period_facts(
    tickets: Mapping[str, Sequence[TicketEvent]],
    policies: Sequence[SlaPolicy],
    start: datetime,
    end: datetime,
) -> list[TicketFacts]:
    """Facts of the tickets that can matter to the period. A ticket already solved or closed
    before the start only counts towards the volume baselines: it is not replayed."""
    baseline_from = start - HISTORY_NEEDED
    out: list[TicketFacts] = []
    for ticket_id, events in tickets.items():
        if not events or events[0].at >= end:
            continue
        if events[-1].at < start:
            if events[0].at < baseline_from:
                if _done_after(events):
                    continue
            elif _done_after(events):
                out.append(_event_facts(ticket_id, events, None))
                continue
        out.append(history_facts(ticket_id, events, policies, end))
    return out


def _done_after(events: Sequence[TicketEvent]) -> bool:
    category = None
    for e in events:
        category = next_category(category, e)
    return category is not None and category.is_done


# ---------------------------------------------------------------------------- volume


def local_instant(day: date, wall: time, zone: ZoneInfo) -> int:
    """µs of a local wall-clock reading (a reading skipped by DST moves forward by the gap;
    a repeated one means its first occurrence)."""
    return to_us(datetime.combine(day, wall, tzinfo=zone))


def day_volumes(
    count: Callable[[int, int], Mapping[str, int]],
    channels: Sequence[str],
    earliest_us: int | None,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
) -> list[DayVolume]:
    """Tickets per channel and local day of [start, end), with same-weekday baselines.

    ``count(lo, hi)`` gives the tickets created in [lo, hi) (µs) per channel; ``earliest_us``
    is the first creation of the history (no baseline reaches before its day).
    """
    out: list[DayVolume] = []
    if earliest_us is None or not channels:
        return out
    end_us = to_us(end)
    end_local = end.astimezone(zone)
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    earliest = datetime.fromtimestamp(earliest_us / 1e6, zone).date()
    midnight = time(0)
    day = first
    while day <= last:
        lo = local_instant(day, midnight, zone)
        hi = local_instant(day + timedelta(days=1), midnight, zone)
        cut = end_local.timetz().replace(tzinfo=None) if end_us < hi else None
        counts = count(lo, min(hi, end_us))
        history: list[Mapping[str, int]] = []
        for k in range(1, BASELINE_WEEKS + 1):
            before = day - timedelta(weeks=k)
            if before < earliest:
                break
            k_hi = (
                local_instant(before, cut, zone)
                if cut is not None
                else local_instant(before + timedelta(days=1), midnight, zone)
            )
            history.append(count(local_instant(before, midnight, zone), k_hi))
        for channel in channels:
            n = counts.get(channel, 0)
            baseline = sum(h.get(channel, 0) for h in history) / len(history) if history else None
            spike = baseline is not None and n > 0 and n > SPIKE_FACTOR * baseline
            out.append(DayVolume(day, channel, n, baseline, spike))
        day += timedelta(days=1)
    return out
