"""The board's index: every open SLA clock as one row of numpy columns.

A row holds what does not change until its ticket's next event: the instant its clock turns
to warning (``warn_at``) and to breached (``breach_at``) — both fixed while it runs, because a
running clock's deadline depends only on when it started running and what it had counted —
and the business time it had left when it was paused. State at any ``now`` is then two
comparisons per row, filters are masks over small integer codes, and the first page is one
``argpartition``: no ticket is evaluated again for a page view (100,000 tickets: a few ms).

``update`` replaces the rows of the tickets a step touched (their calendars' vectorised look-ups
once per step); ``next_change`` is the earliest instant a row changes state, so the live feed
wakes exactly then. Warning is the policy's first ladder level before the breach (75 % of the
target where the ladder has none). Pure: replays in, arrays out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from sladaemon.calendar import BusinessCalendar, from_us
from sladaemon.model import Metric, TicketKey
from sladaemon.sla.clocks import MetricClock
from sladaemon.sla.engine import TicketReplay

NEVER = np.iinfo(np.int64).max
ALWAYS = np.iinfo(np.int64).min
DEFAULT_WARNING = 0.75  # share of the target where a ladder has no level before the breach
PAUSED_KEY = NEVER // 2  # paused rows sort after running ones, by business time left

OK, WARNING, PREDICTED, BREACHED = 0, 1, 2, 3
STATE_NAMES = ("ok", "warning", "predicted", "breached")
FILTERS = ("source", "queue", "policy", "priority", "channel", "assignee", "metric")
_FIELDS = ("queue", "priority", "channel", "assignee")

Int64s = npt.NDArray[np.int64]


class Codes:
    """Strings as small integers, for one filter column."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._codes: dict[str, int] = {}

    def code(self, name: str) -> int:
        found = self._codes.get(name)
        if found is None:
            found = self._codes[name] = len(self.names)
            self.names.append(name)
        return found

    def find(self, name: str) -> int:
        return self._codes.get(name, -1)


@dataclass(frozen=True, slots=True)
class ClockRow:
    """What a row shows besides its columns."""

    key: TicketKey
    metric: Metric
    cycle: int
    target_us: int
    calendar: BusinessCalendar
    fields: Mapping[str, str]
    policy: str


@dataclass(frozen=True)
class Prediction:
    probability: float
    reason: str


@dataclass(frozen=True)
class Selection:
    """Rows of the board at ``now``: the first ``limit`` soonest-breach-first, the counts."""

    now_us: int
    rows: list[int]
    states: list[int]
    matching: int
    per_state: dict[str, int]


@dataclass
class BoardIndex:
    capacity: int = 1024
    rows: list[ClockRow | None] = field(default_factory=list, init=False)
    slots: dict[TicketKey, list[int]] = field(default_factory=dict, init=False)
    codes: dict[str, Codes] = field(default_factory=dict, init=False)
    predictions: dict[tuple[TicketKey, Metric, int], Prediction] = field(
        default_factory=dict, init=False
    )
    version: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._free: list[int] = []
        self._used = 0  # slots ever handed out (high-water mark)
        n = self.capacity
        self.warn_at: Int64s = np.full(n, NEVER, np.int64)
        self.breach_at: Int64s = np.full(n, NEVER, np.int64)
        self.left_paused: Int64s = np.zeros(n, np.int64)  # business µs left, while paused
        self.running = np.zeros(n, bool)
        self.alive = np.zeros(n, bool)
        self.predicted = np.zeros(n, bool)
        self.head = np.zeros(n, bool)  # the first row of its ticket (counts tickets)
        self.coded: dict[str, npt.NDArray[np.int32]] = {}
        for name in FILTERS:
            self.codes[name] = Codes()
            self.coded[name] = np.full(n, -1, np.int32)

    def __len__(self) -> int:
        return int(self.alive.sum())

    # ------------------------------------------------------------------ changes

    def update(
        self, touched: Mapping[TicketKey, TicketReplay], closed: Iterable[TicketKey]
    ) -> None:
        """The rows of every touched ticket built again (none for a closed one)."""
        gone = set(closed)
        for key in list(touched) + list(gone):
            for slot in self.slots.pop(key, ()):
                self._release(slot)
        new: list[tuple[int, MetricClock]] = []
        for key, replay in touched.items():
            if key in gone:
                continue
            for clock in replay.clocks:
                c = clock.current
                if c is None or c.ended is not None:
                    continue
                slot = self._take()
                mine = self.slots.setdefault(key, [])
                self.head[slot] = not mine
                mine.append(slot)
                policy = replay.policy.name if replay.policy else ""
                self.rows[slot] = ClockRow(
                    key, clock.metric, c.number, clock.target, clock.calendar, replay.fields,
                    policy,
                )  # fmt: skip
                self._code(slot, key[0], replay.fields, policy, clock.metric)
                self.predicted[slot] = (key, clock.metric, c.number) in self.predictions
                new.append((slot, clock))
        self._instants(new)
        self.version += 1

    def predict(self, key: TicketKey, metric: Metric, cycle: int, prediction: Prediction) -> None:
        """A predicted breach of one ticket metric's cycle (kept while the cycle is open)."""
        self.predictions[(key, metric, cycle)] = prediction
        for slot in self.slots.get(key, ()):
            row = self.rows[slot]
            if row is not None and row.metric is metric and row.cycle == cycle:
                self.predicted[slot] = True
                self.version += 1

    def _take(self) -> int:
        if self._free:
            return self._free.pop()
        if self._used == len(self.alive):
            self._grow()
        self._used += 1
        self.rows.append(None)
        return self._used - 1

    def _release(self, slot: int) -> None:
        row = self.rows[slot]
        if row is not None:
            self.predictions.pop((row.key, row.metric, row.cycle), None)
        self.rows[slot] = None
        self.alive[slot] = False
        self.predicted[slot] = False
        self.head[slot] = False
        self._free.append(slot)

    def _grow(self) -> None:
        n = len(self.alive)
        self.warn_at = np.concatenate([self.warn_at, np.full(n, NEVER, np.int64)])
        self.breach_at = np.concatenate([self.breach_at, np.full(n, NEVER, np.int64)])
        self.left_paused = np.concatenate([self.left_paused, np.zeros(n, np.int64)])
        self.running = np.concatenate([self.running, np.zeros(n, bool)])
        self.alive = np.concatenate([self.alive, np.zeros(n, bool)])
        self.predicted = np.concatenate([self.predicted, np.zeros(n, bool)])
        self.head = np.concatenate([self.head, np.zeros(n, bool)])
        for name, column in self.coded.items():
            self.coded[name] = np.concatenate([column, np.full(n, -1, np.int32)])

    def _code(
        self, slot: int, source: str, fields: Mapping[str, str], policy: str, metric: Metric
    ) -> None:
        values = {name: fields.get(name, "") for name in _FIELDS}
        values.update(source=source, policy=policy, metric=metric.value)
        for name, value in values.items():
            self.coded[name][slot] = self.codes[name].code(value)
        self.alive[slot] = True

    def _instants(self, new: list[tuple[int, MetricClock]]) -> None:
        """Warning and breach instants of new rows, by calendar (vectorised)."""
        groups: dict[int, list[tuple[int, MetricClock]]] = {}
        for slot, clock in new:
            groups.setdefault(id(clock.calendar), []).append((slot, clock))
        for members in groups.values():
            calendar = members[0][1].calendar
            slots = np.array([s for s, _ in members], np.intp)
            currents = [c.current for _, c in members]
            since = np.array([c.since if c and c.since is not None else ALWAYS for c in currents])
            elapsed = np.array([c.elapsed if c else 0 for c in currents], np.int64)
            target = np.array([c.target for _, c in members], np.int64)
            warn = np.array([_warning_threshold(c) for _, c in members], np.int64)
            breached = np.array([c.breached_at if c else None for c in currents], object)
            running = since != ALWAYS
            self.running[slots] = running
            self.left_paused[slots] = target - elapsed
            # Paused: its state holds until the next event.
            self.warn_at[slots] = np.where(elapsed >= warn, ALWAYS, NEVER)
            self.breach_at[slots] = np.where(elapsed > target, ALWAYS, NEVER)
            r = np.flatnonzero(running)
            if r.size:
                s = since[r]
                left = target[r] - elapsed[r]
                due = np.full(r.size, ALWAYS, np.int64)
                ahead = left >= 0
                due[ahead] = calendar.add_many(s[ahead], left[ahead])
                self.breach_at[slots[r]] = due
                self.warn_at[slots[r]] = calendar.reach_many(s, np.maximum(warn[r] - elapsed[r], 0))
            for i, at in enumerate(breached):  # breached already: sorted by when
                if at is not None and self.breach_at[slots[i]] == ALWAYS:
                    self.breach_at[slots[i]] = at

    # ------------------------------------------------------------------ reading

    def states(
        self, now_us: int, rows: npt.NDArray[np.intp] | slice = slice(None)
    ) -> npt.NDArray[np.int8]:
        breach = self.breach_at[rows]
        state = np.where(self.predicted[rows], PREDICTED, OK).astype(np.int8)
        state[(self.warn_at[rows] <= now_us) & (state == OK)] = WARNING
        state[breach <= now_us] = BREACHED
        return state

    def select(
        self, now_us: int, filters: Mapping[str, str], state: str | None, limit: int
    ) -> Selection:
        """The ``limit`` rows matching ``filters`` (FILTERS: value) and ``state`` that breach
        soonest (breached ones first, longest overdue first; paused ones last)."""
        n = self._used
        mask = self.alive[:n].copy()
        for name, value in filters.items():
            if value and name in self.coded:
                mask &= self.coded[name][:n] == self.codes[name].find(value)
        all_states = self.states(now_us, slice(0, n))
        per_state = {
            STATE_NAMES[s]: int(c)
            for s, c in enumerate(np.bincount(all_states[mask], minlength=len(STATE_NAMES)))
        }
        if state in STATE_NAMES:
            mask &= all_states == STATE_NAMES.index(state)
        candidates = np.flatnonzero(mask)
        key = np.where(
            self.running[candidates] | (self.breach_at[candidates] <= now_us),
            self.breach_at[candidates],
            PAUSED_KEY + self.left_paused[candidates],
        )
        if candidates.size > limit:
            first = np.argpartition(key, limit)[:limit]
            candidates, key = candidates[first], key[first]
        order = candidates[np.argsort(key, kind="stable")]
        return Selection(
            now_us,
            order.tolist(),
            all_states[order].tolist(),
            int(mask.sum()),
            per_state,
        )

    def left_us(self, slots: list[int], now_us: int) -> list[int]:
        """Business µs left at ``now`` (negative: overdue by), per slot."""
        out = np.zeros(len(slots), np.int64)
        by_calendar: dict[int, list[int]] = {}
        for i, slot in enumerate(slots):
            row = self.rows[slot]
            if row is not None:
                by_calendar.setdefault(id(row.calendar), []).append(i)
        for members in by_calendar.values():
            idx = np.array(members, np.intp)
            picked = np.array([slots[i] for i in members], np.intp)
            calendar = self._row(int(picked[0])).calendar
            due = self.breach_at[picked]
            running = self.running[picked]
            out[idx] = self.left_paused[picked]
            timed = running & (due != ALWAYS) & (due != NEVER)
            if timed.any():
                at = np.full(int(timed.sum()), now_us, np.int64)
                ahead = due[timed] >= now_us
                left = np.where(
                    ahead,
                    calendar.elapsed_many(at, due[timed]),
                    -calendar.elapsed_many(due[timed], at),
                )
                out[idx[timed]] = left
        return out.tolist()

    def _row(self, slot: int) -> ClockRow:
        row = self.rows[slot]
        assert row is not None
        return row

    def next_change(self, after_us: int) -> int | None:
        """The earliest instant after ``after_us`` at which some row changes state."""
        n = self._used
        alive = self.alive[:n]
        best = NEVER
        for column in (self.warn_at[:n], self.breach_at[:n]):
            ahead = column[alive & (column > after_us) & (column != NEVER)]
            if ahead.size:
                best = min(best, int(ahead.min()))
        return None if best == NEVER else best

    def queue_backlog(self) -> dict[tuple[str, str], int]:
        """Open tickets per (source, queue): tickets with an open SLA clock."""
        n = self._used
        heads = self.alive[:n] & self.head[:n]
        sources, queues = self.coded["source"][:n][heads], self.coded["queue"][:n][heads]
        width = max(len(self.codes["queue"].names), 1)
        counts = np.bincount(sources.astype(np.int64) * width + queues)
        source_names, queue_names = self.codes["source"].names, self.codes["queue"].names
        return {
            (source_names[i // width], queue_names[i % width]): int(c)
            for i, c in enumerate(counts)
            if c
        }

    def instant(self, at_us: int) -> datetime | None:
        return None if at_us in (NEVER, ALWAYS) else from_us(at_us)


def _warning_threshold(clock: MetricClock) -> int:
    """Business µs of elapsed time at which the clock turns to warning."""
    early = [level for level in clock.levels if level.before_breach]
    if early:
        return min(level.threshold_us(clock.target) for level in early)
    return round(clock.target * DEFAULT_WARNING)
