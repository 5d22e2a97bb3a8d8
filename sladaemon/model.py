"""Normalized domain values shared by every layer: tickets, their events, SLA events.

These are plain frozen values. Pydantic lives at the boundaries (config, API payloads); the core
sees only what is defined here. Every datetime is aware and in UTC.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

EMPTY_FIELDS: Mapping[str, str] = MappingProxyType({})
SHARED_FIELDS_LIMIT = 65_536  # distinct field sets remembered before starting afresh
_shared_fields: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}


def shared_fields(fields: Mapping[str, str]) -> Mapping[str, str]:
    """``fields`` read-only, as one object for every equal set of fields: tickets repeat their
    priority, channel and queue, so 100,000 tickets need a few mappings, not 100,000."""
    if not fields:
        return EMPTY_FIELDS
    key = tuple(fields.items())
    shared = _shared_fields.get(key)
    if shared is None:
        if len(_shared_fields) >= SHARED_FIELDS_LIMIT:
            _shared_fields.clear()
        shared = _shared_fields[key] = MappingProxyType(dict(key))
    return shared


# Instants events may carry: anything else is a typo or poison (year 9999), never a deadline.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

TicketKey = tuple[str, str]  # (source name, ticket id): a ticket's identity across sources


class StatusCategory(enum.StrEnum):
    """What a helpdesk status means for SLA clocks, whatever the helpdesk calls it."""

    NEW = "new"
    OPEN = "open"
    PENDING = "pending"  # waiting on the customer
    ON_HOLD = "on_hold"  # waiting on a third party
    SOLVED = "solved"
    CLOSED = "closed"

    @property
    def is_done(self) -> bool:
        return self in (StatusCategory.SOLVED, StatusCategory.CLOSED)


class EventKind(enum.StrEnum):
    CREATED = "created"
    AGENT_REPLY = "agent_reply"
    CUSTOMER_REPLY = "customer_reply"
    INTERNAL_NOTE = "internal_note"
    STATUS_CHANGED = "status_changed"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"


# The category an event implies when its row carries no status of its own.
IMPLIED_CATEGORY: Mapping[EventKind, StatusCategory] = MappingProxyType(
    {
        EventKind.CREATED: StatusCategory.NEW,
        EventKind.RESOLVED: StatusCategory.SOLVED,
        EventKind.CLOSED: StatusCategory.CLOSED,
        EventKind.REOPENED: StatusCategory.OPEN,
    }
)


class Metric(enum.StrEnum):
    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    PERIODIC_UPDATE = "periodic_update"
    RESOLUTION = "resolution"


class MetricState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    MET = "met"
    BREACHED = "breached"
    NOT_APPLICABLE = "not_applicable"


class SlaEventKind(enum.StrEnum):
    WARNING = "warning"  # a ladder level below 100 % was reached
    BREACH = "breach"  # elapsed business time passed the target
    ESCALATION = "escalation"  # a ladder level after the breach was reached
    MET = "met"  # the metric was fulfilled within its target
    MET_LATE = "met_late"  # a breached metric was finally fulfilled
    PREDICTED_BREACH = "predicted_breach"


class NotificationKind(enum.StrEnum):
    """What a notification is about; its outbox rows, metrics and headline say the same."""

    WARNING = "warning"
    BREACH = "breach"
    ESCALATION = "escalation"
    RESOLVED = "resolved"  # a breached metric was met after all (send_resolved)
    PREDICTED_BREACH = "predicted_breach"
    QUEUE = "queue"  # a queue forecast
    OPERATOR = "operator"  # about the daemon itself: a stale source, a delivery given up
    TEST = "test"  # notify-test
    REPORT = "report"  # a scheduled KPI report
    OVERDUE_AT_START = "overdue_at_start"  # tickets past a level when monitoring began
    GROUP = "group"  # a digest of the notifications of one group (routing tree)


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One thing that happened to a ticket.

    ``status`` is the helpdesk's raw status (may be empty), ``category`` what it maps to, or
    ``None`` when the event does not change the status. ``fields`` holds the ticket fields this
    event sets (priority, channel, queue and any extra column); empty values are left out.
    Connectors put the helpdesk's own deadlines in fields named ``due:<metric>`` (ISO UTC),
    which are compared with sladaemon's (see ``native_due_field``); an empty ``due:`` value
    clears a deadline the helpdesk no longer shows. Likewise an empty ``assignee`` or ``group``
    (the assignee's lower-case email and the assigned group) is a ticket no longer assigned.
    """

    ticket_id: str
    at: datetime
    kind: EventKind
    status: str = ""
    category: StatusCategory | None = None
    fields: Mapping[str, str] = field(default_factory=lambda: EMPTY_FIELDS)
    line: int = 0  # where it came from (CSV line), 0 when unknown
    event_id: str = ""  # the helpdesk's identity of this event; repeats of an id are ignored

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(f"naive timestamp for ticket {self.ticket_id}: {self.at.isoformat()}")
        if self.fields is not EMPTY_FIELDS:
            object.__setattr__(self, "fields", shared_fields(self.fields))


@dataclass(frozen=True, slots=True)
class SlaEvent:
    """An SLA fact about one ticket metric at one instant."""

    ticket_id: str
    policy: str
    metric: Metric
    kind: SlaEventKind
    at: datetime
    deadline: datetime | None
    level: str | None = None  # ladder level label: "75%", "breach", "breach+30m"
    cycle: int = 0
    details: Mapping[str, Any] = field(default_factory=lambda: EMPTY_FIELDS)


NATIVE_DUE_PREFIX = "due:"
EARLIEST_OF = "|"


def native_due_field(*metrics: Metric) -> str:
    """The ticket field holding the helpdesk's own deadline for ``metric``: ``due:<metric>``.
    With several metrics, ``due:<a>|<b>``: one deadline that is the earliest of theirs, as
    Request Tracker's single ``Due`` is (which one it is, ``sla.native`` decides)."""
    return NATIVE_DUE_PREFIX + EARLIEST_OF.join(m.value for m in metrics)


def native_due_metrics(field_name: str) -> tuple[Metric, ...]:
    """The metrics a ``due:`` field stands for, in its order; () for any other field."""
    if not field_name.startswith(NATIVE_DUE_PREFIX):
        return ()
    names = field_name.removeprefix(NATIVE_DUE_PREFIX).split(EARLIEST_OF)
    try:
        return tuple(Metric(name) for name in names)
    except ValueError:
        return ()


# Targets, wherever ``notify:`` names who is told (escalate/targets.py resolves them).
TARGET_KINDS = ("receiver", "person", "oncall", "ticket")
TICKET_TARGETS = ("assignee", "group")


def split_target(target: str) -> tuple[str, str]:
    """``person:alice`` -> ("person", "alice"); a plain name is a receiver."""
    kind, sep, name = target.partition(":")
    if sep and kind in TARGET_KINDS:
        return kind, name
    return "receiver", target
