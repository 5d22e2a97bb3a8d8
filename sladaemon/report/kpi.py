"""The KPIs support leads track, computed from ticket histories. Pure.

Definitions (a period is [start, end)):

* **SLA compliance** per policy × metric × channel: cycles that finished or breached in the
  period; met / (met + breached). Target >= 95 %.
* **First response time** (mean, median, p90), business time on the metric's calendar and
  calendar (wall) time, over first responses given in the period.
* **Resolution time** (mean, median, p90), business and calendar, over tickets resolved in the
  period.
* **Backlog**: tickets open at the end of the period, against 10 % of the average daily volume
  (a common rule of thumb for a healthy backlog).
* **Volume** per channel and day (created tickets; days in the report's time zone). A day is a
  **spike** when it exceeds the trailing same-weekday baseline (the mean of the same weekday in
  the four weeks before it, where history has them) by more than 20 %.
* **Reopen rate**: tickets solved in the period that were reopened afterwards. Target < 5 %.
* **Escalation rate**: tickets created in the period that moved to another queue after creation
  or reached an escalation level of their ladder (a level after the breach, e.g. breach+30m).
  Target < 10 %.
* **First-contact resolution**: tickets solved in the period with exactly one agent reply and
  never reopened.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from sladaemon.model import EventKind, Metric, MetricState, SlaEventKind, TicketEvent
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.policy import SlaPolicy

COMPLIANCE_TARGET = 95.0
REOPEN_TARGET = 5.0
ESCALATION_TARGET = 10.0
SPIKE_FACTOR = 1.2


@dataclass(frozen=True)
class TimeStats:
    count: int
    mean_s: float | None
    median_s: float | None
    p90_s: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> TimeStats:
        if not values:
            return cls(0, None, None, None)
        arr = np.asarray(values, dtype=float)
        median, p90 = np.percentile(arr, [50, 90])
        return cls(len(values), float(arr.mean()), float(median), float(p90))


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
    backlog: int = 0
    daily_volume: float = 0.0
    volume: list[DayVolume] = field(default_factory=list)
    reopen: Rate = Rate(0, 0, REOPEN_TARGET)
    escalation: Rate = Rate(0, 0, ESCALATION_TARGET)
    first_contact_resolution: Rate = Rate(0, 0)

    @property
    def backlog_limit(self) -> float:
        return 0.1 * self.daily_volume


def compute_kpis(
    tickets: Mapping[str, Sequence[TicketEvent]],
    policies: Sequence[SlaPolicy],
    start: datetime,
    end: datetime,
    timezone: str = "UTC",
) -> KpiReport:
    zone = ZoneInfo(timezone)
    report = KpiReport(start=start, end=end, timezone=timezone)
    compliance: Counter[tuple[str, str, str, str]] = Counter()
    fr_business: list[float] = []
    fr_calendar: list[float] = []
    res_business: list[float] = []
    res_calendar: list[float] = []
    per_day: Counter[tuple[date, str]] = Counter()
    solved = reopened = escalated = fcr = 0

    def within(t: datetime | None) -> bool:
        return t is not None and start <= t < end

    for ticket_id, events in tickets.items():
        if not events or events[0].at >= end:
            continue
        channel = next((e.fields["channel"] for e in events if "channel" in e.fields), "")
        channel = channel or "unknown"
        created_at = events[0].at
        day_key = (created_at.astimezone(zone).date(), channel)
        per_day[day_key] += 1  # history before the period feeds the spike baseline
        replay = TicketReplay(ticket_id, policies)
        for event in events:
            if event.at >= end:
                break
            replay.feed(event)
        evaluation = replay.evaluate(end - timedelta(microseconds=1))
        policy = evaluation.policy.name if evaluation.policy else ""
        done = evaluation.category is not None and evaluation.category.is_done
        if within(created_at):
            report.created += 1
            queues = {e.fields["queue"] for e in events if "queue" in e.fields and e.at < end}
            reached = any(e.kind is SlaEventKind.ESCALATION for e in evaluation.timeline)
            if len(queues) > 1 or reached:
                escalated += 1
        if created_at < end and not done:
            report.backlog += 1
        for cycle in evaluation.cycles:
            finished = cycle.ended_at if cycle.ended_at is not None else cycle.breached_at
            if cycle.state in (MetricState.MET, MetricState.BREACHED) and within(finished):
                compliance[(policy, cycle.metric.value, channel, cycle.state.value)] += 1
            if cycle.ended_at is None or not within(cycle.ended_at):
                continue
            wall = (cycle.ended_at - cycle.started_at).total_seconds()
            if cycle.metric is Metric.FIRST_RESPONSE:
                fr_business.append(cycle.business_elapsed.total_seconds())
                fr_calendar.append(wall)
            elif cycle.metric is Metric.RESOLUTION:
                res_business.append(cycle.business_elapsed.total_seconds())
                res_calendar.append(wall)
        first_solve = next((e for e in events if e.kind is EventKind.RESOLVED or _solves(e)), None)
        if first_solve is not None and within(first_solve.at):
            solved += 1
            later = [e for e in events if e.at > first_solve.at and e.at < end]
            was_reopened = any(e.kind is EventKind.REOPENED for e in later)
            reopened += was_reopened
            replies = sum(
                1 for e in events if e.kind is EventKind.AGENT_REPLY and e.at <= first_solve.at
            )
            fcr += replies == 1 and not was_reopened

    cells: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (policy, metric, channel, state), n in compliance.items():
        cells[(policy, metric, channel)][0 if state == "met" else 1] += n
    report.compliance = [
        ComplianceCell(p, m, c, met, breached)
        for (p, m, c), (met, breached) in sorted(cells.items())
    ]
    report.first_response_business = TimeStats.of(fr_business)
    report.first_response_calendar = TimeStats.of(fr_calendar)
    report.resolution_business = TimeStats.of(res_business)
    report.resolution_calendar = TimeStats.of(res_calendar)
    days = max(1.0, (end - start).total_seconds() / 86_400)
    report.daily_volume = report.created / days
    report.volume = _volume(per_day, start.astimezone(zone).date(), end.astimezone(zone).date())
    report.reopen = Rate(reopened, solved, REOPEN_TARGET)
    report.escalation = Rate(escalated, report.created, ESCALATION_TARGET)
    report.first_contact_resolution = Rate(fcr, solved)
    return report


def _solves(event: TicketEvent) -> bool:
    return event.category is not None and event.category.is_done


def _volume(per_day: Counter[tuple[date, str]], first: date, last: date) -> list[DayVolume]:
    channels = sorted({c for _, c in per_day})
    out: list[DayVolume] = []
    if not per_day:
        return out
    earliest = min(d for d, _ in per_day)
    day = first
    while day <= last:
        for channel in channels:
            n = per_day.get((day, channel), 0)
            history = [
                per_day.get((day - timedelta(weeks=k), channel), 0)
                for k in range(1, 5)
                if (day - timedelta(weeks=k)) >= earliest
            ]
            baseline = sum(history) / len(history) if history else None
            spike = baseline is not None and n > SPIKE_FACTOR * baseline and n > 0
            out.append(DayVolume(day, channel, n, baseline, spike))
        day += timedelta(days=1)
    return out
