"""The working state of SLA clocks: a metric's clock, its cycles, and how one ticket event
moves each kind of metric (the transitions the engine applies; semantics in sla/engine.py).

Pure and mutable: ``TicketReplay`` owns the clocks of a ticket and is the only writer. Times
are integer µs; a cycle counts business time while running (``since`` set) and not while
paused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sladaemon.calendar import BusinessCalendar
from sladaemon.model import EventKind, Metric, MetricState
from sladaemon.sla.policy import LadderLevel, MetricRule


class ClockCycle:
    __slots__ = (
        "breached_at",
        "deadline_at_end",
        "elapsed",
        "ended",
        "number",
        "outcome",
        "pauses",
        "since",
        "start",
    )

    def __init__(self, number: int, start: int, running: bool) -> None:
        self.number = number
        self.start = start
        self.elapsed = 0  # business µs counted before ``since``
        self.since: int | None = start if running else None
        self.ended: int | None = None
        self.outcome: MetricState | None = None
        self.breached_at: int | None = None
        self.deadline_at_end: int | None = None
        self.pauses: list[list[int | None]] | None = None if running else [[start, None]]


class MetricClock:
    """One metric of one ticket under one policy."""

    __slots__ = ("calendar", "current", "cycles", "levels", "metric", "rule", "schedule", "target")

    def __init__(self, rule: MetricRule, target: int, levels: tuple[LadderLevel, ...]) -> None:
        self.rule = rule
        self.metric = rule.metric
        self.calendar: BusinessCalendar = rule.calendar
        self.target = target
        self.levels = levels  # shared per policy and metric; includes the breach level
        self.cycles: tuple[ClockCycle, ...] = ()  # mostly one: a tuple is half a list's size
        self.current: ClockCycle | None = None
        self.schedule: list[tuple[int, LadderLevel]] | None = None

    # -- clock operations

    def start(self, t: int, running: bool) -> None:
        self.current = ClockCycle(len(self.cycles), t, running)
        self.cycles = (*self.cycles, self.current)
        self.schedule = None

    def _settle(self, c: ClockCycle, t: int) -> None:
        """Count the running segment up to ``t``; note the breach if it happened inside."""
        if c.since is None:
            return
        total = c.elapsed + self.calendar.elapsed_us(c.since, t)
        if c.breached_at is None and c.elapsed <= self.target < total:
            c.breached_at = self.deadline_us(c)
        c.elapsed = total
        c.since = None
        self.schedule = None

    def pause(self, t: int) -> None:
        c = self.current
        if c is not None and c.since is not None and c.ended is None:
            self._settle(c, t)
            c.pauses = [*(c.pauses or ()), [t, None]]

    def resume(self, t: int) -> None:
        c = self.current
        if c is not None and c.since is None and c.ended is None:
            c.since = t
            if c.pauses and c.pauses[-1][1] is None:
                c.pauses[-1][1] = t
            self.schedule = None

    def stop(self, t: int) -> ClockCycle | None:
        c = self.current
        if c is None or c.ended is not None:
            return None
        if c.since is not None:
            c.deadline_at_end = self.deadline_us(c)
            self._settle(c, t)
        elif c.pauses and c.pauses[-1][1] is None:
            c.pauses[-1][1] = t
        c.ended = t
        c.outcome = MetricState.MET if c.elapsed <= self.target else MetricState.BREACHED
        self.schedule = None
        return c

    def reopen(self, t: int, running: bool) -> None:
        """Resume a stopped cycle (resolution after a reopen)."""
        c = self.current
        if c is None or c.ended is None:
            return
        c.ended = None
        c.outcome = None
        c.deadline_at_end = None
        c.since = t if running else None
        if not running:
            c.pauses = [*(c.pauses or ()), [t, None]]
        self.schedule = None

    # -- queries

    def elapsed_at(self, c: ClockCycle, t: int) -> int:
        if c.since is None or t <= c.since:
            return c.elapsed
        return c.elapsed + self.calendar.elapsed_us(c.since, t)

    def deadline_us(self, c: ClockCycle) -> int | None:
        """Latest instant with elapsed <= target, while running and not yet breached."""
        if c.since is None or c.elapsed > self.target:
            return None
        return self.calendar.add_us(c.since, self.target - c.elapsed)

    def instant_of(self, c: ClockCycle, level: LadderLevel) -> int | None:
        """When the running cycle reaches ``level`` (None while paused)."""
        if c.since is None:
            return None
        threshold = level.threshold_us(self.target)
        if level.before_breach:
            return self.calendar.reach_us(c.since, max(0, threshold - c.elapsed))
        if threshold < c.elapsed:
            return c.since
        return self.calendar.add_us(c.since, threshold - c.elapsed)

    def reached(self, c: ClockCycle, level: LadderLevel, t: int) -> bool:
        elapsed = self.elapsed_at(c, t)
        threshold = level.threshold_us(self.target)
        if level.before_breach:
            return elapsed >= threshold
        # Breach levels: strictly past, or exactly at the instant it fires while running.
        if elapsed > threshold:
            return True
        instant = self.instant_of(c, level)
        return instant is not None and instant <= t and c.ended is None

    def pending(self) -> list[tuple[int, LadderLevel]]:
        """Ladder instants of the running cycle, in time order (cached until it changes)."""
        if self.schedule is None:
            c = self.current
            out: list[tuple[int, LadderLevel]] = []
            if c is not None and c.ended is None and c.since is not None:
                for level in self.levels:
                    at = self.instant_of(c, level)
                    if at is not None:
                        out.append((at, level))
                out.sort(key=lambda p: p[0])
            self.schedule = out
        return self.schedule


# ---------------------------------------------------------------------------- metric transitions


@dataclass(slots=True)
class MetricStep:
    """What one ticket event means for the clocks of the ticket."""

    kind: EventKind
    done: bool  # the status after the event is a done one (solved, closed)
    reopened: bool  # the event took the ticket out of a done status
    replied_before: bool  # an agent had replied before this event
    answers: bool  # an agent reply, or the ticket done: a wait for the agent ends


def has_open_cycle(clock: MetricClock) -> bool:
    return clock.current is not None and clock.current.ended is None


def first_response_step(
    clock: MetricClock, step: MetricStep, t: int, paused: bool
) -> ClockCycle | None:
    """Starts at creation; ends at the first agent reply or when the ticket is done."""
    if step.kind is EventKind.CREATED and clock.current is None:
        clock.start(t, not paused and not step.done)
    elif has_open_cycle(clock) and step.answers:
        return clock.stop(t)
    return None


def resolution_step(
    clock: MetricClock, step: MetricStep, t: int, paused: bool
) -> ClockCycle | None:
    """Starts at creation; ends when the ticket is done; the same cycle goes on at a reopen."""
    if step.kind is EventKind.CREATED and clock.current is None:
        clock.start(t, not paused and not step.done)
        return None
    active = has_open_cycle(clock)
    if active and step.done:
        return clock.stop(t)
    if step.reopened or (step.kind is EventKind.REOPENED and not active):
        clock.reopen(t, not paused)
    return None


def next_response_step(
    clock: MetricClock, step: MetricStep, t: int, paused: bool
) -> ClockCycle | None:
    """Starts at a customer reply after an agent's; ends at the agent's answer or when done."""
    active = has_open_cycle(clock)
    if active and step.answers:
        return clock.stop(t)
    customer_waits = step.kind is EventKind.CUSTOMER_REPLY and step.replied_before
    if customer_waits and not active and not step.done:
        clock.start(t, not paused)
    return None


def periodic_update_step(
    clock: MetricClock, step: MetricStep, t: int, paused: bool
) -> ClockCycle | None:
    """Each agent reply ends a cycle and starts the next; a reopen after a reply starts one."""
    ended = clock.stop(t) if has_open_cycle(clock) and step.answers else None
    starts = step.kind is EventKind.AGENT_REPLY or (step.reopened and step.replied_before)
    if starts and not step.done:
        clock.start(t, not paused)
    return ended


METRIC_STEPS: dict[Metric, Callable[[MetricClock, MetricStep, int, bool], ClockCycle | None]] = {
    Metric.FIRST_RESPONSE: first_response_step,
    Metric.RESOLUTION: resolution_step,
    Metric.NEXT_RESPONSE: next_response_step,
    Metric.PERIODIC_UPDATE: periodic_update_step,
}
"""Per metric: apply one event to the clock; the cycle it ended, if any."""


def follow_status(clock: MetricClock, t: int, paused: bool) -> None:
    """Pause or resume the clock's open cycle as the ticket's status asks."""
    c = clock.current
    if c is not None and c.ended is None:
        if paused:
            clock.pause(t)
        else:
            clock.resume(t)
