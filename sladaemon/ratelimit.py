"""Requests a second per client address: a token bucket each. Pure (the clock is given)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_CLIENTS = 10_000  # client addresses whose request budget is remembered


@dataclass
class RateLimit:
    """A token bucket per client address: ``rate`` a second, bursts of ``burst`` (default
    ``4 × rate``, at least 1)."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    burst: float | None = None
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, client: str) -> bool:
        now, burst = self.clock(), self.burst or max(1.0, 4 * self.rate)
        tokens, last = self._buckets.get(client, (burst, now))
        tokens = min(burst, tokens + (now - last) * self.rate)
        if len(self._buckets) >= MAX_CLIENTS and client not in self._buckets:
            self._buckets.clear()  # a flood of addresses: forget budgets rather than memory
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return False
        self._buckets[client] = (tokens - 1, now)
        return True
