"""How long cycles take to be met, in business time, with open cycles counted as censored.

For each group of cycles — metric × policy × priority × queue — a life table on fixed business
time bins keeps, exponentially decayed, the events (cycles met in the bin), the exposure
(business time spent in the bin by every cycle, met or still open) and the cycles that entered
the bin. The hazard of a bin is events / exposure: the piecewise-constant (life-table) form of
the Kaplan–Meier estimator, which counts a cycle still running at ``now`` as survival up to its
elapsed time and nothing more, so slow cycles are not forgotten just because they are not over.

Sparse groups borrow strength from their parents: queue × priority from policy × priority, that
from policy (per metric), each bin's hazard shrunk towards the parent's by ``prior_cycles``
cycles' worth of exposure. The policy level itself is smoothed towards its pooled tail hazard,
so a bin that few cycles reached does not read as "nobody is ever answered there".

The survival beyond business time ``x`` is ``S(x) = exp(-H(x))`` with ``H`` the cumulative
hazard; a cycle at ``e`` breaches its target ``T`` with probability ``S(T) / S(e)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import overload

import numpy as np
import numpy.typing as npt

from sladaemon.predict.weekly import decay

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

# Bin edges in business seconds: fine at the start (most first responses come quickly), then
# roughly geometric; the targets of the policies are added so H(T) is exact at each target.
BASE_EDGES_S = (
    0, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 14400, 18000, 21600,
    28800, 36000, 43200, 57600, 72000, 86400, 108000, 144000, 180000, 216000, 288000, 360000,
    432000, 576000, 720000, 1080000, 1440000, 2160000, 3600000,
)  # fmt: skip
PRIOR_CYCLES = 20.0  # a child group's bin counts as this many cycles of its parent
ROOT_PRIOR_CYCLES = 2.0  # a policy's bin leans on its pooled tail by this many cycles

GroupKey = tuple[str, str, str, str]  # (metric, policy, priority, queue)


class SurvivalModel:
    """Life tables for every group, refreshed into a snapshot used by the risk evaluation."""

    def __init__(self, extra_edges_s: Iterable[float], half_life_us: float) -> None:
        edges = sorted({float(e) for e in BASE_EDGES_S} | {float(e) for e in extra_edges_s})
        self.edges: Floats = np.array([e for e in edges if e >= 0.0], np.float64)
        bins = self.edges.size
        widths = np.diff(self.edges)
        self.widths: Floats = np.append(widths, np.inf)
        self._prior_widths: Floats = np.append(widths, self.edges[-1])
        self.half_life_us = half_life_us
        self._leaf: dict[GroupKey, int] = {}
        self._mid: dict[tuple[str, str, str], int] = {}
        self._root: dict[tuple[str, str], int] = {}
        self.leaf_keys: list[GroupKey] = []
        self.mid_of: list[int] = []
        self.root_of: list[int] = []
        capacity = 16
        self._events: Floats = np.zeros((capacity, bins))
        self._exposure: Floats = np.zeros((capacity, bins))
        self._entered: Floats = np.zeros((capacity, bins))
        self._finished: Floats = np.zeros(capacity)
        self._decayed_at: int | None = None
        # The snapshot (per leaf group) the risk evaluation reads.
        self.hazard: Floats = np.zeros((0, bins))
        self.cum_hazard: Floats = np.zeros((0, bins))
        self.root_finished: Floats = np.zeros(0)
        self.root_reached: Floats = np.zeros((0, bins))  # cycles that ran at least each edge
        self.leaf_finished: Floats = np.zeros(0)
        self.refreshed_at: int | None = None
        self.news = 0  # cycles finished since the last refresh

    # ------------------------------------------------------------------ groups

    def group(self, metric: str, policy: str, priority: str, queue: str) -> int:
        key = (metric, policy, priority, queue)
        gid = self._leaf.get(key)
        if gid is not None:
            return gid
        gid = len(self.leaf_keys)
        self._leaf[key] = gid
        self.leaf_keys.append(key)
        self.mid_of.append(self._mid.setdefault((metric, policy, priority), len(self._mid)))
        self.root_of.append(self._root.setdefault((metric, policy), len(self._root)))
        if gid >= self._finished.size:
            grow = self._finished.size
            self._events = np.vstack([self._events, np.zeros_like(self._events[:grow])])
            self._exposure = np.vstack([self._exposure, np.zeros_like(self._exposure[:grow])])
            self._entered = np.vstack([self._entered, np.zeros_like(self._entered[:grow])])
            self._finished = np.append(self._finished, np.zeros(grow))
        return gid

    @property
    def groups(self) -> int:
        return len(self.leaf_keys)

    # ------------------------------------------------------------------ observations

    def add_finished(self, gid: int, duration_s: float, ended_us: int | None = None) -> None:
        """A cycle of group ``gid`` was met after ``duration_s`` business seconds, at
        ``ended_us``: it weighs as its age says when the tables are next decayed (history
        loaded at start-up is not all as fresh as today)."""
        d = max(float(duration_s), 0.0)
        weight = 1.0 if ended_us is None else self._weights(ended_us)
        self._exposure[gid] += weight * np.clip(d - self.edges, 0.0, self.widths)
        self._entered[gid] += weight * (self.edges <= d)
        k = int(np.searchsorted(self.edges, d, side="right")) - 1
        self._events[gid, k] += weight
        self._finished[gid] += weight
        self.news += 1

    def add_finished_many(self, gid: int, durations_s: Floats, ended_us: Ints) -> None:
        """``add_finished`` for many cycles of one group at once."""
        if durations_s.size == 0:
            return
        weights = self._weights(ended_us)
        d = np.maximum(durations_s, 0.0)
        for lo in range(0, d.size, 4096):  # bounded memory: cycles × bins per step
            part, w = d[lo : lo + 4096, None], weights[lo : lo + 4096]
            self._exposure[gid] += w @ np.clip(part - self.edges, 0.0, self.widths)
            self._entered[gid] += w @ (self.edges <= part)
        bins = np.searchsorted(self.edges, d, side="right") - 1
        np.add.at(self._events[gid], bins, weights)
        self._finished[gid] += float(weights.sum())
        self.news += int(d.size)

    @overload
    def _weights(self, ended_us: int) -> float: ...
    @overload
    def _weights(self, ended_us: Ints) -> Floats: ...
    def _weights(self, ended_us: int | Ints) -> float | Floats:
        """Weights of cycles that ended at ``ended_us`` relative to the instant the recorded
        weights are as of (the next refresh decays everything to its ``now``)."""
        if self._decayed_at is None:
            self._decayed_at = int(np.ravel(ended_us)[0])
        weights: float | Floats = 2.0 ** ((ended_us - self._decayed_at) / self.half_life_us)
        return weights

    def refresh(self, now_us: int, open_gids: Ints, open_elapsed_s: Floats) -> None:
        """Decay what was recorded, add the open cycles as censored at their elapsed time, and
        rebuild the hazards of every group from what is known at ``now_us``."""
        if self._decayed_at is not None and now_us > self._decayed_at:
            factor = decay(now_us - self._decayed_at, self.half_life_us)
            for table in (self._events, self._exposure, self._entered, self._finished):
                table *= factor
        self._decayed_at = max(now_us, self._decayed_at or now_us)
        n = self.groups
        bins = self.edges.size
        events = self._events[:n]
        exposure = self._exposure[:n].copy()
        entered = self._entered[:n].copy()
        if open_gids.size:
            e = np.maximum(open_elapsed_s, 0.0)[:, None]
            contribution = np.clip(e - self.edges[None, :], 0.0, self.widths[None, :])
            cells = (open_gids[:, None] * bins + np.arange(bins)[None, :]).ravel()
            exposure += np.bincount(cells, contribution.ravel(), n * bins).reshape(n, bins)
            reached = (self.edges[None, :] <= e).ravel().astype(np.float64)
            entered += np.bincount(cells, reached, n * bins).reshape(n, bins)
        mid_of = np.array(self.mid_of, np.int64)
        root_of = np.array(self.root_of, np.int64)
        mids, roots = len(self._mid), len(self._root)
        tables = []
        for parent_of, size in ((mid_of, mids), (root_of, roots)):
            membership = np.zeros((size, n))
            membership[parent_of, np.arange(n)] = 1.0
            tables.append([membership @ leaf for leaf in (events, exposure, entered)])
        (mid_d, mid_x, mid_n), (root_d, root_x, root_n) = tables
        root_h = self._root_hazard(root_d, root_x)
        # Each level leans on its parent by PRIOR_CYCLES cycles' worth of the parent's exposure.
        mid_parent_h = root_h[root_of_mid(mid_of, root_of, mids)]
        mid_prior = PRIOR_CYCLES * _per_cycle(root_x, root_n)[root_of_mid(mid_of, root_of, mids)]
        mid_h = _shrunk(mid_d, mid_x, mid_prior, mid_parent_h)
        leaf_prior = PRIOR_CYCLES * _per_cycle(mid_x, mid_n)[mid_of]
        leaf_h = _shrunk(events, exposure, leaf_prior, mid_h[mid_of])
        finite = np.where(np.isfinite(self.widths), self.widths, 0.0)
        cum = np.zeros_like(leaf_h)
        np.cumsum(leaf_h[:, :-1] * finite[None, :-1], axis=1, out=cum[:, 1:])
        self.hazard = leaf_h
        self.cum_hazard = cum
        root_finished: Floats = np.bincount(root_of, self._finished[:n], roots).astype(np.float64)
        self.root_finished = root_finished[root_of]
        self.root_reached = root_n[root_of]
        self.leaf_finished = self._finished[:n].copy()
        self.refreshed_at = now_us
        self.news = 0

    def _root_hazard(self, d: Floats, x: Floats) -> Floats:
        # Pooled hazard of each bin and every later one: the prior of sparse (tail) bins.
        tail_d = np.cumsum(d[:, ::-1], axis=1)[:, ::-1]
        tail_x = np.cumsum(x[:, ::-1], axis=1)[:, ::-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            tail = np.where(tail_x > 0, tail_d / tail_x, np.nan)
        # Bins nobody reached take the last known pooled hazard.
        tail = _forward_fill(tail)
        tail = np.nan_to_num(tail, nan=0.0)
        prior = ROOT_PRIOR_CYCLES * self._prior_widths[None, :]
        hazard: Floats = (d + prior * tail) / (x + prior)
        return hazard

    # ------------------------------------------------------------------ queries

    def cumulative(self, gids: Ints, elapsed_s: Floats) -> Floats:
        """H(x) for each row (snapshot values; gids must exist in the snapshot)."""
        x = np.maximum(elapsed_s, 0.0)
        k = np.searchsorted(self.edges, x, side="right") - 1
        values: Floats = self.cum_hazard[gids, k] + self.hazard[gids, k] * (x - self.edges[k])
        return values

    def reached(self, gids: Ints, elapsed_s: Floats) -> Floats:
        """How many cycles (decayed, finished or open) of each row's policy × metric ran at
        least as long as ``elapsed_s`` (rounded down to a bin edge)."""
        k = np.searchsorted(self.edges, np.maximum(elapsed_s, 0.0), side="right") - 1
        counts: Floats = self.root_reached[gids, k]
        return counts

    def in_snapshot(self, gids: Ints) -> npt.NDArray[np.bool_]:
        known: npt.NDArray[np.bool_] = gids < self.cum_hazard.shape[0]
        return known

    def time_at(self, gid: int, cumulative_hazard: float) -> float | None:
        """The business seconds at which H reaches the value (None: beyond every bin with a
        hazard, e.g. a group where nothing is ever met)."""
        cum, hazard = self.cum_hazard[gid], self.hazard[gid]
        k = int(np.searchsorted(cum, cumulative_hazard, side="right")) - 1
        k = max(k, 0)
        rate = float(hazard[k])
        if rate <= 0.0:
            return None
        seconds = float(self.edges[k]) + (cumulative_hazard - float(cum[k])) / rate
        if k < self.edges.size - 1 and seconds > self.edges[k + 1]:
            return None
        if k == self.edges.size - 1 and seconds > 2 * self.edges[k]:
            return None  # far beyond every cycle ever seen: no figure is honest
        return seconds if math.isfinite(seconds) else None


def root_of_mid(mid_of: Ints, root_of: Ints, mids: int) -> Ints:
    """The root of each mid-level group."""
    out = np.zeros(mids, np.int64)
    out[mid_of] = root_of
    return out


def _shrunk(events: Floats, exposure: Floats, prior: Floats, parent: Floats) -> Floats:
    """Events over exposure, leaning on the parent's hazard by ``prior`` exposure; the
    parent's hazard where neither saw anything."""
    weight = exposure + prior
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard: Floats = np.where(
            weight > 0, (events + prior * parent) / np.maximum(weight, 1e-300), parent
        )
    return hazard


def _per_cycle(exposure: Floats, entered: Floats) -> Floats:
    """Mean exposure per cycle that entered each bin (what one cycle of evidence weighs)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per: Floats = np.where(entered > 0, exposure / np.maximum(entered, 1e-12), 0.0)
    return per


def _forward_fill(values: Floats) -> Floats:
    out = values.copy()
    for k in range(1, out.shape[1]):
        missing = np.isnan(out[:, k])
        out[missing, k] = out[missing, k - 1]
    return out
