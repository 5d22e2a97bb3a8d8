"""Zammad payloads -> TicketEvents (pure: no I/O, no clock).

* A ticket seen for the first time yields ``created`` (at its creation, with the state, priority
  and group it had then, read back from its history) followed by its whole history.
* Articles: the first public (``internal: false``) article by an ``Agent`` of a communication
  type is the first response, as Zammad sets ``first_response_at``; every later one is an agent
  reply. Communication types are Zammad's seeded ones with ``communication: true`` (email,
  sms, chat, fax, phone, twitter status and direct-message, facebook feed post, comment and
  direct-message, web, telegram personal-message, whatsapp message): every type but ``note``,
  so a type added by a newer Zammad counts as communication too. Public customer articles are
  customer replies; internal articles, notes and ``System`` articles (auto-replies, trigger
  mails) are internal notes.
* History entries for ``state``, ``priority`` and ``group`` become status changes at the time
  they were made; a state that the history does not explain becomes one at ``updated_at``.
* ``*_escalation_at`` become ``due:*`` fields. Zammad's update time is measured from the
  customer's last contact in "for an agent to respond" mode and between agent updates in the
  other; both land in ``due:periodic_update``.

Event ids are Zammad's own (article and history ids), so they are stable across polls.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sladaemon.model import EventKind, Metric, StatusCategory, TicketEvent, native_due_field
from sladaemon.sources.channels import ChannelMap
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
TRACKED_ATTRIBUTES = ("state", "priority", "group")


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
    """Changes when the state, priority or group changes (then the history is read)."""
    text = "\x1f".join((ticket.state_name or "", ticket.priority_name or "", ticket.group or ""))
    return zlib.crc32(text.encode())


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
    fingerprint: int = 0  # of state, priority and group (see ticket_fingerprint)


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
) -> list[TicketEvent]:
    """The events of one ticket: everything when it is new to us (``seen`` is None), else only
    the articles, history entries and deadlines that are newer than ``seen``."""
    ticket = details.ticket
    ticket_id = str(ticket.id)
    ranked: list[tuple[datetime, int, TicketEvent]] = []

    def keep(rank: int, event: TicketEvent) -> None:
        ranked.append((event.at, rank, event))

    changes = _state_changes(ticket, details.history or ())
    initial_state = _initial(changes, "state", ticket.state_name)
    initial_priority = _initial(changes, "priority", ticket.priority_name)
    initial_group = _initial(changes, "group", ticket.group)
    articles = sorted(details.articles or (), key=lambda a: (a.created_at, a.id))

    if seen is None:
        raw_channel = ticket.origin_type or (articles[0].type_name if articles else None)
        fields = _present(
            priority=initial_priority,
            queue=initial_group,
            channel=channels(raw_channel) if raw_channel else None,
            number=ticket.number,
            organization=ticket.organization,
            customer=ticket.customer,
        )
        status = status_name(initial_state) if initial_state else ""
        category = statuses(initial_state) if initial_state else None
        keep(
            0,
            TicketEvent(
                ticket_id,
                ticket.opened_at,
                EventKind.CREATED,
                status,
                category,
                fields,
                event_id="created",
            ),
        )

    for article in articles:
        if seen is None or article.id > seen.article_id:
            keep(
                1,
                TicketEvent(
                    ticket_id,
                    article.created_at,
                    article_kind(article),
                    event_id=f"article:{article.id}",
                ),
            )

    state, priority, group = initial_state, initial_priority, initial_group
    for change in changes:
        entry = change.entry
        new = seen is None or (
            entry.id > seen.history_id
            if entry.id is not None
            else entry.created_at > seen.updated_at
        )
        event_id = _history_id(entry)
        if entry.attribute == "state" and entry.value_to:
            before = statuses(state) if state else None
            state = entry.value_to
            after = statuses(state)
            if new:
                keep(
                    2,
                    TicketEvent(
                        ticket_id,
                        change.at,
                        transition_kind(before, after),
                        status_name(state),
                        after,
                        event_id=event_id,
                    ),
                )
        elif entry.attribute in ("priority", "group") and entry.value_to:
            if entry.attribute == "priority":
                priority = entry.value_to
                fields = {"priority": priority}
            else:
                group = entry.value_to
                fields = {"queue": group}
            current = status_name(state) if state else ""
            if new:
                keep(
                    2,
                    TicketEvent(
                        ticket_id,
                        change.at,
                        EventKind.STATUS_CHANGED,
                        current,
                        None,
                        fields,
                        event_id=event_id,
                    ),
                )

    if details.history is not None:
        # A change the history does not show (history trimmed, or not kept): the ticket's
        # current values at its updated_at. With nothing new in the history at all, a moved
        # fingerprint is the only sign, and every current value is reported.
        silent = seen is not None and not any(_is_new(c.entry, seen) for c in changes)
        if silent and seen is not None and ticket_fingerprint(ticket) != seen.fingerprint:
            state = priority = group = None
        for event in _unexplained(ticket, statuses, state, priority, group):
            keep(3, event)

    known_deadlines = seen.deadlines if seen is not None else (0,) * len(DEADLINE_FIELDS)
    for (name, metric), known in zip(DEADLINE_FIELDS, known_deadlines, strict=True):
        deadline = getattr(ticket, name)
        if deadline is not None and epoch_ms(deadline) != known:
            field = native_due_field(metric)
            value = iso_utc(deadline)
            keep(
                4,
                TicketEvent(
                    ticket_id,
                    ticket.updated_at,
                    EventKind.STATUS_CHANGED,
                    fields={field: value},
                    event_id=f"{field}:{value}",
                ),
            )

    ranked.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in ranked]


def ticket_closed(ticket_id: int, at: datetime, status: str, event_id: str) -> TicketEvent:
    """A ticket that left (deleted, out of reach, out of the watched groups)."""
    return TicketEvent(
        str(ticket_id), at, EventKind.CLOSED, status, StatusCategory.CLOSED, event_id=event_id
    )


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


def _unexplained(
    ticket: ZammadTicket,
    statuses: StatusMap,
    state: str | None,
    priority: str | None,
    group: str | None,
) -> list[TicketEvent]:
    """The ticket's values that differ from ``state``, ``priority`` and ``group`` (None: not
    known), as one event at its ``updated_at``."""
    current_state = ticket.state_name
    fields = _present(
        priority=ticket.priority_name if ticket.priority_name != priority else None,
        queue=ticket.group if ticket.group != group else None,
    )
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
