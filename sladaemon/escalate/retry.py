"""When to try again: capped exponential backoff with equal jitter.

The one backoff of the project: failed deliveries (escalate/deliver.py) and failed helpdesk
requests (sources/http.py) wait ``retry_delay`` seconds. The ceiling doubles with each failed
attempt, from ``first`` up to ``cap``; the wait is drawn uniformly from its upper half, so
retries of many clients spread out while none comes back sooner than half the ceiling.
"""

from __future__ import annotations

import random


def retry_delay(attempts: int, first: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after ``attempts`` failed attempts (1, 2, ...): between half and all of
    ``min(cap, first * 2**(attempts-1))``."""
    ceiling = min(cap, first * 2.0 ** max(0, attempts - 1))
    roll: float = rng.random() if rng is not None else random.random()
    return float(ceiling * (0.5 + 0.5 * roll))
