"""The breach predictor: every open SLA cycle as a row of columns, queue statistics, and a
vectorised risk evaluation of all running metrics at once.

Pure: the owner hands in ticket replays and ``now`` (integer µs) and gets predictions back.

* ``observe(key, replay, now)`` after a ticket changed: registers its open cycles as rows,
  counts arrivals (a cycle starts) and services (a cycle ends) per queue and per policy ×
  metric, and adds every finished cycle to the life tables (see survival).
* ``tick(now)`` every minute in the daemon (every hour of history in the backtest): first
  the cycles that started since the last tick are judged *at the instant they were seen*, with
  the model as it stood at the last tick; then the model is refreshed from what is known at
  ``now`` and every running cycle is judged at ``now``.
* ``last_calls(now)`` at ``next_call_us``: the cycles whose deadline is exactly ``lead`` away.

The probability that a running cycle at business elapsed ``e`` misses its target ``T``:

    P = calibration(exp(-(H(T) - H(e)) × W))

``H`` is the cumulative hazard of its group (queue × priority, shrunk towards policy ×
priority and policy; see survival): ``exp(-(H(T) - H(e)))`` is the share of similar cycles
still open at ``e`` that were not met by ``T``. ``W`` (hour of week) is the service the
policy × metric usually delivers in the wall-clock window left until the deadline, relative to
an average stretch of business time of that length: a ticket on a 24/7 clock opened on a Friday
night has a small ``W``; it is 1 until the policy has seen enough service to tell. The
calibration (see calibration) corrects what the history promised by what came to pass.

When to warn (once per ticket × metric × cycle). A pure elapsed-time rule cannot beat the fixed
75 % level at an equal number of alerts within one group: its probability rises with elapsed
time, so it is the same kind of rule with another percentage. What it can do is spend alerts
where they pay:

* early, as soon as ``P >= early`` — groups where most cycles breach are warned when they
  start, Friday-evening tickets on a 24/7 clock when they arrive — so the lead is long;
* otherwise at the last call, the instant the deadline is exactly ``lead`` away (wall clock),
  if ``P >= threshold``: the latest moment that still leaves ``lead`` to act, when the most
  is known (cycles met in the meantime are never warned). On a business calendar that moment
  often falls at night, so the lead is the night plus ``lead``.

A warning always leaves at least ``lead``. A metric with too little history (fewer than
``min_history`` decayed finished cycles of its policy × metric), a paused clock or an already
breached one gets no probability, and the assessment says why. Queue load — backlog against
throughput, place in queue — is forecast per queue (queue alerts) and shown in every warning;
as a factor of ``P`` (usual backlog over the current one) it did not help on any of the three
public logs, so it is not part of ``P``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from sladaemon.calendar import BusinessCalendar
from sladaemon.config.durations import format_duration
from sladaemon.model import Metric
from sladaemon.predict.calibration import MAX_PROBABILITY, Calibration
from sladaemon.predict.settings import PredictSettings
from sladaemon.predict.survival import SurvivalModel
from sladaemon.predict.weekly import (
    HOURS_PER_WEEK,
    US_PER_HOUR,
    WeekExposure,
    WeeklyCounts,
    cumulative,
    integrate,
    open_hours,
    rates,
    week_position,
)
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.policy import SlaPolicy

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
TicketKey = tuple[str, str]  # (source, ticket id)

NOT_SET = int(np.iinfo(np.int64).min)
METRICS = tuple(Metric)
US = 1_000_000
TABLE_REFRESH_US = 6 * 3600 * US  # life tables are rebuilt every 6 hours when cycles ended,
QUIET_REFRESH_US = 7 * 86_400 * US  # weekly when none did (only the decay moved them)
FACTOR_REFRESH_US = 6 * 3600 * US  # hour-of-week service profiles
NEW_GROUP_REFRESH_US = 3600 * US  # a new queue or priority waits at most this for its tables
WEEK_LIMITS = (0.1, 10.0)
MIN_PROFILE_SERVICES = 20.0  # decayed services before a policy's hour-of-week profile counts
MIN_QUEUE_SERVICES = 5.0  # decayed services before a queue gets a forecast
MISS_BUCKETS = (1, 3, 6, 11, 21, 51, 101)  # a queue alert when the forecast changes bucket
MAX_FORECAST_STEPS = 24

MIN_REACHED = 5.0  # cycles that ran as long as the target before its probabilities count
REASON_OK, REASON_PAUSED, REASON_BREACHED, REASON_HISTORY, REASON_SPAN = 0, 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class Prediction:
    """A running metric judged likely to breach while its deadline is still ``lead`` away."""

    key: TicketKey
    metric: Metric
    cycle: int
    at_us: int
    probability: float
    deadline_us: int
    expected_met_us: int | None  # median of the time to met; None: beyond what was ever seen
    queue: str
    position: int  # 1 = longest waiting of its queue and metric
    backlog: int
    reason: str
    history_probability: float  # from the group's history alone
    week_factor: float  # W: service expected before the deadline, relative to usual
    calibration: float  # the correction learnt from outcomes (1: none yet)

    def details(self) -> dict[str, Any]:
        return {
            "probability": self.probability,
            "history_probability": self.history_probability,
            "week_factor": self.week_factor,
            "calibration": self.calibration,
            "expected_breach_us": self.deadline_us,
            "expected_met_us": self.expected_met_us,
            "queue": self.queue,
            "position": self.position,
            "backlog": self.backlog,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class LearntCycle:
    """One cycle of a ticket that left memory (closed, or evicted when idle), as the predictor
    counted it. The daemon keeps these in its state file, so a restart does not forget what the
    model learnt from tickets whose events are gone."""

    ticket_id: str
    metric: Metric
    cycle: int
    policy: str
    priority: str
    queue: str
    started_us: int
    ended_us: int | None  # None: never met
    elapsed_us: int  # business time used


def learnt_cycles(replay: TicketReplay) -> list[LearntCycle]:
    """The cycles of a ticket's replay, to be remembered once its events are gone."""
    policy = replay.policy
    if policy is None:
        return []
    queue, priority = _queue_and_priority(replay, policy)
    return [
        LearntCycle(
            replay.ticket_id,
            clock.metric,
            cycle.number,
            policy.name,
            priority,
            queue,
            cycle.start,
            cycle.ended,
            cycle.elapsed,
        )
        for clock in replay.clocks
        for cycle in clock.cycles
    ]


def _queue_and_priority(replay: TicketReplay, policy: SlaPolicy) -> tuple[str, str]:
    queue = replay.fields.get("queue") or policy.name
    priority = (replay.fields.get("priority") or "").lower() or "(none)"
    return queue, priority


@dataclass(frozen=True, slots=True)
class Assessment:
    """The risk of one running metric, or why there is none."""

    key: TicketKey
    metric: Metric
    cycle: int
    probability: float | None
    deadline_us: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class QueueForecast:
    """One queue and metric over the horizon. Rates are per wall-clock hour, averaged over the
    window the horizon covers; ``unknown`` says why there are no figures."""

    source: str
    queue: str
    metric: Metric
    at_us: int
    backlog: int
    arrivals_per_hour: float
    throughput_per_hour: float
    forecast: tuple[tuple[int, float], ...]  # (instant µs, expected backlog)
    will_miss: int  # waiting cycles whose deadline comes before their turn
    needed_rise_per_hour: float
    unknown: str = ""

    @property
    def trend(self) -> str:
        if self.unknown or not self.forecast:
            return "unknown"
        end = self.forecast[-1][1]
        margin = max(1.0, 0.1 * self.backlog)
        if end > self.backlog + margin:
            return "rising"
        if end < self.backlog - margin:
            return "falling"
        return "steady"


@dataclass(frozen=True, slots=True)
class QueueAlert:
    """A queue's forecast changed materially. ``key`` is its durable identity: one message per
    queue, local day and miss bucket."""

    key: str
    source: str
    queue: str
    at_us: int
    summary: str
    will_miss: int


@dataclass
class TickResult:
    predictions: list[Prediction]
    alerts: list[QueueAlert]


class _Rows:
    """Open cycles as columns. A slot is reused once its cycle ends."""

    INT64 = ("since", "elapsed0", "target", "start", "deadline")
    INT32 = ("cycle", "gid", "qm", "pm", "cal", "metric", "ticket")

    def __init__(self) -> None:
        self.capacity = 0
        self.count = 0
        self.free: list[int] = []
        self.used: Bools = np.zeros(0, np.bool_)
        self.warned: Bools = np.zeros(0, np.bool_)
        self.dormant: Bools = np.zeros(0, np.bool_)  # breached or too late: wait for news
        self.reopened: Bools = np.zeros(0, np.bool_)
        self.since: Ints = np.zeros(0, np.int64)
        self.elapsed0: Ints = np.zeros(0, np.int64)
        self.target: Ints = np.zeros(0, np.int64)
        self.start: Ints = np.zeros(0, np.int64)
        self.deadline: Ints = np.zeros(0, np.int64)  # NOT_SET while paused or breached
        self.cycle: npt.NDArray[np.int32] = np.zeros(0, np.int32)
        self.gid: npt.NDArray[np.int32] = np.zeros(0, np.int32)
        self.qm: npt.NDArray[np.int32] = np.zeros(0, np.int32)
        self.pm: npt.NDArray[np.int32] = np.zeros(0, np.int32)
        self.cal: npt.NDArray[np.int32] = np.zeros(0, np.int32)
        self.metric: npt.NDArray[np.int32] = np.zeros(0, np.int32)
        self.ticket: npt.NDArray[np.int32] = np.zeros(0, np.int32)

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


@dataclass(frozen=True, slots=True)
class _Fresh:
    """A cycle as it was when first seen, judged at the next tick at that instant (it may have
    ended since: a daemon would have judged it at once)."""

    key: TicketKey
    slot: int
    metric: int
    cycle: int
    since: int
    elapsed0: int
    target: int
    gid: int
    qm: int
    pm: int
    cal: int
    start: int
    seen: int


@dataclass
class _Queue:
    source: str
    name: str
    metric: Metric
    calendar: int
    zone: int
    arrivals: int  # series in the arrivals table
    services: int  # series in the services table


@dataclass
class _PolicyMetric:
    calendar: int
    zone: int
    services: int
    open_share: Floats


class BreachPredictor:
    def __init__(self, policies: Sequence[SlaPolicy], settings: PredictSettings) -> None:
        self.settings = settings
        self.half_life_us = settings.half_life.total_seconds() * US
        targets: set[float] = set()
        for policy in policies:
            for rule in policy.metrics:
                for target in (*rule.targets.values(), rule.default):
                    if target is not None:
                        targets.add(target.total_seconds())
        self.survival = SurvivalModel(targets, self.half_life_us)
        self._policies = {policy.name: policy for policy in policies}
        self.calibration = Calibration(self.half_life_us)
        self.rows = _Rows()
        self._tickets: dict[TicketKey, int] = {}  # key -> ticket number
        self._ticket_keys: list[TicketKey | None] = []
        self._free_tickets: list[int] = []
        # Per ticket number and metric: the row's slot (-1: none) and the last cycle counted.
        self._slot: npt.NDArray[np.int32] = np.zeros((0, len(METRICS)), np.int32)
        self._counted: npt.NDArray[np.int32] = np.zeros((0, len(METRICS)), np.int32)
        self._fresh: list[_Fresh] = []
        self.calendars: list[BusinessCalendar] = []
        self._calendar_ids: dict[int, int] = {}
        self._zones: list[ZoneInfo] = []
        self._zone_ids: dict[str, int] = {}
        self._exposures: list[WeekExposure] = []
        self._queues: list[_Queue] = []
        self._queue_ids: dict[tuple[str, str, Metric], int] = {}
        self._pms: list[_PolicyMetric] = []
        self._pm_ids: dict[tuple[str, Metric], int] = {}
        self.arrivals = WeeklyCounts(self.half_life_us)
        self.services = WeeklyCounts(self.half_life_us)
        self.pm_services = WeeklyCounts(self.half_life_us)
        # Factors as of the last refresh, indexed by queue (qm) or policy × metric (pm) id.
        self._pm_rates: Floats = np.zeros((0, HOURS_PER_WEEK))
        self._pm_cumulated: Floats = np.zeros((0, HOURS_PER_WEEK + 1))
        self._pm_business_rate: Floats = np.zeros(0)
        self._pm_offset_s: Floats = np.zeros(0)
        self._pm_profiled: Bools = np.zeros(0, np.bool_)
        self.refreshed_at: int | None = None
        self._earliest_us: int | None = None  # the first arrival seen: rates count from it
        self._factors_at: int | None = None
        self._changed = True  # rows changed since the last full evaluation
        self._lead_us = int(settings.lead.total_seconds() * US)
        self.next_call_us: int | None = None  # the next instant a deadline is ``lead`` away
        self._judged_at: int | None = None
        self._positions_seen: list[int] = []  # business position of each calendar then
        self._last_active: _Risk | None = None
        self._last_bucket: dict[tuple[str, str], int] = {}
        self.forecasts: list[QueueForecast] = []

    # ------------------------------------------------------------------ feeding

    def __len__(self) -> int:
        return self.rows.count

    def observe(self, key: TicketKey, replay: TicketReplay, now_us: int) -> None:
        """Bring the rows of one ticket up to date with its replay (after new events)."""
        if not self.settings.enabled:
            return
        policy = replay.policy
        number = self._tickets.get(key)
        self._changed = True
        if policy is None or not replay.clocks:
            if number is not None:
                self._drop_rows(number)
            return
        if number is None:
            number = self._new_ticket(key)
        queue, priority = _queue_and_priority(replay, policy)
        present = set()
        for clock in replay.clocks:
            m = METRICS.index(clock.metric)
            present.add(m)
            cycles = clock.cycles
            slot = int(self._slot[number, m])
            gid = self.survival.group(clock.metric.value, policy.name, priority, queue)
            cal = self._calendar_id(clock.calendar)
            qm = self._queue_id(key[0], queue, clock.metric, cal)
            pm = self._pm_id(policy.name, clock.metric, cal)
            if slot >= 0:
                n = int(self.rows.cycle[slot])
                cycle = cycles[n] if n < len(cycles) else None
                if cycle is not None and cycle.ended is not None:
                    self._finish(slot, cycle.elapsed, cycle.ended)
                if cycle is None or cycle.ended is not None or cycle is not clock.current:
                    self._drop(number, m)
                    slot = -1
            counted = int(self._counted[number, m])
            for n in range(counted + 1, len(cycles)):
                cycle = cycles[n]
                self.arrivals.observe(self._queues[qm].arrivals, cycle.start)
                if self._earliest_us is None or cycle.start < self._earliest_us:
                    self._earliest_us = cycle.start
                if cycle.ended is not None:  # started and ended between two looks
                    self._count_finished(gid, qm, pm, cycle.elapsed, cycle.ended)
                elif slot < 0:
                    slot = self._register(number, m, n, cycle.start, now_us, reopened=False)
                self._counted[number, m] = n
            current = clock.current
            if current is None or current.ended is not None:
                continue
            if slot < 0:  # a reopened cycle (counted already, running again)
                slot = self._register(number, m, current.number, current.start, now_us, True)
            rows = self.rows
            since = current.since if current.since is not None else NOT_SET
            rows.gid[slot], rows.qm[slot], rows.pm[slot], rows.cal[slot] = gid, qm, pm, cal
            if (
                rows.since[slot] != since
                or rows.elapsed0[slot] != current.elapsed
                or rows.target[slot] != clock.target
                or rows.deadline[slot] == 0
            ):
                rows.dormant[slot] = False
                rows.since[slot] = since
                rows.elapsed0[slot] = current.elapsed
                rows.target[slot] = clock.target
                deadline = NOT_SET
                if current.since is not None and current.elapsed <= clock.target:
                    deadline = clock.calendar.add_us(current.since, clock.target - current.elapsed)
                    self._schedule_call(deadline - self._lead_us)
                rows.deadline[slot] = deadline
            if self._fresh and self._fresh[-1].slot == slot and self._fresh[-1].seen == now_us:
                self._fresh[-1] = self._snapshot(key, slot, now_us)
        for m in range(len(METRICS)):
            if m not in present and self._slot[number, m] >= 0:
                self._drop(number, m)

    def remember(self, source: str, cycles: Iterable[LearntCycle]) -> int:
        """Count the cycles of tickets that left memory before a restart as ``observe`` counted
        them: an arrival each, the met ones in the life tables and service rates. Cycles of a
        policy or metric no longer configured are passed over. Returns how many counted."""
        if not self.settings.enabled:
            return 0
        groups: dict[tuple[str, Metric, str, str], list[LearntCycle]] = {}
        for c in cycles:
            groups.setdefault((c.policy, c.metric, c.priority, c.queue), []).append(c)
        counted = 0
        for (name, metric, priority, queue), members in groups.items():
            policy = self._policies.get(name)
            rules = policy.metrics if policy is not None else ()
            rule = next((r for r in rules if r.metric is metric), None)
            if rule is None:
                continue
            cal = self._calendar_id(rule.calendar)
            qm = self._queue_id(source, queue, metric, cal)
            starts = np.array([c.started_us for c in members], np.int64)
            self.arrivals.observe_many(self._queues[qm].arrivals, starts)
            first = int(starts.min())
            if self._earliest_us is None or first < self._earliest_us:
                self._earliest_us = first
            met = [c for c in members if c.ended_us is not None]
            if met:
                gid = self.survival.group(metric.value, name, priority, queue)
                pm = self._pm_id(name, metric, cal)
                ended = np.array([c.ended_us for c in met], np.int64)
                elapsed_s = np.array([c.elapsed_us for c in met], np.float64) / US
                self.survival.add_finished_many(gid, elapsed_s, ended)
                self.services.observe_many(self._queues[qm].services, ended)
                self.pm_services.observe_many(self._pms[pm].services, ended)
            counted += len(members)
        self._changed = True
        return counted

    def forget_source(self, source: str) -> None:
        for key in [k for k in self._tickets if k[0] == source]:
            self.forget(key)

    def reconfigure(self, settings: PredictSettings) -> bool:
        """Take new settings (a reload), keeping what was learnt. False when they change how
        history is weighed (``half_life``): the owner then starts a new predictor."""
        if settings.half_life != self.settings.half_life:
            return False
        self.settings = settings
        self._lead_us = int(settings.lead.total_seconds() * US)
        self._changed = True
        self.next_call_us = None
        self._judged_at = None
        return True

    def queue_figures(self) -> list[tuple[str, str, str, float, float, float, float, int, bool]]:
        """The latest queue forecasts as plain figures (for the metrics endpoint)."""
        return [
            (
                f.source,
                f.queue,
                f.metric.value,
                float(f.backlog),
                f.arrivals_per_hour,
                f.throughput_per_hour,
                f.forecast[-1][1] if f.forecast else float(f.backlog),
                f.will_miss,
                not f.unknown,
            )
            for f in self.forecasts
        ]

    def _schedule_call(self, at_us: int) -> None:
        if self._judged_at is not None and at_us <= self._judged_at:
            return
        if self.next_call_us is None or at_us < self.next_call_us:
            self.next_call_us = at_us

    def forget(self, key: TicketKey) -> None:
        """The ticket left the book: its open rows go without counting as met."""
        number = self._tickets.pop(key, None)
        if number is None:
            return
        self._changed = True
        self._drop_rows(number)
        self._ticket_keys[number] = None
        self._free_tickets.append(number)

    def _new_ticket(self, key: TicketKey) -> int:
        if self._free_tickets:
            number = self._free_tickets.pop()
            self._ticket_keys[number] = key
        else:
            number = len(self._ticket_keys)
            self._ticket_keys.append(key)
            if number >= self._slot.shape[0]:
                grow = max(64, self._slot.shape[0])
                self._slot = np.vstack([self._slot, np.full((grow, len(METRICS)), -1, np.int32)])
                self._counted = np.vstack(
                    [self._counted, np.full((grow, len(METRICS)), -1, np.int32)]
                )
        self._slot[number] = -1
        self._counted[number] = -1
        self._tickets[key] = number
        return number

    def _register(
        self, number: int, m: int, cycle: int, start: int, now_us: int, reopened: bool
    ) -> int:
        rows = self.rows
        slot = rows.add()
        rows.ticket[slot] = number
        rows.metric[slot] = m
        rows.cycle[slot] = cycle
        rows.start[slot] = start
        rows.deadline[slot] = 0  # not computed yet
        rows.reopened[slot] = reopened
        self._slot[number, m] = slot
        key = self._ticket_keys[number]
        assert key is not None
        if self.refreshed_at is not None:  # before the first tick nothing can be judged
            self._fresh.append(_Fresh(key, slot, m, cycle, NOT_SET, 0, 0, 0, 0, 0, 0, 0, now_us))
        return slot

    def _snapshot(self, key: TicketKey, slot: int, seen: int) -> _Fresh:
        r = self.rows
        return _Fresh(
            key,
            slot,
            int(r.metric[slot]),
            int(r.cycle[slot]),
            int(r.since[slot]),
            int(r.elapsed0[slot]),
            int(r.target[slot]),
            int(r.gid[slot]),
            int(r.qm[slot]),
            int(r.pm[slot]),
            int(r.cal[slot]),
            int(r.start[slot]),
            seen,
        )

    def _finish(self, slot: int, elapsed_us: int, ended_us: int) -> None:
        r = self.rows
        qm, pm = int(r.qm[slot]), int(r.pm[slot])
        self.calibration.resolve(slot, elapsed_us > int(r.target[slot]), ended_us)
        if r.reopened[slot]:  # its first resolution is in the tables already
            self.services.observe(self._queues[qm].services, ended_us)
            self.pm_services.observe(self._pms[pm].services, ended_us)
            return
        self._count_finished(int(r.gid[slot]), qm, pm, elapsed_us, ended_us)

    def _count_finished(self, gid: int, qm: int, pm: int, elapsed_us: int, ended_us: int) -> None:
        self.survival.add_finished(gid, elapsed_us / US, ended_us)
        self.services.observe(self._queues[qm].services, ended_us)
        self.pm_services.observe(self._pms[pm].services, ended_us)

    def _drop(self, number: int, m: int) -> None:
        slot = int(self._slot[number, m])
        if slot >= 0:
            self.calibration.discard(slot)
            self.rows.drop(slot)
            self._slot[number, m] = -1

    def _drop_rows(self, number: int) -> None:
        for m in range(len(METRICS)):
            self._drop(number, m)

    # ------------------------------------------------------------------ ids

    def _calendar_id(self, calendar: BusinessCalendar) -> int:
        found = self._calendar_ids.get(id(calendar))
        if found is None:
            found = self._calendar_ids[id(calendar)] = len(self.calendars)
            self.calendars.append(calendar)
        return found

    def _zone_id(self, calendar: int) -> int:
        name = self.calendars[calendar].spec.timezone
        found = self._zone_ids.get(name)
        if found is None:
            found = self._zone_ids[name] = len(self._zones)
            zone = ZoneInfo(name)
            self._zones.append(zone)
            self._exposures.append(WeekExposure(zone, self.half_life_us))
        return found

    def _queue_id(self, source: str, queue: str, metric: Metric, calendar: int) -> int:
        found = self._queue_ids.get((source, queue, metric))
        if found is None:
            zone = self._zone_id(calendar)
            found = self._queue_ids[(source, queue, metric)] = len(self._queues)
            self._queues.append(
                _Queue(
                    source,
                    queue,
                    metric,
                    calendar,
                    zone,
                    self.arrivals.add_series(self._zones[zone]),
                    self.services.add_series(self._zones[zone]),
                )
            )
        return found

    def _pm_id(self, policy: str, metric: Metric, calendar: int) -> int:
        found = self._pm_ids.get((policy, metric))
        if found is None:
            zone = self._zone_id(calendar)
            found = self._pm_ids[(policy, metric)] = len(self._pms)
            self._pms.append(
                _PolicyMetric(
                    calendar,
                    zone,
                    self.pm_services.add_series(self._zones[zone]),
                    open_hours(self.calendars[calendar].spec),
                )
            )
        return found

    # ------------------------------------------------------------------ evaluation

    def tick(self, now_us: int, *, queues: bool = True, window_us: int = 0) -> TickResult:
        """Judge the cycles seen since the last tick, refresh the model, judge every running
        cycle at ``now_us``; with ``queues``, also forecast the queues and raise alerts.

        ``window_us``: the time to the next tick. A cycle whose deadline is less than ``lead``
        plus this away gets its last call now (the next tick would be too late); 0 when the
        owner calls ``last_calls`` at ``next_call_us`` itself (the backtest)."""
        if not self.settings.enabled:
            return TickResult([], [])
        predictions = self.judge_fresh(window_us)
        tables_at = self.survival.refreshed_at
        self._refresh(now_us)
        sample = self.survival.refreshed_at != tables_at  # new tables: note every probability
        positions = [calendar.position(now_us) for calendar in self.calendars]
        rows = self.rows
        cap = rows.capacity
        waiting = rows.used[:cap] & ~rows.warned[:cap] & ~rows.dormant[:cap]
        waiting &= rows.since[:cap] != NOT_SET
        moved = self._changed or positions != self._positions_seen
        if (moved and waiting.any()) or queues or sample or window_us:
            # Otherwise hardly a probability moved: no event, no business time passed (the
            # hour-of-week profiles, refreshed every 6 h, move slowly).
            active = self._active(now_us, everything=queues or sample)
            if sample:
                self._keep_score(active, now_us)
            predictions.extend(self._fire(active, None, window_us))
            self._changed = False
            self._positions_seen = positions
            if queues:
                self.forecasts = self._forecast(now_us, active)
            self._plan_calls(now_us)
        alerts = self._queue_alerts(now_us) if queues else []
        return TickResult(predictions, alerts)

    def last_calls(self, now_us: int, window_us: int = 0) -> list[Prediction]:
        """Judge the cycles whose deadline is ``lead`` away at ``now_us`` (within
        ``window_us`` after it; or less, not judged yet) with the current model: the last
        instant a warning still leaves ``lead`` to act. Called at ``next_call_us`` (the daemon
        a little before it, with that much window)."""
        if not self.settings.enabled:
            return []
        predictions = self.judge_fresh(window_us)
        r = self.rows
        cap = r.capacity
        due = r.used[:cap] & ~r.warned[:cap] & ~r.dormant[:cap] & (r.since[:cap] != NOT_SET)
        called = r.deadline[:cap] - self._lead_us <= now_us + window_us
        due &= (r.deadline[:cap] != NOT_SET) & called
        slots = np.flatnonzero(due)
        if slots.size:
            risk = self._risk(self._columns(slots, now_us))
            predictions.extend(self._fire(risk, None, window_us))
            r.dormant[slots] = True  # their last call is over
        self._plan_calls(now_us)
        return predictions

    def _plan_calls(self, now_us: int) -> None:
        """The next instant a waiting cycle's deadline will be ``lead`` away."""
        self._judged_at = now_us
        r = self.rows
        cap = r.capacity
        waiting = r.used[:cap] & ~r.warned[:cap] & ~r.dormant[:cap] & (r.since[:cap] != NOT_SET)
        calls = r.deadline[:cap][waiting & (r.deadline[:cap] != NOT_SET)] - self._lead_us
        calls = calls[calls > now_us]
        self.next_call_us = int(calls.min()) if calls.size else None

    def judge_fresh(self, window_us: int = 0) -> list[Prediction]:
        """Judge the cycles first seen since the last tick at the instant they were seen, with
        the model of the last tick (the daemon calls this right after new events)."""
        fresh, self._fresh = self._fresh, []
        if not fresh or self.refreshed_at is None:
            return []
        rows = self.rows
        keep = []
        live = []
        for f in fresh:
            if f.since == NOT_SET:
                continue
            number = self._tickets.get(f.key, -1)
            same = (
                number >= 0
                and self._slot[number, f.metric] == f.slot
                and rows.cycle[f.slot] == f.cycle
            )
            if same and rows.warned[f.slot]:
                continue
            keep.append(f)
            live.append(same)
        if not keep:
            return []
        cols = _Columns(
            slots=np.array([f.slot for f in keep], np.int64),
            metric=np.array([f.metric for f in keep], np.int64),
            cycle=np.array([f.cycle for f in keep], np.int64),
            start=np.array([f.start for f in keep], np.int64),
            live=np.array(live, np.bool_),
            since=np.array([f.since for f in keep], np.int64),
            elapsed0=np.array([f.elapsed0 for f in keep], np.int64),
            target=np.array([f.target for f in keep], np.int64),
            gid=np.array([f.gid for f in keep], np.int64),
            qm=np.array([f.qm for f in keep], np.int64),
            pm=np.array([f.pm for f in keep], np.int64),
            cal=np.array([f.cal for f in keep], np.int64),
            now=np.array([f.seen for f in keep], np.int64),
        )
        return self._fire(self._risk(cols), [f.key for f in keep], window_us)

    def assess(self, now_us: int) -> list[Assessment]:
        """The risk of every open metric at ``now_us`` with the current model, or why none."""
        cols = self._columns(np.flatnonzero(self.rows.used[: self.rows.capacity]), now_us)
        risk = self._risk(cols)
        out = []
        for i, slot in enumerate(cols.slots):
            key = self._ticket_keys[int(self.rows.ticket[slot])]
            assert key is not None
            p = float(risk.probability[i])
            code = int(risk.code[i])
            out.append(
                Assessment(
                    key,
                    METRICS[int(cols.metric[i])],
                    int(cols.cycle[i]),
                    p if code == REASON_OK and math.isfinite(p) else None,
                    int(risk.deadline[i]) if risk.deadline[i] != NOT_SET else None,
                    self._unknown_reason(code, int(cols.gid[i])),
                )
            )
        return out

    def _unknown_reason(self, code: int, gid: int) -> str:
        if code == REASON_PAUSED:
            return "the clock is paused"
        if code == REASON_BREACHED:
            return "already breached"
        if code == REASON_SPAN:
            metric, policy, _, _ = self.survival.leaf_keys[gid]
            return (
                f"unknown: fewer than {MIN_REACHED:.0f} {metric} cycles of policy {policy} "
                "have run as long as the target so far"
            )
        if code == REASON_HISTORY:
            metric, policy, _, _ = self.survival.leaf_keys[gid]
            have = (
                float(self.survival.root_finished[gid])
                if gid < self.survival.root_finished.size
                else 0.0
            )
            return (
                f"unknown: {have:.0f} finished {metric} cycles of policy {policy} in the "
                f"history, predictions need {self.settings.min_history}"
            )
        return ""

    def _columns(self, slots: Ints, now_us: int) -> _Columns:
        r = self.rows
        return _Columns(
            slots=slots,
            metric=r.metric[slots].astype(np.int64),
            cycle=r.cycle[slots].astype(np.int64),
            start=r.start[slots],
            live=np.ones(slots.size, np.bool_),
            since=r.since[slots],
            elapsed0=r.elapsed0[slots],
            target=r.target[slots],
            gid=r.gid[slots].astype(np.int64),
            qm=r.qm[slots].astype(np.int64),
            pm=r.pm[slots].astype(np.int64),
            cal=r.cal[slots].astype(np.int64),
            now=np.full(slots.size, now_us, np.int64),
            deadline=r.deadline[slots],
        )

    def _active(self, now_us: int, *, everything: bool) -> _Risk:
        """The running cycles that may still be warned (``everything``: all running ones, for
        the queue forecasts); cycles found breached or too close to their deadline rest until
        their ticket changes."""
        r = self.rows
        cap = r.capacity
        running = r.used[:cap] & (r.since[:cap] != NOT_SET)
        if not everything:
            running &= ~r.warned[:cap] & ~r.dormant[:cap]
        risk = self._risk(self._columns(np.flatnonzero(running), now_us))
        late = (risk.code == REASON_BREACHED) | (
            (risk.code == REASON_OK) & (risk.deadline - risk.columns.now < self._lead_us)
        )
        r.dormant[risk.columns.slots[late]] = True
        r.deadline[risk.columns.slots] = risk.deadline
        return risk

    def _keep_score(self, active: _Risk, now_us: int) -> None:
        """Note the probability of every running metric; settle the ones found breached."""
        c = active.columns
        ok = active.code == REASON_OK
        self.calibration.sample(c.slots[ok], c.pm[ok], active.raw[ok])
        for slot in c.slots[(active.code == REASON_BREACHED) & c.live].tolist():
            if self.calibration.waiting(slot):
                self.calibration.resolve(slot, True, now_us)

    def _risk(self, c: _Columns) -> _Risk:
        n = c.slots.size
        if n == 0:
            nothing = np.zeros(0)
            return _Risk(
                c,
                c.elapsed0,
                c.elapsed0,
                np.zeros(0, np.int8),
                nothing,
                nothing,
                nothing,
                nothing,
            )
        running = c.since != NOT_SET
        elapsed = c.elapsed0.copy()
        deadline = np.full(n, NOT_SET, np.int64)
        known_deadline = c.deadline
        for cal in np.unique(c.cal[running]):
            rows = np.flatnonzero(running & (c.cal == cal))
            calendar = self.calendars[int(cal)]
            elapsed[rows] += calendar.elapsed_many(c.since[rows], c.now[rows])
            left = c.target[rows] - c.elapsed0[rows]
            ok = left >= 0
            if known_deadline is not None:  # kept by observe while the clock is unchanged
                deadline[rows[ok]] = known_deadline[rows[ok]]
            else:
                deadline[rows[ok]] = calendar.add_many(c.since[rows[ok]], left[ok])
        code = np.full(n, REASON_OK, np.int8)
        code[~running] = REASON_PAUSED
        code[running & ((elapsed > c.target) | (deadline == NOT_SET))] = REASON_BREACHED
        survival = self.survival
        in_table = c.gid < survival.root_finished.size
        enough = np.zeros(n, np.bool_)
        enough[in_table] = survival.root_finished[c.gid[in_table]] >= self.settings.min_history
        code[(code == REASON_OK) & ~enough] = REASON_HISTORY
        check = np.flatnonzero(code == REASON_OK)
        if check.size:
            reached = survival.reached(c.gid[check], c.target[check] / US)
            code[check[reached < MIN_REACHED]] = REASON_SPAN
        ok = code == REASON_OK
        base = np.full(n, np.nan)
        week = np.ones(n)
        probability = np.full(n, np.nan)
        raw = np.full(n, np.nan)
        if ok.any():
            idx = np.flatnonzero(ok)
            gid = c.gid[idx]
            target_s = c.target[idx] / US
            elapsed_s = elapsed[idx] / US
            hazard_left = survival.cumulative(gid, target_s) - survival.cumulative(gid, elapsed_s)
            hazard_left = np.maximum(hazard_left, 0.0)
            base[idx] = np.exp(-hazard_left)
            week[idx] = self._week_factor(
                c.pm[idx], c.now[idx], deadline[idx], target_s - elapsed_s
            )
            raw[idx] = np.exp(-hazard_left * week[idx])
            calibrated = self.calibration.apply(c.pm[idx], raw[idx])
            probability[idx] = np.minimum(calibrated, MAX_PROBABILITY)  # never certain
        bad = ok & ~np.isfinite(probability)
        code[bad] = REASON_HISTORY
        return _Risk(c, elapsed, deadline, code, probability, raw, base, week)

    def _week_factor(self, pm: Ints, now: Ints, deadline: Ints, business_left_s: Floats) -> Floats:
        factor = np.ones(pm.size)
        known = pm < self._pm_profiled.size
        known[known] &= self._pm_profiled[pm[known]]
        if not known.any():
            return factor
        p = pm[known]
        offset = self._pm_offset_s[p]
        expected = integrate(
            self._pm_rates,
            self._pm_cumulated,
            p,
            week_position(now[known], offset),
            week_position(deadline[known], offset),
        )
        usual = self._pm_business_rate[p] * business_left_s[known] / 3600.0
        ratio = np.divide(expected, usual, out=np.ones(p.size), where=usual > 0)
        factor[known] = np.clip(ratio, *WEEK_LIMITS)
        return factor

    def _fire(self, risk: _Risk, keys: list[TicketKey] | None, window_us: int) -> list[Prediction]:
        """Predictions for the rows to warn now; each row is warned once. A row is warned as
        soon as its probability reaches ``early``, or at its last call — the deadline ``lead``
        away, within ``window_us`` — when it reaches ``threshold``. ``keys``: the tickets of
        the rows (fresh rows), else the rows' own."""
        c = risk.columns
        rows = self.rows
        ahead = risk.deadline - c.now
        last_call = ahead < self._lead_us + max(window_us, 1)
        fire = (
            (risk.code == REASON_OK)
            & (ahead >= self._lead_us)
            & (
                (risk.probability >= self.settings.early)
                | (last_call & (risk.probability >= self.settings.threshold))
            )
            & ~(rows.warned[c.slots] & c.live)
        )
        chosen = np.flatnonzero(fire)
        if chosen.size == 0:
            return []
        position, backlog = self._positions(c.qm[chosen], c.start[chosen])
        out = []
        for k, i in enumerate(chosen):
            slot = int(c.slots[i])
            if c.live[i]:
                rows.warned[slot] = True
            if keys is not None:
                key: TicketKey | None = keys[i]
            else:
                key = self._ticket_keys[int(rows.ticket[slot])]
            assert key is not None
            qm = int(c.qm[i])
            out.append(
                Prediction(
                    key=key,
                    metric=METRICS[int(c.metric[i])],
                    cycle=int(c.cycle[i]),
                    at_us=int(c.now[i]),
                    probability=float(risk.probability[i]),
                    deadline_us=int(risk.deadline[i]),
                    expected_met_us=self._expected_met(risk, int(i)),
                    queue=self._queues[qm].name,
                    position=position[k],
                    backlog=backlog[k],
                    reason=self._reason(risk, int(i), position[k], backlog[k]),
                    history_probability=_finite(risk.base[i]),
                    week_factor=_finite(risk.week[i]),
                    calibration=_finite(risk.probability[i] / max(risk.raw[i], 1e-12)),
                )
            )
        return out

    def _positions(self, qms: Ints, starts: Ints) -> tuple[list[int], list[int]]:
        """Place in queue (by start, among open cycles of the same queue and metric) and the
        queue's backlog, for each (queue, start)."""
        r = self.rows
        cap = r.capacity
        used = np.flatnonzero(r.used[:cap])
        order = used[np.lexsort((r.start[used], r.qm[used]))]
        sorted_qm = r.qm[order]
        sorted_start = r.start[order]
        positions = np.zeros(qms.size, np.int64)
        backlogs = np.zeros(qms.size, np.int64)
        for qm in np.unique(qms):
            lo = int(np.searchsorted(sorted_qm, qm, side="left"))
            hi = int(np.searchsorted(sorted_qm, qm, side="right"))
            mine = qms == qm
            backlogs[mine] = hi - lo
            positions[mine] = np.searchsorted(sorted_start[lo:hi], starts[mine], side="left") + 1
        return positions.tolist(), backlogs.tolist()

    def _expected_met(self, risk: _Risk, i: int) -> int | None:
        c = risk.columns
        factor = float(risk.week[i])
        gid = int(c.gid[i])
        elapsed = np.array([risk.elapsed[i] / US])
        start = float(self.survival.cumulative(np.array([gid]), elapsed)[0])
        seconds = self.survival.time_at(gid, start + math.log(2.0) / max(factor, 1e-9))
        if seconds is None:
            return None
        calendar = self.calendars[int(c.cal[i])]
        left = max(0, int(seconds * US) - int(c.elapsed0[i]))
        return calendar.add_us(int(c.since[i]), left)

    def _reason(self, risk: _Risk, i: int, position: int, backlog: int) -> str:
        c = risk.columns
        metric, _, priority, queue = self.survival.leaf_keys[int(c.gid[i])]
        elapsed = _span(risk.elapsed[i] / US)
        target = _span(c.target[i] / US)
        parts = [
            f"{_percent(risk.base[i])} of similar {metric.replace('_', ' ')} cycles (queue "
            f"{queue}, priority {priority}) still open after {elapsed} went past {target}"
        ]
        parts.append(f"place {position} of {backlog} waiting in {queue}")
        week = float(risk.week[i])
        if abs(week - 1.0) > 0.2:
            parts.append(f"{_percent(week)} of the usual service expected before the deadline")
        return "; ".join(parts)

    # ------------------------------------------------------------------ refresh

    def _refresh(self, now_us: int) -> bool:
        """Bring the model up to ``now_us`` where it is due; True if anything was rebuilt."""
        for exposure in self._exposures:
            if exposure.at is None and self._earliest_us is not None:
                exposure.advance(min(self._earliest_us, now_us))  # history loaded at start
            exposure.advance(now_us)
        survival = self.survival
        age = now_us - (survival.refreshed_at or now_us)
        stale = (
            survival.refreshed_at is None
            or (age >= TABLE_REFRESH_US and survival.news > 0)
            or age >= QUIET_REFRESH_US
        )
        new_groups = survival.cum_hazard.shape[0] < survival.groups and age >= NEW_GROUP_REFRESH_US
        rebuilt = False
        if stale or new_groups:
            rebuilt = True
            r = self.rows
            slots = np.flatnonzero(r.used[: r.capacity])
            cols = self._columns(slots, now_us)
            elapsed = cols.elapsed0.copy()
            running = cols.since != NOT_SET
            for cal in np.unique(cols.cal[running]) if slots.size else ():
                sub = np.flatnonzero(running & (cols.cal == cal))
                elapsed[sub] += self.calendars[int(cal)].elapsed_many(
                    cols.since[sub], cols.now[sub]
                )
            survival.refresh(now_us, cols.gid, elapsed / US)
        due = self._factors_at is None or now_us - self._factors_at >= FACTOR_REFRESH_US
        if rebuilt or due or self._pm_profiled.size < len(self._pms):
            self._refresh_profiles(now_us)
            self._factors_at = now_us
            rebuilt = True
        self.refreshed_at = now_us
        return rebuilt

    def _backlogs(self) -> Ints:
        r = self.rows
        used = r.used[: r.capacity]
        counts: Ints = np.bincount(r.qm[: r.capacity][used], minlength=len(self._queues)).astype(
            np.int64
        )
        return counts

    def _refresh_profiles(self, now_us: int) -> None:
        if not self._pms:
            return
        counts = self.pm_services.counts_at(now_us)
        zones = np.array([pm.zone for pm in self._pms], np.int64)
        hours = np.stack([e.hours_at(now_us) for e in self._exposures])[zones]
        per_hour = rates(counts, hours)
        share = np.stack([pm.open_share for pm in self._pms])
        with np.errstate(divide="ignore", invalid="ignore"):
            business = (per_hour * share).sum(axis=1) / np.maximum(share.sum(axis=1), 1e-12)
        self._pm_rates = per_hour
        self._pm_cumulated = cumulative(per_hour)
        self._pm_business_rate = business
        self._pm_profiled = (counts.sum(axis=1) >= MIN_PROFILE_SERVICES) & (business > 0)
        moment = datetime.fromtimestamp(now_us / US, UTC)
        offsets = [moment.astimezone(z).utcoffset() or timedelta(0) for z in self._zones]
        self._pm_offset_s = np.array([offsets[z].total_seconds() for z in zones], np.float64)

    # ------------------------------------------------------------------ queues

    def _forecast(self, now_us: int, active: _Risk) -> list[QueueForecast]:
        queues = self._queues
        if not queues:
            return []
        q = len(queues)
        zones = np.array([x.zone for x in queues], np.int64)
        hours = np.stack([e.hours_at(now_us) for e in self._exposures])[zones]
        arrival_counts = self.arrivals.counts_at(now_us)[[x.arrivals for x in queues]]
        service_counts = self.services.counts_at(now_us)[[x.services for x in queues]]
        arrive = rates(arrival_counts, hours)
        serve = rates(service_counts, hours)
        arrive_cum, serve_cum = cumulative(arrive), cumulative(serve)
        moment = datetime.fromtimestamp(now_us / US, UTC)
        offsets = np.array(
            [
                (moment.astimezone(self._zones[z]).utcoffset() or timedelta(0)).total_seconds()
                for z in zones
            ]
        )
        horizon_us = int(self.settings.horizon.total_seconds() * US)
        steps = min(MAX_FORECAST_STEPS, max(1, math.ceil(horizon_us / US_PER_HOUR)))
        # Instants of each step of the horizon (business time on each queue's calendar).
        points = np.zeros((q, steps + 1), np.int64)
        points[:, 0] = now_us
        calendars = np.array([x.calendar for x in queues], np.int64)
        for cal in np.unique(calendars):
            sub = np.flatnonzero(calendars == cal)
            calendar = self.calendars[int(cal)]
            for k in range(1, steps + 1):
                points[sub, k] = calendar.add_many(
                    np.full(sub.size, now_us, np.int64),
                    np.full(sub.size, horizon_us * k // steps, np.int64),
                )
        series = np.arange(q)
        backlog = self._backlogs()[:q].astype(np.float64)
        level = backlog.copy()
        path = []
        total_in = np.zeros(q)
        total_out = np.zeros(q)
        for k in range(steps):
            a = week_position(points[:, k], offsets)
            b = week_position(points[:, k + 1], offsets)
            inflow = integrate(arrive, arrive_cum, series, a, b)
            outflow = np.minimum(integrate(serve, serve_cum, series, a, b), level + inflow)
            total_in += inflow
            total_out += integrate(serve, serve_cum, series, a, b)
            level = np.maximum(level + inflow - outflow, 0.0)
            path.append(level.copy())
        window_h = np.maximum((points[:, -1] - now_us) / US_PER_HOUR, 1e-9)
        arrivals_per_hour = total_in / window_h
        throughput = total_out / window_h
        will_miss, needed = self._misses(active, points[:, -1], throughput, now_us, q)
        seen_services = service_counts.sum(axis=1)
        out = []
        for i, x in enumerate(queues):
            unknown = ""
            if seen_services[i] <= 0.0:
                unknown = f"no {_words(x.metric)} seen yet in queue {x.name}"
            elif seen_services[i] < MIN_QUEUE_SERVICES:
                unknown = (
                    f"only {seen_services[i]:.0f} {_words(x.metric)} seen in queue {x.name}, "
                    f"a forecast needs {MIN_QUEUE_SERVICES:.0f}"
                )
            out.append(
                QueueForecast(
                    source=x.source,
                    queue=x.name,
                    metric=x.metric,
                    at_us=now_us,
                    backlog=int(backlog[i]),
                    arrivals_per_hour=_finite(arrivals_per_hour[i]),
                    throughput_per_hour=_finite(throughput[i]),
                    forecast=tuple(
                        (int(points[i, k + 1]), _finite(path[k][i])) for k in range(steps)
                    ),
                    will_miss=int(will_miss[i]),
                    needed_rise_per_hour=_finite(needed[i]),
                    unknown=unknown,
                )
            )
        return out

    @staticmethod
    def _misses(
        active: _Risk, window_end: Ints, throughput: Floats, now_us: int, q: int
    ) -> tuple[Ints, Floats]:
        """Waiting cycles, served in deadline order at the forecast throughput, whose deadline
        (within the horizon) comes before their turn; and the extra throughput that would
        serve each of them in time."""
        c = active.columns
        qm = np.minimum(c.qm, q - 1)
        waiting = np.isin(active.code, (REASON_OK, REASON_HISTORY, REASON_SPAN))
        due = waiting & (active.deadline > now_us) & (c.qm < q)
        due &= active.deadline <= window_end[qm]
        idx = np.flatnonzero(due)
        will_miss = np.zeros(q, np.int64)
        needed = np.zeros(q)
        if idx.size == 0:
            return will_miss, needed
        order = idx[np.lexsort((active.deadline[idx], qm[idx]))]
        groups = qm[order]
        first = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        rank = np.arange(order.size) - np.repeat(first, np.diff(np.r_[first, order.size])) + 1
        hours_left = (active.deadline[order] - now_us) / US_PER_HOUR
        rate = throughput[groups]
        with np.errstate(divide="ignore", invalid="ignore"):
            turn = np.where(rate > 0, rank / rate, np.inf)
            need = rank / np.maximum(hours_left, 1.0 / 60.0)
        np.add.at(will_miss, groups, (turn > hours_left).astype(np.int64))
        np.maximum.at(needed, groups, need)
        rise = np.maximum(needed - throughput, 0.0)
        rise[will_miss == 0] = 0.0
        return will_miss, rise

    def _queue_alerts(self, now_us: int) -> list[QueueAlert]:
        by_queue: dict[tuple[str, str], list[QueueForecast]] = {}
        for f in self.forecasts:
            if not f.unknown:
                by_queue.setdefault((f.source, f.queue), []).append(f)
        alerts = []
        for (source, queue), forecasts in by_queue.items():
            misses = sum(f.will_miss for f in forecasts)
            bucket = sum(misses >= b for b in MISS_BUCKETS)
            last = self._last_bucket.get((source, queue), 0)
            self._last_bucket[(source, queue)] = bucket
            if bucket == last or (bucket < last and bucket > 0):
                continue
            forecasts.sort(key=lambda f: (-f.will_miss, METRICS.index(f.metric)))
            lead = forecasts[0]
            zone = self._zones[self._queues[self._queue_ids[(source, queue, lead.metric)]].zone]
            day = datetime.fromtimestamp(now_us / US, zone).date().isoformat()
            alerts.append(
                QueueAlert(
                    key=f"queue/{source}/{queue}/{day}/{bucket}",
                    source=source,
                    queue=queue,
                    at_us=now_us,
                    summary=queue_summary(queue, forecasts, self.settings.horizon),
                    will_miss=misses,
                )
            )
        return alerts


@dataclass(frozen=True)
class _Columns:
    slots: Ints
    metric: Ints
    cycle: Ints
    start: Ints
    live: Bools  # the slot still holds this cycle
    since: Ints
    elapsed0: Ints
    target: Ints
    gid: Ints
    qm: Ints
    pm: Ints
    cal: Ints
    now: Ints
    deadline: Ints | None = None  # known deadlines of running rows (None: compute them)


@dataclass(frozen=True)
class _Risk:
    columns: _Columns
    elapsed: Ints
    deadline: Ints
    code: npt.NDArray[np.int8]
    probability: Floats  # calibrated
    raw: Floats  # before calibration
    base: Floats  # the history alone
    week: Floats


def queue_summary(queue: str, forecasts: Sequence[QueueForecast], horizon: timedelta) -> str:
    """'Support: backlog 42 and rising (arrivals 12/h, throughput 8/h); 9 tickets will miss
    first response within the next 4 business hours unless throughput rises by 4/h'."""
    lead = forecasts[0]
    text = (
        f"{queue}: backlog {lead.backlog} and {lead.trend} (arrivals "
        f"{_per_hour(lead.arrivals_per_hour)}, throughput {_per_hour(lead.throughput_per_hour)})"
    )
    within = f"within the next {format_duration(horizon)} of business time"
    at_risk = [f for f in forecasts if f.will_miss]
    if not at_risk:
        return f"{text}; no waiting ticket is forecast to miss its target {within}"
    first = at_risk[0]
    text += (
        f"; {first.will_miss} ticket{'s' if first.will_miss != 1 else ''} will miss "
        f"{first.metric.value.replace('_', ' ')} {within}"
    )
    if first.needed_rise_per_hour > 0:
        text += f" unless throughput rises by {_per_hour(first.needed_rise_per_hour)}"
    for other in at_risk[1:]:
        text += f"; {other.will_miss} will miss {other.metric.value.replace('_', ' ')}"
    return text


def _per_hour(value: float) -> str:
    if value >= 10:
        return f"{value:.0f}/h"
    return f"{value:.1f}/h"


def _percent(value: float) -> str:
    if not math.isfinite(value):
        return "?"
    return f"{100.0 * value:.0f}%"


def _span(seconds: float) -> str:
    """'45s', '3h20m': to the second below an hour, to the minute above."""
    step = 1 if seconds < 3600 else 60
    return format_duration(timedelta(seconds=round(seconds / step) * step))


def _finite(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def _words(metric: Metric) -> str:
    return {
        Metric.FIRST_RESPONSE: "first responses",
        Metric.NEXT_RESPONSE: "next responses",
        Metric.PERIODIC_UPDATE: "updates",
        Metric.RESOLUTION: "resolutions",
    }[metric]
