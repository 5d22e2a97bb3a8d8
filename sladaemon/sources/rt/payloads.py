"""Request Tracker REST2 objects as pydantic models, parsed tolerantly.

REST2 serialises Perl scalars, so numbers often arrive as strings, related records as
``{type, id, _url}`` stubs (expanded with ``fields[Queue]=Name`` and the like), and an unset
date as ``1970-01-01T00:00:00Z``. Unknown fields are ignored, missing or null ones take a
default, and dates are accepted in the formats RT and its proxies produce: W3CDTF
(``2024-05-01T10:00:00Z``), RT's SQL form in transactions (``2024-05-01 10:00:00``, UTC),
fractions, offsets, epoch seconds, RFC 2822 and RT's ``Mon May 01 10:00:00 2024``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_ISO = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)
_UNSET_WORDS = frozenset({"", "not set", "null", "none", "0", "-"})


def parse_rt_time(value: object) -> datetime | None:
    """An RT date as an aware UTC datetime; None when unset (empty or the epoch).

    Raises ``ValueError`` for text that is no date at all.
    """
    parsed: datetime | None
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, bool):
        raise ValueError(f"not a date: {value!r}")
    elif isinstance(value, int | float):
        parsed = _from_epoch(float(value))
    else:
        parsed = _parse_text(str(value).strip())
    if parsed is None:
        return None
    parsed = parsed.astimezone(UTC)
    return None if parsed.timestamp() <= 0 else parsed


def _from_epoch(seconds: float) -> datetime:
    if seconds > 1e11:  # milliseconds
        seconds /= 1000.0
    return datetime.fromtimestamp(seconds, UTC)


def _parse_text(text: str) -> datetime | None:
    if text.lower() in _UNSET_WORDS:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return _from_epoch(float(text))
    match = _ISO.match(text)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=_zone(zone),
        )
    for pattern in ("%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M %Y"):
        try:
            return datetime.strptime(" ".join(text.split()), pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"not a date: {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _zone(text: str | None) -> timezone:
    if not text or text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _text(value: object) -> str:
    """Scalars as text (RT sends numbers as strings or numbers); null as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        raise ValueError(f"expected a scalar, got {type(value).__name__}")
    return str(value).strip()


RtTime = Annotated[datetime | None, BeforeValidator(parse_rt_time)]
Text = Annotated[str, BeforeValidator(_text)]


class Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class RtRef(Tolerant):
    """A related record: ``{type, id, _url}``, plus ``Name``/``EmailAddress`` when expanded.
    For users ``id`` is the login name."""

    type: Text = ""
    id: Text = ""
    name: Text = Field("", alias="Name")
    email: Text = Field("", alias="EmailAddress")

    @model_validator(mode="before")
    @classmethod
    def _bare_value(cls, data: Any) -> Any:
        if data is None or isinstance(data, str | int):
            return {"id": "" if data is None else str(data)}
        return data

    def keys(self) -> set[str]:
        """Lower-cased names this record goes by (login name and email address)."""
        return {k.lower() for k in (self.id, self.name, self.email) if k}


def _ref_list(value: object) -> object:
    if value is None or value == "":
        return []
    if isinstance(value, dict | str):
        return [value]
    return value


RefList = Annotated[list[RtRef], BeforeValidator(_ref_list)]


class RtCustomField(Tolerant):
    id: Text = ""
    name: Text = ""
    values: Annotated[list[Text], BeforeValidator(_ref_list)] = []


CustomFieldList = Annotated[list[RtCustomField], BeforeValidator(_ref_list)]


class RtTicket(Tolerant):
    """A ticket as a TicketSQL search returns it (only the requested ``fields``)."""

    id: int
    subject: Text = Field("", alias="Subject")
    status: Text = Field("", alias="Status")
    queue: RtRef | None = Field(None, alias="Queue")
    owner: RtRef | None = Field(None, alias="Owner")
    priority: Text = Field("", alias="Priority")
    created: RtTime = Field(None, alias="Created")
    last_updated: RtTime = Field(None, alias="LastUpdated")
    due: RtTime = Field(None, alias="Due")
    sla: Text = Field("", alias="SLA")
    requestors: RefList = Field([], alias="Requestor")
    custom_fields: CustomFieldList = Field([], alias="CustomFields")
    effective_id: RtRef | None = Field(None, alias="EffectiveId")

    @model_validator(mode="after")
    def _has_last_updated(self) -> RtTicket:
        if self.last_updated is None:
            raise ValueError("no LastUpdated")
        return self

    @property
    def queue_name(self) -> str:
        if self.queue is None:
            return ""
        return self.queue.name or self.queue.id

    @property
    def merged_into(self) -> int | None:
        """The ticket this one was merged into (its EffectiveId), if any."""
        if self.effective_id is None or not self.effective_id.id.isdigit():
            return None
        target = int(self.effective_id.id)
        return target if target != self.id else None


class RtTransaction(Tolerant):
    """One entry of a ticket's history."""

    id: int
    ticket_id: int | None = Field(None, alias="ObjectId")
    object_type: Text = Field("RT::Ticket", alias="ObjectType")
    type: Text = Field("", alias="Type")
    creator: RtRef | None = Field(None, alias="Creator")
    created: RtTime = Field(None, alias="Created")
    field: Text = Field("", alias="Field")
    old_value: Text = Field("", alias="OldValue")
    new_value: Text = Field("", alias="NewValue")

    @model_validator(mode="after")
    def _has_created(self) -> RtTransaction:
        if self.created is None:
            raise ValueError("no Created")
        return self


class RtPage(Tolerant):
    """The collection envelope of every REST2 search. ``total`` and ``pages`` are null when
    the user may not see every match; ``next_page`` is present only when there is one."""

    count: int | None = None
    page: int | None = None
    per_page: int | None = None
    total: int | None = None
    pages: int | None = None
    next_page: str | None = None
    items: list[Any] = []

    @model_validator(mode="before")
    @classmethod
    def _null_items(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("items") is None:
            return {**data, "items": []}
        return data


class RtQueue(Tolerant):
    id: int
    name: Text = Field("", alias="Name")


class RtUser(Tolerant):
    """``GET /user/{id}``."""

    id: int
    name: Text = Field("", alias="Name")
    email: Text = Field("", alias="EmailAddress")
