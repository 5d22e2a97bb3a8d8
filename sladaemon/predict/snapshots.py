"""Snapshots of running metrics, waiting for their outcome, then labelled for training.

A *snapshot* is the feature row of one running metric at one instant it was judged. It waits,
under its cycle's serial number, until the cycle's outcome is known — met, or its deadline
passed (breached: known at the deadline, not when the ticket is finally answered) — and is then
labelled and kept for training; a cycle that leaves without an outcome (ticket forgotten,
moved to another policy) takes its snapshots with it. Only finished outcomes ever label a
snapshot, so training never looks ahead of the instant it runs at.

Memory is bounded: at most ``PENDING`` waiting and ``LABELLED`` labelled snapshots (the
oldest labelled go first); when the waiting ones fill up, every other one is dropped and only
every second snapshot offered is kept from then on. Rows are stored as float16 (trees only
compare; values beyond its range are clipped to it), and the predictor rounds the rows it
judges the same way.
"""

from __future__ import annotations

import math

import numpy as np

from sladaemon.predict.columns import Bools, Floats, Ints
from sladaemon.predict.training import TrainingSet

PENDING = 50_000
LABELLED = 300_000
MIN_SNAPSHOTS = 1_000  # labelled snapshots before a first training
MIN_EACH = 50  # of each outcome


def storable(features: Floats) -> Floats:
    """``features`` as the book stores them: float16 precision, within its range (a backlog of
    70,000 reads as 65,504)."""
    limit = float(np.finfo(np.float16).max)
    rounded: Floats = np.clip(features, -limit, limit).astype(np.float16).astype(np.float64)
    return rounded


class SnapshotBook:
    def __init__(self, width: int, half_life_us: float) -> None:
        self.width = width
        self.half_life_us = half_life_us
        self._pending_x = np.zeros((0, width), np.float16)
        self._pending_serial: Ints = np.zeros(0, np.int64)
        self._pending_at: Ints = np.zeros(0, np.int64)
        self._pending = 0
        self._keep_every = 1
        self._offered = 0
        self._outcomes: dict[int, bool | None] = {}  # serial -> breached; None: gone
        self._x = np.zeros((0, width), np.float16)  # grown as labels come, up to LABELLED
        self._y: Bools = np.zeros(0, np.bool_)
        self._at: Ints = np.zeros(0, np.int64)
        self._labelled = 0  # ever; the newest LABELLED are kept, in a ring
        self.breached = 0

    @property
    def ever_labelled(self) -> int:
        """Snapshots labelled since the start, kept or not."""
        return self._labelled

    @property
    def labelled(self) -> int:
        return min(self._labelled, LABELLED)

    def note(self, serials: Ints, features: Floats, at: Ints) -> None:
        """Offer snapshots of running cycles (serials unique among running cycles)."""
        if serials.size == 0:
            return
        if self._keep_every > 1:
            keep = (np.arange(serials.size) + self._offered) % self._keep_every == 0
            self._offered += serials.size
            serials, features, at = serials[keep], features[keep], at[keep]
        while self._pending + serials.size > PENDING:
            self._thin()
            keep = np.arange(serials.size) % 2 == 0  # the offer thinned alike
            serials, features, at = serials[keep], features[keep], at[keep]
        self._reserve(self._pending + serials.size)
        end = self._pending + serials.size
        self._pending_x[self._pending : end] = features
        self._pending_serial[self._pending : end] = serials
        self._pending_at[self._pending : end] = at
        self._pending = end

    def settle(self, serial: int, breached: bool) -> None:
        """The cycle's outcome is known (a later call for the same serial changes nothing)."""
        if self._outcomes.get(serial) is None:
            self._outcomes[serial] = breached

    def discard(self, serial: int) -> None:
        """The cycle left without an outcome: its snapshots go."""
        self._outcomes.setdefault(serial, None)

    def harvest(self) -> int:
        """Label the waiting snapshots whose outcome is known; returns how many."""
        if not self._outcomes:
            return 0
        n = self._pending
        codes = {True: 1, False: 0, None: -2}  # -1: still waiting
        outcomes = self._outcomes
        outcome = np.array(
            [
                codes[outcomes[s]] if s in outcomes else -1
                for s in self._pending_serial[:n].tolist()
            ],
            np.int8,
        )
        known, gone, labels = outcome >= 0, outcome == -2, outcome == 1
        chosen = np.flatnonzero(known)
        for start in range(0, chosen.size, LABELLED):
            part = chosen[start : start + LABELLED]
            self._make_room(min(LABELLED, self._labelled + part.size))
            ring = (self._labelled + np.arange(part.size)) % LABELLED
            self._x[ring] = self._pending_x[part]
            self._y[ring] = labels[part]
            self._at[ring] = self._pending_at[part]
            self._labelled += part.size
        stay = np.flatnonzero(~known & ~gone)
        self._pending_x[: stay.size] = self._pending_x[stay]
        self._pending_serial[: stay.size] = self._pending_serial[stay]
        self._pending_at[: stay.size] = self._pending_at[stay]
        self._pending = stay.size
        while self._keep_every > 1 and self._pending * 4 < PENDING:
            self._keep_every //= 2  # room again: keep more of what is offered
        self._outcomes = {}  # a settled or departed cycle is never judged again
        count = self.labelled
        self.breached = int(self._y[:count].sum())
        return int(chosen.size)

    def ready(self) -> bool:
        count = self.labelled
        return count >= MIN_SNAPSHOTS and min(self.breached, count - self.breached) >= MIN_EACH

    def training_set(self, now_us: int) -> TrainingSet:
        """The labelled snapshots, weighted by age (halving every ``half_life``)."""
        count = self.labelled
        at = self._at[:count].copy()
        age = np.maximum(0, now_us - at).astype(np.float64)
        weight = np.exp(-age * math.log(2.0) / self.half_life_us)
        return TrainingSet(
            features=self._x[:count].copy(),
            breached=self._y[:count].copy(),
            weight=weight,
            at=at,
            trained_at=now_us,
        )

    def _make_room(self, size: int) -> None:
        """The labelled arrays hold at least ``size`` rows (at most LABELLED)."""
        have = self._y.size
        if size <= have:
            return
        new = min(LABELLED, max(size, 2 * have, 1024))
        x = np.zeros((new, self.width), np.float16)
        x[:have] = self._x
        y = np.zeros(new, np.bool_)
        y[:have] = self._y
        at = np.zeros(new, np.int64)
        at[:have] = self._at
        self._x, self._y, self._at = x, y, at

    def _thin(self) -> None:
        n = self._pending
        keep = np.arange(0, n, 2)
        self._pending_x[: keep.size] = self._pending_x[keep]
        self._pending_serial[: keep.size] = self._pending_serial[keep]
        self._pending_at[: keep.size] = self._pending_at[keep]
        self._pending = keep.size
        self._keep_every *= 2

    def _reserve(self, size: int) -> None:
        if size <= self._pending_serial.size:
            return
        new = max(1024, size, self._pending_serial.size * 2)
        new = min(max(new, size), PENDING + size)
        x = np.zeros((new, self.width), np.float16)
        x[: self._pending] = self._pending_x[: self._pending]
        self._pending_x = x
        for name in ("_pending_serial", "_pending_at"):
            grown = np.zeros(new, np.int64)
            grown[: self._pending] = getattr(self, name)[: self._pending]
            setattr(self, name, grown)
