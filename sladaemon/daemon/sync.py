"""How far a source's sync has got: the first poll of a big helpdesk takes minutes.

A sync is one ``poll_all`` (polls until the source has nothing more waiting). ``SyncProgress``
counts what it brought: polls, pages (the source's HTTP requests, for sources that count them),
events and distinct tickets, the rate in tickets a second, and an ETA when the source tells how
many tickets are still to come (``PollResult.remaining``). The App shows it in the log every
``PROGRESS_EVERY`` seconds, in systemd's ``STATUS=`` and in ``/healthz``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sladaemon.durations import format_duration
from sladaemon.sources.base import CountsRequests, PollResult, Source

PROGRESS_EVERY = 10.0  # seconds between progress reports of a sync


def requests_of(source: Source) -> int | None:
    """HTTP requests the source has made so far; None for sources that make none."""
    return source.requests if isinstance(source, CountsRequests) else None


@dataclass(eq=False)
class SyncProgress:
    source: str
    requests: Callable[[], int | None]  # the source's request count now (see ``requests_of``)
    started: float = field(default_factory=time.monotonic)
    polls: int = 0
    pages: int = 0
    events: int = 0
    remaining: int | None = None  # tickets still to come, as the source last told
    finished: float | None = None  # monotonic
    _tickets: set[str] = field(default_factory=set)
    _last_requests: int | None = None

    def __post_init__(self) -> None:
        self._last_requests = self.requests()

    @property
    def tickets(self) -> int:
        return len(self._tickets)

    def note(self, result: PollResult) -> None:
        """A poll succeeded and brought ``result``."""
        self.polls += 1
        self.events += len(result.events)
        self._tickets.update(e.ticket_id for e in result.events)
        self.remaining = result.remaining
        self._count_pages()

    def finish(self) -> None:
        self._count_pages()
        self.finished = time.monotonic()

    def figures(self) -> dict[str, Any]:
        """Pages, tickets, events, seconds, tickets a second and, when known, what remains
        and the ETA in seconds: for log lines and ``/healthz``."""
        self._count_pages()
        elapsed = (self.finished or time.monotonic()) - self.started
        rate = self.tickets / elapsed if elapsed > 0 else 0.0
        figures: dict[str, Any] = {
            "polls": self.polls,
            "pages": self.pages if self._last_requests is not None else None,
            "tickets": self.tickets,
            "events": self.events,
            "elapsed_s": round(elapsed, 1),
            "tickets_per_s": round(rate, 1),
        }
        if self.remaining is not None and self.finished is None:
            figures["remaining"] = self.remaining
            figures["eta_s"] = round(self.remaining / rate) if rate > 0 else None
        return figures

    def describe(self) -> str:
        """One line for ``systemctl status``: ``zd: 1,200 tickets, 14 pages, 30.5 tickets/s,
        ETA 1m10s``."""
        f = self.figures()
        parts = [f"{f['tickets']:,} tickets"]
        if f["pages"] is not None:
            parts.append(f"{f['pages']:,} pages")
        parts.append(f"{f['tickets_per_s']} tickets/s")
        if f.get("eta_s") is not None:
            parts.append(
                f"{f['remaining']:,} to go, ETA {format_duration(f['eta_s'], exact=False)}"
            )
        return f"{self.source}: " + ", ".join(parts)

    def marker(self) -> tuple[int, int]:
        """Changes whenever a poll or a request completes: the sync is not stuck."""
        self._count_pages()
        return self.polls, self.pages

    def _count_pages(self) -> None:
        now = self.requests()
        if now is None:
            return
        last = self._last_requests
        if last is not None:
            # A source reopened from its cursor counts from zero again.
            self.pages += now - last if now >= last else now
        self._last_requests = now
