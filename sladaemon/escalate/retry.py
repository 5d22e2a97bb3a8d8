"""When to try a failed delivery again: capped exponential backoff with full jitter."""

from __future__ import annotations

import random


def retry_delay(attempts: int, first: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after ``attempts`` failed attempts (1, 2, ...): a random share between
    half and all of ``first * 2**(attempts-1)``, never more than ``cap``."""
    ceiling = min(cap, first * 2.0 ** max(0, attempts - 1))
    roll: float = rng.random() if rng is not None else random.random()
    return float(ceiling * (0.5 + 0.5 * roll))
