"""The boosted side of the predictor: what each open cycle has scored, what the model learns
from finished cycles, and which probability warns.

``Learning`` shares the rows of open cycles (see columns) and keeps per row a serial number
(its identity in the snapshot book), its best score while still warnable, when it is next
due to be scored and whether its outcome is settled. It

* scores the cycles judged (``score``): the boosted model's calibrated probability where a
  model has been trained, else the life table's (the fallback while history is thin);
* notes what it scored (``record``): each row's best score, its snapshots for training (one
  per tenth of its target, at most), and in the backtest the rising scores as ``traces``;
* learns outcomes as they become known (``finish`` when a cycle ends, ``deadlines_passed``
  when a running cycle's deadline passes — a breach is known then) and forgets cycles that
  leave without one (``drop``);
* hands out a ``TrainingSet`` when a retraining is due and adopts the model trained from it;
* says which threshold is in force per policy × metric (``OperatingPoints``).

A row is scored again after ``RESCORE_SHARE`` of its target (between ``every`` and
``MAX_RESCORE_US``), or at once when its ticket changes; rows loaded together are spread over
that interval so that no tick scores them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sladaemon.predict.activity import RecentRates, TicketActivity
from sladaemon.predict.boosted import BoostedTrees
from sladaemon.predict.columns import (
    NOT_SET,
    US,
    Bools,
    Float32s,
    Floats,
    Int32s,
    Ints,
    OpenCycles,
    Registry,
    UInt32s,
)
from sladaemon.predict.features import (
    FEATURES,
    FeatureContext,
    feature_matrix,
    queue_backlogs,
)
from sladaemon.predict.operating import OperatingPoints
from sladaemon.predict.risk import CycleRisk
from sladaemon.predict.snapshots import PENDING, SnapshotBook, storable
from sladaemon.predict.training import TrainingSet
from sladaemon.sla.engine import TicketReplay

RESCORE_SHARE = 0.05
MAX_RESCORE_US = 4 * 3600 * US
SNAPSHOT_STEP = 0.1  # a snapshot per tenth of the target, at most
RETRAIN_US = 14 * 86_400 * US  # retrained fortnightly, or sooner once the history doubled
RETRAIN_GROWTH = 2.0
CHUNK = 16_384  # rows whose features are worked out at once
SNAPSHOT_BUDGET = PENDING // 4  # rows featured per judgement while the life tables judge
MAX_IDS = 250  # priorities and channels beyond this many share one id

TraceKey = tuple[str, str, int]


@dataclass(frozen=True)
class Featured:
    """Feature rows of some of the cycles judged: ``index`` (sorted) into them, ``rows``."""

    index: Ints
    rows: Float32s

    def position(self, entries: Ints) -> Ints:
        """Where each of ``entries`` is in ``rows``; -1 where it was not featured."""
        at = np.searchsorted(self.index, entries)
        inside = at < self.index.size
        found = np.full(entries.size, -1, np.int64)
        hit = inside.copy()
        hit[inside] = self.index[at[inside]] == entries[inside]
        found[hit] = at[hit]
        return found

    def row(self, entry: int) -> Floats | None:
        """The features of one entry, or None."""
        at = int(self.position(np.array([entry], np.int64))[0])
        return self.rows[at].astype(np.float64) if at >= 0 else None


class Learning:
    def __init__(
        self, rows: OpenCycles, half_life_us: float, precision: float, every_us: int
    ) -> None:
        self.rows = rows
        self.every_us = every_us
        self.snapshots = SnapshotBook(len(FEATURES), half_life_us)
        self.operating = OperatingPoints(precision)
        self.activity = TicketActivity()
        self.rates = RecentRates()
        self.model: BoostedTrees | None = None
        self.training = False  # a training set was handed out and no model came back yet
        self.traces: dict[TraceKey, list[tuple[int, float, int]]] | None = None
        self.priority: Int32s = np.zeros(0, np.int32)
        self.channel: Int32s = np.zeros(0, np.int32)
        self._vocabulary: dict[str, dict[str, int]] = {"priority": {}, "channel": {}}
        self._serial = 0
        self._trained_labelled = 0
        self._trained_at: int | None = None
        self.serial: Int32s = np.zeros(0, np.int32)  # wraps after 2**31 cycles: harmless
        self.best: Float32s = np.zeros(0, np.float32)
        self.next_score: UInt32s = np.zeros(0, np.uint32)  # whole seconds; 0: due now
        self.snapshot_share: Float32s = np.zeros(0, np.float32)
        self.settled: Bools = np.zeros(0, np.bool_)

    # ------------------------------------------------------------------ rows and tickets

    def register(self, slot: int, now_us: int) -> None:
        """A new row: a fresh serial, no score yet, due at once."""
        self._grow(slot)
        self._serial = self._serial % (2**31 - 1) + 1
        self.serial[slot] = self._serial
        self.best[slot] = np.nan
        self.next_score[slot] = 0
        self.snapshot_share[slot] = -1.0
        self.settled[slot] = False

    def changed(self, slot: int) -> None:
        """The row's ticket changed: score it at the next judgement."""
        self.next_score[slot] = 0

    def ticket(self, number: int, priority: str, channel: str, replay: TicketReplay) -> None:
        self.activity.observe(number, replay)
        if number >= self.priority.size:
            size = max(64, self.priority.size * 5 // 4, number + 1)
            for name in ("priority", "channel"):
                grown = np.full(size, -1, np.int32)
                grown[: getattr(self, name).size] = getattr(self, name)
                setattr(self, name, grown)
        self.priority[number] = self._id("priority", priority)
        self.channel[number] = self._id("channel", channel)

    def forget_ticket(self, number: int) -> None:
        self.activity.reset(number)

    def finish(self, slot: int, breached: bool) -> None:
        """The row's cycle ended (or its deadline passed): its outcome is known."""
        if slot >= self.settled.size or self.settled[slot]:
            return
        self.settled[slot] = True
        self.snapshots.settle(int(self.serial[slot]), breached)
        self.operating.finished(int(self.rows.policy_metric[slot]), self.best[slot], breached)

    def drop(self, slot: int) -> None:
        """The row leaves without an outcome (unless it has one already)."""
        if slot < self.settled.size and not self.settled[slot]:
            self.snapshots.discard(int(self.serial[slot]))
            self.settled[slot] = True

    def deadlines_passed(self, now_us: int) -> None:
        """Rows whose deadline passed while running breached: settle them."""
        rows = self.rows
        capacity = rows.capacity
        self._grow(capacity - 1)
        deadline = rows.deadline[:capacity]
        passed = (
            rows.used[:capacity]
            & ~self.settled[:capacity]
            & (deadline != NOT_SET)
            & (deadline != 0)
            & (deadline < now_us)
            & (rows.since[:capacity] != NOT_SET)
        )
        for slot in np.flatnonzero(passed).tolist():
            self.finish(slot, True)

    # ------------------------------------------------------------------ scoring

    def due_now(self, capacity: int, now_us: int) -> Bools:
        """Which of the first ``capacity`` slots are due to be scored at ``now_us``."""
        self._grow(capacity - 1)
        is_due: Bools = self.next_score[:capacity] <= now_us // US
        return is_due

    def due(self, slots: Ints, now: Ints) -> Bools:
        self._grow(int(slots.max(initial=0)))
        is_due: Bools = self.next_score[slots] <= now // US
        return is_due

    def context(self, registry: Registry) -> FeatureContext:
        return FeatureContext(
            self.rows, self.activity, self.rates, registry, self.priority, self.channel
        )

    def score(
        self, risk: CycleRisk, chosen: Bools, context: FeatureContext
    ) -> tuple[Floats, Featured]:
        """The probability of each ``chosen`` cycle of ``risk`` (NaN elsewhere, and where no
        probability can be given), and the features of those it was worked out for: every
        chosen one under the boosted model; while the life tables judge, only as many as the
        snapshot book may take (evenly spread), so a first tick of 300,000 rows stays small."""
        probability = np.full(risk.cycles.slots.size, np.nan)
        index = np.flatnonzero(chosen)
        model = self.model
        if model is None:
            probability[chosen] = risk.probability[chosen]
            if index.size > SNAPSHOT_BUDGET:
                index = index[np.linspace(0, index.size - 1, SNAPSHOT_BUDGET).astype(np.int64)]
        backlogs = queue_backlogs(self.rows, len(context.registry.queues))
        rows = np.empty((index.size, len(FEATURES)), np.float32)
        for start in range(0, index.size, CHUNK):
            part = index[start : start + CHUNK]
            block = feature_matrix(_take(risk, part), context, backlogs)
            rows[start : start + part.size] = block
            if model is not None:
                probability[part] = model.probability(storable(block))
        return probability, Featured(index, rows)

    def record(
        self,
        risk: CycleRisk,
        chosen: Bools,
        probability: Floats,
        featured: Featured | None,
        warnable: Bools,
        key_of: Callable[[int], TraceKey] | None,
    ) -> None:
        """Note what the ``chosen`` live cycles scored (see the module)."""
        cycles = risk.cycles
        index = np.flatnonzero(chosen & cycles.live)
        if index.size == 0:
            return
        slots = cycles.slots[index]
        now = cycles.now[index]
        target = cycles.target[index]
        interval = np.clip((target * RESCORE_SHARE).astype(np.int64), self.every_us, MAX_RESCORE_US)
        first = self.next_score[slots] == 0
        spread = np.where(first, (slots * 0.618034) % 1.0, 1.0)  # first scores spread out
        due = now + np.maximum(1, (interval * spread).astype(np.int64))
        self.next_score[slots] = np.maximum(1, due // US)
        p = probability[index]
        scored = np.isfinite(p) & warnable[index]
        rising = scored & ~(p <= self.best[slots])  # NaN best: the first score rises
        if self.traces is not None and key_of is not None:
            left = (target - risk.elapsed[index]).astype(np.int64)
            for i in np.flatnonzero(rising).tolist():
                trace = self.traces.setdefault(key_of(int(index[i])), [])
                trace.append((int(now[i]), float(p[i]), int(left[i])))
        self.best[slots[rising]] = p[rising]
        if featured is None:
            return
        share = risk.elapsed[index] / np.maximum(target, 1)
        at = featured.position(index)
        snap = (
            scored
            & (at >= 0)
            & (
                (self.snapshot_share[slots] < 0)
                | (share >= self.snapshot_share[slots] + SNAPSHOT_STEP)
            )
        )
        if snap.any():
            self.snapshot_share[slots[snap]] = share[snap]
            rows = storable(featured.rows[at[snap]].astype(np.float64))
            self.snapshots.note(self.serial[slots[snap]].astype(np.int64), rows, now[snap])

    # ------------------------------------------------------------------ training

    def training_due(self, now_us: int) -> TrainingSet | None:
        """A training set when a retraining is due (and none is running), else None."""
        if self.training:
            return None
        self.snapshots.harvest()
        self.operating.refresh()
        labelled = self.snapshots.ever_labelled
        if not self.snapshots.ready():
            return None
        grown = labelled >= self._trained_labelled * RETRAIN_GROWTH
        aged = self._trained_at is None or now_us - self._trained_at >= RETRAIN_US
        if not (grown or aged) or labelled == self._trained_labelled:
            return None
        self._trained_labelled = labelled
        self._trained_at = now_us
        self.training = True
        return self.snapshots.training_set(now_us)

    def adopt(self, model: BoostedTrees | None) -> None:
        """The model trained from the last training set (None: the training failed)."""
        self.training = False
        if model is not None:
            self.model = model

    # ------------------------------------------------------------------ helpers

    def _id(self, vocabulary: str, value: str) -> int:
        if not value:
            return -1
        ids = self._vocabulary[vocabulary]
        found = ids.get(value)
        if found is None:
            found = ids[value] = min(len(ids), MAX_IDS)
        return found

    def _grow(self, slot: int) -> None:
        size = self.serial.size
        if slot < size:
            return
        new = max(64, size * 5 // 4, slot + 1, self.rows.capacity)
        for name, fill in (
            ("serial", 0),
            ("best", np.nan),
            ("next_score", 0),
            ("snapshot_share", -1.0),
            ("settled", True),
        ):
            array = getattr(self, name)
            grown = np.full(new, fill, array.dtype)
            grown[:size] = array
            setattr(self, name, grown)


def _take(risk: CycleRisk, index: Ints) -> CycleRisk:
    """The cycles of ``risk`` at ``index`` (a CycleRisk of their own)."""
    cycles = risk.cycles
    fields = {
        name: getattr(cycles, name)[index]
        for name in (
            "slots", "metric", "cycle", "start", "live", "since", "elapsed_at_since", "target",
            "group", "queue_metric", "policy_metric", "calendar", "now",
        )
    }  # fmt: skip
    deadline = cycles.deadline[index] if cycles.deadline is not None else None
    return CycleRisk(
        cycles=type(cycles)(**fields, deadline=deadline),
        elapsed=risk.elapsed[index],
        deadline=risk.deadline[index],
        code=risk.code[index],
        probability=risk.probability[index],
        raw=risk.raw[index],
        history=risk.history[index],
        week_factor=risk.week_factor[index],
    )
