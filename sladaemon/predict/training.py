"""Training the boosted model: labelled snapshots in, ``BoostedTrees`` out.

``fit(TrainingSet)`` is a plain function of its arguments, made to run off the event loop (the
daemon runs it in a worker process, the backtest in line). It fits scikit-learn's
``HistGradientBoostingClassifier`` on the older 80 % of the snapshots (by instant; each kept
with its recency weight's probability), calibrates its probabilities with an isotonic
regression on the newest 20 % (so the calibration follows the queue's latest habits), and
exports the trees as arrays. The export is checked against the library's own prediction on the
training rows: a mismatch is an error, never a silently different model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from sladaemon.predict.boosted import BoostedTrees
from sladaemon.predict.columns import Bools, Floats, Ints

CALIBRATION_SHARE = 0.2
MIN_CALIBRATION = 500  # newest snapshots needed to calibrate; fewer: the raw probability
PARAMETERS = {
    "max_iter": 60,
    "learning_rate": 0.1,
    "max_depth": 5,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "early_stopping": False,
    "random_state": 0,
}


@dataclass(frozen=True)
class TrainingSet:
    features: npt.NDArray[np.floating]  # as stored (float16): a quarter of float64 to hand over
    breached: Bools
    weight: Floats
    at: Ints  # when each snapshot was taken
    trained_at: int


def fit(data: TrainingSet) -> BoostedTrees:
    from sklearn.ensemble import HistGradientBoostingClassifier  # heavy: loaded for a training only
    from sklearn.isotonic import IsotonicRegression

    # Recency by sampling, not by weights: each snapshot is kept with its weight's
    # probability (seeded by the training's instant, so a rerun learns the same). Weighted
    # binning costs the library ten times as much as the fit itself.
    keep = np.random.default_rng(data.trained_at).random(data.at.size) < data.weight
    chosen = np.flatnonzero(keep)
    order = chosen[np.argsort(data.at[chosen], kind="stable")]
    features, breached = data.features[order].astype(np.float64), data.breached[order]
    # A column nothing was ever known of (no channel in a log) splits nothing: the library
    # cannot bin it, so it is learnt as a constant (and missing values follow it).
    features[:, np.isnan(features).all(axis=0)] = 0.0
    n = order.size
    held = int(n * CALIBRATION_SHARE) if n * CALIBRATION_SHARE >= MIN_CALIBRATION else 0
    train = slice(0, n - held)
    if np.unique(breached[train]).size < 2:
        raise ValueError("training needs snapshots of both outcomes")
    model = HistGradientBoostingClassifier(**PARAMETERS)
    model.fit(features[train], breached[train])
    trees = _export(model, features, breached, data.trained_at)
    check = slice(0, min(n, 2000))
    expected = model.decision_function(features[check])
    if not np.allclose(trees.raw_score(features[check]), expected, atol=1e-6):
        raise RuntimeError("the exported trees do not reproduce the trained model")
    if held:
        tail = slice(n - held, n)
        isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        isotonic.fit(trees.uncalibrated(features[tail]), breached[tail])
        trees = _with_calibration(trees, isotonic.X_thresholds_, isotonic.y_thresholds_)
    return trees


def _export(model: object, features: Floats, breached: Bools, trained_at: int) -> BoostedTrees:
    roots, parts = [], []
    offset = 0
    depth = 0
    for iteration in model._predictors:  # type: ignore[attr-defined]
        nodes = iteration[0].nodes
        roots.append(offset)
        parts.append((nodes, offset))
        depth = max(depth, int(nodes["depth"].max()))
        offset += nodes.size

    def column(name: str, dtype: type) -> np.ndarray:
        if not parts:
            return np.zeros(0, dtype)
        return np.concatenate([nodes[name].astype(dtype) for nodes, _ in parts])

    leaf = column("is_leaf", np.bool_)
    left = np.concatenate([nodes["left"].astype(np.int64) + off for nodes, off in parts])
    right = np.concatenate([nodes["right"].astype(np.int64) + off for nodes, off in parts])
    itself = np.arange(offset, dtype=np.int64)
    baseline = float(np.ravel(model._baseline_prediction)[0])  # type: ignore[attr-defined]
    return BoostedTrees(
        roots=np.array(roots, np.int64),
        feature=np.where(leaf, 0, column("feature_idx", np.int64)),
        threshold=column("num_threshold", np.float64),
        missing_left=column("missing_go_to_left", np.bool_),
        left=np.where(leaf, itself, left),
        right=np.where(leaf, itself, right),
        leaf=leaf,
        value=column("value", np.float64),
        depth=depth,
        baseline=baseline,
        calibration_x=np.zeros(0),
        calibration_y=np.zeros(0),
        reference=np.nanmedian(features, axis=0),
        trained_at=trained_at,
        snapshots=int(breached.size),
        breached=int(breached.sum()),
    )


def _with_calibration(trees: BoostedTrees, x: Floats, y: Floats) -> BoostedTrees:
    return replace(trees, calibration_x=np.asarray(x, np.float64), calibration_y=np.asarray(y))
