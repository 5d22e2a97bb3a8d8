"""The SLA engine: a ticket's history + policies + ``now`` -> metric states and SLA events.

Pure: no clock, no I/O. ``TicketReplay`` consumes a ticket's events in time order and keeps,
per metric, the clock of the current cycle. Between two events nothing changes, so the instants
of the ladder levels are fixed and are emitted as they are passed. ``evaluate`` is the one-shot
form: replay the history up to ``now`` and report states, past SLA events and upcoming ones.

Metric semantics (business time on the metric's calendar, paused while the status category is
in ``pause_on``):

* ``first_response`` — created -> first ``agent_reply``. Solving without a reply also stops it.
* ``next_response`` — the first ``customer_reply`` after an agent reply starts a cycle; the next
  ``agent_reply`` (or solving) stops it. Cycles are numbered.
* ``periodic_update`` — every ``agent_reply`` while not solved starts a cycle that the next one
  stops; a reopen starts one. Measures the gaps between public agent updates.
* ``resolution`` — created -> solved/closed; a reopen resumes the same clock.

A stopped cycle is ``met`` when its business time is <= the target, else ``breached``; a running
one is ``breached`` once business time exceeds the target (just after its deadline). A
``customer_reply`` without a status of its own moves a pending ticket back to open, as helpdesks
do. A ``customer_reply`` to a solved ticket reopens it, even when it carries the solved
status it arrived to: every helpdesk sladaemon reads reopens a solved ticket on a customer's
reply, in the same second or a little later, and may record the reply first. The reply then
waits for an answer (``next_response``) and the resolution clock resumes. A closed ticket stays
closed (it has left the book). A change of policy or target (e.g. a priority change)
re-evaluates the whole history under the new policy; levels already sent are never sent again
(keys omit the policy), levels the new policy has already passed are caught up at the instant
of the change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sladaemon.calendar import from_us, span_us, to_us
from sladaemon.model import (
    IMPLIED_CATEGORY,
    EventKind,
    Metric,
    MetricState,
    SlaEvent,
    SlaEventKind,
    StatusCategory,
    TicketEvent,
)
from sladaemon.sla.clocks import (
    METRIC_STEPS,
    ClockCycle,
    MetricClock,
    MetricStep,
    follow_status,
)
from sladaemon.sla.policy import LadderLevel, SlaPolicy, select_policy

LevelKey = tuple[Metric, int, str]  # (metric, cycle, level label) — never re-sent
PREDICTED = "predicted"  # the label of predicted breaches (the ``at: predicted`` level)


_SHARED: dict[object, object] = {}


def _us(d: timedelta) -> int:
    """Microseconds of a target; the same int object for equal targets (thousands of clocks
    share a handful of targets)."""
    us = span_us(d)
    return _SHARED.setdefault(us, us)  # type: ignore[return-value]


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class LevelInstant:
    label: str
    at: datetime | None  # None while the clock is paused
    reached: bool
    notify: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CycleResult:
    metric: Metric
    cycle: int
    started_at: datetime
    ended_at: datetime | None
    state: MetricState
    business_elapsed: timedelta
    breached_at: datetime | None


@dataclass(frozen=True, slots=True)
class MetricStatus:
    metric: Metric
    state: MetricState
    calendar: str
    target: timedelta | None
    cycle: int = 0
    started_at: datetime | None = None
    deadline: datetime | None = None
    business_elapsed: timedelta = timedelta(0)
    remaining: timedelta | None = None  # negative once overdue
    fraction: float | None = None
    ended_at: datetime | None = None
    paused_since: datetime | None = None
    pauses: tuple[tuple[datetime, datetime | None], ...] = ()
    levels: tuple[LevelInstant, ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TicketEvaluation:
    ticket_id: str
    at: datetime
    policy: SlaPolicy | None
    skipped_policies: tuple[tuple[str, str], ...]  # (policy, why it did not match)
    fields: Mapping[str, str]
    category: StatusCategory | None
    metrics: Mapping[Metric, MetricStatus]
    timeline: tuple[SlaEvent, ...]  # SLA events up to ``at``
    upcoming: tuple[SlaEvent, ...]  # ladder instants after ``at`` if nothing changes
    cycles: tuple[CycleResult, ...]  # every cycle, finished or not


# ---------------------------------------------------------------------------- replay


class TicketReplay:
    """Replays one ticket's events in time order and records its SLA events."""

    __slots__ = (
        "_agent_replied",
        "_last",
        "_signature",
        "category",
        "clocks",
        "events",
        "fields",
        "fired",
        "not_applicable",
        "policies",
        "policy",
        "ticket_id",
        "timeline",
    )

    def __init__(self, ticket_id: str, policies: Sequence[SlaPolicy]) -> None:
        self.ticket_id = ticket_id
        self.policies = policies
        self.fields: dict[str, str] = {}
        self.category: StatusCategory | None = None
        self.events: list[TicketEvent] = []
        self.policy: SlaPolicy | None = None
        self._signature: tuple[object, ...] | None = None
        self.clocks: tuple[MetricClock, ...] = ()
        self.not_applicable: dict[Metric, str] | None = None
        self.fired: tuple[LevelKey, ...] = ()  # a few keys: a tuple is smaller than a set
        self.timeline: list[SlaEvent] = []
        self._agent_replied = False
        self._last = -(2**62)

    # -- feeding

    def feed(self, event: TicketEvent) -> None:
        t = to_us(event.at)
        if t < self._last:
            raise ValueError(f"events of ticket {self.ticket_id} out of order at {event.at}")
        self.advance(t)
        self._last = t
        self.events.append(event)
        before = self.category
        self._update(event)
        if event.fields or event.status or self._signature is None:
            # Only a change of ticket fields can move the ticket to another policy or target.
            signature = self._policy_signature()
            if signature != self._signature:
                self._rebuild(t)
                self._signature = signature
        self._apply(event, before, t, emit=True)

    def advance(self, until: int, *, inclusive: bool = False) -> None:
        """Emit every ladder instant before ``until`` (or at it, when inclusive)."""
        due: list[tuple[int, MetricClock, LadderLevel]] = []
        for clock in self.clocks:
            for at, level in clock.pending():
                if at < until or (inclusive and at == until):
                    due.append((at, clock, level))
                else:
                    break
        due.sort(key=lambda d: (d[0], d[1].metric.value, d[2].fraction, d[2].after_breach))
        for at, clock, level in due:
            self._fire(clock, level, at)

    def _fire(self, clock: MetricClock, level: LadderLevel, at: int) -> None:
        c = clock.current
        assert c is not None
        key = (clock.metric, c.number, level.label)
        if level.is_breach and c.breached_at is None:
            c.breached_at = clock.deadline_us(c) if c.since is not None else at
        if key in self.fired:
            return
        self.fired = (*self.fired, key)
        if level.before_breach:
            kind = SlaEventKind.WARNING
        elif level.is_breach:
            kind = SlaEventKind.BREACH
        else:
            kind = SlaEventKind.ESCALATION
        deadline = c.breached_at if c.breached_at is not None else clock.deadline_us(c)
        self.timeline.append(self._sla_event(clock, c, kind, at, deadline, level))

    def next_instant(self) -> int | None:
        """The earliest ladder instant not yet reached (µs), or None."""
        best: int | None = None
        for clock in self.clocks:
            c = clock.current
            if c is None:
                continue
            for at, level in clock.pending():
                if (clock.metric, c.number, level.label) not in self.fired:
                    if best is None or at < best:
                        best = at
                    break
        return best

    def release_caches(self) -> None:
        """Drop the cached ladder schedules (recomputed on demand): a ticket waiting for its
        next instant needs only that instant, which its owner keeps."""
        for clock in self.clocks:
            clock.schedule = None

    def deadlines(self, ended_since: datetime | None = None) -> dict[Metric, datetime]:
        """The deadline of each metric's latest cycle, as far as the events fed so far tell
        (a met cycle keeps the deadline it had; with ``ended_since``, one that ended before
        that instant is left out). Records nothing: a read-only view."""
        since = to_us(ended_since) if ended_since is not None else None
        out: dict[Metric, datetime] = {}
        for clock in self.clocks:
            c = clock.current
            if c is None or (since is not None and c.ended is not None and c.ended < since):
                continue
            deadline = self._deadline_of(clock, c)
            if deadline is not None:
                out[clock.metric] = from_us(deadline)
        return out

    def predict_breach(
        self, metric: Metric, cycle: int, at: int, deadline: int, details: Mapping[str, Any]
    ) -> SlaEvent | None:
        """Record that cycle ``cycle`` of ``metric`` is predicted to breach (judged at ``at``,
        µs): a ``predicted_breach`` SLA event for the ``predicted`` ladder levels, once per
        metric and cycle. None when it was recorded before or the cycle is unknown. The event is
        returned, not added to the timeline: the caller routes it."""
        clock = next((c for c in self.clocks if c.metric is metric), None)
        if clock is None or self.policy is None or not 0 <= cycle < len(clock.cycles):
            return None
        key = (metric, cycle, PREDICTED)
        if key in self.fired:
            return None
        self.fired = (*self.fired, key)
        c = clock.cycles[cycle]
        notify = tuple(
            receiver
            for level in self.policy.ladder
            if level.predicted and level.applies_to(metric)
            for receiver in level.notify
        )
        return SlaEvent(
            ticket_id=self.ticket_id,
            policy=self.policy.name,
            metric=metric,
            kind=SlaEventKind.PREDICTED_BREACH,
            at=from_us(at),
            deadline=from_us(deadline),
            level=PREDICTED,
            cycle=cycle,
            details={
                "notify": tuple(dict.fromkeys(notify)),
                "chain": next(
                    (
                        level.chain
                        for level in self.policy.ladder
                        if level.predicted and level.applies_to(metric) and level.chain
                    ),
                    None,
                ),
                "timezone": clock.calendar.spec.timezone,
                "target_us": clock.target,
                "elapsed_us": clock.elapsed_at(c, at),
                **details,
            },
        )

    def take_timeline(self) -> list[SlaEvent]:
        """The SLA events recorded since the last call (the daemon routes them)."""
        events, self.timeline = self.timeline, []
        return events

    def _sla_event(
        self,
        clock: MetricClock,
        c: ClockCycle,
        kind: SlaEventKind,
        at: int,
        deadline: int | None,
        level: LadderLevel | None,
    ) -> SlaEvent:
        return SlaEvent(
            ticket_id=self.ticket_id,
            policy=self.policy.name if self.policy else "",
            metric=clock.metric,
            kind=kind,
            at=from_us(at),
            deadline=from_us(deadline) if deadline is not None else None,
            level=level.label if level else None,
            cycle=c.number,
            details={
                "notify": level.notify if level else (),
                "chain": level.chain if level else None,
                "timezone": clock.calendar.spec.timezone,
                "target_us": clock.target,
                "elapsed_us": clock.elapsed_at(c, at),
            },
        )

    # -- status and fields

    def _update(self, event: TicketEvent) -> None:
        self.fields.update(event.fields)
        if event.status:
            self.fields["status"] = event.status
        self.category = next_category(self.category, event)

    def _policy_signature(self) -> tuple[object, ...]:
        policy = select_policy(self.policies, self.fields)
        if policy is None:
            return (None,)
        priority = self.fields.get("priority")
        signature = (policy.name, tuple(r.target_for(priority) for r in policy.metrics))
        return _SHARED.setdefault(signature, signature)  # type: ignore[return-value]

    def _rebuild(self, t: int) -> None:
        """Re-evaluate the history so far under the (new) policy; catch up passed levels."""
        self.policy = select_policy(self.policies, self.fields)
        clocks: list[MetricClock] = []
        self.not_applicable = None
        if self.policy is None:
            return
        priority = self.fields.get("priority")
        for rule in self.policy.metrics:
            target = rule.target_for(priority)
            if target is None:
                self.not_applicable = self.not_applicable or {}
                self.not_applicable[rule.metric] = (
                    f"no {rule.metric.value} target for priority {priority or '(none)'!r}"
                )
                continue
            clocks.append(MetricClock(rule, _us(target), self.policy.levels_for(rule.metric)))
        self.clocks = tuple(clocks)
        category, replied = self.category, self._agent_replied
        self.category, self._agent_replied = None, False
        before: StatusCategory | None
        for event in self.events[:-1]:
            before = self.category
            self.category = next_category(before, event)
            self._apply(event, before, to_us(event.at), emit=False)
        self.category, self._agent_replied = category, replied
        if len(self.events) > 1:
            for clock in self.clocks:
                c = clock.current
                if c is None or c.ended is not None:
                    continue
                for level in clock.levels:
                    if (clock.metric, c.number, level.label) not in self.fired and clock.reached(
                        c, level, t
                    ):
                        self._fire(clock, level, t)

    # -- metric transitions

    def _apply(self, event: TicketEvent, before: StatusCategory | None, t: int, emit: bool) -> None:
        after = self.category
        done = after is not None and after.is_done
        was_done = before is not None and before.is_done
        kind = event.kind
        step = MetricStep(
            kind=kind,
            done=done,
            reopened=was_done and not done,
            replied_before=self._agent_replied,
            answers=kind is EventKind.AGENT_REPLY or done,
        )
        if kind is EventKind.AGENT_REPLY:
            self._agent_replied = True
        for clock in self.clocks:
            paused = after in clock.rule.pause_on
            ended = METRIC_STEPS[clock.metric](clock, step, t, paused)
            if ended is None:
                follow_status(clock, t, paused)
            elif emit:
                self._record_met(clock, ended, t)

    def _record_met(self, clock: MetricClock, ended: ClockCycle, t: int) -> None:
        """The met (or met late) event of a cycle that ended at ``t``, recorded once."""
        late = ended.outcome is MetricState.BREACHED
        outcome = SlaEventKind.MET_LATE if late else SlaEventKind.MET
        key = (clock.metric, ended.number, outcome.value)
        if key not in self.fired:
            self.fired = (*self.fired, key)
            deadline = self._deadline_of(clock, ended)
            self.timeline.append(self._sla_event(clock, ended, outcome, t, deadline, None))

    @staticmethod
    def _deadline_of(clock: MetricClock, c: ClockCycle) -> int | None:
        if c.breached_at is not None:
            return c.breached_at
        if c.ended is not None:
            return c.deadline_at_end
        return clock.deadline_us(c)

    # -- results

    def evaluate(self, now: datetime) -> TicketEvaluation:
        """States at ``now`` (after every event fed so far), past and upcoming SLA events."""
        t = to_us(now)
        self.advance(t, inclusive=True)
        metrics: dict[Metric, MetricStatus] = {}
        upcoming: list[SlaEvent] = []
        cycles: list[CycleResult] = []
        if self.policy is not None:
            for rule in self.policy.metrics:
                clock = next((c for c in self.clocks if c.metric is rule.metric), None)
                if clock is None:
                    metrics[rule.metric] = MetricStatus(
                        rule.metric,
                        MetricState.NOT_APPLICABLE,
                        rule.calendar.name,
                        None,
                        reason=(self.not_applicable or {}).get(rule.metric, ""),
                    )
                    continue
                metrics[rule.metric] = self._status(clock, t)
                cycles.extend(self._cycle_result(clock, c, t) for c in clock.cycles)
                c = clock.current
                for at, level in clock.pending():
                    if at > t and c is not None:
                        key = (clock.metric, c.number, level.label)
                        if key not in self.fired:
                            kind = (
                                SlaEventKind.WARNING
                                if level.before_breach
                                else SlaEventKind.BREACH
                                if level.is_breach
                                else SlaEventKind.ESCALATION
                            )
                            upcoming.append(
                                self._sla_event(clock, c, kind, at, clock.deadline_us(c), level)
                            )
        upcoming.sort(key=lambda e: e.at)
        skipped: list[tuple[str, str]] = []
        for policy in self.policies:
            if policy is self.policy:
                break
            skipped.append((policy.name, policy.mismatch(self.fields) or ""))
        return TicketEvaluation(
            ticket_id=self.ticket_id,
            at=now,
            policy=self.policy,
            skipped_policies=tuple(skipped),
            fields=dict(self.fields),
            category=self.category,
            metrics=metrics,
            timeline=tuple(self.timeline),
            upcoming=tuple(upcoming),
            cycles=tuple(cycles),
        )

    def _status(self, clock: MetricClock, t: int) -> MetricStatus:
        c = clock.current
        target = timedelta(microseconds=clock.target)
        if c is None:
            return MetricStatus(
                clock.metric,
                MetricState.NOT_APPLICABLE,
                clock.calendar.name,
                target,
                reason=_not_started(clock.metric),
            )
        elapsed = clock.elapsed_at(c, t)
        if c.ended is not None:
            state = c.outcome or MetricState.MET
        elif elapsed > clock.target:
            state = MetricState.BREACHED
        elif c.since is None:
            state = MetricState.PAUSED
        else:
            state = MetricState.RUNNING
        deadline = self._deadline_of(clock, c)
        levels = []
        for level in clock.levels:
            at = clock.instant_of(c, level) if c.ended is None else None
            reached = (clock.metric, c.number, level.label) in self.fired
            levels.append(
                LevelInstant(level.label, from_us(at) if at else None, reached, level.notify)
            )
        paused_since = c.pauses[-1][0] if c.pauses and c.pauses[-1][1] is None else None
        return MetricStatus(
            metric=clock.metric,
            state=state,
            calendar=clock.calendar.name,
            target=target,
            cycle=c.number,
            started_at=from_us(c.start),
            deadline=from_us(deadline) if deadline is not None else None,
            business_elapsed=timedelta(microseconds=elapsed),
            remaining=timedelta(microseconds=clock.target - elapsed),
            fraction=elapsed / clock.target if clock.target else None,
            ended_at=from_us(c.ended) if c.ended is not None else None,
            paused_since=from_us(paused_since) if paused_since is not None else None,
            pauses=tuple(
                (from_us(a), from_us(b) if b is not None else None)
                for a, b in c.pauses or ()
                if a is not None
            ),
            levels=tuple(levels),
        )

    def _cycle_result(self, clock: MetricClock, c: ClockCycle, t: int) -> CycleResult:
        elapsed = clock.elapsed_at(c, t)
        if c.ended is not None:
            state = c.outcome or MetricState.MET
        elif elapsed > clock.target:
            state = MetricState.BREACHED
        else:
            state = MetricState.PAUSED if c.since is None else MetricState.RUNNING
        return CycleResult(
            metric=clock.metric,
            cycle=c.number,
            started_at=from_us(c.start),
            ended_at=from_us(c.ended) if c.ended is not None else None,
            state=state,
            business_elapsed=timedelta(microseconds=elapsed),
            breached_at=from_us(c.breached_at) if c.breached_at is not None else None,
        )


def next_category(current: StatusCategory | None, event: TicketEvent) -> StatusCategory | None:
    """The status category after ``event``: its own, the one its kind implies, or unchanged —
    except that a customer reply moves a pending ticket back to open and reopens a solved one
    (even when it carries the solved status the ticket showed before the helpdesk reopened
    it)."""
    category = event.category or IMPLIED_CATEGORY.get(event.kind)
    if event.kind is EventKind.CUSTOMER_REPLY:
        if current is StatusCategory.SOLVED and category in (None, StatusCategory.SOLVED):
            return StatusCategory.OPEN
        if category is None and current in (StatusCategory.PENDING, StatusCategory.ON_HOLD):
            return StatusCategory.OPEN
    return category if category is not None else current


def _not_started(metric: Metric) -> str:
    return {
        Metric.NEXT_RESPONSE: "no customer reply waiting for an answer",
        Metric.PERIODIC_UPDATE: "no agent update yet",
    }.get(metric, "not started")


def evaluate(
    events: Iterable[TicketEvent], policies: Sequence[SlaPolicy], now: datetime
) -> TicketEvaluation:
    """Evaluate one ticket's history (events at or before ``now``, in time order)."""
    replay: TicketReplay | None = None
    for event in events:
        if event.at > now:
            break
        if replay is None:
            replay = TicketReplay(event.ticket_id, policies)
        replay.feed(event)
    if replay is None:
        raise ValueError("no events at or before now")
    return replay.evaluate(now)


@dataclass
class ReplayResult:
    """SLA events and final cycle outcomes of a replayed history."""

    events: list[SlaEvent] = field(default_factory=list)
    evaluations: list[TicketEvaluation] = field(default_factory=list)
