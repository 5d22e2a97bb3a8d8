"""Jira Cloud and Jira Service Management API objects, parsed tolerantly.

Unknown fields are ignored, missing or null fields are optional where the connector can do
without them. Timestamps are parsed to aware UTC from Jira's own format
(``2024-05-01T10:00:00.000+0000``, rendered in the API user's zone) and from other reasonable
forms: ``Z`` or ``+00:00`` offsets, a space instead of ``T``, ``2024/05/01 10:00``, more than six
fractional digits, epoch milliseconds or seconds. A timestamp without an offset is taken as UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

_FRACTION = re.compile(r"(\.\d{6})\d+")
_COMPACT_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")
_EPOCH_MILLIS_FROM = 100_000_000_000  # numbers above this are milliseconds, below seconds


def parse_jira_time(value: object) -> datetime:
    """A Jira timestamp (or a reasonable variant) as an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = _from_epoch(float(value))
    elif isinstance(value, str):
        moment = _from_text(value)
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _from_epoch(number: float) -> datetime:
    seconds = number / 1000 if abs(number) >= _EPOCH_MILLIS_FROM else number
    return datetime.fromtimestamp(seconds, UTC)


def _from_text(value: str) -> datetime:
    text = value.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return _from_epoch(float(text))
    try:
        return datetime.fromisoformat(text)  # Jira's own format, the common case
    except ValueError:
        pass
    if re.match(r"^\d{4}/\d{2}/\d{2}", text):
        text = text.replace("/", "-", 2)
    text = _FRACTION.sub(r"\1", text)
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    text = _COMPACT_OFFSET.sub(r"\1:\2", text) if re.search(r"[T ]\d", text) else text
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"unreadable timestamp {value!r}") from None


def _text(value: object) -> object:
    """Ids come as numbers in some payloads; names as null: both become strings."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value))
    return value


JiraTime = Annotated[datetime, BeforeValidator(parse_jira_time)]
Text = Annotated[str, BeforeValidator(_text)]


class JiraPayload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _drop_nulls(value: object) -> object:
    """Lists whose items may be null (seen in exports): keep the real items."""
    return [v for v in value if v is not None] if isinstance(value, list) else value


# ---------------------------------------------------------------------------- references


class StatusCategoryRef(JiraPayload):
    key: Text = ""  # new | indeterminate | done | undefined
    name: Text = ""


class StatusRef(JiraPayload):
    id: Text = ""
    name: Text = ""
    status_category: StatusCategoryRef | None = Field(None, alias="statusCategory")


class NamedRef(JiraPayload):
    id: Text = ""
    name: Text = ""


class ProjectRef(JiraPayload):
    id: Text = ""
    key: Text = ""
    name: Text = ""


class UserRef(JiraPayload):
    account_id: Text = Field("", alias="accountId")
    account_type: Text = Field("", alias="accountType")  # atlassian | app | customer
    display_name: Text = Field("", alias="displayName")
    email_address: Text = Field("", alias="emailAddress")  # absent when the user hides it


# ---------------------------------------------------------------------------- comments


class CommentPayload(JiraPayload):
    id: Text
    author: UserRef | None = None
    created: JiraTime
    jsd_public: bool | None = Field(None, alias="jsdPublic")  # absent: visible (Jira's default)
    visibility: dict[str, Any] | None = None  # restricted to a group or role

    @property
    def public(self) -> bool:
        return self.jsd_public is not False and not self.visibility


class CommentPage(JiraPayload):
    comments: Annotated[list[CommentPayload], BeforeValidator(_drop_nulls)] = []
    start_at: int = Field(0, alias="startAt")
    total: int | None = None

    @property
    def complete(self) -> bool:
        return self.total is None or self.start_at + len(self.comments) >= self.total


# ---------------------------------------------------------------------------- changelog


class ChangeItem(JiraPayload):
    field: Text = ""
    field_id: Text = Field("", alias="fieldId")
    from_id: Text = Field("", alias="from")
    from_string: Text = Field("", alias="fromString")
    to_id: Text = Field("", alias="to")
    to_string: Text = Field("", alias="toString")

    def is_field(self, field_id: str, name: str) -> bool:
        if self.field_id:
            return self.field_id == field_id
        return self.field.lower() == name.lower()


class ChangeHistory(JiraPayload):
    id: Text
    created: JiraTime
    items: Annotated[list[ChangeItem], BeforeValidator(_drop_nulls)] = []


class ChangelogPage(JiraPayload):
    histories: Annotated[list[ChangeHistory], BeforeValidator(_drop_nulls)] = []
    start_at: int = Field(0, alias="startAt")
    total: int | None = None

    @property
    def complete(self) -> bool:
        return self.total is None or (self.start_at == 0 and len(self.histories) >= self.total)


class IssueChangelogs(JiraPayload):
    issue_id: Text = Field(alias="issueId")
    change_histories: list[ChangeHistory] = Field([], alias="changeHistories")


class BulkChangelogPage(JiraPayload):
    issue_change_logs: list[IssueChangelogs] = Field([], alias="issueChangeLogs")
    next_page_token: str | None = Field(None, alias="nextPageToken")


# ---------------------------------------------------------------------------- SLA


class SlaTime(JiraPayload):
    iso8601: str | None = None
    jira: str | None = None
    epoch_millis: int | None = Field(None, alias="epochMillis")

    @property
    def at(self) -> datetime | None:
        """The instant, from epoch milliseconds when given, else from the text forms."""
        if self.epoch_millis is not None:
            return parse_jira_time(self.epoch_millis)
        for text in (self.iso8601, self.jira):
            if text:
                try:
                    return parse_jira_time(text)
                except ValueError:
                    continue
        return None


class SlaCycle(JiraPayload):
    start_time: SlaTime | None = Field(None, alias="startTime")
    breach_time: SlaTime | None = Field(None, alias="breachTime")
    breached: bool = False
    paused: bool = False


class SlaValue(JiraPayload):
    """A request's SLA metric, as the SLA custom fields and the servicedeskapi return it."""

    id: Text = ""
    name: Text = ""
    ongoing_cycle: SlaCycle | None = Field(None, alias="ongoingCycle")


class SlaPage(JiraPayload):
    values: list[SlaValue] = []
    is_last_page: bool = Field(True, alias="isLastPage")
    size: int = 0


class RequestTypeRef(JiraPayload):
    name: Text = ""


class RequestTypeValue(JiraPayload):
    """The value of the "Request Type" field (sd-customerrequesttype)."""

    request_type: RequestTypeRef | None = Field(None, alias="requestType")


# ---------------------------------------------------------------------------- issues


class IssueFields(JiraPayload):
    """The fields asked for; custom fields (request type, SLAs) stay in ``custom``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    summary: Text = ""
    status: StatusRef | None = None
    priority: NamedRef | None = None
    created: JiraTime | None = None
    updated: JiraTime | None = None
    reporter: UserRef | None = None
    assignee: UserRef | None = None
    project: ProjectRef | None = None
    issuetype: NamedRef | None = None
    comment: CommentPage | None = None

    def custom(self, field_id: str) -> Any:
        return (self.model_extra or {}).get(field_id)


class IssuePayload(JiraPayload):
    id: Text
    key: Text
    fields: IssueFields = IssueFields()
    changelog: ChangelogPage | None = None
    properties: dict[str, Any] | None = None

    @property
    def created_at(self) -> datetime:
        moment = self.fields.created or self.fields.updated
        if moment is None:
            raise ValueError("neither created nor updated is set")
        return moment

    @property
    def updated_at(self) -> datetime:
        return self.fields.updated or self.created_at

    @property
    def channel(self) -> str:
        """The request's channel (portal, email, api, jira, ...) from the
        ``request.channel.type`` issue property, or "" when absent."""
        prop = (self.properties or {}).get("request.channel.type")
        value = prop.get("value") if isinstance(prop, dict) else prop
        return value.strip() if isinstance(value, str) else ""

    def request_type(self, field_id: str | None) -> str:
        if not field_id:
            return ""
        raw = self.fields.custom(field_id)
        if not isinstance(raw, dict):
            return ""
        try:
            value = RequestTypeValue.model_validate(raw)
        except ValidationError:
            return ""
        return value.request_type.name if value.request_type else ""

    def slas(self, field_ids: list[str]) -> list[SlaValue]:
        """The SLA fields' values; an unreadable one is left out."""
        found = []
        for field_id in field_ids:
            raw = self.fields.custom(field_id)
            if isinstance(raw, dict):
                try:
                    found.append(SlaValue.model_validate(raw))
                except ValidationError:
                    continue
        return found


class SearchPage(JiraPayload):
    """One page of ``/rest/api/3/search/jql``: issues stay raw so one bad item is skipped alone."""

    issues: list[Any] = []
    next_page_token: str | None = Field(None, alias="nextPageToken")
    is_last: bool | None = Field(None, alias="isLast")

    @property
    def last(self) -> bool:
        return self.is_last is True or not self.next_page_token


class BulkIssues(JiraPayload):
    issues: list[Any] = []
    issue_errors: list[dict[str, Any]] = Field([], alias="issueErrors")


# ---------------------------------------------------------------------------- site catalog


class FieldSchema(JiraPayload):
    type: Text = ""
    custom: Text = ""


class FieldInfo(JiraPayload):
    id: Text
    name: Text = ""
    schema_: FieldSchema | None = Field(None, alias="schema")


class StatusInfo(JiraPayload):
    id: Text
    name: Text = ""
    status_category: StatusCategoryRef | None = Field(None, alias="statusCategory")


class Myself(JiraPayload):
    account_id: Text = Field("", alias="accountId")
    time_zone: Text = Field("", alias="timeZone")


def describe_error(exc: ValidationError) -> str:
    """The first problem of a validation error, short enough for a log line."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "item"
    return f"{where}: {first.get('msg', 'invalid')}"
