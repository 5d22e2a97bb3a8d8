"""The operating point: which probability warns, chosen from the precision asked for.

A rule "warn when the probability reaches θ" warns a metric at the first instant its score
reaches θ while the deadline is still ``lead`` away. Whether that warning was right is known
when the metric finishes: it breached, or it was met. So each finished metric leaves its
*best* score (the highest it had while still warnable) and its outcome, and the precision of θ
on the recent ones is the share that breached among those whose best score reached θ.

Per policy × metric the threshold in force is the lowest θ whose measured precision reaches
the asked ``precision`` on the newest ``WINDOW`` finished metrics, with at least
``MIN_WARNED`` of them warned. Too few finished metrics of a policy × metric: the same rule on
all of them together; too few anywhere: θ = the asked precision itself (the probability is
calibrated, so that many of its warnings come true in expectation). A precision that no θ
reaches: the θ of the best precision measured. Each threshold carries why, in words.

Pure: outcomes in, thresholds out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

WINDOW = 2_000
MIN_FINISHED = 200
MIN_WARNED = 20


@dataclass(frozen=True, slots=True)
class Threshold:
    value: float
    measured_precision: float | None  # on the finished metrics it was chosen from
    finished: int  # how many it was chosen from
    why: str


class OperatingPoints:
    def __init__(self, precision: float) -> None:
        self.precision = precision
        self._finished: dict[int, deque[tuple[float, bool]]] = {}
        self._pooled: deque[tuple[float, bool]] = deque(maxlen=WINDOW * 4)
        self._thresholds: dict[int, Threshold] = {}
        self._fallback = self._default()

    def finished(self, policy_metric: int, best: float, breached: bool) -> None:
        """A metric finished (met, or its deadline passed); ``best``: NaN if never scored."""
        if not np.isfinite(best):
            return
        entry = (float(best), breached)
        self._finished.setdefault(policy_metric, deque(maxlen=WINDOW)).append(entry)
        self._pooled.append(entry)

    def retarget(self, precision: float) -> None:
        """Another precision asked for (a reload): the thresholds are chosen again for it."""
        if precision != self.precision:
            self.precision = precision
            self.refresh()

    def refresh(self) -> None:
        """Choose every threshold again from the finished metrics seen so far."""
        pooled = choose(list(self._pooled), self.precision, "all policies")
        self._fallback = pooled or self._default()
        self._thresholds = {}
        for policy_metric, entries in self._finished.items():
            own = choose(list(entries), self.precision, "this policy and metric")
            if own is not None:
                self._thresholds[policy_metric] = own

    def threshold(self, policy_metric: int) -> Threshold:
        return self._thresholds.get(policy_metric, self._fallback)

    def values(self, policy_metrics: np.ndarray) -> np.ndarray:
        """The threshold in force for each entry of ``policy_metrics``."""
        table = {pm: self.threshold(pm).value for pm in np.unique(policy_metrics).tolist()}
        return np.array([table[pm] for pm in policy_metrics.tolist()], np.float64)

    def _default(self) -> Threshold:
        return Threshold(
            self.precision,
            None,
            0,
            f"probability {self.precision:.0%}: too few finished metrics yet to measure precision",
        )


def choose(entries: list[tuple[float, bool]], precision: float, scope: str) -> Threshold | None:
    """The lowest score whose warnings reached ``precision`` among ``entries`` (see module)."""
    if len(entries) < MIN_FINISHED:
        return None
    best = np.array([score for score, _ in entries])
    breached = np.array([outcome for _, outcome in entries], np.bool_)
    order = np.argsort(-best, kind="stable")
    scores, hits = best[order], breached[order]
    warned = np.arange(1, scores.size + 1)
    measured = np.cumsum(hits) / warned
    # A threshold warns every metric whose best score reaches it: cut only between scores.
    last_of_value = np.r_[scores[1:] != scores[:-1], True]
    usable = last_of_value & (warned >= MIN_WARNED)
    if not usable.any():
        return None
    meets = usable & (measured >= precision)
    if meets.any():
        i = int(np.flatnonzero(meets)[-1])
        return Threshold(
            float(scores[i]),
            float(measured[i]),
            len(entries),
            f"probability {scores[i]:.0%}: {measured[i]:.0%} of its warnings came true on the "
            f"last {len(entries)} finished metrics of {scope} (asked: {precision:.0%})",
        )
    candidates = np.flatnonzero(usable)
    i = int(candidates[np.argmax(measured[candidates])])
    return Threshold(
        float(scores[i]),
        float(measured[i]),
        len(entries),
        f"probability {scores[i]:.0%}: the best precision measured on the last {len(entries)} "
        f"finished metrics of {scope} is {measured[i]:.0%}, below the {precision:.0%} asked",
    )
