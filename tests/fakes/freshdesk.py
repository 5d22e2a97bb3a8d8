"""A fake Freshdesk (API v2) for connector tests.

API (Basic auth: the API key as user name, any password; wrong or missing -> 401
``{"code": "invalid_credentials", ...}``); every answer carries ``X-Ratelimit-Total``,
``X-Ratelimit-Remaining`` and ``X-Ratelimit-Used-CurrentRequest`` (1 credit, plus 1 per
``include`` embed); an empty bucket answers 429 with ``Retry-After``:

* ``GET /api/v2/tickets`` — ``updated_since`` (``updated_at >= since``; without it only tickets
  created in the last 30 days), ``order_by``/``order_type``, ``per_page`` (<= 100), ``page``
  (<= 300), ``include=stats``, ``filter=deleted|spam|new_and_my_open|watching``; a bare JSON
  array, ``Link: <...>; rel="next"`` while more pages exist.
* ``GET /api/v2/tickets/{id}`` (``include=stats``): deleted and spam tickets answer with
  ``deleted``/``spam`` true, purged ones 404.
* ``GET /api/v2/groups`` (paged like tickets), ``GET /api/v2/ticket_fields`` (``status`` choices
  ``{"6": ["Waiting on Third Party", "..."]}``).
* ``GET /api/v2/agents/{id}``: ``{id, contact: {name, email, ...}, ...}``; 404 for an unknown
  agent. A ticket's ``responder_id`` is its assigned agent.

Scenario endpoints (POST, JSON; ``at`` is an ISO time, default the fake's clock)::

    /_fake/clock {"now": iso} | {"advance": seconds}
    /_fake/auth {"api_key": "..."}            /_fake/ratelimit {"total": n, "window": s}
    /_fake/groups {"id": n, "name": "..."}    /_fake/statuses {"id": 6, "name": "..."}
    /_fake/agents {"id": n, "email": "...", "name": "..."}
    /_fake/tickets {"priority", "status", "source", "group_id", "type", "fr_due_by", ...}
    /_fake/tickets/{id}/reply {"status"?}     public agent reply (first response)
    /_fake/tickets/{id}/note {"private": true}
    /_fake/tickets/{id}/customer_reply        reopens a pending, resolved or closed ticket
    /_fake/tickets/{id}/status {"status": 3}
    /_fake/tickets/{id}/update {"priority", "group_id", "responder_id", "type", "source", "tags"}
    /_fake/tickets/{id}/deadlines {"fr_due_by", "due_by", "nr_due_by"}
    /_fake/tickets/{id}/delete | spam | restore | purge
    /_fake/merge {"primary": id, "secondary": [ids]}   secondaries are closed
    /_fake/raw {"item": {...}, "updated_at": iso}      a list item served verbatim
    /_fake/bulk {"tickets": N, "seed": S}               N tickets of the last 20 days
    /_fake/fail_list {"after": n, "status": 500, "count": k}
"""

from __future__ import annotations

import base64
import json
import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.base import Handler, base_app, json_body

DEFAULT_API_KEY = "fake-freshdesk-key"
MAX_PER_PAGE = 100
MAX_PAGE = 300
STATS_KEYS = (
    "first_responded_at",
    "agent_responded_at",
    "requester_responded_at",
    "status_updated_at",
    "pending_since",
    "resolved_at",
    "closed_at",
    "reopened_at",
)
DEFAULT_STATUS_CHOICES = {
    2: ["Open", "Being Processed"],
    3: ["Pending", "Awaiting your Reply"],
    4: ["Resolved", "This ticket has been Resolved"],
    5: ["Closed", "This ticket has been Closed"],
}
INCLUDES = frozenset({"stats", "requester", "description", "company", "conversations"})
FILTERS = frozenset({"new_and_my_open", "watching", "spam", "deleted"})
ORDER_FIELDS = frozenset({"created_at", "due_by", "updated_at", "status"})


def stamp(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def parse_time(text: Any) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


@dataclass
class Ticket:
    id: int
    created_at: datetime
    updated_at: datetime
    status: int = 2
    priority: int = 1
    source: int = 2
    subject: str = ""
    type: str | None = None
    group_id: int | None = None
    requester_id: int = 1
    responder_id: int | None = None
    company_id: int | None = None
    product_id: int | None = None
    tags: list[str] = field(default_factory=list)
    fr_due_by: datetime | None = None
    due_by: datetime | None = None
    nr_due_by: datetime | None = None
    spam: bool = False
    deleted: bool = False
    conversations: int = 0
    stats: dict[str, datetime | None] = field(default_factory=lambda: dict.fromkeys(STATS_KEYS))
    raw: dict[str, Any] | None = None  # an injected item, served as it is

    def touch(self, at: datetime) -> None:
        self.updated_at = max(self.updated_at, at)

    def set_status(self, status: int, at: datetime) -> None:
        old = self.status
        if status != old:
            self.status = status
            self.stats["status_updated_at"] = at
            if status == 3:
                self.stats["pending_since"] = at
            elif status == 4:
                self.stats["resolved_at"] = at
            elif status == 5:
                self.stats["closed_at"] = at
                self.stats["resolved_at"] = self.stats["resolved_at"] or at
            if old in (4, 5) and status not in (4, 5):
                self.stats["reopened_at"] = at
        self.touch(at)

    def to_json(self, with_stats: bool) -> dict[str, Any]:
        if self.raw is not None:
            return self.raw
        data: dict[str, Any] = {
            "cc_emails": [],
            "fwd_emails": [],
            "reply_cc_emails": [],
            "ticket_cc_emails": [],
            "fr_escalated": False,
            "spam": self.spam,
            "email_config_id": None,
            "group_id": self.group_id,
            "priority": self.priority,
            "requester_id": self.requester_id,
            "responder_id": self.responder_id,
            "source": self.source,
            "company_id": self.company_id,
            "status": self.status,
            "subject": self.subject or f"Ticket {self.id}",
            "association_type": None,
            "support_email": None,
            "to_emails": None,
            "product_id": self.product_id,
            "id": self.id,
            "type": self.type,
            "due_by": stamp(self.due_by),
            "fr_due_by": stamp(self.fr_due_by),
            "is_escalated": False,
            "custom_fields": {},
            "created_at": stamp(self.created_at),
            "updated_at": stamp(self.updated_at),
            "associated_tickets_count": None,
            "tags": list(self.tags),
        }
        if self.nr_due_by is not None:
            data["nr_due_by"] = stamp(self.nr_due_by)
            data["nr_escalated"] = False
        if self.deleted:
            data["deleted"] = True
        if with_stats:
            data["stats"] = {k: stamp(v) for k, v in self.stats.items()}
        return data


@dataclass
class RateLimit:
    """A per-window credit bucket, as Freshdesk's per-minute account limit."""

    total: int = 3000
    window: float = 60.0
    used: int = 0
    started: float = field(default_factory=time.monotonic)

    def charge(self, credits: int) -> tuple[bool, float]:
        """(allowed, seconds until the bucket refills)."""
        now = time.monotonic()
        if now - self.started >= self.window:
            self.started, self.used = now, 0
        if self.used + credits > self.total:
            return False, self.started + self.window - now
        self.used += credits
        return True, 0.0

    def headers(self, credits: int) -> dict[str, str]:
        return {
            "X-Ratelimit-Total": str(self.total),
            "X-Ratelimit-Remaining": str(max(0, self.total - self.used)),
            "X-Ratelimit-Used-CurrentRequest": str(credits),
        }


@dataclass
class Desk:
    tickets: dict[int, Ticket] = field(default_factory=dict)
    groups: dict[int, str] = field(default_factory=dict)
    agents: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> contact
    statuses: dict[int, str] = field(default_factory=dict)  # custom statuses (> 5)
    api_key: str = DEFAULT_API_KEY
    clock: datetime | None = None
    limit: RateLimit = field(default_factory=RateLimit)
    list_failures: dict[str, int] = field(default_factory=dict)  # after, status, count
    next_id: int = 1

    def now(self) -> datetime:
        return self.clock or datetime.now(UTC).replace(microsecond=0)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


DESK_KEY = web.AppKey("freshdesk_desk", Desk)


def _desk(request: web.Request) -> Desk:
    return request.app[DESK_KEY]


def _error(
    status: int, description: str, field_name: str = "", code: str = "invalid_value"
) -> web.Response:
    errors = [{"field": field_name, "message": description, "code": code}]
    return json_body({"description": "Validation failed", "errors": errors}, status=status)


def _authorized(request: web.Request, desk: Desk) -> bool:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return False
    try:
        user = base64.b64decode(header[6:]).decode().split(":", 1)[0]
    except (ValueError, UnicodeDecodeError):
        return False
    return user == desk.api_key


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Auth and rate limit for ``/api`` routes; rate-limit headers on every answer."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    desk = _desk(request)
    includes = [i for i in request.query.get("include", "").split(",") if i]
    credits = 1 + len(includes)
    allowed, wait = desk.limit.charge(credits)
    if not allowed:
        headers = desk.limit.headers(0)
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
        body = {"message": "You have exceeded the limit of requests per minute"}
        return json_body(body, status=429, headers=headers)
    if not _authorized(request, desk):
        body = {
            "code": "invalid_credentials",
            "message": "You have to be logged in to perform this action.",
        }
        return json_body(body, status=401, headers=desk.limit.headers(credits))
    response = await handler(request)
    response.headers.update(desk.limit.headers(credits))
    return response


# ---------------------------------------------------------------------------- API


def _page_params(request: web.Request) -> tuple[int, int] | web.Response:
    try:
        per_page = int(request.query.get("per_page", "30"))
        page = int(request.query.get("page", "1"))
    except ValueError:
        return _error(400, "It should be a/an Positive Integer", "per_page", "datatype_mismatch")
    if not 1 <= per_page <= MAX_PER_PAGE:
        return _error(
            400, f"It should be a Positive Integer less than or equal to {MAX_PER_PAGE}", "per_page"
        )
    if page < 1:
        return _error(400, "It should be a Positive Integer", "page")
    return per_page, page


def _link(request: web.Request, page: int) -> str:
    query = dict(request.query)
    query["page"] = str(page)
    return f'<{request.url.with_query(None)}?{urlencode(query)}>; rel="next"'


@dataclass(frozen=True)
class _ListQuery:
    """The parameters of ``GET /api/v2/tickets``, validated."""

    per_page: int
    page: int
    includes: frozenset[str]
    filter_name: str | None
    order_by: str
    order_type: str
    since: datetime | None


def _list_query(request: web.Request) -> _ListQuery | web.Response:
    """The list parameters, or the 400 answer Freshdesk gives for the first invalid one."""
    paging = _page_params(request)
    if isinstance(paging, web.Response):
        return paging
    per_page, page = paging
    if page > MAX_PAGE:
        return _error(
            400, f"It should be a Positive Integer less than or equal to {MAX_PAGE}", "page"
        )
    query = request.query
    includes = frozenset(i for i in query.get("include", "").split(",") if i)
    if not includes <= INCLUDES:
        return _error(
            400,
            "It should be one of these values: 'requester,stats,description,company'",
            "include",
        )
    filter_name = query.get("filter")
    if filter_name is not None and filter_name not in FILTERS:
        return _error(
            400,
            "It should be one of these values: 'new_and_my_open,watching,spam,deleted'",
            "filter",
        )
    order_by = query.get("order_by", "created_at")
    order_type = query.get("order_type", "desc")
    if order_by not in ORDER_FIELDS or order_type not in ("asc", "desc"):
        return _error(
            400,
            "It should be one of these values: 'created_at,due_by,updated_at,status'",
            "order_by",
        )
    since: datetime | None = None
    if "updated_since" in query:
        try:
            since = parse_time(query["updated_since"])
        except ValueError:
            return _error(400, "It should be a valid date in the ISO format", "updated_since")
    return _ListQuery(per_page, page, includes, filter_name, order_by, order_type, since)


def _injected_list_failure(desk: Desk) -> web.Response | None:
    """The error answer of an injected list failure due now, if any."""
    failing = desk.list_failures
    if failing:
        if failing.get("after", 0) > 0:
            failing["after"] -= 1
        elif failing.get("count", 0) > 0:
            failing["count"] -= 1
            return json_body({"error": "injected"}, status=int(failing.get("status", 500)))
    return None


def _visible(t: Ticket, filter_name: str | None) -> bool:
    """Whether the list with ``filter`` shows the ticket (deleted and spam only in their own)."""
    if filter_name == "deleted":
        return t.deleted
    if t.deleted:
        return False
    if filter_name == "spam":
        return t.spam
    if t.spam:
        return False
    return filter_name != "new_and_my_open" or t.status == 2


def _listed(desk: Desk, q: _ListQuery) -> list[Ticket]:
    """The tickets the list shows, in its order: updated since, or created in the last 30 days."""
    if q.since is not None:
        since = q.since
        chosen = [t for t in desk.tickets.values() if t.updated_at >= since]
    else:
        month_ago = desk.now() - timedelta(days=30)
        chosen = [t for t in desk.tickets.values() if t.created_at >= month_ago]
    chosen = [t for t in chosen if _visible(t, q.filter_name)]

    def order_key(t: Ticket) -> tuple[Any, int]:
        value: Any = getattr(t, q.order_by)
        if isinstance(value, datetime) or value is None:
            value = (value or datetime.min.replace(tzinfo=UTC)).timestamp()
        return value, t.id

    chosen.sort(key=order_key, reverse=q.order_type == "desc")
    return chosen


async def list_tickets(request: web.Request) -> web.Response:
    desk = _desk(request)
    failure = _injected_list_failure(desk)
    if failure is not None:
        return failure
    q = _list_query(request)
    if isinstance(q, web.Response):
        return q
    chosen = _listed(desk, q)
    start = (q.page - 1) * q.per_page
    items = [t.to_json("stats" in q.includes) for t in chosen[start : start + q.per_page]]
    more = len(chosen) > start + q.per_page
    headers = {"Link": _link(request, q.page + 1)} if more else None
    return json_body(items, headers=headers)


async def show_ticket(request: web.Request) -> web.Response:
    desk = _desk(request)
    try:
        ticket = desk.tickets.get(int(request.match_info["id"]))
    except ValueError:
        ticket = None
    if ticket is None or ticket.raw is not None:
        return web.Response(status=404)
    includes = {i for i in request.query.get("include", "").split(",") if i}
    return json_body(ticket.to_json("stats" in includes))


async def list_groups(request: web.Request) -> web.Response:
    desk = _desk(request)
    paging = _page_params(request)
    if isinstance(paging, web.Response):
        return paging
    per_page, page = paging
    groups = sorted(desk.groups.items())
    start = (page - 1) * per_page
    now = stamp(desk.now())
    items = [
        {
            "id": gid,
            "name": name,
            "description": None,
            "escalate_to": None,
            "unassigned_for": "30m",
            "business_hour_id": None,
            "group_type": "support_agent_group",
            "created_at": now,
            "updated_at": now,
        }
        for gid, name in groups[start : start + per_page]
    ]
    headers = {"Link": _link(request, page + 1)} if len(groups) > start + per_page else None
    return json_body(items, headers=headers)


async def show_agent(request: web.Request) -> web.Response:
    desk = _desk(request)
    try:
        contact = desk.agents.get(int(request.match_info["id"]))
    except ValueError:
        contact = None
    if contact is None:
        return json_body({"code": "access_denied", "message": "not found"}, status=404)
    now = stamp(desk.now())
    return json_body(
        {
            "id": int(request.match_info["id"]),
            "available": True,
            "occasional": False,
            "ticket_scope": 1,
            "type": "support_agent",
            "created_at": now,
            "updated_at": now,
            "contact": {"active": True, "job_title": None, "language": "en", **contact},
        }
    )


async def add_agent(request: web.Request) -> web.Response:
    desk, body = _desk(request), await _body(request)
    desk.agents[int(body["id"])] = {"email": body.get("email"), "name": body.get("name", "")}
    return json_body({"id": int(body["id"])})


async def ticket_fields(request: web.Request) -> web.Response:
    desk = _desk(request)
    choices = {str(k): v for k, v in DEFAULT_STATUS_CHOICES.items()}
    choices.update({str(k): [name, "Being Processed"] for k, name in desk.statuses.items()})
    now = stamp(desk.now())
    base = {
        "description": "",
        "required_for_closure": False,
        "required_for_agents": False,
        "required_for_customers": False,
        "customers_can_edit": False,
        "displayed_to_customers": True,
        "created_at": now,
        "updated_at": now,
        "default": True,
    }
    fields = [
        {
            **base,
            "id": 1,
            "name": "status",
            "label": "Status",
            "label_for_customers": "Status",
            "position": 4,
            "type": "default_status",
            "choices": choices,
        },
        {
            **base,
            "id": 2,
            "name": "priority",
            "label": "Priority",
            "label_for_customers": "Priority",
            "position": 5,
            "type": "default_priority",
            "choices": {"Low": 1, "Medium": 2, "High": 3, "Urgent": 4},
        },
        {
            **base,
            "id": 3,
            "name": "source",
            "label": "Source",
            "label_for_customers": "Source",
            "position": 3,
            "type": "default_source",
            "choices": {
                "Email": 1,
                "Portal": 2,
                "Phone": 3,
                "Chat": 7,
                "Feedback Widget": 9,
                "Outbound Email": 10,
            },
        },
        {
            **base,
            "id": 4,
            "name": "group",
            "label": "Group",
            "label_for_customers": "Group",
            "position": 6,
            "type": "default_group",
            "choices": {name: gid for gid, name in desk.groups.items()},
        },
    ]
    return json_body(fields)


# ---------------------------------------------------------------------------- scenarios


async def _body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    data = json.loads(text) if text.strip() else {}
    return data if isinstance(data, dict) else {}


def _at(desk: Desk, body: dict[str, Any]) -> datetime:
    return parse_time(body["at"]) if body.get("at") else desk.now()


def _optional_time(value: Any) -> datetime | None:
    return parse_time(value) if value else None


def _ticket(request: web.Request) -> Ticket:
    ticket = _desk(request).tickets.get(int(request.match_info["id"]))
    if ticket is None or ticket.raw is not None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": "no such ticket"}), content_type="application/json"
        )
    return ticket


async def set_clock(request: web.Request) -> web.Response:
    desk, body = _desk(request), await _body(request)
    if "now" in body:
        desk.clock = parse_time(body["now"])
    if "advance" in body:
        desk.clock = desk.now() + timedelta(seconds=float(body["advance"]))
    return json_body({"now": stamp(desk.now())})


async def set_auth(request: web.Request) -> web.Response:
    _desk(request).api_key = str((await _body(request))["api_key"])
    return json_body({"ok": True})


async def set_ratelimit(request: web.Request) -> web.Response:
    desk, body = _desk(request), await _body(request)
    desk.limit = RateLimit(
        total=int(body.get("total", desk.limit.total)),
        window=float(body.get("window", desk.limit.window)),
        used=int(body.get("used", 0)),
    )
    return json_body({"total": desk.limit.total, "window": desk.limit.window})


async def add_group(request: web.Request) -> web.Response:
    desk, body = _desk(request), await _body(request)
    gid = int(body.get("id") or 1000 + len(desk.groups) + 1)
    desk.groups[gid] = str(body["name"])
    return json_body({"id": gid, "name": desk.groups[gid]})


async def add_status(request: web.Request) -> web.Response:
    desk, body = _desk(request), await _body(request)
    desk.statuses[int(body["id"])] = str(body["name"])
    return json_body({"id": int(body["id"]), "name": str(body["name"])})


def create_ticket(desk: Desk, body: dict[str, Any]) -> Ticket:
    at = _at(desk, body)
    ticket = Ticket(
        id=desk.new_id(),
        created_at=at,
        updated_at=at,
        priority=int(body.get("priority", 1)),
        source=int(body.get("source", 2)),
        subject=str(body.get("subject", "")),
        type=body.get("type"),
        group_id=body.get("group_id"),
        requester_id=int(body.get("requester_id", 1)),
        responder_id=body.get("responder_id"),
        company_id=body.get("company_id"),
        product_id=body.get("product_id"),
        tags=list(body.get("tags", [])),
        fr_due_by=_optional_time(body.get("fr_due_by")),
        due_by=_optional_time(body.get("due_by")),
        nr_due_by=_optional_time(body.get("nr_due_by")),
    )
    ticket.stats["status_updated_at"] = at
    status = int(body.get("status", 2))
    if status != 2:
        ticket.status = 0  # so that set_status records the stats of the initial status
        ticket.set_status(status, at)
    desk.tickets[ticket.id] = ticket
    return ticket


async def new_ticket(request: web.Request) -> web.Response:
    ticket = create_ticket(_desk(request), await _body(request))
    return json_body(ticket.to_json(True), status=201)


async def reply(request: web.Request) -> web.Response:
    desk, ticket, body = _desk(request), _ticket(request), await _body(request)
    at = _at(desk, body)
    ticket.stats["first_responded_at"] = ticket.stats["first_responded_at"] or at
    ticket.stats["agent_responded_at"] = at
    ticket.conversations += 1
    ticket.touch(at)
    if "status" in body:
        ticket.set_status(int(body["status"]), at)
    return json_body(ticket.to_json(True))


async def note(request: web.Request) -> web.Response:
    desk, ticket, body = _desk(request), _ticket(request), await _body(request)
    ticket.conversations += 1
    ticket.touch(_at(desk, body))
    return json_body(ticket.to_json(True))


async def customer_reply(request: web.Request) -> web.Response:
    desk, ticket, body = _desk(request), _ticket(request), await _body(request)
    at = _at(desk, body)
    ticket.stats["requester_responded_at"] = at
    ticket.conversations += 1
    if ticket.status in (3, 4, 5):  # the default "reopen on customer reply" automation
        ticket.set_status(2, at)
    ticket.touch(at)
    return json_body(ticket.to_json(True))


async def change_status(request: web.Request) -> web.Response:
    desk, ticket, body = _desk(request), _ticket(request), await _body(request)
    ticket.set_status(int(body["status"]), _at(desk, body))
    return json_body(ticket.to_json(True))


async def update_ticket(request: web.Request) -> web.Response:
    desk, ticket, body = _desk(request), _ticket(request), await _body(request)
    for name in ("priority", "group_id", "type", "source", "responder_id", "company_id"):
        if name in body:
            setattr(ticket, name, body[name])
    if "tags" in body:
        ticket.tags = list(body["tags"])
    ticket.touch(_at(desk, body))
    return json_body(ticket.to_json(True))


async def set_deadlines(request: web.Request) -> web.Response:
    desk, ticket, body = _desk(request), _ticket(request), await _body(request)
    for name in ("fr_due_by", "due_by", "nr_due_by"):
        if name in body:
            setattr(ticket, name, _optional_time(body[name]))
    ticket.touch(_at(desk, body))
    return json_body(ticket.to_json(True))


async def remove(request: web.Request) -> web.Response:
    desk, ticket, body = _desk(request), _ticket(request), await _body(request)
    action = request.match_info["action"]
    if action == "purge":
        del desk.tickets[ticket.id]
        return json_body({"purged": ticket.id})
    ticket.deleted = action == "delete" or (ticket.deleted and action == "spam")
    ticket.spam = action == "spam" or (ticket.spam and action == "delete")
    if action == "restore":
        ticket.deleted = ticket.spam = False
    ticket.touch(_at(desk, body))
    return json_body(ticket.to_json(True))


async def merge(request: web.Request) -> web.Response:
    desk, body = _desk(request), await _body(request)
    at = _at(desk, body)
    primary = desk.tickets[int(body["primary"])]
    for tid in body.get("secondary", []):
        secondary = desk.tickets[int(tid)]
        secondary.conversations += 1  # "merged into #<primary>" note
        secondary.set_status(5, at)
    primary.conversations += 1
    primary.touch(at)
    return json_body(primary.to_json(True))


async def inject_raw(request: web.Request) -> web.Response:
    desk, body = _desk(request), await _body(request)
    at = parse_time(body["updated_at"]) if body.get("updated_at") else desk.now()
    ticket = Ticket(id=desk.new_id(), created_at=at, updated_at=at, raw=body["item"])
    desk.tickets[ticket.id] = ticket
    return json_body({"slot": ticket.id})


async def fail_list(request: web.Request) -> web.Response:
    body = await _body(request)
    _desk(request).list_failures = {
        "after": int(body.get("after", 0)),
        "status": int(body.get("status", 500)),
        "count": int(body.get("count", 1)),
    }
    return json_body({"ok": True})


async def bulk(request: web.Request) -> web.Response:
    desk, body = _desk(request), await _body(request)
    count, rng = int(body.get("tickets", 100)), random.Random(int(body.get("seed", 1)))
    for gid, name in ((901, "Support"), (902, "Billing"), (903, "Network")):
        desk.groups.setdefault(gid, name)
    for aid in (501, 502):
        desk.agents.setdefault(aid, {"email": f"agent{aid}@example.com", "name": f"Agent {aid}"})
    now = desk.now()
    first = desk.next_id
    response_hours = {4: 1, 3: 4, 2: 8, 1: 24}
    for n in range(count):
        created = now - timedelta(seconds=rng.randrange(2 * 86_400, 20 * 86_400))
        priority = rng.choice((1, 2, 2, 3, 4))
        ticket = create_ticket(
            desk,
            {
                "at": created.isoformat(),
                "priority": priority,
                "source": rng.choice((1, 1, 2, 3, 7, 9, 10)),
                "group_id": rng.choice((901, 902, 903, None)),
                "responder_id": (501, 502, None)[n % 3],
                "type": rng.choice(("Question", "Incident", "Problem", None)),
                "fr_due_by": (created + timedelta(hours=response_hours[priority])).isoformat(),
                "due_by": (created + timedelta(hours=3 * response_hours[priority])).isoformat(),
            },
        )
        moment = created
        for _ in range(rng.randrange(1, 4)):
            moment += timedelta(seconds=rng.randrange(300, 36_000))
            if rng.random() < 0.6:
                ticket.stats["first_responded_at"] = ticket.stats["first_responded_at"] or moment
                ticket.stats["agent_responded_at"] = moment
            else:
                ticket.stats["requester_responded_at"] = moment
            ticket.conversations += 1
            ticket.touch(moment)
        roll = rng.random()
        if roll < 0.2:
            ticket.set_status(3, moment)
        elif roll < 0.35:
            ticket.set_status(4, moment)
        elif roll < 0.45:
            ticket.set_status(5, moment)
    return json_body({"created": count, "first_id": first, "last_id": desk.next_id - 1})


async def show_internal(request: web.Request) -> web.Response:
    return json_body(_ticket(request).to_json(True))


def make_app() -> web.Application:
    app = base_app()
    app[DESK_KEY] = Desk()
    app.middlewares.append(api_middleware)
    app.router.add_get("/api/v2/tickets", list_tickets)
    app.router.add_get("/api/v2/tickets/{id}", show_ticket)
    app.router.add_get("/api/v2/groups", list_groups)
    app.router.add_get("/api/v2/agents/{id}", show_agent)
    app.router.add_get("/api/v2/ticket_fields", ticket_fields)
    app.router.add_post("/_fake/clock", set_clock)
    app.router.add_post("/_fake/auth", set_auth)
    app.router.add_post("/_fake/ratelimit", set_ratelimit)
    app.router.add_post("/_fake/groups", add_group)
    app.router.add_post("/_fake/agents", add_agent)
    app.router.add_post("/_fake/statuses", add_status)
    app.router.add_post("/_fake/tickets", new_ticket)
    app.router.add_get("/_fake/tickets/{id}", show_internal)
    app.router.add_post("/_fake/tickets/{id}/reply", reply)
    app.router.add_post("/_fake/tickets/{id}/note", note)
    app.router.add_post("/_fake/tickets/{id}/customer_reply", customer_reply)
    app.router.add_post("/_fake/tickets/{id}/status", change_status)
    app.router.add_post("/_fake/tickets/{id}/update", update_ticket)
    app.router.add_post("/_fake/tickets/{id}/deadlines", set_deadlines)
    app.router.add_post("/_fake/tickets/{id}/{action:delete|spam|restore|purge}", remove)
    app.router.add_post("/_fake/merge", merge)
    app.router.add_post("/_fake/raw", inject_raw)
    app.router.add_post("/_fake/fail_list", fail_list)
    app.router.add_post("/_fake/bulk", bulk)
    return app
