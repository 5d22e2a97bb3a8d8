"""The timer queue: the next ladder instant of every open ticket, earliest first.

Each ticket has at most one live entry, its next instant. Re-scheduling a ticket bumps its
version; stale entries are skipped when they surface (lazy deletion), so scheduling is
O(log n) and nothing is ever searched.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from datetime import datetime
from typing import Generic, TypeVar

from sladaemon.calendar import from_us

K = TypeVar("K", bound=Hashable)


class TimerQueue(Generic[K]):
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, K]] = []
        self._live: dict[K, tuple[int, int]] = {}  # ticket -> (instant, version)
        self._version = 0

    def __len__(self) -> int:
        return len(self._live)

    def schedule(self, ticket: K, instant: int | None) -> None:
        """Set the ticket's next instant (µs), replacing any earlier one; None cancels it."""
        if instant is None:
            self._live.pop(ticket, None)
            return
        current = self._live.get(ticket)
        if current is not None and current[0] == instant:
            return
        self._version += 1
        self._live[ticket] = (instant, self._version)
        heapq.heappush(self._heap, (instant, self._version, ticket))

    def next_instant(self) -> int | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def next_at(self) -> datetime | None:
        """The next instant as a datetime (what a clock waits for)."""
        nxt = self.next_instant()
        return from_us(nxt) if nxt is not None else None

    def pop_due(self, now: int) -> list[tuple[K, int]]:
        """Tickets whose instant is at or before ``now``, with that instant, earliest first."""
        due: list[tuple[K, int]] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return due
            instant, _, ticket = heapq.heappop(self._heap)
            del self._live[ticket]
            due.append((ticket, instant))

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap:
            instant, version, ticket = heap[0]
            if self._live.get(ticket) == (instant, version):
                return
            heapq.heappop(heap)
