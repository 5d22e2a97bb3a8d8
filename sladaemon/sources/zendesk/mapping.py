"""Zendesk payloads -> TicketEvents. Pure: no I/O, no clock.

How Zendesk's data becomes events:

* A ticket first seen yields ``created`` at its ``created_at`` with the values it was created
  with (the audit's ``Create`` events; else the previous value of the first change; else the
  current value): status, priority, channel (``via.channel``), queue and group (group name),
  assignee (email), type, organization and tags. Its audits follow.
* Comments: the one in the creating audit is the ticket's description, not a reply. Private
  comments are ``internal_note``. A public comment by the requester, or by any other user whose
  role is ``end-user``, is ``customer_reply``; by anyone else it is ``agent_reply`` — Zendesk's
  first reply time is the first public comment by an agent. Comments by the system (author
  ``-1``) are not replies.
* Status changes happen at their audit's time: solved -> ``resolved``, closed -> ``closed``
  (status ``merged`` when the ticket was closed by a merge), ``deleted`` -> ``closed`` with
  status ``deleted``, solved/closed back to an active status -> ``reopened``, anything else
  ``status_changed``. Priority and group changes are ``status_changed`` events without a
  category that set ``priority`` / ``queue`` and ``group``; assignee changes set ``assignee``
  (the agent's email, lower case; empty when unassigned). An end user's comment on a solved ticket
  reopens it in the same audit: the reopen is put before the reply (``sources.ordering``).
* A snapshot whose status differs from the one its history ends with (a change without an
  audit, such as a deletion, or a lost update) yields one corrective status event.
* Native SLA deadlines (``slas.policy_metrics[].breach_at``) become ``due:<metric>`` field
  updates; the event id holds the deadline, so a moved deadline is a new event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sladaemon.model import EventKind, Metric, StatusCategory, TicketEvent, native_due_field
from sladaemon.sources.channels import ChannelMap
from sladaemon.sources.ordering import reopen_before_replies
from sladaemon.sources.people import ASSIGNEE, GROUP, BoundedCache
from sladaemon.sources.zendesk.payloads import Audit, AuditEvent, Ticket, Via
from sladaemon.statuses import StatusMap

DEFAULT_STATUSES: Mapping[str, StatusCategory] = MappingProxyType(
    {
        "new": StatusCategory.NEW,
        "open": StatusCategory.OPEN,
        "pending": StatusCategory.PENDING,
        "hold": StatusCategory.ON_HOLD,
        "solved": StatusCategory.SOLVED,
        "closed": StatusCategory.CLOSED,
        "deleted": StatusCategory.CLOSED,
    }
)

# via.channel (a name, or a numeric via id) -> channel name; unknown values count as "other".
DEFAULT_CHANNELS: Mapping[str, str] = MappingProxyType(
    {
        "web": "web",
        "web_form": "web",
        "web_widget": "web",
        "help_center": "web",
        "sample_ticket": "web",
        "email": "email",
        "mail": "email",
        "api": "api",
        "web_service": "api",
        "rule": "api",
        "chat": "chat",
        "chat_transcript": "chat",
        "native_messaging": "chat",
        "voice": "phone",
        "phone": "phone",
        "voicemail": "phone",
        "mobile": "mobile",
        "mobile_sdk": "mobile",
        "twitter": "social",
        "facebook": "social",
        "instagram_dm": "social",
        "whatsapp": "social",
        "any_channel": "other",
        "0": "web",  # numeric via ids: web form
        "4": "email",  # mail
        "5": "api",  # web service
        "8": "api",  # rule (trigger or automation)
    }
)

# Zendesk SLA metric -> (our metric, preference: lower wins when several map to one metric).
# Resolution prefers agent_work_time, which pauses on pending and on-hold like sladaemon's
# default ``pause_on``; then requester_wait_time (pauses on pending), then total_resolution_time.
NATIVE_METRICS: Mapping[str, tuple[Metric, int]] = MappingProxyType(
    {
        "first_reply_time": (Metric.FIRST_RESPONSE, 0),
        "next_reply_time": (Metric.NEXT_RESPONSE, 0),
        "periodic_update_time": (Metric.PERIODIC_UPDATE, 0),
        "pausable_update_time": (Metric.PERIODIC_UPDATE, 1),
        "agent_work_time": (Metric.RESOLUTION, 0),
        "requester_wait_time": (Metric.RESOLUTION, 1),
        "total_resolution_time": (Metric.RESOLUTION, 2),
    }
)

MERGED_TAG = "closed_by_merge"
COMMENT_KINDS = frozenset({"Comment", "VoiceComment"})
END_USER = "end-user"


class UnmappableTicket(ValueError):
    """A ticket payload that parsed but cannot become events (e.g. no time at all)."""


@dataclass
class Directory:
    """Names and roles the mapping looks up: group and organization names, user roles, and
    the identities (email, else name) of assignees."""

    groups: dict[int, str] = field(default_factory=dict)
    organizations: dict[int, str] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)
    people: BoundedCache[int] = field(default_factory=BoundedCache)


@dataclass(frozen=True, slots=True)
class MappedTicket:
    events: list[TicketEvent]
    status: str  # the ticket's raw status after these events


def iso_utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def comment_author(comment: AuditEvent, audit: Audit) -> int | None:
    return comment.author_id if comment.author_id is not None else audit.author_id


def needs_role(comment: AuditEvent, audit: Audit, requester_id: int | None) -> int | None:
    """The author whose role decides what ``comment`` is, or None when no lookup is needed."""
    if comment.kind not in COMMENT_KINDS or comment.public is False:
        return None
    author = comment_author(comment, audit)
    if author is None or author <= 0 or author == requester_id:
        return None
    return author


def is_merge(audit: Audit) -> bool:
    """Whether this audit closes its ticket by merging it into another."""
    if audit.via is not None and (audit.via.channel or "").lower() == "merge":
        return True
    return any(e.field_name == "tags" and MERGED_TAG in _tag_list(e.value) for e in audit.events)


class TicketMapper:
    def __init__(self, statuses: StatusMap, channels: ChannelMap, directory: Directory) -> None:
        self.statuses = statuses
        self.channels = channels
        self.directory = directory

    # ------------------------------------------------------------------ whole tickets

    def first_seen(self, ticket: Ticket, audits: Iterable[Audit]) -> MappedTicket:
        """``created`` and the ticket's history."""
        ordered = _in_time_order(audits)
        created_at = ticket.created_at or next(
            (a.created_at for a in ordered if a.created_at), ticket.changed_at
        )
        if created_at is None:
            raise UnmappableTicket("no created_at, updated_at or generated_timestamp")
        initial = _initial_values(ticket, ordered)
        status = _text(initial.get("status")) or ticket.status or "new"
        fields = self.fields(ticket)
        for name in ("priority", "queue", GROUP, ASSIGNEE):
            fields.pop(name, None)
        _put(fields, "priority", _text(initial.get("priority")))
        queue = self.queue(_id(initial.get("group_id")))
        _put(fields, "queue", queue)
        _put(fields, GROUP, queue)
        _put(fields, ASSIGNEE, self.assignee(_id(initial.get("assignee_id"))))
        created = TicketEvent(
            ticket_id=str(ticket.id),
            at=created_at,
            kind=EventKind.CREATED,
            status=status,
            category=self.statuses(status),
            fields=MappingProxyType(fields),
            event_id="created",
        )
        history, status = self._history(ticket, ordered, status, created_at)
        return MappedTicket([created, *history], status)

    def update(self, ticket: Ticket, audits: Iterable[Audit], status: str) -> MappedTicket:
        """The events of ``audits`` for a ticket already seen, whose status was ``status``."""
        history, status = self._history(ticket, _in_time_order(audits), status, None)
        return MappedTicket(history, status)

    def settle(
        self, ticket: Ticket, status: str, *, correct: bool, not_before: datetime | None
    ) -> MappedTicket:
        """What the snapshot adds after the history: a corrective status event when its status
        differs from ``status`` (if ``correct``), and its native deadlines."""
        events: list[TicketEvent] = []
        tid = str(ticket.id)
        current = ticket.status or ""
        if correct and current and current.lower() != status.lower():
            at = _not_before(ticket.updated_at or ticket.changed_at, not_before)
            if at is not None:
                merged = MERGED_TAG in ticket.tags
                event_id = f"status:{current}@{int(at.timestamp())}"
                events.append(self._status_event(tid, at, current, status, merged, event_id))
                status = current
        at = _not_before(ticket.changed_at, not_before)
        if at is not None:
            events.extend(self.due_events(ticket, status, at))
        return MappedTicket(events, status)

    def due_events(self, ticket: Ticket, status: str, at: datetime) -> list[TicketEvent]:
        """Field updates carrying the helpdesk's own deadlines (``due:<metric>``)."""
        best: dict[Metric, tuple[int, datetime]] = {}
        for metric in ticket.slas.policy_metrics if ticket.slas else ():
            known = NATIVE_METRICS.get((metric.metric or "").lower())
            if known is None or metric.breach_at is None:
                continue
            if (metric.stage or "").lower() == "achieved":
                continue
            ours, rank = known
            if ours not in best or rank < best[ours][0]:
                best[ours] = (rank, metric.breach_at)
        events = []
        for ours in Metric:
            if ours not in best:
                continue
            due = iso_utc(best[ours][1])
            events.append(
                TicketEvent(
                    ticket_id=str(ticket.id),
                    at=at,
                    kind=EventKind.STATUS_CHANGED,
                    status=status,
                    category=None,
                    fields=MappingProxyType({native_due_field(ours): due}),
                    event_id=f"due:{ours.value}:{due}",
                )
            )
        return events

    def vanished(self, ticket_id: str, at: datetime) -> TicketEvent:
        """A ticket that no longer exists (deleted for good)."""
        return TicketEvent(
            ticket_id=ticket_id,
            at=at,
            kind=EventKind.CLOSED,
            status="deleted",
            category=StatusCategory.CLOSED,
            event_id="deleted",
        )

    # ------------------------------------------------------------------ fields

    def fields(self, ticket: Ticket) -> dict[str, str]:
        fields: dict[str, str] = {}
        _put(fields, "priority", ticket.priority)
        _put(fields, "channel", self.channel(ticket.via))
        queue = self.queue(ticket.group_id)
        _put(fields, "queue", queue)
        _put(fields, GROUP, queue)
        _put(fields, ASSIGNEE, self.assignee(ticket.assignee_id))
        _put(fields, "type", ticket.type)
        if ticket.organization_id is not None:
            _put(fields, "organization", self.directory.organizations.get(ticket.organization_id))
        _put(fields, "tags", " ".join(ticket.tags))
        return fields

    def channel(self, via: Via | None) -> str | None:
        if via is None or via.channel is None:
            return None
        return self.channels(via.channel)

    def queue(self, group_id: int | None) -> str | None:
        if group_id is None:
            return None
        return self.directory.groups.get(group_id) or str(group_id)

    def assignee(self, user_id: int | None) -> str | None:
        """The assignee's email (else name; else the id when the user could not be looked up)."""
        if user_id is None:
            return None
        return self.directory.people.get(user_id) or str(user_id)

    # ------------------------------------------------------------------ history

    def _history(
        self,
        ticket: Ticket,
        audits: Sequence[Audit],
        status: str,
        created_at: datetime | None,
    ) -> tuple[list[TicketEvent], str]:
        tid = str(ticket.id)
        events: list[TicketEvent] = []
        for audit in audits:
            if audit.created_at is None:
                continue
            at = _not_before(audit.created_at, created_at)
            assert at is not None
            creating = any(e.kind == "Create" for e in audit.events)
            for n, event in enumerate(audit.events):
                if event.kind not in COMMENT_KINDS or creating:
                    continue
                kind = self._comment_kind(event, audit, ticket.requester_id)
                if kind is not None:
                    event_id = f"comment:{event.id if event.id is not None else f'{audit.id}.{n}'}"
                    events.append(TicketEvent(tid, at, kind, event_id=event_id))
            merged = is_merge(audit)
            for n, event in enumerate(audit.events):
                if event.kind != "Change" or event.field_name is None:
                    continue
                change_id = event.id if event.id is not None else f"{audit.id}.{n}"
                if event.field_name == "status":
                    new = _text(event.value)
                    if not new:
                        continue
                    before = status or _text(event.previous_value) or ""
                    event_id = f"status:{change_id}"
                    events.append(self._status_event(tid, at, new, before, merged, event_id))
                    status = new
                else:
                    fields = self._changed_fields(event)
                    if fields:
                        events.append(self._field_event(tid, at, status, fields, change_id))
        return reopen_before_replies(events), status

    def _changed_fields(self, change: AuditEvent) -> dict[str, str]:
        """The ticket fields a change of priority, group or assignee sets ({} for others)."""
        if change.field_name == "priority":
            priority = _text(change.value)
            return {"priority": priority} if priority else {}
        if change.field_name == "group_id":
            queue = self.queue(_id(change.value))
            return {"queue": queue, GROUP: queue} if queue else {GROUP: ""}
        if change.field_name == "assignee_id":
            return {ASSIGNEE: self.assignee(_id(change.value)) or ""}
        return {}

    def _field_event(
        self, tid: str, at: datetime, status: str, fields: dict[str, str], change_id: object
    ) -> TicketEvent:
        return TicketEvent(
            ticket_id=tid,
            at=at,
            kind=EventKind.STATUS_CHANGED,
            status=status,
            category=None,
            fields=MappingProxyType(fields),
            event_id=f"field:{change_id}",
        )

    def _comment_kind(
        self, comment: AuditEvent, audit: Audit, requester_id: int | None
    ) -> EventKind | None:
        if comment.public is False:
            return EventKind.INTERNAL_NOTE
        author = comment_author(comment, audit)
        if author is None or author <= 0:
            return None
        if author == requester_id or self.directory.roles.get(author) == END_USER:
            return EventKind.CUSTOMER_REPLY
        return EventKind.AGENT_REPLY

    def _status_event(
        self, tid: str, at: datetime, new: str, before: str, merged: bool, event_id: str
    ) -> TicketEvent:
        if new.lower() == "deleted":
            kind, status, category = EventKind.CLOSED, "deleted", StatusCategory.CLOSED
        else:
            category = self.statuses(new)
            status = new
            if category is StatusCategory.CLOSED:
                kind = EventKind.CLOSED
                status = "merged" if merged else new
            elif category is StatusCategory.SOLVED:
                kind = EventKind.RESOLVED
            elif before and self.statuses(before).is_done:
                kind = EventKind.REOPENED
            else:
                kind = EventKind.STATUS_CHANGED
        return TicketEvent(tid, at, kind, status=status, category=category, event_id=event_id)


def _in_time_order(audits: Iterable[Audit]) -> list[Audit]:
    unique = {a.id: a for a in audits}
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(unique.values(), key=lambda a: (a.created_at or epoch, a.id))


def _initial_values(ticket: Ticket, audits: Sequence[Audit]) -> dict[str, Any]:
    """Status, priority, group and assignee the ticket was created with, as far as its audits
    tell."""
    created: dict[str, Any] = {}
    before_first_change: dict[str, Any] = {}
    for audit in audits:
        for event in audit.events:
            name = event.field_name
            if name not in ("status", "priority", "group_id", "assignee_id"):
                continue
            if event.kind == "Create":
                created.setdefault(name, event.value)
            elif event.kind == "Change":
                before_first_change.setdefault(name, event.previous_value)
    current = {
        "status": ticket.status,
        "priority": ticket.priority,
        "group_id": ticket.group_id,
        "assignee_id": ticket.assignee_id,
    }
    return {
        name: created[name]
        if name in created
        else before_first_change.get(name, value)
        if name in before_first_change
        else value
        for name, value in current.items()
    }


def _put(fields: dict[str, str], name: str, value: str | None) -> None:
    if value:
        fields[name] = value


def _text(value: object) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text or None


def _id(value: object) -> int | None:
    text = _text(value)
    if text is None or not text.lstrip("-").isdigit():
        return None
    return int(text)


def _tag_list(value: object) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def _not_before(at: datetime | None, floor: datetime | None) -> datetime | None:
    if at is None:
        return floor
    return max(at, floor) if floor is not None else at
