"""The predictor keeps score of its own probabilities.

Every time the life tables are rebuilt, the probability of each running metric is noted. When
that metric's outcome is known — met in time, or breached — one of the probabilities noted for
it, drawn evenly among them (a reservoir of one, so a metric open for a week does not vote
more than one open for an hour, and memory stays one slot per open metric), teaches its bin
(0–5 %, 5–10 %, 10–20 %, … 95–100 %) of its policy × metric. A bin's correction is the
breaches it saw over the breaches its probabilities promised, both exponentially decayed,
shrunk towards 1 by ``PRIOR_SAMPLES`` samples; a probability is multiplied by the correction
of its bin.

So a history that misleads — a log whose old tickets were unusually slow, a queue that changed
its ways — is corrected by what actually happened since, and only by that: an outcome counts
from the instant it is known.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sladaemon.predict.weekly import decay

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

EDGES = np.array([0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0])
CENTRES = (EDGES[:-1] + EDGES[1:]) / 2.0
PRIOR_SAMPLES = 10.0
MAX_PROBABILITY = 0.999
_MIX = 0x9E3779B1  # spreads (slot, count) into an even draw, the same on every run


class Calibration:
    def __init__(self, half_life_us: float) -> None:
        self.half_life_us = half_life_us
        bins = CENTRES.size
        self._samples: Floats = np.zeros((0, bins))
        self._breaches: Floats = np.zeros((0, bins))
        self._promised: Floats = np.zeros((0, bins))
        self._at: int | None = None
        # Per row slot: how many probabilities were noted, and the one kept.
        self._noted: npt.NDArray[np.int32] = np.zeros(0, np.int32)
        self._kept: npt.NDArray[np.float32] = np.zeros(0, np.float32)
        self._kept_pm: npt.NDArray[np.int32] = np.zeros(0, np.int32)

    def sample(self, slots: Ints, pms: Ints, probabilities: Floats) -> None:
        """Note the raw probability of each running metric (by its row slot)."""
        if slots.size == 0:
            return
        self._fit(int(slots.max()) + 1)
        count = self._noted[slots].astype(np.int64) + 1
        self._noted[slots] = count
        draw = ((slots * _MIX + count * 0x85EBCA6B) & 0xFFFFFFFF) % count
        keep = draw == 0  # the n-th noted replaces the kept one with chance 1/n
        self._kept[slots[keep]] = probabilities[keep]
        self._kept_pm[slots[keep]] = pms[keep]

    def waiting(self, slot: int) -> bool:
        """Whether a probability noted for ``slot`` waits for its outcome."""
        return slot < self._noted.size and self._noted[slot] > 0

    def resolve(self, slot: int, breached: bool, now_us: int) -> None:
        """The metric of ``slot`` is settled: its kept probability learns the outcome."""
        if not self.waiting(slot):
            return
        p = float(self._kept[slot])
        pm = int(self._kept_pm[slot])
        self._noted[slot] = 0
        self._decay_to(now_us)
        self._ensure(pm)
        b = int(_bin_of(np.array([p]))[0])
        self._samples[pm, b] += 1.0
        self._promised[pm, b] += p
        self._breaches[pm, b] += 1.0 if breached else 0.0

    def discard(self, slot: int) -> None:
        """The metric left without an outcome (ticket gone, policy changed)."""
        if slot < self._noted.size:
            self._noted[slot] = 0

    def apply(self, pms: Ints, probabilities: Floats) -> Floats:
        """Calibrated probabilities (the raw ones where nothing was learnt yet)."""
        out = probabilities.copy()
        known = pms < self._samples.shape[0]
        if not known.any():
            return out
        b = _bin_of(probabilities[known])
        p = pms[known]
        prior = PRIOR_SAMPLES * CENTRES[b]
        factor = (self._breaches[p, b] + prior) / (self._promised[p, b] + prior)
        out[known] = np.minimum(probabilities[known] * factor, MAX_PROBABILITY)
        return out

    @property
    def pending(self) -> int:
        return int((self._noted > 0).sum())

    def _fit(self, slots: int) -> None:
        old = self._noted.size
        if slots > old:
            size = max(slots, old * 5 // 4, 64)
            self._noted = np.concatenate([self._noted, np.zeros(size - old, np.int32)])
            self._kept = np.concatenate([self._kept, np.zeros(size - old, np.float32)])
            self._kept_pm = np.concatenate([self._kept_pm, np.zeros(size - old, np.int32)])

    def _ensure(self, pm: int) -> None:
        while pm >= self._samples.shape[0]:
            grow = max(4, self._samples.shape[0])
            pad = np.zeros((grow, CENTRES.size))
            self._samples = np.vstack([self._samples, pad])
            self._breaches = np.vstack([self._breaches, pad])
            self._promised = np.vstack([self._promised, pad])

    def _decay_to(self, now_us: int) -> None:
        if self._at is not None and now_us > self._at:
            factor = decay(now_us - self._at, self.half_life_us)
            self._samples *= factor
            self._breaches *= factor
            self._promised *= factor
        self._at = max(now_us, self._at or now_us)


def _bin_of(probabilities: Floats) -> Ints:
    bins: Ints = np.clip(
        np.searchsorted(EDGES, probabilities, side="right") - 1, 0, CENTRES.size - 1
    ).astype(np.int64)
    return bins
