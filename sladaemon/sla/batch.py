"""Evaluating the open clocks of many tickets at once, with numpy.

The per-ticket engine folds each ticket's history into the state of its current cycles: since
when the clock runs (or that it is paused), the business time counted before that, the target.
From those numbers alone every figure at ``now`` follows, so a whole fleet of open tickets is
evaluated with a few vectorised calendar look-ups per calendar: elapsed, remaining, fraction,
deadline, state, and the next ladder instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from sladaemon.calendar import BusinessCalendar, span_us
from sladaemon.model import Metric
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.policy import LadderLevel

Int64s = npt.NDArray[np.int64]
NOT_SET = np.iinfo(np.int64).min  # "no instant" (paused clock, no further level)

_K = TypeVar("_K")
STATE_RUNNING, STATE_PAUSED, STATE_BREACHED = 0, 1, 2


@dataclass
class OpenClocks:
    """Current cycles of many tickets, as columns. ``since`` is NOT_SET while paused."""

    ticket_ids: list[str] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    cycles: list[int] = field(default_factory=list)
    calendars: list[BusinessCalendar] = field(default_factory=list)
    ladders: list[tuple[LadderLevel, ...]] = field(default_factory=list)
    since: list[int] = field(default_factory=list)
    elapsed: list[int] = field(default_factory=list)
    target: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ticket_ids)

    def add_replay(self, replay: TicketReplay) -> None:
        """Append the open (running or paused) cycles of a replayed ticket."""
        for clock in replay.clocks:
            c = clock.current
            if c is None or c.ended is not None:
                continue
            self.ticket_ids.append(replay.ticket_id)
            self.metrics.append(clock.metric)
            self.cycles.append(c.number)
            self.calendars.append(clock.calendar)
            self.ladders.append(clock.levels)
            self.since.append(c.since if c.since is not None else NOT_SET)
            self.elapsed.append(c.elapsed)
            self.target.append(clock.target)

    @classmethod
    def of(cls, replays: Iterable[TicketReplay]) -> OpenClocks:
        clocks = cls()
        for replay in replays:
            clocks.add_replay(replay)
        return clocks


@dataclass(frozen=True)
class OpenEvaluation:
    """Figures at ``now`` for each row of an OpenClocks, as arrays (µs)."""

    now: int
    state: npt.NDArray[np.int8]
    elapsed: Int64s
    remaining: Int64s
    fraction: npt.NDArray[np.float64]
    deadline: Int64s  # NOT_SET while paused or once breached
    next_level_at: Int64s  # the next ladder instant after now, NOT_SET if none
    next_level: list[str | None]

    def count(self, state: int) -> int:
        return int((self.state == state).sum())


def evaluate_open(clocks: OpenClocks, now: int) -> OpenEvaluation:
    n = len(clocks)
    since = np.array(clocks.since, np.int64)
    elapsed0 = np.array(clocks.elapsed, np.int64)
    target = np.array(clocks.target, np.int64)
    elapsed = elapsed0.copy()
    deadline = np.full(n, NOT_SET, np.int64)
    next_at = np.full(n, NOT_SET, np.int64)
    next_label = np.full(n, -1, np.int32)
    labels: list[str] = []
    running = since != NOT_SET

    for calendar, rows in _groups(clocks.calendars):
        rows_running = rows[running[rows]]
        if rows_running.size == 0:
            continue
        s = since[rows_running]
        elapsed[rows_running] += calendar.elapsed_many(s, np.full(s.shape, now, np.int64))
        left = target[rows_running] - elapsed0[rows_running]
        ok = left >= 0
        deadline[rows_running[ok]] = calendar.add_many(s[ok], left[ok])
        # Ladder instants, level by level, for rows sharing the same ladder.
        for ladder, sub in _groups([clocks.ladders[i] for i in rows_running]):
            idx = rows_running[sub]
            for level in ladder:
                label_id = len(labels)
                labels.append(level.label)
                # Same rounding as LadderLevel.threshold_us (half to even on the float product).
                threshold = np.rint(target[idx] * level.fraction).astype(np.int64)
                threshold += span_us(level.after_breach)
                need = np.maximum(threshold - elapsed0[idx], 0)
                if level.before_breach:
                    at = calendar.reach_many(since[idx], need)
                else:
                    at = calendar.add_many(since[idx], need)
                future = at > now
                better = future & ((next_at[idx] == NOT_SET) | (at < next_at[idx]))
                next_at[idx[better]] = at[better]
                next_label[idx[better]] = label_id

    remaining = target - elapsed
    state = np.where(
        elapsed > target, STATE_BREACHED, np.where(running, STATE_RUNNING, STATE_PAUSED)
    ).astype(np.int8)
    deadline[elapsed > target] = NOT_SET
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(target > 0, elapsed / np.maximum(target, 1), np.nan)
    return OpenEvaluation(
        now=now,
        state=state,
        elapsed=elapsed,
        remaining=remaining,
        fraction=fraction,
        deadline=deadline,
        next_level_at=next_at,
        next_level=[labels[i] if i >= 0 else None for i in next_label],
    )


def _groups(keys: Sequence[_K]) -> Iterable[tuple[_K, npt.NDArray[np.intp]]]:
    """Row indexes grouped by key identity (calendars and ladders are shared objects)."""
    buckets: dict[int, tuple[_K, list[int]]] = {}
    for i, key in enumerate(keys):
        entry = buckets.get(id(key))
        if entry is None:
            buckets[id(key)] = (key, [i])
        else:
            entry[1].append(i)
    for key, rows in buckets.values():
        yield key, np.array(rows, np.intp)
