"""Keeps the rows of open cycles in step with the tickets' replays, and counts what each cycle
did.

In: a ticket's replay after new events (``observe``), the learnt cycles of tickets that left
memory (``remember``), a ticket that left the book (``forget``). Out, in the state it shares
with the predictor: one row per open cycle in ``rows`` (see columns); an arrival per cycle
started and a service per cycle met in the registry's counts; each finished cycle once in the
life tables (a reopened cycle's second end counts as a service only); the calibration told how
each noted cycle ended; ``fresh``, the cycles first seen since the predictor's last tick; and
every deadline set or moved handed to ``on_deadline``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from sladaemon.model import Metric, TicketKey
from sladaemon.predict.calibration import Calibration
from sladaemon.predict.columns import (
    METRICS,
    NOT_SET,
    US,
    CycleIds,
    FreshCycle,
    OpenCycles,
    Registry,
    TicketSlots,
)
from sladaemon.predict.learning import Learning
from sladaemon.predict.learnt import LearntCycle, queue_and_priority
from sladaemon.predict.survival import SurvivalModel
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.policy import SlaPolicy

if TYPE_CHECKING:
    from sladaemon.sla.clocks import ClockCycle, MetricClock


class CycleTracker:
    """The open-cycle rows and ticket slots, and the counting behind them (see the module)."""

    def __init__(
        self,
        policies: Sequence[SlaPolicy],
        survival: SurvivalModel,
        calibration: Calibration,
        registry: Registry,
        learning: Learning,
        on_deadline: Callable[[int], None],
        rows: OpenCycles,
    ) -> None:
        self._policies = {policy.name: policy for policy in policies}
        self.survival = survival
        self.calibration = calibration
        self.registry = registry
        self.learning = learning
        self.on_deadline = on_deadline
        self.rows = rows
        self.tickets = TicketSlots()
        self.fresh: list[FreshCycle] = []
        self.earliest_us: int | None = None  # the first arrival seen: rates count from it

    def observe(self, key: TicketKey, replay: TicketReplay, now_us: int, note_fresh: bool) -> None:
        """Bring the rows of one ticket up to date with its replay. ``note_fresh``: cycles
        that get a row are noted in ``fresh`` (once the model can judge them)."""
        policy = replay.policy
        number = self.tickets.numbers.get(key)
        if policy is None or not replay.clocks:
            if number is not None:
                self._drop_rows(number)
            return
        if number is None:
            number = self.tickets.add(key)
        queue, priority = queue_and_priority(replay, policy)
        self.learning.ticket(number, priority, replay.fields.get("channel", ""), replay)
        present = set()
        for clock in replay.clocks:
            metric_index = METRICS.index(clock.metric)
            present.add(metric_index)
            group = self.survival.group(clock.metric.value, policy.name, priority, queue)
            registry = self.registry
            calendar = registry.calendar_id(clock.calendar)
            ids = (
                group,
                registry.queue_id(key[0], queue, clock.metric, calendar),
                registry.policy_metric_id(policy.name, clock.metric, calendar),
                calendar,
            )
            self._observe_clock(key, number, metric_index, clock, ids, now_us, note_fresh)
        for metric_index in range(len(METRICS)):
            if metric_index not in present and self.tickets.slot[number, metric_index] >= 0:
                self._drop(number, metric_index)

    def remember(self, source: str, cycles: Iterable[LearntCycle]) -> int:
        """Count the cycles of tickets that left memory as ``observe`` counted them: an arrival
        each, the met ones in the life tables and service rates. Cycles of a policy or metric
        no longer configured are passed over. Returns how many counted."""
        groups: dict[tuple[str, Metric, str, str], list[LearntCycle]] = {}
        for cycle in cycles:
            key = (cycle.policy, cycle.metric, cycle.priority, cycle.queue)
            groups.setdefault(key, []).append(cycle)
        counted = 0
        for (name, metric, priority, queue), members in groups.items():
            policy = self._policies.get(name)
            rules = policy.metrics if policy is not None else ()
            rule = next((each for each in rules if each.metric is metric), None)
            if rule is None:
                continue
            registry = self.registry
            calendar = registry.calendar_id(rule.calendar)
            queue_metric = registry.queue_id(source, queue, metric, calendar)
            starts = np.array([cycle.started_us for cycle in members], np.int64)
            registry.count_arrivals(queue_metric, starts)
            first = int(starts.min())
            if self.earliest_us is None or first < self.earliest_us:
                self.earliest_us = first
            met = [cycle for cycle in members if cycle.ended_us is not None]
            if met:
                group = self.survival.group(metric.value, name, priority, queue)
                policy_metric = registry.policy_metric_id(name, metric, calendar)
                ended = np.array([cycle.ended_us for cycle in met], np.int64)
                elapsed_s = np.array([cycle.elapsed_us for cycle in met], np.float64) / US
                self.survival.add_finished_many(group, elapsed_s, ended)
                registry.count_services(queue_metric, policy_metric, ended)
            counted += len(members)
        return counted

    def forget(self, key: TicketKey) -> bool:
        """The ticket's open rows go without counting as met; False if it was not known."""
        number = self.tickets.numbers.pop(key, None)
        if number is None:
            return False
        self._drop_rows(number)
        self.learning.forget_ticket(number)
        self.tickets.release(number)
        return True

    def take_fresh(self) -> list[FreshCycle]:
        """The cycles seen for the first time since the last call."""
        fresh = self.fresh
        self.fresh = []
        return fresh

    def _observe_clock(
        self,
        key: TicketKey,
        number: int,
        metric_index: int,
        clock: MetricClock,
        ids: CycleIds,
        now_us: int,
        note_fresh: bool,
    ) -> None:
        """One metric of the ticket: close its row if the cycle ended, count new cycles, keep
        the running cycle's row up to date."""
        slot = int(self.tickets.slot[number, metric_index])
        if slot >= 0:
            slot = self._close_row(number, metric_index, slot, clock)
        slot = self._count_new_cycles(number, metric_index, clock, ids, slot, now_us, note_fresh)
        current = clock.current
        if current is None or current.ended is not None:
            return
        if slot < 0:  # a reopened cycle (counted already, running again)
            slot = self._register(
                number, metric_index, current.number, current.start, now_us, True, note_fresh
            )
        self._update_row(slot, clock, current, ids)
        self.learning.changed(slot)
        fresh = self.fresh
        if fresh and fresh[-1].slot == slot and fresh[-1].seen == now_us:
            fresh[-1] = self.rows.snapshot(key, slot, now_us)

    def _close_row(self, number: int, metric_index: int, slot: int, clock: MetricClock) -> int:
        """Drop the row unless it still holds the clock's running cycle (counting the cycle
        as finished if it ended); the slot it keeps, or -1."""
        n = int(self.rows.cycle[slot])
        cycle = clock.cycles[n] if n < len(clock.cycles) else None
        if cycle is not None and cycle.ended is not None:
            self._finish(slot, cycle.elapsed, cycle.ended)
        if cycle is None or cycle.ended is not None or cycle is not clock.current:
            self._drop(number, metric_index)
            return -1
        return slot

    def _count_new_cycles(
        self,
        number: int,
        metric_index: int,
        clock: MetricClock,
        ids: CycleIds,
        slot: int,
        now_us: int,
        note_fresh: bool,
    ) -> int:
        """Count the cycles not counted yet: an arrival each, the ended ones as finished, the
        first open one gets a row (unless there is one). Returns the row's slot, or -1."""
        group, queue_metric, policy_metric, _ = ids
        cycles = clock.cycles
        arrivals = self.registry.arrivals
        series = self.registry.queues[queue_metric].arrivals
        for n in range(int(self.tickets.counted[number, metric_index]) + 1, len(cycles)):
            cycle = cycles[n]
            arrivals.observe(series, cycle.start)
            self.learning.rates.arrival(queue_metric, cycle.start)
            if self.earliest_us is None or cycle.start < self.earliest_us:
                self.earliest_us = cycle.start
            if cycle.ended is not None:  # started and ended between two looks
                self._count_finished(group, queue_metric, policy_metric, cycle.elapsed, cycle.ended)
            elif slot < 0:
                slot = self._register(
                    number, metric_index, n, cycle.start, now_us, False, note_fresh
                )
            self.tickets.counted[number, metric_index] = n
        return slot

    def _update_row(
        self, slot: int, clock: MetricClock, current: ClockCycle, ids: CycleIds
    ) -> None:
        """The running cycle's ids, clock and deadline (recomputed only when its clock moved)."""
        rows = self.rows
        since = current.since if current.since is not None else NOT_SET
        rows.group[slot], rows.queue_metric[slot], rows.policy_metric[slot], rows.calendar[slot] = (
            ids
        )
        if (
            rows.since[slot] != since
            or rows.elapsed_at_since[slot] != current.elapsed
            or rows.target[slot] != clock.target
            or rows.deadline[slot] == 0
        ):
            rows.dormant[slot] = False
            rows.since[slot] = since
            rows.elapsed_at_since[slot] = current.elapsed
            rows.target[slot] = clock.target
            deadline = NOT_SET
            if current.since is not None and current.elapsed <= clock.target:
                deadline = clock.calendar.add_us(current.since, clock.target - current.elapsed)
                self.on_deadline(deadline)
            rows.deadline[slot] = deadline

    def _register(
        self,
        number: int,
        metric_index: int,
        cycle: int,
        start: int,
        now_us: int,
        reopened: bool,
        note_fresh: bool,
    ) -> int:
        rows = self.rows
        slot = rows.add()
        rows.ticket[slot] = number
        rows.metric[slot] = metric_index
        rows.cycle[slot] = cycle
        rows.start[slot] = start
        rows.deadline[slot] = 0  # not computed yet
        rows.reopened[slot] = reopened
        self.learning.register(slot, now_us)
        self.tickets.slot[number, metric_index] = slot
        key = self.tickets.key(number)
        if note_fresh:
            self.fresh.append(FreshCycle.unseen(key, slot, metric_index, cycle, now_us))
        return slot

    def _finish(self, slot: int, elapsed_us: int, ended_us: int) -> None:
        rows = self.rows
        queue_metric, policy_metric = int(rows.queue_metric[slot]), int(rows.policy_metric[slot])
        breached = elapsed_us > int(rows.target[slot])
        self.calibration.resolve(slot, breached, ended_us)
        self.learning.finish(slot, breached)
        if rows.reopened[slot]:  # its first resolution is in the tables already
            self.registry.count_service(queue_metric, policy_metric, ended_us)
            self.learning.rates.service(queue_metric, ended_us)
            return
        self._count_finished(
            int(rows.group[slot]), queue_metric, policy_metric, elapsed_us, ended_us
        )

    def _count_finished(
        self, group: int, queue_metric: int, policy_metric: int, elapsed_us: int, ended_us: int
    ) -> None:
        self.survival.add_finished(group, elapsed_us / US, ended_us)
        self.registry.count_service(queue_metric, policy_metric, ended_us)
        self.learning.rates.service(queue_metric, ended_us)

    def _drop(self, number: int, metric_index: int) -> None:
        slot = int(self.tickets.slot[number, metric_index])
        if slot >= 0:
            self.calibration.discard(slot)
            self.learning.drop(slot)
            self.rows.drop(slot)
            self.tickets.slot[number, metric_index] = -1

    def _drop_rows(self, number: int) -> None:
        for metric_index in range(len(METRICS)):
            self._drop(number, metric_index)
