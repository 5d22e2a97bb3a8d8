"""Freshdesk tickets -> TicketEvents (pure).

Freshdesk has no cheap per-ticket history, so a ticket's history is rebuilt from one snapshot
with ``include=stats``:

* ``created`` at ``created_at`` with the ticket's fields (and its status when the status never
  changed, else ``Open``, the status Freshdesk creates tickets in);
* ``agent_reply`` at ``stats.first_responded_at`` (Freshdesk's own first response: a public
  agent reply, never a private note) and at ``stats.agent_responded_at`` (the latest one);
* ``customer_reply`` at ``stats.requester_responded_at`` (the latest one);
* earlier status changes the stats still tell (``pending_since``, ``resolved_at``,
  ``closed_at``, ``reopened_at``, each only when before the latest status change), then the
  current status at ``stats.status_updated_at``;
* a field update at ``updated_at`` carrying the current status and fields (a changed priority
  or group), and one carrying the native deadlines as ``due:*`` fields.

The group's name is both ``queue`` and ``group``; the responder (the agent assigned) is
``assignee``, by email in lower case. The field update always carries both ``assignee`` and
``group``, empty when the ticket has none, so an unassignment clears them.


A reply and a status change at the same instant come reply first, except that a reopen goes
before the customer's reply that caused it (Freshdesk stamps both with the reply's time), so
the reply waits for an answer (``sources.ordering``).

Event ids are built from what they describe (kind, status, timestamp, values), so reading the
same ticket again gives the same ids and only what changed is new to the daemon. Between two
polls only the latest reply of each side is visible; polling every minute or so loses nothing
in practice, and the first response is always exact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from types import MappingProxyType

from sladaemon.model import EventKind, Metric, StatusCategory, TicketEvent, native_due_field
from sladaemon.sources.channels import ChannelMap
from sladaemon.sources.freshdesk.payloads import FreshdeskTicket, TicketStats
from sladaemon.sources.ordering import reopen_before_replies
from sladaemon.sources.people import ASSIGNEE, GROUP

OPEN, PENDING, RESOLVED, CLOSED = 2, 3, 4, 5

STATUS_NAMES: Mapping[int, str] = MappingProxyType(
    {OPEN: "Open", PENDING: "Pending", RESOLVED: "Resolved", CLOSED: "Closed"}
)
DEFAULT_STATUSES: Mapping[int, StatusCategory] = MappingProxyType(
    {
        OPEN: StatusCategory.OPEN,
        PENDING: StatusCategory.PENDING,
        RESOLVED: StatusCategory.SOLVED,
        CLOSED: StatusCategory.CLOSED,
    }
)
PRIORITY_NAMES: Mapping[int, str] = MappingProxyType(
    {1: "low", 2: "medium", 3: "high", 4: "urgent"}
)
# Ticket ``source`` codes as Freshdesk names them (channel config keys may use either).
SOURCE_NAMES: Mapping[int, str] = MappingProxyType(
    {
        1: "email",
        2: "portal",
        3: "phone",
        4: "forum",
        5: "twitter",
        6: "facebook",
        7: "chat",
        8: "mobihelp",
        9: "feedback widget",
        10: "outbound email",
    }
)
DEFAULT_CHANNELS: Mapping[str, str] = MappingProxyType(
    {"1": "email", "2": "web", "3": "phone", "7": "chat", "9": "web", "10": "email"}
)

DUE_FIELDS: tuple[tuple[str, Metric], ...] = (
    ("fr_due_by", Metric.FIRST_RESPONSE),
    ("nr_due_by", Metric.NEXT_RESPONSE),
    ("due_by", Metric.RESOLUTION),
)


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with a ``Z``, seconds unless the value has a fraction."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class StatusCategories:
    """Freshdesk status code (and name) -> category.

    The source's ``statuses`` config comes first, by number (``"6"``) or by name
    (``"Waiting on Third Party"``, globs allowed); then the four built-in statuses; then a
    custom status literally named like a category (``on_hold``). Any other status counts as
    open and is remembered in ``unknown``.
    """

    def __init__(self, configured: Mapping[str, StatusCategory] | None = None) -> None:
        self._exact: dict[str, StatusCategory] = {}
        self._globs: list[tuple[str, StatusCategory]] = []
        for raw, category in (configured or {}).items():
            key = raw.strip().lower()
            if any(c in key for c in "*?["):
                self._globs.append((key, category))
            else:
                self._exact[key] = category
        self.unknown: set[str] = set()

    def __call__(self, code: int | None, name: str) -> StatusCategory:
        key = name.strip().lower()
        for candidate in (str(code) if code is not None else None, key):
            if candidate is not None and candidate in self._exact:
                return self._exact[candidate]
        for pattern, category in self._globs:
            if fnmatchcase(key, pattern):
                return category
        if code is not None and code in DEFAULT_STATUSES:
            return DEFAULT_STATUSES[code]
        try:
            return StatusCategory(key.replace(" ", "_"))
        except ValueError:
            self.unknown.add(name)
            return StatusCategory.OPEN


@dataclass(frozen=True)
class Vocabulary:
    """Names the ticket payload only gives as numbers."""

    status_names: Mapping[int, str] = field(default_factory=dict)  # custom statuses
    group_names: Mapping[int, str] = field(default_factory=dict)
    agent_names: Mapping[int, str] = field(default_factory=dict)  # agent id -> email
    channels: ChannelMap = field(default_factory=lambda: ChannelMap(DEFAULT_CHANNELS))

    def status_name(self, code: int | None) -> str:
        if code is None:
            return ""
        return STATUS_NAMES.get(code) or self.status_names.get(code) or str(code)

    def queue(self, group_id: int | None) -> str:
        if group_id is None:
            return ""
        return self.group_names.get(group_id) or str(group_id)

    def assignee(self, responder_id: int | None) -> str:
        """The assigned agent's email (the id when the agent could not be read); "" for none."""
        if responder_id is None:
            return ""
        return self.agent_names.get(responder_id) or str(responder_id)

    def channel(self, source: int | None) -> str:
        """The channel of a source code, by code, else by Freshdesk's name for it; unknown
        codes are channel ``other`` (remembered by the channel map)."""
        if source is None:
            return ""
        found = self.channels.find(str(source))
        if found is None and source in SOURCE_NAMES:
            found = self.channels.find(SOURCE_NAMES[source])
        return found if found is not None else self.channels(str(source))


def ticket_fields(ticket: FreshdeskTicket, vocabulary: Vocabulary) -> dict[str, str]:
    """The ticket fields policies match on; empty values are left out."""
    values = {
        "priority": PRIORITY_NAMES.get(ticket.priority, str(ticket.priority))
        if ticket.priority is not None
        else "",
        "channel": vocabulary.channel(ticket.source),
        "queue": vocabulary.queue(ticket.group_id),
        GROUP: vocabulary.queue(ticket.group_id),
        ASSIGNEE: vocabulary.assignee(ticket.responder_id),
        "type": ticket.type or "",
        "company": str(ticket.company_id) if ticket.company_id is not None else "",
        "product": str(ticket.product_id) if ticket.product_id is not None else "",
        "tags": ",".join(sorted(ticket.tags)),
    }
    return {k: v for k, v in values.items() if v}


def status_changed_at(ticket: FreshdeskTicket) -> datetime:
    """When the current status was set (``updated_at`` when the stats do not say)."""
    stats = ticket.stats
    at = stats.status_updated_at if stats and stats.status_updated_at else ticket.updated
    return max(at, ticket.created)


def ticket_events(
    ticket: FreshdeskTicket,
    vocabulary: Vocabulary,
    categorize: Callable[[int | None, str], StatusCategory],
) -> list[TicketEvent]:
    """The history of ``ticket`` as far as one snapshot tells it, in time order."""
    statuses = _Statuses(vocabulary, categorize)
    created = ticket.created
    stats = ticket.stats
    fields = ticket_fields(ticket, vocabulary)
    current = ticket.status
    current_at = status_changed_at(ticket)
    unchanged = current is not None and current_at <= created
    initial = current if unchanged and current is not None else OPEN
    events: list[_Placed] = [(created, 0, _created_event(ticket, initial, fields, statuses))]
    if stats is not None:
        events += _reply_events(ticket.ticket_id, stats, created)
        events += _earlier_status_events(ticket.ticket_id, stats, created, current_at, statuses)
    if current is not None and not unchanged:
        reopened_at = stats.reopened_at if stats else None
        current_event = statuses.event(ticket.ticket_id, current, current_at, reopened_at)
        events.append((current_at, 2, current_event))
    latest = max(ticket.updated, current_at)
    if latest > created:
        events.append((latest, 3, _fields_event(ticket, latest, fields, statuses)))
    due = _due_event(ticket, latest)
    if due is not None:
        events.append((latest, 4, due))
    events.sort(key=lambda item: (item[0], item[1]))
    return reopen_before_replies([event for _, _, event in events])


def closed_event(ticket_id: str, at: datetime, status: str) -> TicketEvent:
    """The ticket left the helpdesk's view (``deleted``, ``spam``, ``unwatched``)."""
    return TicketEvent(
        ticket_id,
        at,
        EventKind.CLOSED,
        status=status,
        category=StatusCategory.CLOSED,
        event_id=f"closed:{status}@{iso(at)}",
    )


def _digest(fields: Mapping[str, str]) -> str:
    text = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:10]


_Placed = tuple[datetime, int, TicketEvent]  # (time, rank among the events at that time, event)


@dataclass(frozen=True)
class _Statuses:
    """Status codes as names and categories, and the events of status changes."""

    vocabulary: Vocabulary
    categorize: Callable[[int | None, str], StatusCategory]

    def category(self, code: int | None) -> StatusCategory:
        return self.categorize(code, self.vocabulary.status_name(code))

    def event(self, tid: str, code: int, at: datetime, reopened_at: datetime | None) -> TicketEvent:
        """The status set to ``code`` at ``at``: a reopening when at ``reopened_at``."""
        name = self.vocabulary.status_name(code)
        category = self.categorize(code, name)
        if category is StatusCategory.CLOSED:
            kind = EventKind.CLOSED
        elif category is StatusCategory.SOLVED:
            kind = EventKind.RESOLVED
        elif reopened_at is not None and at == reopened_at:
            kind = EventKind.REOPENED
        else:
            kind = EventKind.STATUS_CHANGED
        return TicketEvent(
            tid, at, kind, status=name, category=category, event_id=f"status:{code}@{iso(at)}"
        )


def _created_event(
    ticket: FreshdeskTicket, initial: int, fields: dict[str, str], statuses: _Statuses
) -> TicketEvent:
    """``created`` at ``created_at``, in the status ``initial``, with the ticket's fields."""
    return TicketEvent(
        ticket.ticket_id,
        ticket.created,
        EventKind.CREATED,
        status=statuses.vocabulary.status_name(initial),
        category=statuses.category(initial),
        fields=MappingProxyType(fields),
        event_id="created",
    )


def _reply_events(tid: str, stats: TicketStats, created: datetime) -> list[_Placed]:
    """The agents' first and latest replies and the requester's latest one."""
    events: list[_Placed] = []
    replied = {stats.first_responded_at, stats.agent_responded_at}
    for at in sorted(at for at in replied if at is not None):
        moment = max(at, created)
        event = TicketEvent(tid, moment, EventKind.AGENT_REPLY, event_id=f"agent_reply@{iso(at)}")
        events.append((moment, 1, event))
    if stats.requester_responded_at is not None:
        moment = max(stats.requester_responded_at, created)
        event = TicketEvent(
            tid,
            moment,
            EventKind.CUSTOMER_REPLY,
            event_id=f"customer_reply@{iso(stats.requester_responded_at)}",
        )
        events.append((moment, 1, event))
    return events


def _earlier_status_events(
    tid: str, stats: TicketStats, created: datetime, current_at: datetime, statuses: _Statuses
) -> list[_Placed]:
    """The status changes the stats still tell from before the latest one."""
    earlier = (
        (PENDING, stats.pending_since),
        (RESOLVED, stats.resolved_at),
        (CLOSED, stats.closed_at),
        (OPEN, stats.reopened_at),
    )
    events: list[_Placed] = []
    for code, changed in earlier:
        if changed is None or max(changed, created) >= current_at:
            continue
        moment = max(changed, created)
        events.append((moment, 2, statuses.event(tid, code, moment, stats.reopened_at)))
    return events


def _fields_event(
    ticket: FreshdeskTicket, latest: datetime, fields: dict[str, str], statuses: _Statuses
) -> TicketEvent:
    """The current status and fields as of the latest change; ``assignee`` and ``group`` are
    there even when empty (nobody, no group)."""
    fields = {ASSIGNEE: "", GROUP: "", **fields}
    current = ticket.status
    return TicketEvent(
        ticket.ticket_id,
        latest,
        EventKind.STATUS_CHANGED,
        status=statuses.vocabulary.status_name(current),
        category=statuses.category(current) if current is not None else None,
        fields=MappingProxyType(fields),
        event_id=f"fields@{iso(latest)}:{_digest(fields)}",
    )


def _due_event(ticket: FreshdeskTicket, latest: datetime) -> TicketEvent | None:
    """The native deadlines as ``due:*`` fields; None when the ticket has none."""
    due = {
        native_due_field(metric): iso(value)
        for name, metric in DUE_FIELDS
        if (value := getattr(ticket, name)) is not None
    }
    if not due:
        return None
    described = ";".join(f"{k.removeprefix('due:')}={v}" for k, v in due.items())
    return TicketEvent(
        ticket.ticket_id,
        latest,
        EventKind.STATUS_CHANGED,
        fields=MappingProxyType(due),
        event_id=f"due:{described}@{iso(latest)}",
    )
