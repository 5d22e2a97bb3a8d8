"""Zammad API objects as pydantic models, tolerant of what real instances send.

Unknown fields are ignored; missing or null fields are optional, except the few an object is
useless without (an id, and the timestamp that orders it). Timestamps are Zammad's
``2024-05-01T10:00:00.123Z`` but anything reasonable is read: other offsets, a space instead of
``T``, a ``UTC`` suffix, no fraction or nanoseconds, epoch seconds or milliseconds; naive times
are UTC. Names resolved by ``expand=true`` may also arrive as objects with a ``name``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from sladaemon.errors import RowIssue

_FRACTION = re.compile(r"(\.\d{6})\d+")
_SPACED_OFFSET = re.compile(r"\s+([+-]\d{2}:?\d{2})$")
_UTC_SUFFIX = re.compile(r"\s*(?:UTC|GMT|Z)$", re.IGNORECASE)

# Seeded ids (db/seeds), for payloads that carry ids where names were asked for.
SEEDED_STATES = {
    1: "new",
    2: "open",
    3: "pending reminder",
    4: "closed",
    5: "merged",
    6: "removed",
    7: "pending close",
}
SEEDED_PRIORITIES = {1: "1 low", 2: "2 normal", 3: "3 high"}
SEEDED_SENDERS = {1: "Agent", 2: "Customer", 3: "System"}
SEEDED_ARTICLE_TYPES = {
    1: "email",
    2: "sms",
    3: "chat",
    4: "fax",
    5: "phone",
    6: "twitter status",
    7: "twitter direct-message",
    8: "facebook feed post",
    9: "facebook feed comment",
    10: "note",
    11: "web",
    12: "telegram personal-message",
    13: "facebook direct-message",
    14: "whatsapp message",
}


def parse_timestamp(value: object) -> datetime | None:
    """A Zammad timestamp (or a reasonable variant) as an aware UTC datetime; None if empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(float(value))
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return _from_epoch(float(text))
        text = _UTC_SUFFIX.sub("+00:00", text)
        text = _SPACED_OFFSET.sub(r"\1", text)
        text = _FRACTION.sub(r"\1", text)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"unreadable timestamp {value!r}") from None
    else:
        raise ValueError(f"unreadable timestamp {value!r}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _from_epoch(seconds: float) -> datetime:
    if seconds > 1e11:  # milliseconds
        seconds /= 1000.0
    return datetime.fromtimestamp(seconds, UTC)


def _required_timestamp(value: object) -> datetime:
    moment = parse_timestamp(value)
    if moment is None:
        raise ValueError("timestamp missing")
    return moment


def _name(value: object) -> str | None:
    """A resolved name: a string, a number, or an object with a name; blank is None."""
    if isinstance(value, dict):
        value = value.get("name")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _count(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None


Timestamp = Annotated[datetime | None, BeforeValidator(parse_timestamp)]
RequiredTimestamp = Annotated[datetime, BeforeValidator(_required_timestamp)]
Name = Annotated[str | None, BeforeValidator(_name)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Count = Annotated[int | None, BeforeValidator(_count)]


class ZammadPayload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ZammadTicket(ZammadPayload):
    """A ticket as ``GET /tickets/search?expand=true`` and ``GET /tickets/{id}?expand=true``
    return it."""

    id: int
    number: Name = None
    state: Name = None
    state_id: Count = None
    priority: Name = None
    priority_id: Count = None
    group: Name = None
    owner_id: Count = None  # 1 (Zammad's "-" user) or none: unassigned
    owner: Name = None  # the owner's login
    organization: Name = None
    customer: Name = None
    created_at: Timestamp = None
    updated_at: RequiredTimestamp
    create_article_type: Name = None
    create_article_type_id: Count = None
    article_count: Count = None
    first_response_escalation_at: Timestamp = None
    update_escalation_at: Timestamp = None
    close_escalation_at: Timestamp = None

    @property
    def state_name(self) -> str | None:
        return self.state or SEEDED_STATES.get(self.state_id or 0)

    @property
    def priority_name(self) -> str | None:
        return self.priority or SEEDED_PRIORITIES.get(self.priority_id or 0)

    @property
    def origin_type(self) -> str | None:
        """The article type the ticket was created through (its channel of origin)."""
        return self.create_article_type or SEEDED_ARTICLE_TYPES.get(
            self.create_article_type_id or 0
        )

    @property
    def opened_at(self) -> datetime:
        return self.created_at or self.updated_at


class ZammadArticle(ZammadPayload):
    """One entry of ``GET /ticket_articles/by_ticket/{id}`` (names are always resolved)."""

    id: int
    ticket_id: Count = None
    type: Name = None
    type_id: Count = None
    sender: Name = None
    sender_id: Count = None
    internal: Flag = False
    created_at: RequiredTimestamp

    @property
    def type_name(self) -> str | None:
        return self.type or SEEDED_ARTICLE_TYPES.get(self.type_id or 0)

    @property
    def sender_name(self) -> str | None:
        return self.sender or SEEDED_SENDERS.get(self.sender_id or 0)


class ZammadHistoryEntry(ZammadPayload):
    """One entry of ``GET /ticket_history/{id}`` (its ``history`` list)."""

    id: Count = None
    o_id: Count = None
    object: Name = None
    type: Name = None
    attribute: Name = None
    value_from: Name = None
    value_to: Name = None
    id_from: Count = None  # for ``owner``: the user ids behind value_from/value_to
    id_to: Count = None
    created_at: RequiredTimestamp


class ZammadUser(ZammadPayload):
    """A user, as ``GET /users/{id}`` and the ``assets.User`` of a history answer show it."""

    id: int
    login: Name = None
    email: Name = None


Model = TypeVar("Model", bound=ZammadPayload)


def parse_items(
    raw: object,
    model: type[Model],
    describe: Callable[[Any], str],
) -> tuple[list[Model], list[RowIssue]]:
    """Parse a JSON list item by item: what fails is reported, the rest is kept."""
    items: list[Model] = []
    issues: list[RowIssue] = []
    for entry in raw if isinstance(raw, list) else []:
        try:
            items.append(model.model_validate(entry))
        except ValidationError as exc:
            issues.append(RowIssue(0, f"{describe(entry)}: {_reason(exc)}"))
    return items, issues


def ticket_label(entry: Any) -> str:
    ticket_id = entry.get("id", "?") if isinstance(entry, dict) else "?"
    return f"ticket {ticket_id}"


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "item"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def history_entries(raw: object) -> object:
    """The list inside a ticket history answer (``{"history": [...], "assets": {...}}``)."""
    if isinstance(raw, dict):
        return raw.get("history", [])
    return raw


def history_users(raw: object) -> list[ZammadUser]:
    """The users a ticket history answer brings along (``assets.User``), those that parse."""
    assets = raw.get("assets") if isinstance(raw, dict) else None
    users = assets.get("User") if isinstance(assets, dict) else None
    found: list[ZammadUser] = []
    for entry in users.values() if isinstance(users, dict) else ():
        with contextlib.suppress(ValidationError):
            found.append(ZammadUser.model_validate(entry))
    return found
