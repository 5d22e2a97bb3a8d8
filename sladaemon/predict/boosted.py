"""A trained boosted-trees model as plain arrays, and its calibrated probability of breach.

``BoostedTrees`` holds every tree of a gradient-boosted classifier (see ``training``) as node
arrays, so judging running metrics needs numpy only: the daemon never loads the library that
trained it, and a model crosses a process boundary as a few arrays. ``probability(X)`` walks
all trees at once, one tree level per step, adds the leaves to the baseline, applies the
logistic function and then the calibration learnt on the newest labelled snapshots (a
piecewise-linear map, monotone). Missing values (NaN) go where the training put them.

Pure: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sladaemon.predict.calibration import MAX_PROBABILITY
from sladaemon.predict.columns import Bools, Floats, Ints


@dataclass(frozen=True)
class BoostedTrees:
    """Trees concatenated: node ``i`` of every tree lives at ``roots[tree] + i``."""

    roots: Ints  # first node of each tree
    feature: Ints
    threshold: Floats
    missing_left: Bools
    left: Ints  # absolute node indices; leaves point at themselves
    right: Ints
    leaf: Bools
    value: Floats
    depth: int  # the deepest leaf's depth
    baseline: float
    calibration_x: Floats  # raw probability -> calibrated, by linear interpolation
    calibration_y: Floats
    reference: Floats  # per feature, its median in training (for reasons)
    trained_at: int  # µs: the instant of the training
    snapshots: int  # labelled snapshots it learnt from
    breached: int  # of which went on to breach

    def raw_score(self, features: Floats) -> Floats:
        """The sum of the trees (log-odds) for each row of ``features``."""
        n = features.shape[0]
        if n == 0 or self.roots.size == 0:
            return np.full(n, self.baseline)
        rows = np.arange(n)[:, None]
        node = np.broadcast_to(self.roots, (n, self.roots.size)).copy()
        for _ in range(self.depth):
            x = features[rows, self.feature[node]]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            step = np.where(go_left, self.left[node], self.right[node])
            node = np.where(self.leaf[node], node, step)
        score: Floats = self.baseline + self.value[node].sum(axis=1)
        return score

    def uncalibrated(self, features: Floats) -> Floats:
        score: Floats = 1.0 / (1.0 + np.exp(-self.raw_score(features)))
        return score

    def probability(self, features: Floats) -> Floats:
        """The calibrated probability of breach of each row, never quite 0 or 1 (the
        history seen is never certain)."""
        raw = self.uncalibrated(features)
        if self.calibration_x.size >= 2:
            raw = np.interp(raw, self.calibration_x, self.calibration_y)
        calibrated: Floats = np.clip(raw, 1.0 - MAX_PROBABILITY, MAX_PROBABILITY)
        return calibrated
