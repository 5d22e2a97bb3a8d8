"""Jira Service Management payloads -> TicketEvents (pure: no I/O, no clock).

* Ticket id: the issue key. A ticket first seen yields ``created`` (at ``created``, with the
  status it was created in, priority, channel, queue = project key, project, request type and
  issue type), then its history: status and priority changes from the changelog at the time they
  happened, and comments. Known tickets yield only what happened after the ``updated`` already
  processed, so overlapping poll windows deliver nothing twice.
* Comments follow JSM's "Comment: For Customers": a public comment (``jsdPublic`` not false, no
  visibility restriction) by anyone but the reporter or a portal customer
  (``accountType == "customer"``) is an ``agent_reply`` (this includes automation and app
  accounts, as in JSM's own SLA); public comments by the reporter or a customer (or with no
  author) are ``customer_reply``; the rest are ``internal_note``.
* Statuses: the configured map, then JSM's usual names, then the status's Jira category
  (To Do -> new, In Progress -> open, Done -> solved), then common names; unknown -> open.
* Assignee: ``assignee`` is the assignee's ``emailAddress`` in lower case (the display name
  when the user hides the email; account ids in the changelog are named through ``people``);
  empty when unassigned. Jira has no group on a request: ``group`` is not set (a team field
  is a site-specific custom field).
* Channel: the request's ``request.channel.type`` property (portal, email, api, jira,
  anonymous portal) through the channel map; unknown values -> "other".
* Native deadlines: the running (not paused) cycle's ``breachTime`` of each SLA whose name maps to
  a metric ("Time to first response" -> first_response, "Time to resolution" -> resolution; other
  SLAs are ignored) becomes ``due:<metric>``. A paused cycle's breach time is a projection that
  moves while the pause lasts, so it is not reported until the cycle runs again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from sladaemon.model import EventKind, Metric, StatusCategory, TicketEvent, native_due_field
from sladaemon.sources.channels import ChannelMap
from sladaemon.sources.jira.payloads import (
    ChangeHistory,
    ChangeItem,
    CommentPayload,
    IssuePayload,
    SlaValue,
    StatusRef,
    UserRef,
)
from sladaemon.sources.people import ASSIGNEE, person_identity
from sladaemon.statuses import StatusMap

# JSM's usual status names (service request, incident and change workflows).
DEFAULT_STATUSES: Mapping[str, StatusCategory] = {
    "waiting for support": StatusCategory.OPEN,
    "waiting for customer": StatusCategory.PENDING,
    "pending": StatusCategory.PENDING,
    "waiting for approval": StatusCategory.ON_HOLD,
    "escalated": StatusCategory.OPEN,
    "work in progress": StatusCategory.OPEN,
    "in progress": StatusCategory.OPEN,
    "open": StatusCategory.OPEN,
    "reopened": StatusCategory.OPEN,
    "resolved": StatusCategory.SOLVED,
    "done": StatusCategory.SOLVED,
    "completed": StatusCategory.SOLVED,
    "closed": StatusCategory.CLOSED,
    "canceled": StatusCategory.CLOSED,
    "cancelled": StatusCategory.CLOSED,
    "declined": StatusCategory.CLOSED,
}

# Jira's status categories by key: To Do, In Progress, Done.
CATEGORY_BY_KEY: Mapping[str, StatusCategory] = {
    "new": StatusCategory.NEW,
    "indeterminate": StatusCategory.OPEN,
    "done": StatusCategory.SOLVED,
}

# request.channel.type values -> channel names.
DEFAULT_CHANNELS: Mapping[str, str] = {
    "email": "email",
    "portal": "web",
    "anonymous portal": "web",
    "anonymousportal": "web",
    "api": "api",
    "jira": "agent",  # raised by an agent in Jira itself
}

# SLA names (case-insensitive) -> metrics; SLAs with other names are ignored.
DEFAULT_SLA_METRICS: Mapping[str, Metric] = {
    "time to first response": Metric.FIRST_RESPONSE,
    "time to resolution": Metric.RESOLUTION,
}

STATUS_FIELD = "status"
PRIORITY_FIELD = "priority"
ASSIGNEE_FIELD = "assignee"
REQUEST_TYPE_NAMES = ("Customer Request Type", "Request Type")


@dataclass(frozen=True, slots=True)
class SiteCatalog:
    """What the connector needs to know about a site: the API user's time zone (JQL date
    literals are read in it), the request type and SLA field ids, and each status's category."""

    zone: str = "UTC"
    request_type_field: str | None = None
    sla_fields: tuple[str, ...] = ()
    status_categories: Mapping[str, str] = field(default_factory=dict)  # status id -> key

    def to_json(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "request_type_field": self.request_type_field,
            "sla_fields": list(self.sla_fields),
            "status_categories": dict(self.status_categories),
        }

    @classmethod
    def from_json(cls, data: object) -> SiteCatalog | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                zone=str(data.get("zone") or ""),
                request_type_field=data.get("request_type_field") or None,
                sla_fields=tuple(str(f) for f in data.get("sla_fields") or ()),
                status_categories={
                    str(k): str(v) for k, v in (data.get("status_categories") or {}).items()
                },
            )
        except (AttributeError, TypeError, ValueError):
            return None


def sla_metric(name: str) -> Metric | None:
    return DEFAULT_SLA_METRICS.get(name.strip().lower())


class JiraStatuses:
    """Status name (+ Jira category key) -> category; unknown names are kept in ``unknown``."""

    def __init__(self, configured: Mapping[str, StatusCategory] | None = None) -> None:
        merged = {
            **DEFAULT_STATUSES,
            **{k.strip().lower(): v for k, v in (configured or {}).items()},
        }
        self._exact = {k: v for k, v in merged.items() if not any(c in k for c in "*?[")}
        self._globs = [(k, v) for k, v in merged.items() if any(c in k for c in "*?[")]
        self._fallback = StatusMap()

    @property
    def unknown(self) -> set[str]:
        return self._fallback.unknown

    def __call__(self, name: str, category_key: str = "") -> StatusCategory:
        key = name.strip().lower()
        found = self._exact.get(key)
        if found is None:
            found = next((c for p, c in self._globs if fnmatchcase(key, p)), None)
        if found is None:
            found = CATEGORY_BY_KEY.get(category_key.strip().lower())
        return found if found is not None else self._fallback(name)


@dataclass(frozen=True, slots=True)
class TicketMemory:
    """What was processed of a ticket: its issue id, the ``updated`` seen (epoch ms), whether
    it is in a Done status, and the native deadlines reported."""

    issue_id: str
    updated_ms: int
    done: bool
    due: Mapping[str, int] = field(default_factory=dict)  # metric -> epoch seconds

    def to_json(self) -> list[Any]:
        return [self.issue_id, self.updated_ms, int(self.done), dict(self.due)]

    @classmethod
    def from_json(cls, data: object) -> TicketMemory | None:
        if not isinstance(data, list) or len(data) < 3:
            return None
        try:
            due = data[3] if len(data) > 3 and isinstance(data[3], dict) else {}
            return cls(
                str(data[0]), int(data[1]), bool(data[2]), {str(k): int(v) for k, v in due.items()}
            )
        except (TypeError, ValueError):
            return None


@dataclass
class MappedIssue:
    events: list[TicketEvent]
    memory: TicketMemory


@dataclass
class MappingContext:
    catalog: SiteCatalog
    statuses: JiraStatuses
    channels: ChannelMap  # request.channel.type -> channel name
    people: Mapping[str, str] = field(default_factory=dict)  # account id -> email, else name


def to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def map_issue(
    issue: IssuePayload,
    context: MappingContext,
    *,
    previous: TicketMemory | None,
    histories: Iterable[ChangeHistory] | None = None,
    comments: Iterable[CommentPayload] | None = None,
    slas: Iterable[SlaValue] = (),
) -> MappedIssue:
    """The events of ``issue`` not yet delivered: all of them for a ticket first seen (or one
    reopened after it was closed, which the daemon has let go of), else those after the
    ``updated`` already processed.

    ``histories`` and ``comments`` are the complete lists when they had to be fetched apart;
    otherwise the ones embedded in the search result are used.
    """
    if histories is None:
        histories = issue.changelog.histories if issue.changelog else []
    if comments is None:
        comments = issue.fields.comment.comments if issue.fields.comment else []
    ordered = sorted(histories, key=lambda h: (h.created, len(h.id), h.id))
    seen_until = previous.updated_ms if previous is not None else None

    start = _start_values(issue, context, ordered)
    events = [_created_event(issue, start, context.channels(issue.channel))]
    history_events, revived = _history_events(issue, context, ordered, start, seen_until)
    events += history_events
    events += _comment_events(issue, comments)
    if revived:
        previous = seen_until = None
    due = dict(previous.due) if previous is not None else {}
    events += _due_events(issue, slas, due)
    if seen_until is not None:
        until = seen_until
        events = [e for e in events if to_ms(e.at) > until or e.event_id.startswith("due:")]
    events.sort(key=lambda e: (e.at, e.kind is not EventKind.CREATED))

    status = issue.fields.status
    current_key = _key_of(context, status.id, status) if status else ""
    if current_key:
        done = current_key == "done"
    else:
        done = status is not None and bool(status.name) and context.statuses(status.name).is_done
    return MappedIssue(
        events=events,
        memory=TicketMemory(issue.id, to_ms(issue.updated_at), done, due),
    )


@dataclass(frozen=True, slots=True)
class _StartValues:
    """A ticket's status, priority and request type when it was created."""

    status: str
    category: StatusCategory | None
    priority: str
    request_type: str
    assignee: str


def user_identity(user: UserRef) -> str:
    """How ``assignee`` names a Jira user: the email in lower case, else the display name."""
    return person_identity(user.email_address, user.display_name)


def account_ids(histories: Iterable[ChangeHistory]) -> set[str]:
    """The account ids the assignee changes in ``histories`` name."""
    return {
        account
        for history in histories
        for item in history.items
        if _is_assignee(item)
        for account in (item.from_id, item.to_id)
        if account
    }


def _account_identity(context: MappingContext, account_id: str, name: str) -> str:
    """An account id from the changelog, by ``people``; else its display name."""
    if not account_id:
        return ""
    return context.people.get(account_id) or name or account_id


def _start_values(
    issue: IssuePayload, context: MappingContext, ordered: list[ChangeHistory]
) -> _StartValues:
    status = issue.fields.status
    status_name, status_id = _value_at_start(
        ordered, _is_status, status.name if status else "", status.id if status else ""
    )
    priority = issue.fields.priority
    priority_name, _ = _value_at_start(ordered, _is_priority, priority.name if priority else "", "")
    field_id = context.catalog.request_type_field
    request_type, _ = _value_at_start(
        ordered,
        lambda item: _is_request_type(item, field_id),
        issue.request_type(field_id),
        "",
    )
    category = None
    if status_name:
        category = context.statuses(status_name, _key_of(context, status_id, status))
    assignee = issue.fields.assignee
    current = user_identity(assignee) if assignee is not None else ""
    name, account = _value_at_start(ordered, _is_assignee, current, "")
    if name != current or account:
        current = _account_identity(context, account, name)
    return _StartValues(status_name, category, priority_name, request_type, current)


def _created_event(issue: IssuePayload, start: _StartValues, channel: str) -> TicketEvent:
    project = issue.fields.project
    return TicketEvent(
        ticket_id=issue.key,
        at=issue.created_at,
        kind=EventKind.CREATED,
        status=start.status,
        category=start.category,
        fields=_non_empty(
            priority=start.priority,
            channel=channel,
            queue=project.key if project else "",
            project=project.name if project else "",
            request_type=start.request_type,
            assignee=start.assignee,
            issue_type=issue.fields.issuetype.name if issue.fields.issuetype else "",
        ),
        event_id="created",
    )


def _history_events(
    issue: IssuePayload,
    context: MappingContext,
    ordered: list[ChangeHistory],
    start: _StartValues,
    seen_until: int | None,
) -> tuple[list[TicketEvent], bool]:
    """Status and field changes in time order, and whether a ticket closed before was reopened
    after ``seen_until``."""
    key, created_at = issue.key, issue.created_at
    current = issue.fields.status
    field_id = context.catalog.request_type_field
    status_name, category = start.status, start.category
    events: list[TicketEvent] = []
    revived = False
    for history in ordered:
        at = max(history.created, created_at)
        for item in history.items:
            if _is_status(item) and item.to_string:
                after = context.statuses(item.to_string, _key_of(context, item.to_id, current))
                kind = _status_kind(category, after)
                if (
                    kind is EventKind.REOPENED
                    and category is StatusCategory.CLOSED
                    and (seen_until is None or to_ms(at) > seen_until)
                ):
                    revived = True
                events.append(
                    TicketEvent(
                        ticket_id=key,
                        at=at,
                        kind=kind,
                        status=item.to_string,
                        category=after,
                        event_id=f"history:{history.id}:status",
                    )
                )
                status_name, category = item.to_string, after
            elif _is_priority(item) and item.to_string:
                events.append(
                    _field_event(key, at, status_name, "priority", item.to_string, history)
                )
            elif _is_request_type(item, field_id) and item.to_string:
                events.append(
                    _field_event(key, at, status_name, "request_type", item.to_string, history)
                )
            elif _is_assignee(item):
                assignee = _account_identity(context, item.to_id, item.to_string)
                events.append(_field_event(key, at, status_name, ASSIGNEE, assignee, history))
    return events, revived


def _comment_events(issue: IssuePayload, comments: Iterable[CommentPayload]) -> list[TicketEvent]:
    reporter = issue.fields.reporter
    return [
        TicketEvent(
            ticket_id=issue.key,
            at=max(comment.created, issue.created_at),
            kind=_comment_kind(comment, reporter),
            event_id=f"comment:{comment.id}",
        )
        for comment in comments
    ]


def _due_events(
    issue: IssuePayload, slas: Iterable[SlaValue], reported: dict[str, int]
) -> list[TicketEvent]:
    """Field updates for native deadlines that differ from those already reported (which
    ``reported`` is updated with, in epoch seconds)."""
    updated_at = max(issue.updated_at, issue.created_at)
    events = []
    for metric, deadline in _running_deadlines(slas).items():
        seconds = int(deadline.timestamp())
        if reported.get(metric.value) == seconds:
            continue
        reported[metric.value] = seconds
        value = iso_utc(deadline)
        events.append(
            TicketEvent(
                ticket_id=issue.key,
                at=updated_at,
                kind=EventKind.STATUS_CHANGED,
                fields={native_due_field(metric): value},
                event_id=f"due:{metric.value}:{value}@{to_ms(issue.updated_at)}",
            )
        )
    return events


def gone_event(key: str, at: datetime, reason: str) -> TicketEvent:
    """``closed`` for a ticket that vanished (``deleted``) or left the watched set (``moved``)."""
    return TicketEvent(
        ticket_id=key,
        at=at,
        kind=EventKind.CLOSED,
        status=reason,
        category=StatusCategory.CLOSED,
        event_id=f"gone:{reason}",
    )


# ---------------------------------------------------------------------------- helpers


def _value_at_start(
    histories: list[ChangeHistory],
    is_field: Callable[[ChangeItem], bool],
    current: str,
    current_id: str,
) -> tuple[str, str]:
    """(value, id) a field had before its first change in ``histories``; the current one if
    it never changed there."""
    for history in histories:
        for item in history.items:
            if is_field(item):
                return item.from_string, item.from_id
    return current, current_id


def _is_status(item: ChangeItem) -> bool:
    return item.is_field(STATUS_FIELD, STATUS_FIELD)


def _is_priority(item: ChangeItem) -> bool:
    return item.is_field(PRIORITY_FIELD, PRIORITY_FIELD)


def _is_assignee(item: ChangeItem) -> bool:
    return item.is_field(ASSIGNEE_FIELD, ASSIGNEE_FIELD)


def _is_request_type(item: ChangeItem, field_id: str | None) -> bool:
    if not field_id:
        return False
    return item.field_id == field_id or (not item.field_id and item.field in REQUEST_TYPE_NAMES)


def _key_of(context: MappingContext, status_id: str, current: StatusRef | None) -> str:
    """The Jira category key of a status id: from the site's status list, else from the issue's
    current status when it is that one."""
    if status_id and status_id in context.catalog.status_categories:
        return context.catalog.status_categories[status_id]
    if current is None or current.status_category is None:
        return ""
    return current.status_category.key if status_id in ("", current.id) else ""


def _status_kind(before: StatusCategory | None, after: StatusCategory) -> EventKind:
    if after is StatusCategory.SOLVED:
        return EventKind.RESOLVED
    if after is StatusCategory.CLOSED:
        return EventKind.CLOSED
    if before is not None and before.is_done:
        return EventKind.REOPENED
    return EventKind.STATUS_CHANGED


def _field_event(
    key: str, at: datetime, status: str, name: str, value: str, history: ChangeHistory
) -> TicketEvent:
    return TicketEvent(
        ticket_id=key,
        at=at,
        kind=EventKind.STATUS_CHANGED,
        status=status,
        fields={name: value},
        event_id=f"history:{history.id}:{name}",
    )


def _comment_kind(comment: CommentPayload, reporter: UserRef | None) -> EventKind:
    if not comment.public:
        return EventKind.INTERNAL_NOTE
    author = comment.author
    if author is None or not author.account_id:
        return EventKind.CUSTOMER_REPLY
    if author.account_type == "customer":
        return EventKind.CUSTOMER_REPLY
    if reporter is not None and reporter.account_id and author.account_id == reporter.account_id:
        return EventKind.CUSTOMER_REPLY
    return EventKind.AGENT_REPLY


def _running_deadlines(slas: Iterable[SlaValue]) -> dict[Metric, datetime]:
    found: dict[Metric, datetime] = {}
    for sla in slas:
        metric = sla_metric(sla.name)
        cycle = sla.ongoing_cycle
        if metric is None or metric in found or cycle is None or cycle.paused:
            continue
        deadline = cycle.breach_time.at if cycle.breach_time else None
        if deadline is not None:
            found[metric] = deadline
    return found


def _non_empty(**values: str) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}
