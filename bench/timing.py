"""Timing one step of a benchmark: the garbage collector run before and paused during it (as
``timeit`` does), so a collection left over from the previous step is not charged to it; and
the small helpers the daemon benchmarks share (percentiles, event-file timestamps)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(seconds, result) of ``fn()``."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result
    finally:
        gc.enable()


def percentile(values: Iterable[float], p: float) -> float:
    """The ``p`` quantile (0..1) of ``values`` by rank (nearest below); NaN for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1)))] if ordered else float("nan")


def stamp(t: datetime) -> str:
    """An aware instant as the event files write it: ISO 8601 in UTC with a ``Z``."""
    return t.isoformat().replace("+00:00", "Z")
