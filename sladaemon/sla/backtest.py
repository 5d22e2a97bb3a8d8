"""Replaying a whole history: every SLA event in time order and a compliance table.

Each ticket is replayed on its own (tickets do not interact), up to the end of the history, so
only what was known at each instant decides what fires. Compliance counts tickets: a ticket's
metric is breached if any of its cycles breached, met if every cycle finished within target,
and still running otherwise. Business-time figures are over finished cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from sladaemon.model import Metric, MetricState, SlaEvent, SlaEventKind, TicketEvent
from sladaemon.sla.engine import CycleResult, TicketReplay
from sladaemon.sla.policy import SlaPolicy
from sladaemon.texttable import aligned, short_duration

REPORTED = frozenset(
    {SlaEventKind.WARNING, SlaEventKind.BREACH, SlaEventKind.ESCALATION, SlaEventKind.MET}
)


@dataclass(frozen=True, slots=True)
class ComplianceRow:
    policy: str
    metric: Metric
    tickets: int
    met: int
    breached: int
    running: int
    median_business_s: float | None
    p90_business_s: float | None

    @property
    def compliance(self) -> float | None:
        decided = self.met + self.breached
        return 100.0 * self.met / decided if decided else None


@dataclass
class BacktestResult:
    events: list[SlaEvent] = field(default_factory=list)
    compliance: list[ComplianceRow] = field(default_factory=list)
    tickets: int = 0
    ticket_events: int = 0
    until: datetime | None = None
    unmatched_tickets: int = 0


def backtest(
    tickets: Mapping[str, Sequence[TicketEvent]],
    policies: Sequence[SlaPolicy],
    until: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Replay every ticket up to ``until`` (default: the last event of the history)."""
    if until is None:
        until = max((evs[-1].at for evs in tickets.values() if evs), default=None)
    result = BacktestResult(until=until)
    if until is None:
        return result
    outcomes: dict[tuple[str, Metric], list[MetricState]] = {}
    durations: dict[tuple[str, Metric], list[float]] = {}
    order = {p.name: p.index for p in policies}
    total = len(tickets)
    for n, (ticket_id, events) in enumerate(tickets.items(), 1):
        replay = TicketReplay(ticket_id, policies)
        for event in events:
            if event.at > until:
                break
            replay.feed(event)
            result.ticket_events += 1
        evaluation = replay.evaluate(until)
        result.tickets += 1
        result.events.extend(e for e in evaluation.timeline if e.kind in REPORTED)
        if evaluation.policy is None:
            result.unmatched_tickets += 1
        else:
            collect_outcomes(evaluation.policy.name, evaluation.cycles, outcomes, durations)
        if progress is not None and (n % 500 == 0 or n == total):
            progress(n, total)
    result.events.sort(key=lambda e: (e.at, e.ticket_id, e.metric.value, e.cycle))
    result.compliance = compliance_table(outcomes, durations, order)
    return result


def collect_outcomes(
    policy: str,
    cycles: Iterable[CycleResult],
    outcomes: dict[tuple[str, Metric], list[MetricState]],
    durations: dict[tuple[str, Metric], list[float]],
) -> None:
    per_metric: dict[Metric, list[MetricState]] = {}
    for c in cycles:
        per_metric.setdefault(c.metric, []).append(c.state)
        if c.ended_at is not None:
            durations.setdefault((policy, c.metric), []).append(c.business_elapsed.total_seconds())
    for metric, states in per_metric.items():
        if MetricState.BREACHED in states:
            outcome = MetricState.BREACHED
        elif all(s is MetricState.MET for s in states):
            outcome = MetricState.MET
        else:
            outcome = MetricState.RUNNING
        outcomes.setdefault((policy, metric), []).append(outcome)


def compliance_table(
    outcomes: dict[tuple[str, Metric], list[MetricState]],
    durations: dict[tuple[str, Metric], list[float]],
    order: Mapping[str, int],
) -> list[ComplianceRow]:
    rows = []
    metric_order = list(Metric)
    for (policy, metric), states in sorted(
        outcomes.items(), key=lambda kv: (order.get(kv[0][0], 0), metric_order.index(kv[0][1]))
    ):
        values = durations.get((policy, metric), [])
        median = p90 = None
        if values:
            median, p90 = (float(v) for v in np.percentile(values, [50, 90]))
        rows.append(
            ComplianceRow(
                policy=policy,
                metric=metric,
                tickets=len(states),
                met=sum(s is MetricState.MET for s in states),
                breached=sum(s is MetricState.BREACHED for s in states),
                running=sum(s is MetricState.RUNNING for s in states),
                median_business_s=median,
                p90_business_s=p90,
            )
        )
    return rows


def format_compliance(rows: Sequence[ComplianceRow]) -> str:
    """The compliance table as aligned text."""
    header = (
        "policy",
        "metric",
        "tickets",
        "met",
        "breached",
        "running",
        "compliance",
        "median",
        "p90",
    )
    lines = [header]
    for r in rows:
        pct = f"{r.compliance:.1f}%" if r.compliance is not None else "-"
        lines.append(
            (
                r.policy,
                r.metric.value,
                str(r.tickets),
                str(r.met),
                str(r.breached),
                str(r.running),
                pct,
                short_duration(r.median_business_s),
                short_duration(r.p90_business_s),
            )
        )
    return "\n".join(aligned(lines, left=(0, 1)))
