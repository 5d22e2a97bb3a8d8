"""A fake Jira Service Management Cloud site: the endpoints the Jira connector uses.

API (Basic ``agent@example.com:jira-token``, or ``Bearer jira-token``; wrong credentials get
401, no credentials are anonymous: ``/myself`` says 401 and searches find nothing):

* ``POST|GET /rest/api/3/search/jql``: a JQL subset (AND/OR/NOT, parentheses; ``project``,
  ``key``/``issuekey``, ``id``, ``status``, ``statusCategory``, ``priority``, ``created``,
  ``updated``; ``= != > >= < <= in, not in``; date literals ``yyyy/MM/dd HH:mm`` read in the
  user's zone, relative ``-5m``; ``ORDER BY``). Unbounded queries are refused. Paging by
  ``nextPageToken`` over a snapshot of the result; the last page has no token and
  ``isLast: true``. Pages hold at most 100 issues, 5000 when only ids are asked for. Comments
  come 20 at most (oldest first), ``expand=changelog`` the 40 most recent histories;
  ``properties=request.channel.type`` the request's channel. Times are rendered in the user's
  zone (``2024-05-01T12:00:00.000+0200``).
* ``POST /rest/api/3/changelog/bulkfetch``, ``POST /rest/api/3/issue/bulkfetch``,
  ``GET /rest/api/3/issue/{key}/comment``, ``GET /rest/servicedeskapi/request/{key}/sla``,
  ``GET /rest/api/3/myself``, ``/field``, ``/status``, ``GET /rest/api/3/user?accountId=``
  (404 for an unknown account). An issue's ``assignee`` is a user with ``emailAddress``;
  a changelog item of field ``assignee`` names account ids in ``from``/``to`` and display
  names in ``fromString``/``toString``, as Jira Cloud does. The fake has no team field.
* Every answer carries ``X-RateLimit-Limit/-Remaining/-Reset``; over the limit: 429 with
  ``Retry-After`` and ``RateLimit-Reason``.

Scenario endpoints (``/_fake/...``): ``issues`` (create; ``assignee``: an email),
``issues/{key}/comment``, ``/status``, ``/priority``, ``/assignee`` ``{"assignee": email|null}``
(null unassigns), ``/sla``, ``/touch``, ``/move``, ``/delete``, ``/raw`` (replace the
search item or override rendered fields), ``bulk`` ``{"tickets": N, "seed": S}``, ``config``
(zone, comment cap, rate limit, hide SLA fields, advance the clock), ``fail_continuations``
(fail the next page requests that carry a page token). SLAs given at creation run like JSM's:
a public agent comment completes "Time to first response", "Waiting for customer"/"Pending"
pause "Time to resolution", a Done status completes both.
"""

from __future__ import annotations

import base64
import json
import random
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from tests.fakes.base import Handler, base_app, json_body

EMAIL = "agent@example.com"
TOKEN = "jira-token"
PAGE_CAP = 100
ID_PAGE_CAP = 5000
CHANGELOG_CAP = 40
SITE = "https://fake.atlassian.net"

CATEGORIES: dict[str, tuple[int, str, str]] = {
    "undefined": (1, "No Category", "medium-gray"),
    "new": (2, "To Do", "blue-gray"),
    "done": (3, "Done", "green"),
    "indeterminate": (4, "In Progress", "yellow"),
}
STATUSES: list[tuple[str, str]] = [
    ("Waiting for support", "new"),
    ("Waiting for customer", "indeterminate"),
    ("In Progress", "indeterminate"),
    ("Pending", "indeterminate"),
    ("Escalated", "indeterminate"),
    ("Work in progress", "indeterminate"),
    ("Resolved", "done"),
    ("Closed", "done"),
    ("Canceled", "done"),
    ("Done", "done"),
    ("To Do", "new"),
]
PRIORITIES = ["Highest", "High", "Medium", "Low", "Lowest"]
PAUSING = ("waiting for customer", "pending")
FIRST_RESPONSE = "Time to first response"
RESOLUTION = "Time to resolution"
SLA_FIELDS = {
    RESOLUTION: "customfield_10020",
    FIRST_RESPONSE: "customfield_10030",
    "Time to close after resolution": "customfield_10040",
}
REQUEST_TYPE_FIELD = "customfield_10010"
PROJECTS = {"HELP": "Help Desk", "OPS": "Operations"}


@dataclass(frozen=True)
class Account:
    account_id: str
    name: str
    kind: str  # atlassian | customer | app
    email: str = ""  # shown as emailAddress when set

    def render(self) -> dict[str, Any]:
        rendered = {
            "self": f"{SITE}/rest/api/3/user?accountId={self.account_id}",
            "accountId": self.account_id,
            "accountType": self.kind,
            "displayName": self.name,
            "active": True,
            "timeZone": "Europe/Berlin",
        }
        if self.email:
            rendered["emailAddress"] = self.email
        return rendered


AGENT = Account("5b10ac8d82e05b22cc7d4ef5", "Alex Agent", "atlassian")
AUTOMATION = Account("557058:f58131cb-b67d-43c7-b30d-6b58d40bd077", "Automation for Jira", "app")


@dataclass
class Status:
    id: str
    name: str
    category: str

    def render(self) -> dict[str, Any]:
        number, label, color = CATEGORIES.get(self.category, CATEGORIES["undefined"])
        return {
            "self": f"{SITE}/rest/api/3/status/{self.id}",
            "description": "",
            "iconUrl": f"{SITE}/images/icons/statuses/generic.png",
            "name": self.name,
            "untranslatedName": self.name,
            "id": self.id,
            "statusCategory": {
                "self": f"{SITE}/rest/api/3/statuscategory/{number}",
                "id": number,
                "key": self.category,
                "colorName": color,
                "name": label,
            },
        }


@dataclass
class Cycle:
    start_ms: int
    goal_ms: int
    breach_ms: int
    paused_at_ms: int | None = None
    stop_ms: int | None = None


@dataclass
class Sla:
    id: str
    name: str
    ongoing: Cycle | None = None
    completed: list[Cycle] = field(default_factory=list)


@dataclass
class Issue:
    id: int
    key: str
    project: str
    summary: str
    status: Status
    priority: str | None
    created_ms: int
    updated_ms: int
    reporter: Account | None
    request_type: str | None
    channel: str | None
    assignee: Account | None = None
    comments: list[dict[str, Any]] = field(default_factory=list)
    histories: list[dict[str, Any]] = field(default_factory=list)
    slas: dict[str, Sla] = field(default_factory=dict)
    deleted: bool = False
    time_format: str = "jira"
    field_overrides: dict[str, Any] = field(default_factory=dict)
    item_override: Any = None


class JqlError(ValueError):
    pass


class Site:
    """The fake site's state."""

    def __init__(self) -> None:
        self.zone = ZoneInfo("Europe/Berlin")
        self.offset = 0.0  # seconds added to the real clock
        self._last_ms = 0
        self.statuses: dict[str, Status] = {}
        for name, category in STATUSES:
            self.add_status(name, category)
        self.issues: dict[str, Issue] = {}  # current key -> issue
        self.aliases: dict[str, str] = {}  # old key -> current key
        self.by_id: dict[int, Issue] = {}
        self.accounts: dict[str, Account] = {AGENT.account_id: AGENT}
        self.numbers: dict[str, int] = {}
        self.next_id = 10000
        self.next_comment = 20000
        self.next_history = 30000
        self.comment_cap = 20
        self.hide_sla_fields = False
        self.sla_fields = dict(SLA_FIELDS)
        self.rate_limit = 100_000
        self.window_start = time.monotonic()
        self.window_used = 0
        self.fail_continuations: dict[str, int] = {"status": 500, "count": 0}
        self.snapshots: OrderedDict[str, list[int]] = OrderedDict()
        self.version = 0
        self._customers = 0

    # ------------------------------------------------------------------ clock

    def now_ms(self) -> int:
        now = int((time.time() + self.offset) * 1000)
        self._last_ms = max(now, self._last_ms + 1)
        return self._last_ms

    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self.offset, UTC)

    def render_time(self, ms: int, fmt: str = "jira") -> Any:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        if fmt == "epoch_ms":
            return ms
        if fmt == "z":
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if fmt == "space":
            return moment.strftime("%Y-%m-%d %H:%M:%S+00:00")
        if fmt == "nanos":
            return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123+00:00"
        local = moment.astimezone(self.zone)
        return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}" + local.strftime("%z")

    def time_object(self, ms: int) -> dict[str, Any]:
        local = datetime.fromtimestamp(ms / 1000, UTC).astimezone(self.zone)
        return {
            "iso8601": local.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "jira": self.render_time(ms),
            "friendly": local.strftime("%d/%b/%y %I:%M %p"),
            "epochMillis": ms,
        }

    # ------------------------------------------------------------------ model

    def add_status(self, name: str, category: str) -> Status:
        for status in self.statuses.values():
            if status.name.lower() == name.lower():
                return status
        status = Status(str(10001 + len(self.statuses)), name, category)
        self.statuses[status.id] = status
        return status

    def status_named(self, name: str, category: str | None = None) -> Status:
        for status in self.statuses.values():
            if status.name.lower() == name.lower():
                return status
        return self.add_status(name, category or "indeterminate")

    def customer(self) -> Account:
        self._customers += 1
        return Account(f"qm:7a1f{self._customers:08d}", f"Customer {self._customers}", "customer")

    def find(self, key: str) -> Issue | None:
        key = self.aliases.get(key, key)
        issue = self.issues.get(key)
        return issue if issue is not None and not issue.deleted else None

    def changed(self) -> None:
        self.version += 1

    def create(self, body: dict[str, Any], at_ms: int | None = None) -> Issue:
        project = str(body.get("project") or "HELP")
        number = self.numbers.get(project, 0) + 1
        self.numbers[project] = number
        self.next_id += 1
        created = at_ms if at_ms is not None else self.now_ms()
        reporter_kind = body.get("reporter", "customer")
        reporter = None if reporter_kind is None else self.customer()
        status = self.status_named(
            str(body.get("status") or "Waiting for support"), body.get("category")
        )
        assignee = body.get("assignee")
        issue = Issue(
            assignee=self.agent(str(assignee)) if assignee else None,
            id=self.next_id,
            key=f"{project}-{number}",
            project=project,
            summary=str(body.get("summary") or f"Request {number}"),
            status=status,
            priority=body.get("priority", "Medium"),
            created_ms=created,
            updated_ms=created,
            reporter=reporter,
            request_type=body.get("request_type", "Get IT help"),
            channel=body.get("channel", "portal"),
            time_format=str(body.get("time_format") or "jira"),
        )
        for name, goal in (body.get("sla") or {}).items():
            self._start_sla(issue, str(name), int(float(goal) * 1000), created)
        self.issues[issue.key] = issue
        self.by_id[issue.id] = issue
        self.changed()
        return issue

    def _sla_field(self, name: str) -> str:
        if name not in self.sla_fields:
            self.sla_fields[name] = f"customfield_{10100 + len(self.sla_fields)}"
        return self.sla_fields[name]

    def _start_sla(self, issue: Issue, name: str, goal_ms: int, start_ms: int) -> None:
        self._sla_field(name)
        sla = issue.slas.setdefault(name, Sla(str(len(issue.slas) + 1), name))
        sla.ongoing = Cycle(start_ms, goal_ms, start_ms + goal_ms)

    def _history(self, issue: Issue, at_ms: int, items: list[dict[str, Any]]) -> None:
        self.next_history += 1
        issue.histories.append(
            {"id": str(self.next_history), "author": AGENT, "created_ms": at_ms, "items": items}
        )

    def comment(
        self, issue: Issue, author: str, public: bool, at_ms: int | None = None
    ) -> dict[str, Any]:
        at = at_ms if at_ms is not None else self.now_ms()
        account: Account | None
        if author == "customer":
            account = issue.reporter or self.customer()
        elif author == "other_customer":
            account = self.customer()
        elif author == "app":
            account = AUTOMATION
        elif author == "none":
            account = None
        else:
            account = AGENT
        self.next_comment += 1
        comment = {
            "id": str(self.next_comment),
            "author": account,
            "created_ms": at,
            "public": public,
        }
        issue.comments.append(comment)
        issue.updated_ms = at
        if (
            public
            and account is not None
            and account.kind != "customer"
            and account != issue.reporter
        ):
            self._complete(issue, FIRST_RESPONSE, at)
        self.changed()
        return comment

    def set_status(
        self, issue: Issue, name: str, category: str | None, at_ms: int | None = None
    ) -> None:
        at = at_ms if at_ms is not None else self.now_ms()
        new = self.status_named(name, category)
        old = issue.status
        item = {
            "field": "status",
            "fieldtype": "jira",
            "fieldId": "status",
            "from": old.id,
            "fromString": old.name,
            "to": new.id,
            "toString": new.name,
        }
        self._history(issue, at, [item])
        issue.status = new
        issue.updated_ms = at
        resolution = issue.slas.get(RESOLUTION)
        if resolution is not None and resolution.ongoing is not None:
            cycle = resolution.ongoing
            if new.name.lower() in PAUSING and cycle.paused_at_ms is None:
                cycle.paused_at_ms = at
            elif new.name.lower() not in PAUSING and cycle.paused_at_ms is not None:
                cycle.breach_ms += at - cycle.paused_at_ms
                cycle.paused_at_ms = None
        if new.category == "done":
            for sla_name in list(issue.slas):
                self._complete(issue, sla_name, at)
        self.changed()

    def agent(self, email: str) -> Account:
        """The agent with this email (created on first mention)."""
        for account in self.accounts.values():
            if account.email.lower() == email.lower():
                return account
        number = len(self.accounts)
        name = email.split("@")[0].replace(".", " ").title()
        account = Account(f"712020:agent-{number:04d}", name, "atlassian", email)
        self.accounts[account.account_id] = account
        return account

    def set_assignee(self, issue: Issue, email: str | None) -> None:
        at = self.now_ms()
        new = self.agent(email) if email else None
        old = issue.assignee
        item = {
            "field": "assignee",
            "fieldtype": "jira",
            "fieldId": "assignee",
            "from": old.account_id if old else None,
            "fromString": old.name if old else None,
            "to": new.account_id if new else None,
            "toString": new.name if new else None,
        }
        self._history(issue, at, [item])
        issue.assignee = new
        issue.updated_ms = at
        self.changed()

    def set_priority(self, issue: Issue, name: str | None) -> None:
        at = self.now_ms()
        item = {
            "field": "priority",
            "fieldtype": "jira",
            "fieldId": "priority",
            "from": _priority_id(issue.priority),
            "fromString": issue.priority or "",
            "to": _priority_id(name),
            "toString": name or "",
        }
        self._history(issue, at, [item])
        issue.priority = name
        issue.updated_ms = at
        self.changed()

    def touch(self, issue: Issue) -> None:
        at = self.now_ms()
        item = {
            "field": "summary",
            "fieldtype": "jira",
            "fieldId": "summary",
            "from": None,
            "fromString": issue.summary,
            "to": None,
            "toString": issue.summary + ".",
        }
        issue.summary += "."
        self._history(issue, at, [item])
        issue.updated_ms = at
        self.changed()

    def move(self, issue: Issue, project: str) -> None:
        at = self.now_ms()
        number = self.numbers.get(project, 0) + 1
        self.numbers[project] = number
        old_key, new_key = issue.key, f"{project}-{number}"
        self._history(
            issue,
            at,
            [
                {
                    "field": "Key",
                    "fieldtype": "jira",
                    "fieldId": "issuekey",
                    "from": None,
                    "fromString": old_key,
                    "to": None,
                    "toString": new_key,
                },
                {
                    "field": "project",
                    "fieldtype": "jira",
                    "fieldId": "project",
                    "from": None,
                    "fromString": PROJECTS.get(issue.project, issue.project),
                    "to": None,
                    "toString": PROJECTS.get(project, project),
                },
            ],
        )
        del self.issues[old_key]
        issue.key, issue.project, issue.updated_ms = new_key, project, at
        self.issues[new_key] = issue
        self.aliases[old_key] = new_key
        self.changed()

    def set_sla(self, issue: Issue, body: dict[str, Any]) -> None:
        name = str(body["name"])
        self._sla_field(name)
        sla = issue.slas.setdefault(name, Sla(str(len(issue.slas) + 1), name))
        if body.get("complete"):
            self._complete(issue, name, self.now_ms())
            return
        cycle = sla.ongoing or Cycle(issue.created_ms, 0, issue.created_ms)
        if body.get("breach") is not None:
            cycle.breach_ms = _parse_ms(body["breach"])
            cycle.goal_ms = cycle.breach_ms - cycle.start_ms
        if "paused" in body:
            cycle.paused_at_ms = self.now_ms() if body["paused"] else None
        sla.ongoing = cycle
        self.changed()  # SLA bookkeeping does not move `updated`, as in JSM

    def _complete(self, issue: Issue, name: str, at_ms: int) -> None:
        sla = issue.slas.get(name)
        if sla is not None and sla.ongoing is not None:
            sla.ongoing.stop_ms = at_ms
            sla.completed.append(sla.ongoing)
            sla.ongoing = None

    def bulk(self, count: int, seed: int, project: str) -> int:
        rng = random.Random(seed)
        now = self.now_ms()
        hour = 3_600_000
        starts = sorted(now - rng.randrange(2 * hour, 72 * hour) for _ in range(count))
        open_statuses = ["Waiting for support", "In Progress", "Waiting for customer"]
        for created in starts:
            issue = self.create(
                {
                    "project": project,
                    "priority": rng.choice(PRIORITIES),
                    "channel": rng.choice(["portal", "email", "api", "jira"]),
                    "request_type": rng.choice(["Get IT help", "Emailed request", "Report a bug"]),
                    "sla": {FIRST_RESPONSE: 4 * 3600, RESOLUTION: 8 * 3600},
                },
                at_ms=created,
            )
            at = created
            for n in range(rng.randrange(0, 4)):
                at += rng.randrange(60_000, hour)
                author = "agent" if n % 2 == 0 else "customer"
                self.comment(issue, author, public=rng.random() > 0.2, at_ms=min(at, now - 1))
            if rng.random() < 0.6:
                at += rng.randrange(60_000, hour)
                status = "Resolved" if rng.random() < 0.1 else rng.choice(open_statuses[1:])
                self.set_status(issue, status, None, at_ms=min(at, now - 1))
        return count

    # ------------------------------------------------------------------ rendering

    def render_issue(
        self,
        issue: Issue,
        fields: list[str],
        *,
        changelog: bool = False,
        properties: list[str] | None = None,
        comment_cap: int | None = None,
    ) -> Any:
        if issue.item_override is not None:
            return issue.item_override
        want = _field_filter(fields)
        rendered: dict[str, Any] = {}
        self.render_issue_fields(issue, want, rendered)
        self.render_service_fields(issue, want, rendered, comment_cap)
        item: dict[str, Any] = {
            "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
            "id": str(issue.id),
            "self": f"{SITE}/rest/api/3/issue/{issue.id}",
            "key": issue.key,
        }
        if fields and not set(fields) <= {"id", "key"}:
            item["fields"] = rendered
        else:
            item["fields"] = {}
        if changelog:
            item["changelog"] = self.render_changelog(issue)
        if properties:
            item["properties"] = _render_properties(issue, properties)
        return item

    def render_issue_fields(
        self, issue: Issue, want: Callable[[str], bool], rendered: dict[str, Any]
    ) -> None:
        """Jira's own fields: summary, status, priority, times, reporter, project, type."""
        fmt = issue.time_format
        if want("summary"):
            rendered["summary"] = issue.summary
        if want("status"):
            rendered["status"] = issue.status.render()
        if want("priority"):
            rendered["priority"] = _render_priority(issue.priority)
        if want("created"):
            rendered["created"] = self.render_time(issue.created_ms, fmt)
        if want("updated"):
            rendered["updated"] = self.render_time(issue.updated_ms, fmt)
        if want("reporter"):
            rendered["reporter"] = issue.reporter.render() if issue.reporter else None
        if want("assignee"):
            rendered["assignee"] = issue.assignee.render() if issue.assignee else None
        if want("project"):
            rendered["project"] = _render_project(issue.project)
        if want("issuetype"):
            rendered["issuetype"] = {"id": "10004", "name": "[System] Service request"}

    def render_service_fields(
        self,
        issue: Issue,
        want: Callable[[str], bool],
        rendered: dict[str, Any],
        comment_cap: int | None,
    ) -> None:
        """Comments, the request type, the SLA fields and the fields a test set by hand."""
        if want("comment"):
            cap = self.comment_cap if comment_cap is None else comment_cap
            rendered["comment"] = {
                "comments": [self.render_comment(issue, c) for c in issue.comments[:cap]],
                "self": f"{SITE}/rest/api/3/issue/{issue.id}/comment",
                "maxResults": cap,
                "total": len(issue.comments),
                "startAt": 0,
            }
        if want(REQUEST_TYPE_FIELD):
            rendered[REQUEST_TYPE_FIELD] = self.render_request_type(issue)
        for name, field_id in self.sla_fields.items():
            if want(field_id):
                sla = issue.slas.get(name)
                rendered[field_id] = self.render_sla(issue, sla) if sla else None
        for name, value in issue.field_overrides.items():
            if want(name):
                rendered[name] = value

    def render_changelog(self, issue: Issue) -> dict[str, Any]:
        """The latest ``CHANGELOG_CAP`` histories, newest first, as an expanded changelog."""
        recent = list(reversed(issue.histories))[:CHANGELOG_CAP]
        return {
            "startAt": 0,
            "maxResults": CHANGELOG_CAP,
            "total": len(issue.histories),
            "histories": [self.render_history(h) for h in recent],
        }

    def render_comment(self, issue: Issue, comment: dict[str, Any]) -> dict[str, Any]:
        author: Account | None = comment["author"]
        rendered: dict[str, Any] = {
            "self": f"{SITE}/rest/api/3/issue/{issue.id}/comment/{comment['id']}",
            "id": comment["id"],
            "body": {
                "type": "doc",
                "version": 1,
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": "..."}]}],
            },
            "created": self.render_time(comment["created_ms"], issue.time_format),
            "updated": self.render_time(comment["created_ms"], issue.time_format),
            "jsdPublic": comment["public"],
        }
        if author is not None:
            rendered["author"] = author.render()
            rendered["updateAuthor"] = author.render()
        return rendered

    def render_history(self, history: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": history["id"],
            "author": history["author"].render(),
            "created": self.render_time(history["created_ms"]),
            "items": history["items"],
        }

    def render_request_type(self, issue: Issue) -> Any:
        if not issue.request_type:
            return None
        return {
            "_links": {"jiraRest": f"{SITE}/rest/api/2/issue/{issue.id}"},
            "requestType": {
                "id": str(abs(hash(issue.request_type)) % 100),
                "name": issue.request_type,
                "description": "",
                "helpText": "",
                "issueTypeId": "10004",
                "serviceDeskId": "1",
                "portalId": "1",
                "groupIds": ["1"],
            },
            "currentStatus": {
                "status": issue.status.name,
                "statusCategory": issue.status.category.upper(),
                "statusDate": self.time_object(issue.updated_ms),
            },
        }

    def render_sla(self, issue: Issue, sla: Sla) -> dict[str, Any]:
        value: dict[str, Any] = {
            "id": sla.id,
            "name": sla.name,
            "_links": {"self": f"{SITE}/rest/servicedeskapi/request/{issue.id}/sla/{sla.id}"},
            "completedCycles": [self.render_cycle(c, ongoing=False) for c in sla.completed],
            "slaDisplayFormat": "NEW_SLA_FORMAT",
        }
        if sla.ongoing is not None:
            value["ongoingCycle"] = self.render_cycle(sla.ongoing, ongoing=True)
        return value

    def render_cycle(self, cycle: Cycle, *, ongoing: bool) -> dict[str, Any]:
        now = self.now_ms()
        end = cycle.stop_ms or cycle.paused_at_ms or now
        elapsed = max(0, end - cycle.start_ms)
        rendered: dict[str, Any] = {
            "startTime": self.time_object(cycle.start_ms),
            "breachTime": self.time_object(cycle.breach_ms),
            "breached": (cycle.stop_ms or now) > cycle.breach_ms,
            "goalDuration": {"millis": cycle.goal_ms, "friendly": _friendly(cycle.goal_ms)},
            "elapsedTime": {"millis": elapsed, "friendly": _friendly(elapsed)},
            "remainingTime": {
                "millis": cycle.goal_ms - elapsed,
                "friendly": _friendly(cycle.goal_ms - elapsed),
            },
        }
        if ongoing:
            rendered["paused"] = cycle.paused_at_ms is not None
            rendered["withinCalendarHours"] = True
        elif cycle.stop_ms is not None:
            rendered["stopTime"] = self.time_object(cycle.stop_ms)
        return rendered

    def field_catalog(self) -> list[dict[str, Any]]:
        def system(field_id: str, name: str, kind: str) -> dict[str, Any]:
            return {
                "id": field_id,
                "key": field_id,
                "name": name,
                "custom": False,
                "orderable": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": [field_id],
                "schema": {"type": kind, "system": field_id},
            }

        def custom(field_id: str, name: str, kind: str, plugin: str) -> dict[str, Any]:
            number = int(field_id.rsplit("_", 1)[1])
            return {
                "id": field_id,
                "key": field_id,
                "name": name,
                "custom": True,
                "orderable": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": [f"cf[{number}]", name],
                "schema": {"type": kind, "custom": plugin, "customId": number},
            }

        found = [
            system("summary", "Summary", "string"),
            system("status", "Status", "status"),
            system("priority", "Priority", "priority"),
            system("created", "Created", "datetime"),
            system("updated", "Updated", "datetime"),
            system("reporter", "Reporter", "user"),
            system("assignee", "Assignee", "user"),
            system("project", "Project", "project"),
            system("issuetype", "Issue Type", "issuetype"),
            system("comment", "Comment", "comments-page"),
            custom(
                REQUEST_TYPE_FIELD,
                "Request Type",
                "sd-customerrequesttype",
                "com.atlassian.servicedesk:vp-origin",
            ),
            custom(
                "customfield_10050",
                "Satisfaction",
                "sd-feedback",
                "com.atlassian.servicedesk:sd-request-feedback",
            ),
        ]
        if not self.hide_sla_fields:
            found += [
                custom(
                    field_id,
                    name,
                    "sd-servicelevelagreement",
                    "com.atlassian.servicedesk:sla-field",
                )
                for name, field_id in self.sla_fields.items()
            ]
        return found

    # ------------------------------------------------------------------ search

    def search(self, jql: str) -> list[int]:
        query = parse_jql(jql)
        if query.where is None:
            raise JqlError(
                "Unbounded JQL queries are not allowed here. Please add a search restriction "
                "to your query."
            )
        context = _Context(self)
        matches = [i for i in self.issues.values() if not i.deleted and query.where(i, context)]
        for field_name, descending in reversed(query.order or [("key", False)]):
            matches.sort(key=_sort_key(field_name), reverse=descending)
        return [i.id for i in matches]

    def snapshot(self, ids: list[int]) -> str:
        name = base64.urlsafe_b64encode(
            f"{self.version}:{len(self.snapshots)}:{time.monotonic_ns()}".encode()
        ).decode()
        self.snapshots[name] = ids
        while len(self.snapshots) > 200:
            self.snapshots.popitem(last=False)
        return name


# ---------------------------------------------------------------------------- JQL subset

Predicate = Callable[[Issue, "_Context"], bool]


@dataclass
class _Context:
    site: Site


@dataclass
class Query:
    where: Predicate | None
    order: list[tuple[str, bool]]


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>>=|<=|!=|!~|=|>|<|~)
      | (?P<punct>[(),])
      | (?P<word>[^\s(),=!<>~"']+)
    )""",
    re.VERBOSE,
)
_FIELDS = {
    "project",
    "key",
    "issuekey",
    "issue",
    "id",
    "status",
    "statuscategory",
    "priority",
    "created",
    "createddate",
    "updated",
    "updateddate",
}


def _tokens(jql: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = jql.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise JqlError(f"Error in the JQL Query: unexpected character at position {position}.")
        position = match.end()
        kind = match.lastgroup or "word"
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise JqlError("Error in the JQL Query: the query ended unexpectedly.")
        self.at += 1
        return token

    def word_is(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].lower() in words

    def query(self) -> Query:
        where = None if self.word_is("order") or self.peek() is None else self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.word_is("order"):
            self.take()
            if not self.word_is("by"):
                raise JqlError("Error in the JQL Query: expecting 'by' after 'order'.")
            self.take()
            while True:
                name = self.take()[1].lower()
                descending = False
                if self.word_is("asc", "desc"):
                    descending = self.take()[1].lower() == "desc"
                order.append((name, descending))
                if self.peek() == ("punct", ","):
                    self.take()
                    continue
                break
        if self.peek() is not None:
            raise JqlError(f"Error in the JQL Query: unexpected '{self.peek()[1]}'.")  # type: ignore[index]
        return Query(where, order)

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.word_is("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else lambda i, c: any(p(i, c) for p in parts)

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while self.word_is("and"):
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else lambda i, c: all(p(i, c) for p in parts)

    def unary(self) -> Predicate:
        if self.word_is("not"):
            self.take()
            inner = self.unary()
            return lambda i, c: not inner(i, c)
        if self.peek() == ("punct", "("):
            self.take()
            inner = self.or_expr()
            if self.take() != ("punct", ")"):
                raise JqlError("Error in the JQL Query: expecting ')'.")
            return inner
        return self.clause()

    def clause(self) -> Predicate:
        name = self.take()[1]
        key = name.lower().replace(" ", "")
        if key not in _FIELDS:
            raise JqlError(
                f"Field '{name}' does not exist or you do not have permission to view it."
            )
        kind, op = self.take()
        negate = False
        if kind == "word" and op.lower() == "not" and self.word_is("in"):
            self.take()
            op, negate = "in", True
        elif kind == "word" and op.lower() == "in":
            op = "in"
        elif kind != "op":
            raise JqlError(f"Error in the JQL Query: expecting an operator after '{name}'.")
        if op == "in":
            values = self.value_list()
            test = _membership(key, values)
            return (lambda i, c: not test(i, c)) if negate else test
        return _comparison(key, op, self.take()[1])

    def value_list(self) -> list[str]:
        if self.take() != ("punct", "("):
            raise JqlError("Error in the JQL Query: expecting '(' before the list of values.")
        values: list[str] = []
        while True:
            values.append(self.take()[1])
            token = self.take()
            if token == ("punct", ")"):
                return values
            if token != ("punct", ","):
                raise JqlError("Error in the JQL Query: expecting ',' or ')'.")


def parse_jql(jql: str) -> Query:
    return _Parser(_tokens(jql)).query()


def _issue_value(issue: Issue, key: str) -> Any:
    if key in ("project",):
        return issue.project.lower()
    if key in ("key", "issuekey", "issue"):
        return issue.key.lower()
    if key == "id":
        return str(issue.id)
    if key == "status":
        return issue.status.name.lower()
    if key == "priority":
        return (issue.priority or "").lower()
    if key in ("created", "createddate"):
        return issue.created_ms
    if key in ("updated", "updateddate"):
        return issue.updated_ms
    raise JqlError(f"Field '{key}' is not supported here.")


def _category_matches(issue: Issue, value: str) -> bool:
    number, label, _ = CATEGORIES.get(issue.status.category, CATEGORIES["undefined"])
    wanted = value.lower()
    return wanted in (issue.status.category, label.lower(), str(number))


def _membership(key: str, values: list[str]) -> Predicate:
    if key == "statuscategory":
        return lambda i, c: any(_category_matches(i, v) for v in values)
    if key in ("key", "issuekey", "issue"):

        def in_keys(issue: Issue, context: _Context) -> bool:
            for value in values:
                if context.site.find(value) is None and value not in context.site.aliases:
                    raise JqlError(f"An issue with key '{value}' does not exist for field '{key}'.")
            wanted = {context.site.aliases.get(v, v).lower() for v in values}
            return issue.key.lower() in wanted

        return in_keys
    wanted = {v.lower() for v in values}
    return lambda i, c: _issue_value(i, key) in wanted


def _comparison(key: str, op: str, raw: str) -> Predicate:
    if key == "statuscategory":
        if op not in ("=", "!="):
            raise JqlError(f"The operator '{op}' is not supported by the 'statusCategory' field.")
        same = op == "="
        return lambda i, c: _category_matches(i, raw) == same
    if key in ("created", "createddate", "updated", "updateddate"):

        def compare_time(issue: Issue, context: _Context) -> bool:
            bound = _jql_date(raw, context.site)
            return _compare(_issue_value(issue, key), op, bound)

        return compare_time
    if key == "id":
        return lambda i, c: _compare(i.id, op, int(raw))
    value = raw.lower()
    return lambda i, c: _compare(_issue_value(i, key), op, value)


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == ">=":
        return bool(left >= right)
    if op == ">":
        return bool(left > right)
    if op == "<=":
        return bool(left <= right)
    if op == "<":
        return bool(left < right)
    raise JqlError(f"The operator '{op}' is not supported here.")


_RELATIVE = re.compile(r"^([-+]?)(\d+)([wdhm])$")
_UNIT_MS = {"w": 7 * 86_400_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000}


def _jql_date(raw: str, site: Site) -> int:
    text = raw.strip()
    relative = _RELATIVE.match(text)
    if relative:
        sign = -1 if relative.group(1) == "-" else 1
        return site.now_ms() + sign * int(relative.group(2)) * _UNIT_MS[relative.group(3)]
    for pattern in ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d"):
        try:
            wall = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return int(wall.replace(tzinfo=site.zone).timestamp() * 1000)
    raise JqlError(
        f"Date value '{raw}' for field 'updated' is invalid. Valid formats include: "
        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
        "format e.g. '-5d', '4w 2d'."
    )


def _sort_key(name: str) -> Callable[[Issue], Any]:
    if name in ("updated", "updateddate"):
        return lambda i: i.updated_ms
    if name in ("created", "createddate"):
        return lambda i: i.created_ms
    if name == "id":
        return lambda i: i.id
    return lambda i: (i.project, int(i.key.rsplit("-", 1)[1]))


def _priority_id(name: str | None) -> str | None:
    if name is None:
        return None
    return str(PRIORITIES.index(name) + 1) if name in PRIORITIES else "10000"


def _field_filter(fields: list[str]) -> Callable[[str], bool]:
    """Whether a field is asked for: named in ``fields``, or ``*all`` / ``*navigable`` there."""
    wanted = set(fields)
    everything = bool(wanted & {"*all", "*navigable"})
    return lambda name: everything or name in wanted


def _render_priority(name: str | None) -> dict[str, Any] | None:
    if name is None:
        return None
    return {
        "self": f"{SITE}/rest/api/3/priority/{_priority_id(name)}",
        "iconUrl": f"{SITE}/images/icons/priorities/medium.svg",
        "name": name,
        "id": _priority_id(name),
    }


def _render_project(project: str) -> dict[str, Any]:
    return {
        "self": f"{SITE}/rest/api/3/project/{project}",
        "id": str(10000 + sorted(PROJECTS).index(project)) if project in PROJECTS else "10099",
        "key": project,
        "name": PROJECTS.get(project, project),
        "projectTypeKey": "service_desk",
    }


def _render_properties(issue: Issue, properties: list[str]) -> dict[str, Any]:
    """The entity properties asked for that the issue has (the request channel only)."""
    props: dict[str, Any] = {}
    if "request.channel.type" in properties and issue.channel:
        props["request.channel.type"] = {"value": issue.channel}
    return props


def _parse_ms(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


def _friendly(ms: int) -> str:
    minutes = abs(ms) // 60_000
    sign = "-" if ms < 0 else ""
    return f"{sign}{minutes // 60}h {minutes % 60}m"


# ---------------------------------------------------------------------------- HTTP layer

SITE_KEY = web.AppKey("jira_site", Site)
_BASIC = "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()


def _errors(status: int, *messages: str) -> web.Response:
    return json_body({"errorMessages": list(messages), "errors": {}}, status=status)


def _api(handler: Handler, *, anonymous: Handler | None = None) -> Handler:
    """Authentication and rate limiting around an API handler."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        site = request.app[SITE_KEY]
        header = request.headers.get("Authorization", "")
        if not header and anonymous is not None:
            return await anonymous(request)
        if header not in (_BASIC, f"Bearer {TOKEN}"):
            return web.Response(
                status=401,
                text="Client must be authenticated to access this resource.",
                content_type="text/plain",
                headers={"WWW-Authenticate": 'Basic realm="protected-area"'},
            )
        elapsed = time.monotonic() - site.window_start
        if elapsed >= 60:
            site.window_start, site.window_used, elapsed = time.monotonic(), 0, 0.0
        site.window_used += 1
        reset = (site.now() + timedelta(seconds=60 - elapsed)).strftime("%Y-%m-%dT%H:%MZ")
        limits = {
            "X-RateLimit-Limit": str(site.rate_limit),
            "X-RateLimit-Remaining": str(max(0, site.rate_limit - site.window_used)),
            "X-RateLimit-Reset": reset,
        }
        if site.window_used > site.rate_limit:
            return web.Response(
                status=429,
                text="Rate limit exceeded.",
                headers={
                    **limits,
                    "Retry-After": str(max(1, int(60 - elapsed))),
                    "RateLimit-Reason": "jira-burst-based",
                },
            )
        response = await handler(request)
        response.headers.update(limits)
        return response

    return wrapped


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


async def search_jql(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    if request.method == "POST":
        body = await _body(request)
    else:
        body = dict(request.query.items())
        body["fields"] = ",".join(request.query.getall("fields", []))
        body["properties"] = ",".join(request.query.getall("properties", []))
    jql = str(body.get("jql") or "")
    fields = _list(body.get("fields")) or ["id"]
    expand = _list(body.get("expand"))
    properties = _list(body.get("properties"))
    cap = ID_PAGE_CAP if set(fields) <= {"id", "key"} else PAGE_CAP
    try:
        wanted = int(body.get("maxResults") or 50)
    except (TypeError, ValueError):
        return _errors(400, "maxResults must be a number.")
    size = max(1, min(wanted, cap))
    token = body.get("nextPageToken")
    if token:
        failing = site.fail_continuations
        if failing["count"] > 0:
            failing["count"] -= 1
            return json_body({"error": "injected"}, status=int(failing["status"]))
        try:
            snapshot, offset_text = str(token).rsplit(".", 1)
            ids = site.snapshots[snapshot]
            offset = int(offset_text)
        except (KeyError, ValueError):
            return _errors(400, "The provided next page token is invalid or expired.")
    else:
        try:
            ids = site.search(jql)
        except JqlError as exc:
            return _errors(400, str(exc))
        snapshot, offset = site.snapshot(ids), 0
    page: list[Any] = []
    for issue_id in ids[offset : offset + size]:
        issue = site.by_id.get(issue_id)
        if issue is None or issue.deleted:
            continue
        page.append(
            site.render_issue(issue, fields, changelog="changelog" in expand, properties=properties)
        )
    answer: dict[str, Any] = {"issues": page}
    if offset + size < len(ids):
        answer["nextPageToken"] = f"{snapshot}.{offset + size}"
        answer["isLast"] = False
    else:
        answer["isLast"] = True
    return json_body(answer)


async def anonymous_search(request: web.Request) -> web.Response:
    return json_body({"issues": [], "isLast": True})


async def myself(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    return json_body(
        {
            "self": f"{SITE}/rest/api/3/user?accountId={AGENT.account_id}",
            "accountId": AGENT.account_id,
            "accountType": "atlassian",
            "emailAddress": EMAIL,
            "displayName": AGENT.name,
            "active": True,
            "timeZone": site.zone.key,
            "locale": "en_US",
        }
    )


async def field_list(request: web.Request) -> web.Response:
    return json_body(request.app[SITE_KEY].field_catalog())


async def status_list(request: web.Request) -> web.Response:
    return json_body([s.render() for s in request.app[SITE_KEY].statuses.values()])


async def changelog_bulk(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    body = await _body(request)
    wanted = _list(body.get("issueIdsOrKeys"))
    if not wanted or len(wanted) > 1000:
        return _errors(400, "Provide between 1 and 1000 issue ids or keys.")
    field_ids = set(_list(body.get("fieldIds")))
    size = max(1, min(int(body.get("maxResults") or 1000), 10000))
    offset = int(body.get("nextPageToken") or 0)
    entries: list[tuple[int, int, dict[str, Any]]] = []
    for ref in wanted:
        issue = site.by_id.get(int(ref)) if ref.isdigit() else site.find(ref)
        if issue is None or issue.deleted:
            continue
        for history in issue.histories:
            items = [i for i in history["items"] if not field_ids or i.get("fieldId") in field_ids]
            if items:
                entries.append((history["created_ms"], issue.id, {**history, "items": items}))
    entries.sort(key=lambda e: (e[0], e[1]))
    grouped: dict[int, list[dict[str, Any]]] = {}
    for _, issue_id, history in entries[offset : offset + size]:
        grouped.setdefault(issue_id, []).append(site.render_history(history))
    answer: dict[str, Any] = {
        "issueChangeLogs": [
            {"issueId": str(issue_id), "changeHistories": histories}
            for issue_id, histories in grouped.items()
        ]
    }
    if offset + size < len(entries):
        answer["nextPageToken"] = str(offset + size)
    return json_body(answer)


async def issue_bulk(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    body = await _body(request)
    wanted = _list(body.get("issueIdsOrKeys"))
    if not wanted or len(wanted) > 100:
        return _errors(400, "Provide between 1 and 100 issue ids or keys.")
    fields = _list(body.get("fields")) or ["*navigable"]
    expand = _list(body.get("expand"))
    properties = _list(body.get("properties"))
    found = []
    for ref in wanted:
        issue = site.by_id.get(int(ref)) if ref.isdigit() else site.find(ref)
        if issue is None or issue.deleted:
            continue  # absent, not an error: deleted or not visible
        found.append(
            site.render_issue(issue, fields, changelog="changelog" in expand, properties=properties)
        )
    return json_body({"issues": found, "issueErrors": []})


async def issue_comments(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    issue = site.find(request.match_info["key"])
    if issue is None:
        return _errors(404, "Issue does not exist or you do not have permission to see it.")
    start = int(request.query.get("startAt", "0"))
    size = max(1, min(int(request.query.get("maxResults", "100")), 100))
    ordered = list(issue.comments)
    if request.query.get("orderBy", "created").startswith("-"):
        ordered.reverse()
    page = ordered[start : start + size]
    return json_body(
        {
            "comments": [site.render_comment(issue, c) for c in page],
            "maxResults": size,
            "total": len(ordered),
            "startAt": start,
        }
    )


async def request_sla(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    issue = site.find(request.match_info["key"])
    if issue is None or not issue.request_type:
        return json_body(
            {
                "errorMessage": "The request could not be found.",
                "i18nErrorMessage": {"i18nKey": "sd.request.not.found", "parameters": []},
            },
            status=404,
        )
    start = int(request.query.get("start", "0"))
    limit = max(1, min(int(request.query.get("limit", "50")), 50))
    values = [site.render_sla(issue, sla) for sla in issue.slas.values()]
    page = values[start : start + limit]
    return json_body(
        {
            "size": len(page),
            "start": start,
            "limit": limit,
            "isLastPage": start + limit >= len(values),
            "values": page,
            "_links": {"base": SITE, "context": "", "next": None, "prev": None},
        }
    )


# ---------------------------------------------------------------------------- scenarios


def _issue_or_404(site: Site, key: str) -> Issue:
    issue = site.find(key)
    if issue is None:
        raise web.HTTPNotFound(text=json.dumps({"error": f"no issue {key}"}))
    return issue


def _state(site: Site, issue: Issue) -> dict[str, Any]:
    return {
        "key": issue.key,
        "id": str(issue.id),
        "status": issue.status.name,
        "updated": site.render_time(issue.updated_ms, "z"),
        "updated_ms": issue.updated_ms,
        "created_ms": issue.created_ms,
    }


async def fake_create(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    body = await _body(request)
    count = int(body.pop("count", 1))
    created = [site.create(body) for _ in range(count)]
    answer = _state(site, created[-1])
    answer["keys"] = [i.key for i in created]
    return json_body(answer)


async def fake_comment(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    issue = _issue_or_404(site, request.match_info["key"])
    body = await _body(request)
    comment = site.comment(issue, str(body.get("author", "agent")), bool(body.get("public", True)))
    return json_body({**_state(site, issue), "comment": comment["id"]})


async def fake_status(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    issue = _issue_or_404(site, request.match_info["key"])
    body = await _body(request)
    site.set_status(issue, str(body["status"]), body.get("category"))
    return json_body(_state(site, issue))


async def fake_priority(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    issue = _issue_or_404(site, request.match_info["key"])
    body = await _body(request)
    site.set_priority(issue, body.get("priority"))
    return json_body(_state(site, issue))


async def fake_assignee(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    issue = _issue_or_404(site, request.match_info["key"])
    body = await _body(request)
    site.set_assignee(issue, body.get("assignee"))
    return json_body(_state(site, issue))


async def user(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    account = site.accounts.get(request.query.get("accountId", ""))
    if account is None:
        return json_body({"errorMessages": ["User does not exist"], "errors": {}}, status=404)
    return json_body(account.render())


async def fake_sla(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    issue = _issue_or_404(site, request.match_info["key"])
    site.set_sla(issue, await _body(request))
    return json_body(_state(site, issue))


async def fake_touch(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    issue = _issue_or_404(site, request.match_info["key"])
    site.touch(issue)
    return json_body(_state(site, issue))


async def fake_move(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    issue = _issue_or_404(site, request.match_info["key"])
    site.move(issue, str((await _body(request)).get("project") or "OPS"))
    return json_body(_state(site, issue))


async def fake_delete(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    issue = _issue_or_404(site, request.match_info["key"])
    issue.deleted = True
    site.changed()
    return json_body({"deleted": issue.key})


async def fake_raw(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    issue = _issue_or_404(site, request.match_info["key"])
    body = await _body(request)
    if "item" in body:
        issue.item_override = body["item"]
    issue.field_overrides.update(body.get("fields") or {})
    if body.get("time_format"):
        issue.time_format = str(body["time_format"])
    if body.get("touch", True):
        issue.updated_ms = site.now_ms()
    site.changed()
    return json_body(_state(site, issue))


async def fake_bulk(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    body = await _body(request)
    started = time.monotonic()
    count = site.bulk(
        int(body.get("tickets", 100)), int(body.get("seed", 1)), str(body.get("project", "HELP"))
    )
    return json_body({"created": count, "seconds": round(time.monotonic() - started, 3)})


async def fake_config(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    body = await _body(request)
    if "zone" in body:
        site.zone = ZoneInfo(str(body["zone"]))
    if "comment_cap" in body:
        site.comment_cap = int(body["comment_cap"])
    if "rate_limit" in body:
        site.rate_limit = int(body["rate_limit"])
        site.window_start, site.window_used = time.monotonic(), 0
    if "hide_sla_fields" in body:
        site.hide_sla_fields = bool(body["hide_sla_fields"])
    if "advance" in body:
        site.offset += float(body["advance"])
    return json_body({"zone": site.zone.key, "now": site.render_time(site.now_ms(), "z")})


async def fake_fail_continuations(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    body = await _body(request)
    site.fail_continuations = {
        "status": int(body.get("status", 500)),
        "count": int(body.get("count", 1)),
    }
    return json_body(site.fail_continuations)


async def fake_issue(request: web.Request) -> web.Response:
    site = request.app[SITE_KEY]
    return json_body(_state(site, _issue_or_404(site, request.match_info["key"])))


async def _server_date(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Date"] = format_datetime(request.app[SITE_KEY].now(), usegmt=True)


def _add_routes(app: web.Application) -> None:
    api = app.router
    search = _api(search_jql, anonymous=anonymous_search)
    api.add_post("/rest/api/3/search/jql", search)
    api.add_get("/rest/api/3/search/jql", search)
    api.add_get("/rest/api/3/myself", _api(myself))
    api.add_get("/rest/api/3/user", _api(user))
    api.add_get("/rest/api/3/field", _api(field_list))
    api.add_get("/rest/api/3/status", _api(status_list))
    api.add_post("/rest/api/3/changelog/bulkfetch", _api(changelog_bulk))
    api.add_post("/rest/api/3/issue/bulkfetch", _api(issue_bulk))
    api.add_get("/rest/api/3/issue/{key}/comment", _api(issue_comments))
    api.add_get("/rest/servicedeskapi/request/{key}/sla", _api(request_sla))
    api.add_post("/_fake/issues", fake_create)
    api.add_get("/_fake/issues/{key}", fake_issue)
    api.add_post("/_fake/issues/{key}/comment", fake_comment)
    api.add_post("/_fake/issues/{key}/status", fake_status)
    api.add_post("/_fake/issues/{key}/priority", fake_priority)
    api.add_post("/_fake/issues/{key}/assignee", fake_assignee)
    api.add_post("/_fake/issues/{key}/sla", fake_sla)
    api.add_post("/_fake/issues/{key}/touch", fake_touch)
    api.add_post("/_fake/issues/{key}/move", fake_move)
    api.add_post("/_fake/issues/{key}/delete", fake_delete)
    api.add_post("/_fake/issues/{key}/raw", fake_raw)
    api.add_post("/_fake/bulk", fake_bulk)
    api.add_post("/_fake/config", fake_config)
    api.add_post("/_fake/fail_continuations", fake_fail_continuations)


def make_app() -> web.Application:
    app = base_app()
    app[SITE_KEY] = Site()
    app.on_response_prepare.append(_server_date)
    _add_routes(app)
    return app
