"""Freshdesk API objects as tolerant pydantic models.

Unknown keys are ignored and missing or null ones are optional. Timestamps are read in the API's
format (``2024-05-01T10:00:00Z``) and in reasonable variants (offsets, fractions, a space for
the ``T``, date only, epoch seconds or milliseconds, RFC 2822); naive ones count as UTC. A
ticket needs an ``id`` and one of ``created_at``/``updated_at``; an unreadable optional field
(a stats timestamp, a priority) is dropped rather than losing the ticket.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from sladaemon.errors import RowIssue

EPOCH_MS_THRESHOLD = 100_000_000_000  # larger epoch numbers are milliseconds


def parse_timestamp(value: object) -> datetime | None:
    """An aware UTC datetime, or None for null/empty. Raises ValueError when unreadable."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) >= EPOCH_MS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"timestamp out of range: {value!r}") from None
    elif isinstance(value, str):
        moment = _parse_text(value.strip())
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _parse_text(text: str) -> datetime:
    if text.lstrip("-").replace(".", "", 1).isdigit():
        parsed = parse_timestamp(float(text))
        assert parsed is not None
        return parsed
    candidate = text.replace("/", "-")
    if candidate.upper().endswith(" UTC"):
        candidate = candidate[:-4] + "Z"
    try:
        return datetime.fromisoformat(candidate)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise ValueError(f"unreadable timestamp {text!r}") from None


def _optional_timestamp(value: object) -> datetime | None:
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _lenient_int(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _lenient_text(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _text_list(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(v).strip() for v in value if v is not None and str(v).strip()]


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _mapping_or_none(value: object) -> object:
    return value if isinstance(value, Mapping) else None


OptionalTimestamp = Annotated[datetime | None, BeforeValidator(_optional_timestamp)]
LenientInt = Annotated[int | None, BeforeValidator(_lenient_int)]
LenientText = Annotated[str | None, BeforeValidator(_lenient_text)]
TextList = Annotated[list[str], BeforeValidator(_text_list)]
Flag = Annotated[bool, BeforeValidator(_flag)]


class TolerantModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TicketStats(TolerantModel):
    """The ``stats`` embed (``include=stats``): when things last happened to the ticket."""

    first_responded_at: OptionalTimestamp = None
    agent_responded_at: OptionalTimestamp = None
    requester_responded_at: OptionalTimestamp = None
    status_updated_at: OptionalTimestamp = None
    pending_since: OptionalTimestamp = None
    resolved_at: OptionalTimestamp = None
    closed_at: OptionalTimestamp = None
    reopened_at: OptionalTimestamp = None


class FreshdeskTicket(TolerantModel):
    id: int
    status: LenientInt = None
    priority: LenientInt = None
    source: LenientInt = None
    type: LenientText = None
    group_id: LenientInt = None
    company_id: LenientInt = None
    product_id: LenientInt = None
    responder_id: LenientInt = None
    created_at: OptionalTimestamp = None
    updated_at: OptionalTimestamp = None
    fr_due_by: OptionalTimestamp = None
    due_by: OptionalTimestamp = None
    nr_due_by: OptionalTimestamp = None
    tags: TextList = []
    spam: Flag = False
    deleted: Flag = False
    stats: Annotated[TicketStats | None, BeforeValidator(_mapping_or_none)] = None

    @model_validator(mode="before")
    @classmethod
    def _required_times(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise ValueError("not a JSON object")
        created = parse_timestamp(data.get("created_at"))  # unreadable -> ValueError
        updated = parse_timestamp(data.get("updated_at"))
        if created is None and updated is None:
            raise ValueError("no created_at or updated_at")
        return {**data, "created_at": created or updated, "updated_at": updated or created}

    @property
    def created(self) -> datetime:
        assert self.created_at is not None  # filled by the validator
        return self.created_at

    @property
    def updated(self) -> datetime:
        assert self.updated_at is not None
        return max(self.updated_at, self.created)

    @property
    def ticket_id(self) -> str:
        return str(self.id)


class FreshdeskGroup(TolerantModel):
    id: int
    name: LenientText = None


class AgentContact(TolerantModel):
    email: LenientText = None
    name: LenientText = None


class FreshdeskAgent(TolerantModel):
    """``GET /api/v2/agents/{id}``: the agent's email and name are in ``contact``."""

    id: int
    contact: Annotated[AgentContact | None, BeforeValidator(_mapping_or_none)] = None


def parse_agent(item: object) -> FreshdeskAgent | None:
    """An agent record; None when it does not parse."""
    try:
        return FreshdeskAgent.model_validate(item)
    except ValidationError:
        return None


def parse_tickets(items: list[Any]) -> tuple[list[FreshdeskTicket], list[RowIssue]]:
    """The readable tickets of a page, and one issue per item that is not."""
    tickets: list[FreshdeskTicket] = []
    issues: list[RowIssue] = []
    for item in items:
        try:
            tickets.append(parse_ticket(item))
        except ValueError as exc:
            issues.append(RowIssue(0, f"ticket {_raw_id(item)}: {exc}"))
    return tickets, issues


def parse_ticket(item: object) -> FreshdeskTicket:
    """One ticket; raises ValueError with a short reason when it cannot be read."""
    try:
        return FreshdeskTicket.model_validate(item)
    except ValidationError as exc:
        raise ValueError(_reason(exc)) from None


def parse_groups(items: object) -> dict[int, str]:
    """Group id -> name from ``GET /api/v2/groups`` (unreadable entries are left out)."""
    names: dict[int, str] = {}
    for item in items if isinstance(items, list) else []:
        try:
            group = FreshdeskGroup.model_validate(item)
        except ValidationError:
            continue
        if group.name:
            names[group.id] = group.name
    return names


def parse_status_names(fields: object) -> dict[int, str]:
    """Status id -> agent label from ``GET /api/v2/ticket_fields`` (the ``status`` field).

    The API gives ``{"6": ["Waiting on Third Party", "<customer label>"]}``; a plain label or a
    list of ``{"value"|"id", "label"}`` objects are read too.
    """
    for field in fields if isinstance(fields, list) else []:
        if not isinstance(field, Mapping) or field.get("name") != "status":
            continue
        choices = field.get("choices")
        names: dict[int, str] = {}
        if isinstance(choices, Mapping):
            for key, label in choices.items():
                code = _lenient_int(key)
                text = _lenient_text(label[0] if isinstance(label, list) and label else label)
                if code is not None and text:
                    names[code] = text
        elif isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, Mapping):
                    code = _lenient_int(choice.get("value", choice.get("id")))
                    text = _lenient_text(choice.get("label"))
                    if code is not None and text:
                        names[code] = text
        return names
    return {}


def _raw_id(item: object) -> str:
    if isinstance(item, Mapping) and item.get("id") is not None:
        return str(item["id"])[:40]
    return "?"


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
