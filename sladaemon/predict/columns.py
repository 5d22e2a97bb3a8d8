"""Open SLA cycles as numpy columns, and the dense ids those columns hold.

* ``OpenCycles`` — one slot per open cycle (ticket × metric × cycle): ids, business times and
  flags in parallel arrays; a slot is reused once its cycle ends, and only ``used`` slots below
  ``capacity`` mean anything.
* ``TicketSlots`` — a number per ticket (reused once it is forgotten) and, per ticket number ×
  metric, the slot of its open cycle (-1: none) and the last cycle counted as an arrival.
* ``Registry`` — ids for the calendars, time zones, queues (source × queue × metric) and
  policy × metric pairs the columns name, with their decayed arrival and service counts. Ids
  only grow: an id, once given, keeps its meaning for the predictor's life.
* ``CycleColumns`` — some cycles as columns, each at an instant: what the risk maths takes.

Times are integer µs; ``NOT_SET`` marks a paused clock (``since``) or no deadline.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from sladaemon.calendar import BusinessCalendar
from sladaemon.model import Metric, TicketKey
from sladaemon.predict.weekly import WeekExposure, WeeklyCounts, open_hours

Floats = npt.NDArray[np.float64]
Float32s = npt.NDArray[np.float32]
UInt32s = npt.NDArray[np.uint32]
Ints = npt.NDArray[np.int64]
Int32s = npt.NDArray[np.int32]
Bools = npt.NDArray[np.bool_]

US = 1_000_000
NOT_SET = int(np.iinfo(np.int64).min)
METRICS = tuple(Metric)  # a metric's index in the ``metric`` column


# What an open cycle is counted under: (survival group, queue × metric, policy × metric,
# calendar). A plain tuple: observe builds one per clock, where a NamedTuple costs a few %.
CycleIds = tuple[int, int, int, int]


@dataclass(frozen=True)
class CycleColumns:
    """Cycles to judge, each at its own instant ``now`` (equal for all but fresh cycles)."""

    slots: Ints
    metric: Ints
    cycle: Ints
    start: Ints
    live: Bools  # the slot still holds this cycle
    since: Ints  # when the clock last started running; NOT_SET: paused
    elapsed_at_since: Ints  # business time used before ``since``
    target: Ints
    group: Ints  # survival group (queue × priority × metric)
    queue_metric: Ints
    policy_metric: Ints
    calendar: Ints
    now: Ints
    deadline: Ints | None = None  # known deadlines of running rows (None: compute them)


@dataclass(frozen=True, slots=True)
class FreshCycle:
    """A cycle as it was when first seen, judged at the next tick at that instant (it may have
    ended since: a daemon would have judged it at once)."""

    key: TicketKey
    slot: int
    metric: int
    cycle: int
    since: int
    elapsed_at_since: int
    target: int
    group: int
    queue_metric: int
    policy_metric: int
    calendar: int
    start: int
    seen: int

    @classmethod
    def unseen(cls, key: TicketKey, slot: int, metric: int, cycle: int, seen: int) -> FreshCycle:
        """A cycle registered but not running yet: skipped unless its snapshot replaces it."""
        return cls(key, slot, metric, cycle, NOT_SET, 0, 0, 0, 0, 0, 0, 0, seen)


class OpenCycles:
    """Open cycles as columns. A slot is reused once its cycle ends."""

    INT64 = ("since", "elapsed_at_since", "target", "start", "deadline")
    INT32 = ("cycle", "group", "queue_metric", "policy_metric", "calendar", "metric", "ticket")

    def __init__(self) -> None:
        self.capacity = 0
        self.count = 0
        self.free: list[int] = []
        self.used: Bools = np.zeros(0, np.bool_)
        self.warned: Bools = np.zeros(0, np.bool_)
        self.dormant: Bools = np.zeros(0, np.bool_)  # breached or too late: wait for news
        self.reopened: Bools = np.zeros(0, np.bool_)
        self.since: Ints = np.zeros(0, np.int64)
        self.elapsed_at_since: Ints = np.zeros(0, np.int64)
        self.target: Ints = np.zeros(0, np.int64)
        self.start: Ints = np.zeros(0, np.int64)
        self.deadline: Ints = np.zeros(0, np.int64)  # NOT_SET while paused or breached
        self.cycle: Int32s = np.zeros(0, np.int32)
        self.group: Int32s = np.zeros(0, np.int32)
        self.queue_metric: Int32s = np.zeros(0, np.int32)
        self.policy_metric: Int32s = np.zeros(0, np.int32)
        self.calendar: Int32s = np.zeros(0, np.int32)
        self.metric: Int32s = np.zeros(0, np.int32)
        self.ticket: Int32s = np.zeros(0, np.int32)

    def add(self) -> int:
        if not self.free:
            self._grow()
        slot = self.free.pop()
        self.used[slot] = True
        self.warned[slot] = False
        self.dormant[slot] = False
        self.reopened[slot] = False
        self.count += 1
        return slot

    def drop(self, slot: int) -> None:
        self.used[slot] = False
        self.free.append(slot)
        self.count -= 1

    def _grow(self) -> None:
        old = self.capacity
        new = max(64, old * 5 // 4)  # a quarter more: 300,000 rows do not take 524,288
        for name in ("used", "warned", "dormant", "reopened", *self.INT64, *self.INT32):
            array = getattr(self, name)
            grown = np.zeros(new, array.dtype)
            grown[:old] = array
            setattr(self, name, grown)
        self.capacity = new
        self.free.extend(range(new - 1, old - 1, -1))

    def running(self) -> Bools:
        """The used slots whose clock runs."""
        capacity = self.capacity
        running: Bools = self.used[:capacity] & (self.since[:capacity] != NOT_SET)
        return running

    def waiting(self) -> Bools:
        """The used slots whose clock runs, neither warned nor resting until news."""
        capacity = self.capacity
        waiting: Bools = self.used[:capacity] & ~self.warned[:capacity] & ~self.dormant[:capacity]
        waiting &= self.since[:capacity] != NOT_SET
        return waiting

    def columns(self, slots: Ints, now_us: int) -> CycleColumns:
        """The cycles in ``slots``, all at ``now_us``, with the deadlines kept in the rows."""
        return CycleColumns(
            slots=slots,
            metric=self.metric[slots].astype(np.int64),
            cycle=self.cycle[slots].astype(np.int64),
            start=self.start[slots],
            live=np.ones(slots.size, np.bool_),
            since=self.since[slots],
            elapsed_at_since=self.elapsed_at_since[slots],
            target=self.target[slots],
            group=self.group[slots].astype(np.int64),
            queue_metric=self.queue_metric[slots].astype(np.int64),
            policy_metric=self.policy_metric[slots].astype(np.int64),
            calendar=self.calendar[slots].astype(np.int64),
            now=np.full(slots.size, now_us, np.int64),
            deadline=self.deadline[slots],
        )

    def snapshot(self, key: TicketKey, slot: int, seen: int) -> FreshCycle:
        return FreshCycle(
            key=key,
            slot=slot,
            metric=int(self.metric[slot]),
            cycle=int(self.cycle[slot]),
            since=int(self.since[slot]),
            elapsed_at_since=int(self.elapsed_at_since[slot]),
            target=int(self.target[slot]),
            group=int(self.group[slot]),
            queue_metric=int(self.queue_metric[slot]),
            policy_metric=int(self.policy_metric[slot]),
            calendar=int(self.calendar[slot]),
            start=int(self.start[slot]),
            seen=seen,
        )


def fresh_columns(fresh: Sequence[FreshCycle], live: Sequence[bool]) -> CycleColumns:
    """Fresh cycles as columns, each at the instant it was seen."""
    return CycleColumns(
        slots=np.array([f.slot for f in fresh], np.int64),
        metric=np.array([f.metric for f in fresh], np.int64),
        cycle=np.array([f.cycle for f in fresh], np.int64),
        start=np.array([f.start for f in fresh], np.int64),
        live=np.array(live, np.bool_),
        since=np.array([f.since for f in fresh], np.int64),
        elapsed_at_since=np.array([f.elapsed_at_since for f in fresh], np.int64),
        target=np.array([f.target for f in fresh], np.int64),
        group=np.array([f.group for f in fresh], np.int64),
        queue_metric=np.array([f.queue_metric for f in fresh], np.int64),
        policy_metric=np.array([f.policy_metric for f in fresh], np.int64),
        calendar=np.array([f.calendar for f in fresh], np.int64),
        now=np.array([f.seen for f in fresh], np.int64),
    )


def queue_order(rows: OpenCycles) -> tuple[Ints, Ints]:
    """The open cycles' queue × metric ids and starts, sorted by both (for places in queue)."""
    used = np.flatnonzero(rows.used[: rows.capacity])
    order = used[np.lexsort((rows.start[used], rows.queue_metric[used]))]
    return rows.queue_metric[order].astype(np.int64), rows.start[order]


def places(order: tuple[Ints, Ints], queues: Ints, starts: Ints) -> tuple[Ints, Ints]:
    """For each (queue × metric, start): its place among the open cycles of that queue in
    ``order`` (1 = longest waiting) and the queue's backlog."""
    sorted_queue, sorted_start = order
    lo = np.searchsorted(sorted_queue, queues, side="left")
    hi = np.searchsorted(sorted_queue, queues, side="right")
    positions = np.zeros(queues.size, np.int64)
    for queue in np.unique(queues):
        mine = queues == queue
        a, b = int(lo[mine][0]), int(hi[mine][0])
        positions[mine] = np.searchsorted(sorted_start[a:b], starts[mine], side="left") + 1
    return positions, (hi - lo).astype(np.int64)


def calendar_groups(calendars: Ints, chosen: Bools | None = None) -> Iterator[tuple[int, Ints]]:
    """Each calendar id among the ``chosen`` entries (default: all), with their indices."""
    # The caller holds each group's indices; nothing else large stays alive in between.
    for calendar in np.unique(calendars if chosen is None else calendars[chosen]):
        if chosen is None:
            yield int(calendar), np.flatnonzero(calendars == calendar)
        else:
            yield int(calendar), np.flatnonzero(chosen & (calendars == calendar))


class TicketSlots:
    """Ticket numbers, and per ticket number × metric index the slot of its open cycle (-1:
    none) and the last cycle counted as an arrival (-1: none)."""

    def __init__(self) -> None:
        self.numbers: dict[TicketKey, int] = {}
        self.keys: list[TicketKey | None] = []
        self._free: list[int] = []
        self.slot: Int32s = np.zeros((0, len(METRICS)), np.int32)
        self.counted: Int32s = np.zeros((0, len(METRICS)), np.int32)

    def add(self, key: TicketKey) -> int:
        if self._free:
            number = self._free.pop()
            self.keys[number] = key
        else:
            number = len(self.keys)
            self.keys.append(key)
            if number >= self.slot.shape[0]:
                grow = max(64, self.slot.shape[0])
                self.slot = np.vstack([self.slot, np.full((grow, len(METRICS)), -1, np.int32)])
                self.counted = np.vstack(
                    [self.counted, np.full((grow, len(METRICS)), -1, np.int32)]
                )
        self.slot[number] = -1
        self.counted[number] = -1
        self.numbers[key] = number
        return number

    def release(self, number: int) -> None:
        """The ticket's number is free again (its slots must be dropped already)."""
        self.keys[number] = None
        self._free.append(number)

    def key(self, number: int) -> TicketKey:
        key = self.keys[number]
        assert key is not None
        return key


@dataclass
class QueueMetric:
    """A source's queue × metric, and its series in the arrival and service counts."""

    source: str
    name: str
    metric: Metric
    calendar: int
    zone: int
    arrivals: int
    services: int


@dataclass
class PolicyMetric:
    """A policy × metric, its series in the policy service counts, and the share of each hour
    of the local week its calendar is open."""

    calendar: int
    zone: int
    services: int
    open_share: Floats


class Registry:
    """Dense ids for calendars, zones, queue × metric and policy × metric, and the decayed
    counts per hour of the local week kept under them."""

    def __init__(self, half_life_us: float) -> None:
        self.half_life_us = half_life_us
        self.calendars: list[BusinessCalendar] = []
        self._calendar_ids: dict[int, int] = {}
        self.zones: list[ZoneInfo] = []
        self._zone_ids: dict[str, int] = {}
        self.exposures: list[WeekExposure] = []  # per zone: decayed hours of the week seen
        self.queues: list[QueueMetric] = []
        self._queue_ids: dict[tuple[str, str, Metric], int] = {}
        self.policy_metrics: list[PolicyMetric] = []
        self._policy_metric_ids: dict[tuple[str, Metric], int] = {}
        self.arrivals = WeeklyCounts(half_life_us)  # per queue × metric: cycles started
        self.services = WeeklyCounts(half_life_us)  # per queue × metric: cycles met
        self.policy_services = WeeklyCounts(half_life_us)  # per policy × metric: cycles met

    def calendar_id(self, calendar: BusinessCalendar) -> int:
        found = self._calendar_ids.get(id(calendar))
        if found is None:
            found = self._calendar_ids[id(calendar)] = len(self.calendars)
            self.calendars.append(calendar)
        return found

    def zone_id(self, calendar: int) -> int:
        name = self.calendars[calendar].spec.timezone
        found = self._zone_ids.get(name)
        if found is None:
            found = self._zone_ids[name] = len(self.zones)
            zone = ZoneInfo(name)
            self.zones.append(zone)
            self.exposures.append(WeekExposure(zone, self.half_life_us))
        return found

    def queue_id(self, source: str, queue: str, metric: Metric, calendar: int) -> int:
        found = self._queue_ids.get((source, queue, metric))
        if found is None:
            zone = self.zone_id(calendar)
            found = self._queue_ids[(source, queue, metric)] = len(self.queues)
            self.queues.append(
                QueueMetric(
                    source,
                    queue,
                    metric,
                    calendar,
                    zone,
                    self.arrivals.add_series(self.zones[zone]),
                    self.services.add_series(self.zones[zone]),
                )
            )
        return found

    def policy_metric_id(self, policy: str, metric: Metric, calendar: int) -> int:
        found = self._policy_metric_ids.get((policy, metric))
        if found is None:
            zone = self.zone_id(calendar)
            found = self._policy_metric_ids[(policy, metric)] = len(self.policy_metrics)
            self.policy_metrics.append(
                PolicyMetric(
                    calendar,
                    zone,
                    self.policy_services.add_series(self.zones[zone]),
                    open_hours(self.calendars[calendar].spec),
                )
            )
        return found

    def policy_metric_ids(self) -> dict[tuple[str, Metric], int]:
        return dict(self._policy_metric_ids)

    def queue(self, source: str, queue: str, metric: Metric) -> QueueMetric:
        return self.queues[self._queue_ids[(source, queue, metric)]]

    def count_service(self, queue_metric: int, policy_metric: int, ended_us: int) -> None:
        self.services.observe(self.queues[queue_metric].services, ended_us)
        self.policy_services.observe(self.policy_metrics[policy_metric].services, ended_us)

    def count_arrivals(self, queue_metric: int, started_us: Ints) -> None:
        self.arrivals.observe_many(self.queues[queue_metric].arrivals, started_us)

    def count_services(self, queue_metric: int, policy_metric: int, ended_us: Ints) -> None:
        self.services.observe_many(self.queues[queue_metric].services, ended_us)
        self.policy_services.observe_many(self.policy_metrics[policy_metric].services, ended_us)

    def advance_exposures(self, now_us: int, earliest_us: int | None) -> None:
        """Count the hours of the week up to ``now_us`` (from ``earliest_us`` on a zone's
        first advance: history loaded at start)."""
        for exposure in self.exposures:
            if exposure.at is None and earliest_us is not None:
                exposure.advance(min(earliest_us, now_us))
            exposure.advance(now_us)

    def exposure_hours(self, now_us: int, zones: Ints) -> Floats:
        """Decayed hours seen of each hour of the week, for each entry of ``zones``."""
        hours: Floats = np.stack([e.hours_at(now_us) for e in self.exposures])[zones]
        return hours

    def utc_offsets_s(self, now_us: int, zones: Ints) -> Floats:
        """The UTC offset in seconds at ``now_us`` of each entry of ``zones``."""
        moment = datetime.fromtimestamp(now_us / US, UTC)
        offsets = [moment.astimezone(z).utcoffset() or timedelta(0) for z in self.zones]
        return np.array([offsets[z].total_seconds() for z in zones], np.float64)
