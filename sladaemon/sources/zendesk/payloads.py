"""Zendesk API objects as pydantic models, parsed tolerantly.

Unknown fields are ignored, missing or null fields are optional, ids given as strings are
accepted, and timestamps in Zendesk's formats (ISO 8601 with ``Z``, epoch seconds) as well as a
few odd ones (offsets, fractions, a space instead of ``T``, epoch milliseconds, RFC 2822) become
aware UTC datetimes. Lists of API items stay raw dicts in the page envelopes so that one bad item
is skipped on its own rather than failing its page.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

# Ticket fields whose changes matter, as named in audit and ticket-event child events.
TRACKED_FIELDS = ("status", "priority", "group_id", "assignee_id", "tags")


def parse_timestamp(value: object) -> datetime | None:
    """An aware UTC datetime from Zendesk's formats and a few odd ones; None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"unreadable timestamp {value!r}")
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not isinstance(value, str):
        raise ValueError(f"unreadable timestamp {value!r}")
    text = value.strip()
    try:
        return _from_epoch(float(text))
    except ValueError:
        pass
    candidates = [text, text.replace("/", "-")]
    if text.endswith(("Z", "z")):
        candidates.append(text[:-1] + "+00:00")
    for candidate in candidates:
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"unreadable timestamp {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _from_epoch(seconds: float) -> datetime:
    if seconds > 1e11:  # epoch milliseconds
        seconds /= 1000
    return datetime.fromtimestamp(seconds, UTC)


def _optional_id(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not an id: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(f"not an id: {value!r}")


def _required_id(value: object) -> int:
    parsed = _optional_id(value)
    if parsed is None:
        raise ValueError("missing id")
    return parsed


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a text value: {value!r}")
    if isinstance(value, str | int | float):
        text = str(value).strip()
        return text or None
    raise ValueError(f"not a text value: {value!r}")


def _loose_text(value: object) -> str | None:
    """Like ``_text`` but anything unexpected counts as absent (fields that are only hints)."""
    try:
        return _text(value)
    except ValueError:
        return None


def _loose_id(value: object) -> int | None:
    try:
        return _optional_id(value)
    except ValueError:
        return None


def _loose_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _items(value: object) -> list[Any]:
    """A list of raw items; null counts as empty."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise ValueError(f"expected a list, got {type(value).__name__}")


def _tags(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(tag) for tag in value if tag is not None and str(tag).strip()]
    raise ValueError(f"expected a list of tags, got {type(value).__name__}")


Timestamp = Annotated[datetime | None, BeforeValidator(parse_timestamp)]
RequiredId = Annotated[int, BeforeValidator(_required_id)]
OptionalId = Annotated[int | None, BeforeValidator(_optional_id)]
LooseId = Annotated[int | None, BeforeValidator(_loose_id)]
Text = Annotated[str | None, BeforeValidator(_text)]
LooseText = Annotated[str | None, BeforeValidator(_loose_text)]
LooseBool = Annotated[bool | None, BeforeValidator(_loose_bool)]
RawItems = Annotated[list[Any], BeforeValidator(_items)]
Tags = Annotated[list[str], BeforeValidator(_tags)]


class Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _via(value: object) -> object:
    """``via`` is an object with ``channel``; ticket events give a display string instead."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return {"channel": value}
    if isinstance(value, Mapping):
        return value
    return None


class Via(Tolerant):
    channel: LooseText = None  # a name ("email") or a numeric via id ("4")


ViaField = Annotated[Via | None, BeforeValidator(_via)]


class PolicyMetric(Tolerant):
    """One metric of the SLA policy applied to a ticket (the ``slas`` sideload)."""

    metric: LooseText = None
    stage: LooseText = None  # active | paused | achieved
    breach_at: Timestamp = None


class TicketSlas(Tolerant):
    policy_metrics: Annotated[list[PolicyMetric], BeforeValidator(_items)] = []


def _slas(value: object) -> object:
    return value if isinstance(value, Mapping) else None


class Ticket(Tolerant):
    id: RequiredId
    created_at: Timestamp = None
    updated_at: Timestamp = None
    generated_timestamp: Timestamp = None  # epoch seconds: moves on every update, system ones too
    status: Text = None
    priority: Text = None
    type: Text = None
    via: ViaField = None
    requester_id: OptionalId = None
    assignee_id: OptionalId = None
    group_id: OptionalId = None
    organization_id: OptionalId = None
    tags: Tags = []
    slas: Annotated[TicketSlas | None, BeforeValidator(_slas)] = None

    @property
    def changed_at(self) -> datetime | None:
        """When the ticket last changed in any way (the export's ordering key)."""
        return self.generated_timestamp or self.updated_at or self.created_at


class User(Tolerant):
    id: RequiredId
    role: LooseText = None  # end-user | agent | admin
    email: LooseText = None
    name: LooseText = None


class Named(Tolerant):
    """A group or an organization."""

    id: RequiredId
    name: LooseText = None


class AuditEvent(Tolerant):
    """One child event of an audit.

    The audits endpoint names the kind ``type`` and the changed field ``field_name``/``value``;
    the ticket event export names the kind ``event_type`` and keys the new value by the field's
    own name (``"status": "open"``). Both shapes land here.
    """

    id: LooseId = None
    kind: str = ""  # Comment, VoiceComment, Create, Change, ...
    field_name: LooseText = None
    value: Any = None
    previous_value: Any = None
    author_id: LooseId = None
    public: LooseBool = None
    via: ViaField = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        kind = out.get("event_type") or out.get("type") or ""
        out["kind"] = kind if isinstance(kind, str) else ""
        if out.get("field_name") is None and out["kind"] in ("Create", "Change"):
            for name in TRACKED_FIELDS:
                if name in out:
                    out["field_name"] = name
                    out["value"] = out[name]
                    break
        return out


def _events(value: object) -> list[Any]:
    return [item for item in _items(value) if isinstance(item, Mapping)]


class Audit(Tolerant):
    """One update of a ticket: who, when, and what changed (its child events)."""

    id: RequiredId
    ticket_id: OptionalId = None
    created_at: Timestamp = None
    author_id: LooseId = None
    via: ViaField = None
    events: Annotated[list[AuditEvent], BeforeValidator(_events)] = []

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        if out.get("created_at") is None and out.get("timestamp") is not None:
            out["created_at"] = out["timestamp"]
        if out.get("author_id") is None and out.get("updater_id") is not None:
            out["author_id"] = out["updater_id"]
        if "events" not in out and "child_events" in out:
            out["events"] = out["child_events"]
        return out


# ---------------------------------------------------------------------------- page envelopes


class CursorMeta(Tolerant):
    has_more: LooseBool = None
    after_cursor: LooseText = None


class Links(Tolerant):
    next: LooseText = None


class TicketExportPage(Tolerant):
    """``GET /api/v2/incremental/tickets/cursor.json``."""

    tickets: RawItems = []
    after_cursor: LooseText = None
    end_of_stream: LooseBool = None
    users: RawItems = []
    groups: RawItems = []
    organizations: RawItems = []


class TicketEventsPage(Tolerant):
    """``GET /api/v2/incremental/ticket_events.json`` (time-based)."""

    ticket_events: RawItems = []
    end_time: LooseId = None
    end_of_stream: LooseBool = None
    count: LooseId = None


class CursorPage(Tolerant):
    """A list endpoint with cursor (``meta``/``links``) or offset (``next_page``) pagination."""

    meta: CursorMeta | None = None
    links: Links | None = None
    next_page: LooseText = None

    def next_request(self) -> tuple[str | None, str | None]:
        """(cursor for ``page[after]``, or a next-page URL); both None on the last page."""
        if self.meta is not None and self.meta.has_more is not None:
            if self.meta.has_more and self.meta.after_cursor:
                return self.meta.after_cursor, None
            return None, None
        return None, self.next_page


class AuditsPage(CursorPage):
    audits: RawItems = []


class SearchPage(CursorPage):
    results: RawItems = []


class UsersPage(Tolerant):
    users: RawItems = []


class TicketsPage(Tolerant):
    tickets: RawItems = []


class GroupsPage(CursorPage):
    groups: RawItems = []
