"""What the Zendesk connector remembers between polls (``SyncState``, its cursor) and what one
poll changes before it is committed (``SyncPass``): applied to the source only when the poll
succeeds, so a failed poll changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Self

from sladaemon.errors import RowIssue
from sladaemon.model import TicketEvent
from sladaemon.sources.zendesk.payloads import Audit, Ticket


@dataclass(frozen=True, slots=True)
class KnownTicket:
    status: str
    updated: int  # epoch seconds of the newest change applied


@dataclass
class SyncState:
    """Where polling stands; saved as the cursor."""

    export: str | None = None  # the ticket export's ``after_cursor``
    start_time: int | None = None  # where the export starts without one (epoch seconds)
    events_from: int | None = None  # the event export is processed up to here (epoch seconds)
    known: dict[str, KnownTicket] = field(default_factory=dict)  # open tickets delivered
    reconciled_at: float | None = None  # epoch seconds when the last reconciliation began

    def to_cursor(self) -> dict[str, Any]:
        return {
            "export": self.export,
            "start_time": self.start_time,
            "events_from": self.events_from,
            "known": {tid: [k.status, k.updated] for tid, k in self.known.items()},
            "reconciled_at": self.reconciled_at,
        }

    @classmethod
    def from_cursor(cls, cursor: object) -> Self:
        """The state a cursor describes; a missing or unreadable cursor starts afresh."""
        if not isinstance(cursor, dict):
            return cls()
        reconciled = cursor.get("reconciled_at")
        try:
            return cls(
                export=_str_or_none(cursor.get("export")),
                start_time=int_or_none(cursor.get("start_time")),
                events_from=int_or_none(cursor.get("events_from")),
                known=_known_from(cursor.get("known")),
                reconciled_at=float(reconciled) if isinstance(reconciled, int | float) else None,
            )
        except (OverflowError, ValueError):
            return cls()


@dataclass
class ExportBatch:
    """Tickets read from the export whose events are not all out yet."""

    tickets: dict[str, Ticket]  # in export order
    issues: list[RowIssue]
    after_cursor: str | None
    end_of_stream: bool
    newest: int  # epoch of the newest change in the batch
    events_next: int  # where the ticket event export continues for this batch
    events_read: bool = False
    audits: dict[str, list[Audit] | None] = field(default_factory=dict)  # fetched one by one


@dataclass
class Reconciliation:
    started_at: datetime
    search_after: str | None = None
    listed: bool = False
    checked: bool = False
    seen: set[str] = field(default_factory=set)
    backlog: list[Ticket] = field(default_factory=list)  # open tickets never seen

    def copy(self) -> Reconciliation:
        return replace(self, seen=set(self.seen), backlog=list(self.backlog))


class SyncPass:
    """What one poll changes; applied to the source only when the poll succeeds."""

    def __init__(self, known: dict[str, KnownTicket], reconciliation: Reconciliation | None):
        self.known = dict(known)
        self.reconciliation = reconciliation.copy() if reconciliation else None
        self.events: list[TicketEvent] = []
        self.issues: list[RowIssue] = []
        self.emitted: dict[str, set[str]] = {}
        self.consumed: set[str] = set()  # tickets whose waiting audits are used up
        self.closed: set[str] = set()
        self.processed: list[str] = []  # tickets of the export batch done in this poll
        self.caught_up = False  # the export has nothing more waiting
        self.reconciled_at: float | None = None
        self.incremental_requests = 0
        self.audit_fetches = 0
        self.groups_fetched = False


def int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _known_from(value: object) -> dict[str, KnownTicket]:
    known: dict[str, KnownTicket] = {}
    if isinstance(value, dict):
        for ticket_id, entry in value.items():
            if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str):
                known[str(ticket_id)] = KnownTicket(entry[0], int_or_none(entry[1]) or 0)
    return known
