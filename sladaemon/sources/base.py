"""What every source gives the daemon."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sladaemon.errors import RowIssue
from sladaemon.model import TicketEvent


@dataclass
class PollResult:
    events: list[TicketEvent] = field(default_factory=list)
    issues: list[RowIssue] = field(default_factory=list)  # input skipped, with reasons
    cursor: Any = None  # where the next poll resumes; persisted with the events
    unknown_statuses: set[str] = field(default_factory=set)
    more: bool = False  # more is waiting: poll again right away


class Source(Protocol):
    name: str
    persistent: bool  # False: its tickets are not kept across restarts (simulations)

    async def poll(self, now: datetime) -> PollResult:
        """Events that happened since the last poll, up to ``now``. Raises on failure."""
        ...

    async def close(self) -> None: ...


class SourceError(Exception):
    """A poll failed; ``retryable`` says whether polling again can help; ``status`` is the
    HTTP status behind it, when there was one."""

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
