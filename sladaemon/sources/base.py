"""What every source gives the daemon."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sladaemon.errors import RowIssue
from sladaemon.model import TicketEvent


@dataclass
class PollResult:
    events: list[TicketEvent] = field(default_factory=list)
    issues: list[RowIssue] = field(default_factory=list)  # input skipped, with reasons
    cursor: Any = None  # where the next poll resumes; persisted with the events
    unknown_statuses: set[str] = field(default_factory=set)
    more: bool = False  # more is waiting: poll again right away
    # Tickets still to load that the helpdesk has told of (a listed backlog, a search total):
    # the ETA of a long sync; None when the API does not say.
    remaining: int | None = None


class Source(Protocol):
    name: str
    persistent: bool  # False: its tickets are dropped, not replayed, at a restart (simulations)

    async def poll(self, now: datetime) -> PollResult:
        """Events that happened since the last poll, up to ``now``. Raises on failure."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class CountsRequests(Protocol):
    """A source that reads a helpdesk API page by page: ``requests`` is how many HTTP requests
    it has made so far (the pages of a sync's progress)."""

    @property
    def requests(self) -> int: ...


class SourceError(Exception):
    """A poll failed; ``retryable`` says whether polling again can help; ``status`` is the
    HTTP status behind it, when there was one."""

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
