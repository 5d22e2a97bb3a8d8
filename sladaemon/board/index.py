"""The board's index: every open SLA clock as one row of numpy columns.

A row holds what does not change until its ticket's next event: the instant its clock turns
to warning (``warn_at``) and to breached (``breach_at``) — both fixed while it runs, because a
running clock's deadline depends only on when it started running and what it had counted —
and the business time it had left when it was paused. State at any ``now`` is then two
comparisons per row, filters are masks over small integer codes, and the first page is one
``argpartition``: no ticket is evaluated again for a page view.

There is no Python object per row (40 bytes a row, 24 more per ticket: 15 MB for 100,000
tickets): the ticket, its fields, policy, metric and calendar are codes — a ticket's in columns
by ticket number — decoded for the rows a page shows (``row``). ``update`` replaces the rows of
the tickets a step touched (their calendars' vectorised look-ups once per step);
``next_change`` is the earliest instant a row changes state, so the live feed wakes exactly
then. Warning is the policy's first ladder level before the breach (75 % of the target where
the ladder has none). Pure: replays in, arrays out.
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
from sladaemon.sla.policy import LadderLevel

NEVER = np.iinfo(np.int64).max
ALWAYS = np.iinfo(np.int64).min
DEFAULT_WARNING = 0.75  # share of the target where a ladder has no level before the breach
PAUSED_KEY = NEVER // 2  # paused rows sort after running ones, by business time left
GROWTH = 1.5  # the columns grow by half when full

OK, WARNING, PREDICTED, BREACHED = 0, 1, 2, 3
STATE_NAMES = ("ok", "warning", "predicted", "breached")
FILTERS = ("source", "queue", "policy", "priority", "channel", "assignee", "metric")
_FIELDS = ("queue", "priority", "channel", "assignee")
_PER_TICKET = ("source", "policy", *_FIELDS)

Int64s = npt.NDArray[np.int64]
Slots = npt.NDArray[np.intp]


class Codes:
    """Strings as small integers, for one column."""

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
    """One row, decoded for a page."""

    key: TicketKey
    metric: Metric
    cycle: int
    calendar: BusinessCalendar
    policy: str
    fields: Mapping[str, str]  # queue, priority, channel, assignee


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
class _NewRows:
    """What one update adds, gathered before it is written into the columns."""

    tickets: list[int] = field(default_factory=list)
    codes: dict[str, list[int]] = field(default_factory=lambda: {n: [] for n in _PER_TICKET})
    slots: list[int] = field(default_factory=list)
    clocks: list[MetricClock] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    heads: list[bool] = field(default_factory=list)
    predicted: list[bool] = field(default_factory=list)


class BoardIndex:
    def __init__(self, capacity: int = 1024) -> None:
        self.codes = {name: Codes() for name in FILTERS}
        self.calendars: list[BusinessCalendar] = []
        self.tickets: list[TicketKey | None] = []  # by ticket number
        self.number: dict[TicketKey, int] = {}
        self.predictions: dict[tuple[TicketKey, Metric, int], Prediction] = {}
        self.version = 0
        self._free_tickets: list[int] = []
        self._thresholds: dict[tuple[int, int], tuple[tuple[LadderLevel, ...], int]] = {}
        self._free: list[int] = []
        self._used = 0  # slots ever handed out (high-water mark)
        n = capacity
        self.warn_at: Int64s = np.full(n, NEVER, np.int64)
        self.breach_at: Int64s = np.full(n, NEVER, np.int64)
        self.left_paused: Int64s = np.zeros(n, np.int64)  # business µs left, while paused
        self.ticket = np.full(n, -1, np.int32)
        self.cycle = np.zeros(n, np.int32)
        self.calendar = np.zeros(n, np.int16)
        self.metric = np.full(n, -1, np.int8)
        self.running = np.zeros(n, bool)
        self.alive = np.zeros(n, bool)
        self.predicted = np.zeros(n, bool)
        self.head = np.zeros(n, bool)  # the first row of its ticket (counts tickets)
        self.of_ticket = {name: np.full(n, -1, np.int32) for name in _PER_TICKET}

    def __len__(self) -> int:
        return int(self.alive[: self._used].sum())

    # ------------------------------------------------------------------ changes

    def update(
        self, touched: Mapping[TicketKey, TicketReplay], closed: Iterable[TicketKey]
    ) -> None:
        """The rows of every touched ticket built again (none for a closed one)."""
        gone = set(closed)
        numbers = [self.number[k] for k in (*touched, *gone) if k in self.number]
        if numbers:
            n = self._used
            old = np.flatnonzero(self.alive[:n] & np.isin(self.ticket[:n], numbers))
            self.alive[old] = False
            self.predicted[old] = False
            self.head[old] = False
            self._free.extend(old.tolist())
        for key in gone:
            number = self.number.pop(key, None)
            if number is not None:
                self.tickets[number] = None
                self._free_tickets.append(number)
        if gone and self.predictions:
            for done in [p for p in self.predictions if p[0] in gone]:
                del self.predictions[done]
        adding = {k: r for k, r in touched.items() if k not in gone}
        self._reserve(sum(len(r.clocks) for r in adding.values()) - len(self._free))
        new = _NewRows()
        for key, replay in adding.items():
            self._add(key, replay, new)
        self._write(new)
        self.version += 1

    def _add(self, key: TicketKey, replay: TicketReplay, new: _NewRows) -> None:
        number = self._ticket_number(key)  # known while open, with a running clock or not
        fields = replay.fields
        new.tickets.append(number)
        for name in _FIELDS:
            new.codes[name].append(self.codes[name].code(fields.get(name, "")))
        new.codes["source"].append(self.codes["source"].code(key[0]))
        new.codes["policy"].append(
            self.codes["policy"].code(replay.policy.name if replay.policy else "")
        )
        first = True
        for clock in replay.clocks:
            c = clock.current
            if c is None or c.ended is not None:
                continue
            new.slots.append(self._take())
            new.clocks.append(clock)
            new.numbers.append(number)
            new.heads.append(first)
            new.predicted.append(
                bool(self.predictions) and (key, clock.metric, c.number) in self.predictions
            )
            first = False

    def _write(self, new: _NewRows) -> None:
        """The new rows' columns, at once."""
        numbers = np.array(new.tickets, np.intp)
        for name, codes in new.codes.items():
            self.of_ticket[name][numbers] = codes
        slots = np.array(new.slots, np.intp)
        self.ticket[slots] = new.numbers
        self.cycle[slots] = [c.current.number if c.current else 0 for c in new.clocks]
        self.calendar[slots] = [self._calendar_code(c.calendar) for c in new.clocks]
        self.metric[slots] = [self.codes["metric"].code(c.metric.value) for c in new.clocks]
        self.head[slots] = new.heads
        self.predicted[slots] = new.predicted
        self.alive[slots] = True
        self._instants(list(zip(new.slots, new.clocks, strict=True)))

    def _ticket_number(self, key: TicketKey) -> int:
        number = self.number.get(key)
        if number is None:
            if self._free_tickets:
                number = self._free_tickets.pop()
                self.tickets[number] = key
            else:
                number = len(self.tickets)
                self.tickets.append(key)
                if number == len(self.of_ticket["source"]):
                    more = int(number * (GROWTH - 1)) + 1
                    for name, column in self.of_ticket.items():
                        self.of_ticket[name] = np.concatenate([column, np.full(more, -1, np.int32)])
            self.number[key] = number
        return number

    def _calendar_code(self, calendar: BusinessCalendar) -> int:
        for i, known in enumerate(self.calendars):
            if known is calendar:
                return i
        self.calendars.append(calendar)
        return len(self.calendars) - 1

    def predict(self, key: TicketKey, metric: Metric, cycle: int, prediction: Prediction) -> None:
        """A predicted breach of one ticket metric's cycle (kept while the cycle is open)."""
        self.predictions[(key, metric, cycle)] = prediction
        number = self.number.get(key)
        if number is None:
            return
        n = self._used
        hit = (
            self.alive[:n]
            & (self.ticket[:n] == number)
            & (self.metric[:n] == self.codes["metric"].find(metric.value))
            & (self.cycle[:n] == cycle)
        )
        if hit.any():
            self.predicted[:n][hit] = True
            self.version += 1

    def _take(self) -> int:
        if self._free:
            return self._free.pop()
        self._reserve(1)
        self._used += 1
        return self._used - 1

    def _reserve(self, rows: int) -> None:
        """Room for ``rows`` more rows: the columns grow by half, or by what a big step (the
        first load) needs, no more."""
        short = self._used + rows - len(self.alive)
        if short <= 0:
            return
        more = max(short, int(len(self.alive) * (GROWTH - 1)) + 1)
        columns = ("warn_at", "breach_at", "left_paused", "ticket", "cycle", "calendar",
                   "metric", "running", "alive", "predicted", "head")  # fmt: skip
        for name in columns:
            column = getattr(self, name)
            fill = {"warn_at": NEVER, "breach_at": NEVER, "ticket": -1, "metric": -1}.get(name, 0)
            setattr(self, name, np.concatenate([column, np.full(more, fill, column.dtype)]))

    def _warning_threshold(self, clock: MetricClock) -> int:
        """Of a clock's ladder and target (both shared by many clocks: remembered)."""
        key = (id(clock.levels), clock.target)
        found = self._thresholds.get(key)
        if found is None or found[0] is not clock.levels:
            found = self._thresholds[key] = (
                clock.levels,
                warning_threshold(clock.levels, clock.target),
            )
        return found[1]

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
            warn = np.array([self._warning_threshold(c) for _, c in members], np.int64)
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
            for i, c in enumerate(currents):  # breached already: sorted by when
                if (
                    c is not None
                    and c.breached_at is not None
                    and self.breach_at[slots[i]] == ALWAYS
                ):
                    self.breach_at[slots[i]] = c.breached_at

    # ------------------------------------------------------------------ reading

    def row(self, slot: int) -> ClockRow:
        number = int(self.ticket[slot])
        key = self.tickets[number]
        assert key is not None and self.alive[slot]
        names = {n: self.codes[n].names[self.of_ticket[n][number]] for n in _PER_TICKET}
        return ClockRow(
            key,
            Metric(self.codes["metric"].names[self.metric[slot]]),
            int(self.cycle[slot]),
            self.calendars[int(self.calendar[slot])],
            names["policy"],
            {name: names[name] for name in _FIELDS},
        )

    def queue_of(self, key: TicketKey) -> str:
        """The queue of an open ticket ("" when unknown), without looking at its rows."""
        number = self.number.get(key)
        return "" if number is None else self.codes["queue"].names[self.of_ticket["queue"][number]]

    def slots_of(self, key: TicketKey) -> list[int]:
        number = self.number.get(key)
        if number is None:
            return []
        n = self._used
        return np.flatnonzero(self.alive[:n] & (self.ticket[:n] == number)).tolist()

    def states(self, now_us: int, rows: Slots | slice = slice(None)) -> npt.NDArray[np.int8]:
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
        per_ticket = [(k, v) for k, v in filters.items() if v and k in self.of_ticket]
        if per_ticket:
            tickets = np.ones(len(self.tickets), bool)
            for name, value in per_ticket:
                tickets &= self.of_ticket[name][: len(self.tickets)] == self.codes[name].find(value)
            mask &= tickets[np.maximum(self.ticket[:n], 0)]
        if filters.get("metric"):
            mask &= self.metric[:n] == self.codes["metric"].find(filters["metric"])
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
        picked_all = np.array(slots, np.intp)
        out: Int64s = self.left_paused[picked_all].copy()
        for code in np.unique(self.calendar[picked_all]):
            idx = np.flatnonzero(self.calendar[picked_all] == code)
            picked = picked_all[idx]
            calendar = self.calendars[int(code)]
            due = self.breach_at[picked]
            timed = self.running[picked] & (due != ALWAYS) & (due != NEVER)
            if timed.any():
                at = np.full(int(timed.sum()), now_us, np.int64)
                ahead = due[timed] >= now_us
                out[idx[timed]] = np.where(
                    ahead,
                    calendar.elapsed_many(at, due[timed]),
                    -calendar.elapsed_many(due[timed], at),
                )
        return [int(x) for x in out]

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
        numbers = self.ticket[:n][self.alive[:n] & self.head[:n]]
        sources, queues = self.of_ticket["source"][numbers], self.of_ticket["queue"][numbers]
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


def warning_threshold(levels: tuple[LadderLevel, ...], target: int) -> int:
    """Business µs of elapsed time at which a clock turns to warning."""
    early = [level for level in levels if level.before_breach]
    if early:
        return min(level.threshold_us(target) for level in early)
    return round(target * DEFAULT_WARNING)
