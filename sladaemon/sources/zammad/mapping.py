"""Zammad payloads -> TicketEvents (pure: no I/O, no clock).

* A ticket seen for the first time yields ``created`` (at its creation, with the state, priority,
  group and owner it had then, read back from its history) followed by its whole history.
* Articles: the first public (``internal: false``) article by an ``Agent`` of a communication
  type is the first response, as Zammad sets ``first_response_at``; every later one is an agent
  reply. Communication types are Zammad's seeded ones with ``communication: true`` (email,
  sms, chat, fax, phone, twitter status and direct-message, facebook feed post, comment and
  direct-message, web, telegram personal-message, whatsapp message): every type but ``note``,
  so a type added by a newer Zammad counts as communication too. Public customer articles are
  customer replies; internal articles, notes and ``System`` articles (auto-replies, trigger
  mails) are internal notes.
* History entries for ``state``, ``priority``, ``group`` and ``owner`` become status changes at
  the time they were made; a value that the history does not explain becomes one at
  ``updated_at``. The group sets ``queue`` and ``group``; the owner sets ``assignee`` (the
  owner's email, lower case, as ``people`` resolves the user id; empty when unassigned).
  At one instant articles come before status changes, except that a reopen goes before the
  customer's article that caused it (Zammad's follow-up handling), so the article waits for
  an answer (``sources.ordering``).
* ``*_escalation_at`` become ``due:*`` fields. Zammad's update time is measured from the
  customer's last contact in "for an agent to respond" mode and between agent updates in the
  other; both land in ``due:periodic_update``.

Event ids are Zammad's own (article and history ids), so they are stable across polls.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sladaemon.model import EventKind, Metric, StatusCategory, TicketEvent, native_due_field
from sladaemon.sources.channels import ChannelMap
from sladaemon.sources.ordering import reopen_before_replies
from sladaemon.sources.people import ASSIGNEE, GROUP
from sladaemon.sources.zammad.payloads import ZammadArticle, ZammadHistoryEntry, ZammadTicket
from sladaemon.statuses import StatusMap

DEFAULT_STATUSES: Mapping[str, StatusCategory] = {
    "new": StatusCategory.NEW,
    "open": StatusCategory.OPEN,
    "pending reminder": StatusCategory.PENDING,
    "pending close": StatusCategory.PENDING,
    "closed": StatusCategory.CLOSED,
    "merged": StatusCategory.CLOSED,
    "removed": StatusCategory.CLOSED,
    "deleted": StatusCategory.CLOSED,
    "moved": StatusCategory.CLOSED,
}
# Statuses reported under another name: a removed ticket is a deleted one.
STATUS_NAMES: Mapping[str, str] = {"removed": "deleted"}
DELETED = "deleted"  # the ticket no longer exists
MOVED = "moved"  # out of the watched groups, or out of the token's reach

DEFAULT_CHANNELS: Mapping[str, str] = {
    "email": "email",
    "sms": "sms",
    "chat": "chat",
    "fax": "fax",
    "phone": "phone",
    "twitter status": "twitter",
    "twitter direct-message": "twitter",
    "facebook feed post": "facebook",
    "facebook feed comment": "facebook",
    "facebook direct-message": "facebook",
    "web": "web",
    "telegram personal-message": "telegram",
    "whatsapp message": "whatsapp",
    "note": "note",
}
NON_COMMUNICATION_TYPES = frozenset({"note"})

DEADLINE_FIELDS: tuple[tuple[str, Metric], ...] = (
    ("first_response_escalation_at", Metric.FIRST_RESPONSE),
    ("update_escalation_at", Metric.PERIODIC_UPDATE),
    ("close_escalation_at", Metric.RESOLUTION),
)
TRACKED_ATTRIBUTES = ("state", "priority", "group", "owner")
UNASSIGNED_OWNER = 1  # Zammad's "-" user: nobody


def zammad_statuses(configured: Mapping[str, StatusCategory]) -> StatusMap:
    """Zammad's default states, with the user's map on top."""
    return StatusMap({**DEFAULT_STATUSES, **configured})


def is_communication(article_type: str | None) -> bool:
    return article_type is not None and article_type.strip().lower() not in (
        NON_COMMUNICATION_TYPES
    )


def article_kind(article: ZammadArticle) -> EventKind:
    sender = (article.sender_name or "").strip().lower()
    if article.internal:
        return EventKind.INTERNAL_NOTE
    if sender == "agent" and is_communication(article.type_name):
        return EventKind.AGENT_REPLY
    if sender == "customer":
        return EventKind.CUSTOMER_REPLY
    return EventKind.INTERNAL_NOTE


def status_name(raw: str) -> str:
    """The status an event carries for a Zammad state (``removed`` is reported as deleted)."""
    return STATUS_NAMES.get(raw.strip().lower(), raw)


def transition_kind(before: StatusCategory | None, after: StatusCategory) -> EventKind:
    if before is not None and before.is_done and not after.is_done:
        return EventKind.REOPENED
    if after is StatusCategory.SOLVED:
        return EventKind.RESOLVED
    if after is StatusCategory.CLOSED:
        return EventKind.CLOSED
    return EventKind.STATUS_CHANGED


def iso_utc(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def ticket_fingerprint(ticket: ZammadTicket) -> int:
    """Changes when the state, priority, group or owner changes (then the history is read)."""
    values = (ticket.state_name or "", ticket.priority_name or "", ticket.group or "")
    owner = owner_id(ticket.owner_id)
    text = "\x1f".join(values if owner is None else (*values, str(owner)))
    return zlib.crc32(text.encode())


def owner_id(user_id: int | None) -> int | None:
    """The owner's user id; None when the ticket is unassigned."""
    return None if user_id in (None, 0, UNASSIGNED_OWNER) else user_id


def owner_ids(details: TicketDetails) -> set[int]:
    """The users whose identities the events of ``details`` name: owners, now and before."""
    ids = {owner_id(details.ticket.owner_id)}
    for entry in details.history or ():
        if entry.attribute == "owner":
            ids |= {owner_id(entry.id_from), owner_id(entry.id_to)}
    return {i for i in ids if i is not None}


def deadline_values(ticket: ZammadTicket) -> tuple[int, ...]:
    """The ``*_escalation_at`` of a ticket in epoch milliseconds, 0 for none."""
    values = (getattr(ticket, name) for name, _ in DEADLINE_FIELDS)
    return tuple(epoch_ms(v) if v is not None else 0 for v in values)


@dataclass(frozen=True, slots=True)
class TicketDetails:
    """A ticket and what was fetched about it; ``None`` means not fetched this time."""

    ticket: ZammadTicket
    articles: Sequence[ZammadArticle] | None = None
    history: Sequence[ZammadHistoryEntry] | None = None


@dataclass(frozen=True, slots=True)
class Seen:
    """What was already turned into events for a ticket: its update time, the newest article
    and history ids (Zammad's ids grow with every new record), its deadlines and state."""

    updated_at: datetime
    article_id: int = 0
    history_id: int = 0
    deadlines: tuple[int, ...] = (0, 0, 0)
    fingerprint: int = 0  # of state, priority, group and owner (see ticket_fingerprint)


@dataclass(frozen=True, slots=True)
class _Change:
    at: datetime
    entry: ZammadHistoryEntry


def ticket_events(
    details: TicketDetails,
    *,
    statuses: StatusMap,
    channels: ChannelMap,
    seen: Seen | None = None,
    people: Mapping[int, str] | None = None,
) -> list[TicketEvent]:
    """The events of one ticket: everything when it is new to us (``seen`` is None), else only
    the articles, history entries and deadlines that are newer than ``seen``. ``people`` names
    the owners (``owner_ids``) by email, else login."""
    ticket = details.ticket
    names = _People(ticket, people or {})
    changes = _state_changes(ticket, details.history or ())
    initial = _Attributes(
        _initial(changes, "state", ticket.state_name),
        _initial(changes, "priority", ticket.priority_name),
        _initial(changes, "group", ticket.group),
        _initial_owner(changes, names),
    )
    articles = sorted(details.articles or (), key=lambda a: (a.created_at, a.id))
    ranked: list[tuple[int, TicketEvent]] = []
    if seen is None:
        ranked.append((0, _created_event(ticket, initial, articles, statuses, channels)))
    ranked += [(1, event) for event in _article_events(ticket, articles, seen)]
    history, latest = _history_events(ticket, changes, initial, statuses, seen, names)
    ranked += [(2, event) for event in history]
    if details.history is not None:
        unexplained = _unexplained_events(ticket, changes, latest, statuses, seen, names)
        ranked += [(3, event) for event in unexplained]
    ranked += [(4, event) for event in _deadline_events(ticket, seen)]
    ranked.sort(key=lambda item: (item[1].at, item[0]))
    return reopen_before_replies([event for _, event in ranked])


def ticket_closed(ticket_id: int, at: datetime, status: str, event_id: str) -> TicketEvent:
    """A ticket that left (deleted, out of reach, out of the watched groups)."""
    return TicketEvent(
        str(ticket_id), at, EventKind.CLOSED, status, StatusCategory.CLOSED, event_id=event_id
    )


@dataclass(frozen=True, slots=True)
class _Attributes:
    """A ticket's state, priority, group and assignee (identity, "" for nobody) as the history
    tells them (None: not known)."""

    state: str | None
    priority: str | None
    group: str | None
    assignee: str | None


class _People:
    """Owner ids -> identities: ``people``, else the current owner's login, else the id."""

    def __init__(self, ticket: ZammadTicket, people: Mapping[int, str]) -> None:
        self.people = people
        self.current = owner_id(ticket.owner_id)
        self.login = (ticket.owner or "").strip().lower()

    def __call__(self, user_id: int | None) -> str:
        user = owner_id(user_id)
        if user is None:
            return ""
        if user in self.people:
            return self.people[user]
        if user == self.current and self.login and self.login != "-":
            return self.login
        return str(user)


def _created_event(
    ticket: ZammadTicket,
    initial: _Attributes,
    articles: Sequence[ZammadArticle],
    statuses: StatusMap,
    channels: ChannelMap,
) -> TicketEvent:
    """``created`` at the ticket's creation, with the state, priority and group it had then."""
    raw_channel = ticket.origin_type or (articles[0].type_name if articles else None)
    fields = _present(
        priority=initial.priority,
        queue=initial.group,
        group=initial.group,
        assignee=initial.assignee,
        channel=channels(raw_channel) if raw_channel else None,
        number=ticket.number,
        organization=ticket.organization,
        customer=ticket.customer,
    )
    return TicketEvent(
        str(ticket.id),
        ticket.opened_at,
        EventKind.CREATED,
        status_name(initial.state) if initial.state else "",
        statuses(initial.state) if initial.state else None,
        fields,
        event_id="created",
    )


def _article_events(
    ticket: ZammadTicket, articles: Sequence[ZammadArticle], seen: Seen | None
) -> list[TicketEvent]:
    """The articles newer than ``seen`` (all of them when None)."""
    return [
        TicketEvent(
            str(ticket.id),
            article.created_at,
            article_kind(article),
            event_id=f"article:{article.id}",
        )
        for article in articles
        if seen is None or article.id > seen.article_id
    ]


def _history_events(
    ticket: ZammadTicket,
    changes: Sequence[_Change],
    initial: _Attributes,
    statuses: StatusMap,
    seen: Seen | None,
    names: _People,
) -> tuple[list[TicketEvent], _Attributes]:
    """The changes of state, priority, group and owner newer than ``seen``, and the values the
    whole history leads to from ``initial``."""
    events: list[TicketEvent] = []
    values = initial
    for change in changes:
        event, values = _history_event(str(ticket.id), change, values, statuses, names)
        if event is not None and (seen is None or _is_new(change.entry, seen)):
            events.append(event)
    return events, values


def _history_event(
    ticket_id: str, change: _Change, values: _Attributes, statuses: StatusMap, names: _People
) -> tuple[TicketEvent | None, _Attributes]:
    """The event of one change from ``values``, and the values after it."""
    entry = change.entry
    event_id = _history_id(entry)
    if entry.attribute == "state" and entry.value_to:
        before = statuses(values.state) if values.state else None
        values = replace(values, state=entry.value_to)
        after = statuses(entry.value_to)
        event = TicketEvent(
            ticket_id,
            change.at,
            transition_kind(before, after),
            status_name(entry.value_to),
            after,
            event_id=event_id,
        )
        return event, values
    if entry.attribute in ("priority", "group", "owner") and (
        entry.value_to or entry.attribute == "owner"
    ):
        if entry.attribute == "priority":
            values = replace(values, priority=entry.value_to)
            fields = {"priority": entry.value_to or ""}
        elif entry.attribute == "group":
            values = replace(values, group=entry.value_to)
            fields = {"queue": entry.value_to or "", GROUP: entry.value_to or ""}
        else:
            assignee = names(entry.id_to)
            values = replace(values, assignee=assignee)
            fields = {ASSIGNEE: assignee}
        current = status_name(values.state) if values.state else ""
        event = TicketEvent(
            ticket_id,
            change.at,
            EventKind.STATUS_CHANGED,
            current,
            None,
            fields,
            event_id=event_id,
        )
        return event, values
    return None, values


def _unexplained_events(
    ticket: ZammadTicket,
    changes: Sequence[_Change],
    latest: _Attributes,
    statuses: StatusMap,
    seen: Seen | None,
    names: _People,
) -> list[TicketEvent]:
    """A change the history does not show (history trimmed, or not kept): the ticket's
    current values at its updated_at. With nothing new in the history at all, a moved
    fingerprint is the only sign, and every current value is reported."""
    silent = seen is not None and not any(_is_new(c.entry, seen) for c in changes)
    if silent and seen is not None and ticket_fingerprint(ticket) != seen.fingerprint:
        latest = _Attributes(None, None, None, None)
    return _unexplained(ticket, statuses, latest, names(ticket.owner_id))


def _deadline_events(ticket: ZammadTicket, seen: Seen | None) -> list[TicketEvent]:
    """The ``*_escalation_at`` that moved since ``seen``, as ``due:*`` fields."""
    events: list[TicketEvent] = []
    known_deadlines = seen.deadlines if seen is not None else (0,) * len(DEADLINE_FIELDS)
    for (name, metric), known in zip(DEADLINE_FIELDS, known_deadlines, strict=True):
        deadline = getattr(ticket, name)
        if deadline is not None and epoch_ms(deadline) != known:
            field = native_due_field(metric)
            value = iso_utc(deadline)
            events.append(
                TicketEvent(
                    str(ticket.id),
                    ticket.updated_at,
                    EventKind.STATUS_CHANGED,
                    fields={field: value},
                    event_id=f"{field}:{value}",
                )
            )
    return events


def _state_changes(ticket: ZammadTicket, history: Sequence[ZammadHistoryEntry]) -> list[_Change]:
    changes = [
        _Change(entry.created_at, entry)
        for entry in history
        if (entry.object in (None, "Ticket"))
        and (entry.type in (None, "updated"))
        and entry.attribute in TRACKED_ATTRIBUTES
        and (entry.o_id is None or entry.o_id == ticket.id)
    ]
    changes.sort(key=lambda c: (c.at, c.entry.id or 0))
    return changes


def _is_new(entry: ZammadHistoryEntry, seen: Seen) -> bool:
    if entry.id is not None:
        return entry.id > seen.history_id
    return entry.created_at > seen.updated_at


def _initial(changes: Sequence[_Change], attribute: str, current: str | None) -> str | None:
    first = next((c.entry for c in changes if c.entry.attribute == attribute), None)
    if first is None:
        return current
    return first.value_from or current


def _initial_owner(changes: Sequence[_Change], names: _People) -> str:
    """Whom the ticket was assigned to at its creation: the first owner change's former
    owner, else the current one (an identity; "" for nobody)."""
    first = next((c.entry for c in changes if c.entry.attribute == "owner"), None)
    return names(first.id_from if first is not None else names.current)


def _unexplained(
    ticket: ZammadTicket, statuses: StatusMap, known: _Attributes, assignee: str
) -> list[TicketEvent]:
    """The ticket's values that differ from the ``known`` ones (None: not known), as one event
    at its ``updated_at``; ``assignee`` is the current owner's identity."""
    current_state = ticket.state_name
    state = known.state
    fields = _present(
        priority=ticket.priority_name if ticket.priority_name != known.priority else None,
        queue=ticket.group if ticket.group != known.group else None,
        group=ticket.group if ticket.group != known.group else None,
    )
    if assignee != known.assignee and (assignee or known.assignee is not None):
        fields[ASSIGNEE] = assignee
    state_moved = current_state is not None and current_state != state
    if not state_moved and not fields:
        return []
    stamp = epoch_ms(ticket.updated_at)
    if state_moved and current_state is not None:
        before = statuses(state) if state else None
        after = statuses(current_state)
        return [
            TicketEvent(
                str(ticket.id),
                ticket.updated_at,
                transition_kind(before, after),
                status_name(current_state),
                after,
                fields,
                event_id=f"state:{current_state}:{stamp}",
            )
        ]
    current = status_name(current_state) if current_state else ""
    return [
        TicketEvent(
            str(ticket.id),
            ticket.updated_at,
            EventKind.STATUS_CHANGED,
            current,
            None,
            fields,
            event_id=f"fields:{ticket_fingerprint(ticket)}:{stamp}",
        )
    ]


def _history_id(entry: ZammadHistoryEntry) -> str:
    if entry.id is not None:
        return f"history:{entry.id}"
    return f"history:{entry.attribute}:{epoch_ms(entry.created_at)}:{entry.value_to}"


def _present(**values: str | None) -> dict[str, str]:
    return {key: value for key, value in values.items() if value}
