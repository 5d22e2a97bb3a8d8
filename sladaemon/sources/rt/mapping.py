"""Request Tracker tickets and transactions -> TicketEvents (pure).

History, in transaction order (event ids are RT's transaction ids, so re-reading is harmless):

* ``Create`` -> ``created`` at its time, with the status, priority, queue, SLA level and
  custom fields the ticket had then (the ``OldValue`` of the first later change, else the
  current value);
* ``Correspond`` -> ``agent_reply``, or ``customer_reply`` when its creator is a requestor
  and not the owner (RT's own rule for SLA "outside actors", ``RT::Action::SLA_SetDue``,
  judged with the ticket's current requestors and owner; group requestors are not
  expanded); a customer reply carries the status the ticket keeps, since RT does not reopen
  a stalled ticket on a reply. A reply to a resolved (or rejected) ticket is followed, in the
  same second, by the ``Status`` change RT's "On Correspond Open Inactive Tickets" scrip
  makes: the reopen is put first and the reply carries the reopened status, so the reply
  waits for an answer (``sources.ordering``);
* ``Comment`` -> ``internal_note``;
* ``Status`` -> ``status_changed`` / ``resolved`` / ``closed`` / ``reopened``;
* ``Set`` of Priority, Queue, SLA and ``CustomField`` changes -> ``status_changed`` with the
  new field value; so do owner changes (``Set``, ``Give``, ``Take``, ``Untake``, ``Steal`` of
  ``Owner``, whose values are user ids);
* ``Set`` of ``Due`` on a ticket with an SLA level -> a ``due:`` field (see below).

Fields: ``priority`` is RT's number as text (the Low/Medium/High labels of RT 5 are for
display only), ``queue`` and ``group`` the queue's name (RT groups agents by queue; tickets
have no group), ``assignee`` the owner's email in lower case (the user name when the user has
no email; empty for ``Nobody``), ``sla`` the SLA level, ``channel`` the value of a
ticket custom field named "Channel" (RT records no channel of its own) and ``cf.<name>``
the other custom fields.

RT's ``Due`` is set by ``RT::Action::SLA_SetDue``: when the last Create/Correspond came from
an outside actor (a requestor), ``min(Response, Resolve)``, the Response goal running from
their oldest unanswered message; else ``min(KeepInLoop, Resolve)``, KeepInLoop running from
the last answer; Resolve runs from creation, and a goal RT does not apply (none in the level,
or an ``IgnoreOnStatuses`` status) drops out. Which of the two RT picked only the goals' own
deadlines tell, so the Due is filed under both, as the earliest of them
(``due:<response>|resolution``, see ``sla.native``), with the metric the phase names:

* a requestor waits and no agent has answered yet: ``due:first_response|resolution``; after
  an earlier agent answer: ``due:next_response|resolution``;
* an agent (anyone not a requestor, or the owner) had the last word:
  ``due:periodic_update|resolution`` (RT's KeepInLoop is sladaemon's periodic update).

RT shows one Due: each one clears the fields of the others, and an unset Due (``1970-01-01``,
e.g. while stalled) clears them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import overload

from sladaemon.model import (
    EventKind,
    Metric,
    StatusCategory,
    TicketEvent,
    native_due_field,
)
from sladaemon.sources.channels import ChannelMap
from sladaemon.sources.ordering import reopen_before_replies
from sladaemon.sources.people import ASSIGNEE, GROUP, person_identity
from sladaemon.sources.rt.payloads import RtRef, RtTicket, RtTransaction, parse_rt_time
from sladaemon.statuses import StatusMap

DEFAULT_STATUSES: Mapping[str, StatusCategory] = {
    "new": StatusCategory.NEW,
    "open": StatusCategory.OPEN,
    "stalled": StatusCategory.ON_HOLD,
    "resolved": StatusCategory.SOLVED,
    "rejected": StatusCategory.CLOSED,
    "deleted": StatusCategory.CLOSED,
}

# Values of a ticket custom field named "Channel" (RT records no channel of its own).
DEFAULT_CHANNELS: Mapping[str, str] = {
    "email": "email",
    "e-mail": "email",
    "mail": "email",
    "web": "web",
    "self-service": "web",
    "selfservice": "web",
    "portal": "web",
    "phone": "phone",
    "telephone": "phone",
    "chat": "chat",
    "api": "api",
    "rest": "api",
    "rest2": "api",
    "mobile": "mobile",
}
CHANNEL_CUSTOM_FIELD = "channel"
CUSTOM_FIELD_PREFIX = "cf."

# Transaction types the connector reads (the rest, e.g. EmailRecord, say nothing about SLAs).
HISTORY_TYPES = (
    "Create",
    "Correspond",
    "Comment",
    "Status",
    "Set",
    "CustomField",
    *("Give", "Take", "Untake", "Steal"),  # owner changes
)
OWNER_CHANGES = frozenset({"Set", "Give", "Take", "Untake", "Steal"})  # with Field "Owner"
NOBODY = "nobody"  # the owner of an unowned ticket
# The fields RT's single Due may be filed under: each goal that competes with Resolve.
DUE_FIELDS = tuple(
    native_due_field(response, Metric.RESOLUTION)
    for response in (Metric.FIRST_RESPONSE, Metric.NEXT_RESPONSE, Metric.PERIODIC_UPDATE)
)


@dataclass(frozen=True, slots=True)
class MappingContext:
    statuses: StatusMap
    channels: ChannelMap
    queue_names: Mapping[str, str] = field(default_factory=dict)  # queue id -> name
    user_names: Mapping[str, str] = field(default_factory=dict)  # user id -> identity


@dataclass(slots=True)
class TicketTrail:
    """What the mapping remembers about a ticket between polls, to continue its history
    from the next unseen transaction."""

    last_txn_id: int = 0
    last_updated: datetime | None = None
    settled: bool = True  # False: changes may still land in the same second as last_updated
    status: str = ""
    category: StatusCategory | None = None
    sla: str = ""
    outside_waiting: bool = False  # the last Create/Correspond came from a requestor
    agent_replied: bool = False  # an agent has corresponded
    due_seen: bool = False  # the history has set Due at least once

    @property
    def done(self) -> bool:
        return self.category is not None and self.category.is_done


@dataclass(slots=True)
class MappedTicket:
    events: list[TicketEvent]
    trail: TicketTrail


def map_ticket(
    ticket: RtTicket,
    history: Sequence[RtTransaction],
    trail: TicketTrail | None,
    context: MappingContext,
) -> MappedTicket:
    """Events for the transactions of ``ticket`` after ``trail`` (all of them when the ticket
    is new to the connector), and the trail to continue from."""
    ticket_id = str(ticket.id)
    unseen = sorted(
        (t for t in history if t.id > (trail.last_txn_id if trail else 0)), key=lambda t: t.id
    )
    events: list[TicketEvent] = []
    if trail is None:
        trail, created = _created(ticket, unseen, context)
        events.append(created)
    else:
        trail = replace(trail)
    for txn in unseen:
        event = _event(ticket, txn, trail, context)
        if event is not None:
            events.append(event)
        trail.last_txn_id = max(trail.last_txn_id, txn.id)
    if ticket.due is not None and ticket.sla and not trail.due_seen:
        # No Set Due transaction in the history: take the ticket's current Due.
        assert ticket.last_updated is not None  # RtTicket requires it
        due = _iso(ticket.due)
        events.append(_due_event(ticket_id, ticket.last_updated, trail, due, f"due:{due}"))
        trail.due_seen = True
    trail.last_updated = ticket.last_updated
    return MappedTicket(reopen_before_replies(events), trail)


def vanished_event(ticket_id: int, at: datetime, status: str) -> TicketEvent:
    """A ``closed`` event for a ticket that left the watched set: "deleted", "merged" or
    "moved" (to a queue that is not watched)."""
    return TicketEvent(
        ticket_id=str(ticket_id),
        at=at,
        kind=EventKind.CLOSED,
        status=status,
        category=StatusCategory.CLOSED,
        event_id=f"closed:{status}",
    )


# ---------------------------------------------------------------------------- internals


def _created(
    ticket: RtTicket, unseen: Sequence[RtTransaction], context: MappingContext
) -> tuple[TicketTrail, TicketEvent]:
    create = next((t for t in unseen if t.type == "Create"), None)
    status = _initial(unseen, "Status", ticket.status)
    category = context.statuses(status) if status else StatusCategory.NEW
    sla = _initial(unseen, "SLA", ticket.sla)
    queue = _queue_name(_initial(unseen, "Queue", None), ticket, context)
    fields: dict[str, str] = {
        "priority": _initial(unseen, "Priority", ticket.priority),
        "queue": queue,
        GROUP: queue,
        ASSIGNEE: _initial_owner(unseen, ticket, context),
        "sla": sla,
    }
    for custom in ticket.custom_fields:
        first = next(
            (t.old_value for t in unseen if t.type == "CustomField" and t.field == custom.id),
            None,
        )
        value = first if first is not None else (custom.values[0] if custom.values else "")
        fields.update(_custom_field(custom.name, value, context))
    at = (create.created if create else None) or ticket.created or ticket.last_updated
    assert at is not None  # RtTicket requires LastUpdated
    trail = TicketTrail(status=status, category=category, sla=sla)
    if create is not None:
        trail.outside_waiting = _is_outside(create.creator, ticket)
        trail.last_txn_id = create.id
    event = TicketEvent(
        ticket_id=str(ticket.id),
        at=at,
        kind=EventKind.CREATED,
        status=status,
        category=category,
        fields={k: v for k, v in fields.items() if v},
        event_id="created",
    )
    return trail, event


def _event(
    ticket: RtTicket, txn: RtTransaction, trail: TicketTrail, context: MappingContext
) -> TicketEvent | None:
    ticket_id, at, event_id = _event_ids(ticket, txn)
    kind = txn.type
    if kind == "Correspond":
        return _reply_event(ticket, txn, trail)
    if kind == "Comment":
        return TicketEvent(ticket_id, at, EventKind.INTERNAL_NOTE, event_id=event_id)
    if kind == "Status" or (kind == "Set" and txn.field == "Status"):
        return _status_event(ticket_id, at, txn.new_value, trail, context, event_id)
    if kind == "CustomField":
        name = next((c.name for c in ticket.custom_fields if c.id == txn.field), "")
        changed = _custom_field(name, txn.new_value, context) if name else {}
        return _field_event(ticket_id, at, trail, changed, event_id)
    if kind in OWNER_CHANGES and txn.field == "Owner":
        assignee = {ASSIGNEE: _user_name(txn.new_value, context)}
        return _field_event(ticket_id, at, trail, assignee, event_id, keep_empty=True)
    if kind == "Set":
        return _set_event(ticket, txn, trail, context)
    return None


def _event_ids(ticket: RtTicket, txn: RtTransaction) -> tuple[str, datetime, str]:
    """The ticket id, time and event id of the event a transaction makes."""
    assert txn.created is not None  # RtTransaction requires Created
    return str(ticket.id), txn.created, f"txn:{txn.id}"


def _reply_event(ticket: RtTicket, txn: RtTransaction, trail: TicketTrail) -> TicketEvent:
    """A correspondence: a customer reply when it comes from outside, else an agent reply."""
    ticket_id, at, event_id = _event_ids(ticket, txn)
    if _is_outside(txn.creator, ticket):
        trail.outside_waiting = True
        return TicketEvent(
            ticket_id,
            at,
            EventKind.CUSTOMER_REPLY,
            status=trail.status,
            category=trail.category,
            event_id=event_id,
        )
    trail.outside_waiting = False
    trail.agent_replied = True
    return TicketEvent(ticket_id, at, EventKind.AGENT_REPLY, event_id=event_id)


def _set_event(
    ticket: RtTicket, txn: RtTransaction, trail: TicketTrail, context: MappingContext
) -> TicketEvent | None:
    """A ``Set`` of a core field other than Status: Priority, Queue, SLA or Due."""
    ticket_id, at, event_id = _event_ids(ticket, txn)
    if txn.field == "Priority":
        return _field_event(ticket_id, at, trail, {"priority": txn.new_value}, event_id)
    if txn.field == "Queue":
        queue = _queue_name(txn.new_value, ticket, context)
        return _field_event(ticket_id, at, trail, {"queue": queue, GROUP: queue}, event_id)
    if txn.field == "SLA":
        trail.sla = txn.new_value
        return _field_event(ticket_id, at, trail, {"sla": txn.new_value}, event_id)
    if txn.field == "Due":
        trail.due_seen = True
        try:
            due = parse_rt_time(txn.new_value)
        except ValueError:
            return None
        if not trail.sla:
            return None
        return _due_event(ticket_id, at, trail, _iso(due) if due else "", event_id)
    return None


def _status_event(
    ticket_id: str,
    at: datetime,
    status: str,
    trail: TicketTrail,
    context: MappingContext,
    event_id: str,
) -> TicketEvent:
    category = context.statuses(status)
    was_done = trail.done
    if category is StatusCategory.SOLVED:
        kind = EventKind.RESOLVED
    elif category is StatusCategory.CLOSED:
        kind = EventKind.CLOSED
    elif was_done:
        kind = EventKind.REOPENED
    else:
        kind = EventKind.STATUS_CHANGED
    trail.status, trail.category = status, category
    return TicketEvent(ticket_id, at, kind, status=status, category=category, event_id=event_id)


def _field_event(
    ticket_id: str,
    at: datetime,
    trail: TicketTrail,
    changed: Mapping[str, str],
    event_id: str,
    *,
    keep_empty: bool = False,
) -> TicketEvent | None:
    fields = {k: v for k, v in changed.items() if v or keep_empty}
    if not fields:
        return None
    return TicketEvent(
        ticket_id,
        at,
        EventKind.STATUS_CHANGED,
        status=trail.status,
        fields=fields,
        event_id=event_id,
    )


def _due_event(
    ticket_id: str, at: datetime, trail: TicketTrail, due: str, event_id: str
) -> TicketEvent:
    """RT's Due (empty: unset) in the field of the goals it is the earliest of at this point of
    the history, the other fields cleared."""
    filed = _due_field(trail) if due else ""
    return TicketEvent(
        ticket_id,
        at,
        EventKind.STATUS_CHANGED,
        fields={name: due if name == filed else "" for name in DUE_FIELDS},
        event_id=event_id,
    )


def _due_field(trail: TicketTrail) -> str:
    """The goals RT's Due is the earliest of (see the module docstring)."""
    if not trail.outside_waiting:
        response = Metric.PERIODIC_UPDATE
    elif trail.agent_replied:
        response = Metric.NEXT_RESPONSE
    else:
        response = Metric.FIRST_RESPONSE
    return native_due_field(response, Metric.RESOLUTION)


def _is_outside(creator: RtRef | None, ticket: RtTicket) -> bool:
    """A requestor who is not the owner: RT's "outside actor" of an SLA."""
    if creator is None:
        return False
    who = creator.keys()
    if not who or (ticket.owner is not None and who & ticket.owner.keys()):
        return False
    return any(who & requestor.keys() for requestor in ticket.requestors)


@overload
def _initial(unseen: Sequence[RtTransaction], name: str, current: str) -> str: ...
@overload
def _initial(unseen: Sequence[RtTransaction], name: str, current: None) -> str | None: ...
def _initial(unseen: Sequence[RtTransaction], name: str, current: str | None) -> str | None:
    """The value a field had at creation: the OldValue of its first change, else ``current``."""
    for txn in unseen:
        if (name == "Status" and txn.type == "Status") or (txn.type == "Set" and txn.field == name):
            return txn.old_value
    return current


def owner_identity(name: str, email: str) -> str:
    """An owner as ``assignee`` names it: email in lower case, else the user name; "" for
    Nobody."""
    if name.lower() == NOBODY:
        return ""
    return person_identity(email, name)


def _initial_owner(
    unseen: Sequence[RtTransaction], ticket: RtTicket, context: MappingContext
) -> str:
    """The owner at creation: the old value of the first owner change, else the current one."""
    for txn in unseen:
        if txn.type in OWNER_CHANGES and txn.field == "Owner":
            return _user_name(txn.old_value, context)
    if ticket.owner is None:
        return ""
    return owner_identity(ticket.owner.name or ticket.owner.id, ticket.owner.email)


def _user_name(user_id: str, context: MappingContext) -> str:
    """The identity of a user id from the history ("" for none or Nobody)."""
    if not user_id or user_id == "0":
        return ""
    return context.user_names.get(user_id, user_id)


def _queue_name(queue_id: str | None, ticket: RtTicket, context: MappingContext) -> str:
    if queue_id is None or (ticket.queue is not None and queue_id == ticket.queue.id):
        return ticket.queue_name
    return context.queue_names.get(queue_id, queue_id)


def _custom_field(name: str, value: str, context: MappingContext) -> dict[str, str]:
    if name.strip().lower() == CHANNEL_CUSTOM_FIELD:
        return {"channel": context.channels(value)}
    return {f"{CUSTOM_FIELD_PREFIX}{name.strip().lower()}": value}


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
