"""A fake Zendesk Support API (v2) for connector tests and benchmarks.

API endpoints (every one needs ``Authorization: Basic base64("{AGENT_EMAIL}/token:{API_TOKEN}")``
or ``Bearer {API_TOKEN}``; anything else gets Zendesk's 401 ``{"error": "Couldn't authenticate
you"}``). Each also answers without the ``.json`` suffix.

* ``GET /api/v2/incremental/tickets/cursor.json`` — ``start_time`` (first call) or ``cursor``,
  ``per_page`` (≤ 1000), ``include`` (``users``, ``groups``, ``organizations``, ``slas``),
  ``exclude_deleted``. Tickets in (generated_timestamp, id) order after the cursor.
* ``GET /api/v2/incremental/ticket_events.json`` — time-based: ``start_time``, ``per_page``,
  ``include=comment_events``; ``end_time`` is the last item's time (the next ``start_time``,
  inclusive), a page never ends inside one second.
* ``GET /api/v2/tickets/{id}/audits.json`` — cursor (``page[size]``, ``page[after]``) or offset
  (``per_page``, ``page``) pagination; 404 ``RecordNotFound`` for unknown tickets.
* ``GET /api/v2/tickets/show_many.json?ids=`` and ``/api/v2/users/show_many.json?ids=``;
  ``GET /api/v2/groups.json``.
* ``GET /api/v2/search/export.json`` — ``query`` (``status<solved``, ``status:<name>``),
  ``filter[type]=ticket`` (required), ``page[size]``, ``page[after]``.

Like Zendesk, both incremental exports leave out the last 60 s (server time), reject a
``start_time`` less than a minute old (422), and allow 10 requests a minute (429 with
``Retry-After`` beyond). Every API answer carries ``X-Rate-Limit``/``X-Rate-Limit-Remaining``
and ``ratelimit-*`` headers for the account-wide limit (700 a minute).

Server time is real time plus an offset the tests move (``/_fake/clock``). Scenario endpoints,
under ``/_fake/``:

* ``GET /_fake/clock`` -> ``{"now": epoch}``; ``POST /_fake/clock`` ``{"advance": s}`` or
  ``{"set": epoch}``.
* ``POST /_fake/limits`` ``{"incremental_per_minute", "account_per_minute", "window", "lag"}``
  (``lag``: the seconds the incremental exports hide, 60 as in Zendesk).
* ``POST /_fake/fail`` ``{"path", "after": n, "status": 500, "count": k}``: after ``n`` good
  answers on that path, fail the next ``k``.
* ``POST /_fake/tickets`` ``{subject, status, priority, type, channel, group, assignee,
  requester, organization, tags, created_at, author}`` -> ``{"id", "requester_id"}``
  (``assignee``: ``"agent"``, ``"agent2"``, an email or a user id; an unknown email becomes an
  agent).
* ``POST /_fake/tickets/{id}/reply`` ``{"author": "agent"|"agent2"|"requester"|"end_user"|id,
  "public": true, "status"}`` (an agent's public reply opens a new ticket; an end user's reopens
  a pending or solved one); ``/update`` ``{status, priority, group, assignee, tags, author}``
  (``assignee: null`` unassigns);
  ``/sla`` ``{<zendesk metric>: epoch|iso|null}`` (a system update); ``/delete`` (status
  ``deleted``); ``/purge`` (gone everywhere); ``/merge`` ``{"into": id}``; ``/touch`` (a
  system update without visible change); ``/output`` ``{"set": {...}, "drop": [...]}`` (JSON
  fields replaced or left out in every answer).
* ``POST /_fake/inject`` ``{"item": {...}}``: a raw item served as-is by the ticket export.
* ``POST /_fake/bulk`` ``{"tickets": N, "seed": S, "span": seconds}``: N tickets created over
  the last ``span`` seconds, each with a few comments and status changes.
* ``GET /_fake/state`` -> counts (tickets, audits, requests throttled).
"""

from __future__ import annotations

import base64
import bisect
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.base import base_app, json_body

AGENT_EMAIL = "agent@example.com"
API_TOKEN = "zendesk-test-token"
ADMIN_ID = 1000
AGENT_ID = 1001
SECOND_AGENT_ID = 1002
GROUPS = {201: "Support", 202: "Billing", 203: "Tier 2"}
ORGANIZATIONS = {301: "Acme", 302: "Globex"}
LAG = 60  # seconds the incremental exports hide
OPEN_STATUSES = ("new", "open", "pending", "hold")
VIA_NAMES = {
    "web": "Web form",
    "email": "Mail",
    "api": "Web service",
    "chat": "Chat",
    "voice": "Voice",
    "merge": "Merge",
    "rule": "Rule",
}

Handler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass
class FakeTicket:
    id: int
    created_at: int
    updated_at: int
    generated: int
    status: str = "new"
    priority: str | None = None
    type: str | None = None
    channel: str | int | None = "web"
    subject: str = ""
    requester_id: int = 0
    assignee_id: int | None = None
    group_id: int | None = None
    organization_id: int | None = None
    tags: list[str] = field(default_factory=list)
    slas: dict[str, int | None] = field(default_factory=dict)  # metric -> breach_at
    output: dict[str, Any] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    raw: dict[str, Any] | None = None  # an injected item, served as-is
    gone: bool = False


@dataclass
class FakeAudit:
    id: int
    ticket_id: int
    at: int
    author_id: int
    channel: str
    events: list[dict[str, Any]]  # audit-style child events


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, int | float):
        return int(value)
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())


def _encode(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _decode(cursor: str) -> str:
    return base64.b64decode(cursor.encode() + b"==", validate=False).decode()


class FakeZendesk:
    def __init__(self) -> None:
        self.offset = 0.0
        self.tickets: dict[int, FakeTicket] = {}
        self.audits: list[FakeAudit] = []  # in (at, id) order
        self._audit_keys: list[tuple[int, int]] = []
        self.audits_by_ticket: dict[int, list[FakeAudit]] = {}
        self.users: dict[int, dict[str, Any]] = {
            ADMIN_ID: {"id": ADMIN_ID, "name": "API Admin", "email": AGENT_EMAIL, "role": "admin"},
            AGENT_ID: {
                "id": AGENT_ID,
                "name": "Alex Agent",
                "email": "alex@example.com",
                "role": "agent",
            },
            SECOND_AGENT_ID: {
                "id": SECOND_AGENT_ID,
                "name": "Bea Agent",
                "email": "bea@example.com",
                "role": "agent",
            },
        }
        self.emails = {u["email"]: i for i, u in self.users.items()}
        self._ids = {"ticket": 0, "event": 900_000, "user": 5000}
        self.limits: dict[str, float] = {
            "incremental_per_minute": 10,
            "account_per_minute": 700,
            "window": 60.0,
            "lag": LAG,
        }
        self._incremental_sent: deque[float] = deque()
        self._account_sent: deque[float] = deque()
        self.throttled = 0
        self.failures: dict[str, dict[str, int]] = {}

    # ------------------------------------------------------------------ time and ids

    def now(self) -> int:
        return int(time.time() + self.offset)

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    # ------------------------------------------------------------------ scenario actions

    def user_for(self, who: Any, ticket: FakeTicket | None = None) -> int:
        if isinstance(who, int):
            return who
        if who in (None, "agent"):
            return AGENT_ID
        if who == "agent2":
            return SECOND_AGENT_ID
        if who == "admin":
            return ADMIN_ID
        if who == "requester" and ticket is not None:
            return ticket.requester_id
        email = f"{who}@customer.example" if "@" not in str(who) else str(who)
        if email not in self.emails:
            uid = self._next("user")
            self.users[uid] = {"id": uid, "name": str(who), "email": email, "role": "end-user"}
            self.emails[email] = uid
        return self.emails[email]

    def group_id(self, group: Any) -> int | None:
        if group is None or isinstance(group, int):
            return group
        for gid, name in GROUPS.items():
            if name.lower() == str(group).lower():
                return gid
        raise web.HTTPBadRequest(text=f"unknown group {group!r}")

    def assignee_id(self, who: Any) -> int | None:
        """The agent a ticket is assigned to; whoever is assigned counts as an agent."""
        if who is None:
            return None
        uid = self.user_for(who)
        if self.users[uid]["role"] == "end-user":
            self.users[uid]["role"] = "agent"
        return uid

    def create(self, spec: dict[str, Any]) -> FakeTicket:
        at = _epoch(spec.get("created_at"), self.now())
        requester = self.user_for(spec.get("requester", f"customer{self._ids['ticket'] + 1}"))
        ticket = FakeTicket(
            id=self._next("ticket"),
            created_at=at,
            updated_at=at,
            generated=at,
            status=spec.get("status", "new"),
            priority=spec.get("priority"),
            type=spec.get("type"),
            channel=spec.get("channel", "web"),
            subject=spec.get("subject", "Help"),
            requester_id=requester,
            group_id=self.group_id(spec.get("group")),
            assignee_id=self.assignee_id(spec.get("assignee")),
            organization_id=spec.get("organization"),
            tags=list(spec.get("tags", [])),
        )
        self.tickets[ticket.id] = ticket
        author = self.user_for(spec["author"]) if "author" in spec else requester
        events: list[dict[str, Any]] = [
            self._comment(author, True, spec.get("body", "Please help"))
        ]
        for name, value in (
            ("status", ticket.status),
            ("priority", ticket.priority),
            ("group_id", ticket.group_id),
            ("assignee_id", ticket.assignee_id),
            ("tags", ticket.tags or None),
        ):
            if value is not None:
                events.append(self._created(name, value))
        channel = ticket.channel if isinstance(ticket.channel, str) else "web"
        self._record(ticket, at, author, channel, events)
        return ticket

    def reply(self, ticket: FakeTicket, spec: dict[str, Any]) -> None:
        at = _epoch(spec.get("at"), self.now())
        author = self.user_for(spec.get("author", "agent"), ticket)
        public = bool(spec.get("public", True))
        events = [self._comment(author, public, spec.get("body", "A reply"))]
        status = spec.get("status")
        is_agent = self.users.get(author, {}).get("role") in ("agent", "admin")
        if status is None and public:
            waiting = ("new",) if is_agent else ("pending", "solved")
            if ticket.status in waiting:
                status = "open"
        if status is not None and status != ticket.status:
            events.append(self._change("status", status, ticket.status))
            ticket.status = status
        self._record(ticket, at, author, "web", events)

    def update(self, ticket: FakeTicket, spec: dict[str, Any]) -> None:
        at = _epoch(spec.get("at"), self.now())
        author = self.user_for(spec.get("author", "agent"), ticket)
        events = []
        if "status" in spec and spec["status"] != ticket.status:
            events.append(self._change("status", spec["status"], ticket.status))
            ticket.status = spec["status"]
        if "priority" in spec and spec["priority"] != ticket.priority:
            events.append(self._change("priority", spec["priority"], ticket.priority))
            ticket.priority = spec["priority"]
        if "group" in spec:
            group = self.group_id(spec["group"])
            if group != ticket.group_id:
                events.append(self._change("group_id", group, ticket.group_id))
                ticket.group_id = group
        if "assignee" in spec:
            assignee = self.assignee_id(spec["assignee"])
            if assignee != ticket.assignee_id:
                events.append(self._change("assignee_id", assignee, ticket.assignee_id))
                ticket.assignee_id = assignee
        if "tags" in spec:
            events.append(self._change("tags", list(spec["tags"]), list(ticket.tags)))
            ticket.tags = list(spec["tags"])
        self._record(ticket, at, author, "web", events)

    def merge(self, ticket: FakeTicket, target: FakeTicket) -> None:
        at = self.now()
        note = f"Request #{ticket.id} was closed and merged into request #{target.id}."
        tags = [*ticket.tags, "closed_by_merge"]
        events = [
            self._comment(AGENT_ID, False, note),
            self._change("status", "closed", ticket.status),
            self._change("tags", tags, list(ticket.tags)),
        ]
        ticket.status, ticket.tags = "closed", tags
        self._record(ticket, at, AGENT_ID, "merge", events)
        merged = f"Request #{ticket.id} was merged into this request."
        self._record(target, at, AGENT_ID, "merge", [self._comment(AGENT_ID, False, merged)])

    def system_update(self, ticket: FakeTicket) -> None:
        ticket.generated = max(self.now(), ticket.generated)

    def _comment(self, author: int, public: bool, body: str) -> dict[str, Any]:
        return {
            "id": self._next("event"),
            "type": "Comment",
            "author_id": author,
            "body": body,
            "public": public,
        }

    def _created(self, name: str, value: Any) -> dict[str, Any]:
        return {"id": self._next("event"), "type": "Create", "field_name": name, "value": value}

    def _change(self, name: str, value: Any, previous: Any) -> dict[str, Any]:
        return {
            "id": self._next("event"),
            "type": "Change",
            "field_name": name,
            "value": value,
            "previous_value": previous,
        }

    def _record(
        self,
        ticket: FakeTicket,
        at: int,
        author: int,
        channel: str,
        events: list[dict[str, Any]],
        sort: bool = True,
    ) -> None:
        if not events:
            return
        audit = FakeAudit(self._next("event"), ticket.id, at, author, channel, events)
        key = (at, audit.id)
        if sort:
            index = bisect.bisect(self._audit_keys, key)
            self._audit_keys.insert(index, key)
            self.audits.insert(index, audit)
        else:
            self._audit_keys.append(key)
            self.audits.append(audit)
        self.audits_by_ticket.setdefault(ticket.id, []).append(audit)
        ticket.updated_at = max(ticket.updated_at, at)
        ticket.generated = max(ticket.generated, at)

    def bulk(self, count: int, seed: int, span: int) -> None:
        rng = random.Random(seed)
        now = self.now()
        latest = now - LAG - 5
        statuses = ("open", "pending", "hold", "solved")
        for n in range(count):
            at = latest - rng.randint(0, max(span, 1))
            requester = self.user_for(f"bulk{n % 2000}")
            ticket = FakeTicket(
                id=self._next("ticket"),
                created_at=at,
                updated_at=at,
                generated=at,
                priority=rng.choice(("urgent", "high", "normal", "normal", "low")),
                channel=rng.choice(("email", "web", "chat", "api", "voice")),
                subject=f"Bulk ticket {n}",
                requester_id=requester,
                group_id=rng.choice(list(GROUPS)),
                assignee_id=(AGENT_ID, SECOND_AGENT_ID)[n % 2],
            )
            self.tickets[ticket.id] = ticket
            created = [
                self._comment(requester, True, "Please help"),
                self._created("status", "new"),
                self._created("priority", ticket.priority),
                self._created("group_id", ticket.group_id),
                self._created("assignee_id", ticket.assignee_id),
            ]
            self._record(ticket, at, requester, str(ticket.channel), created, sort=False)
            t = at
            for _ in range(rng.randint(1, 3)):
                t += rng.randint(60, 7200)
                if t > latest:
                    break
                status = rng.choice(statuses)
                events = [self._comment(AGENT_ID, True, "On it")]
                if status != ticket.status:
                    events.append(self._change("status", status, ticket.status))
                    ticket.status = status
                self._record(ticket, t, AGENT_ID, "web", events, sort=False)
                if ticket.status == "solved":
                    break
                if rng.random() < 0.5 and t + 7200 <= latest:
                    t += rng.randint(60, 7200)
                    events = [self._comment(requester, True, "Thanks, but...")]
                    if ticket.status in ("pending", "solved"):
                        events.append(self._change("status", "open", ticket.status))
                        ticket.status = "open"
                    self._record(ticket, t, requester, "email", events, sort=False)
        order = sorted(range(len(self.audits)), key=lambda i: self._audit_keys[i])
        self.audits = [self.audits[i] for i in order]
        self._audit_keys = [self._audit_keys[i] for i in order]

    # ------------------------------------------------------------------ API answers

    def ticket_json(self, ticket: FakeTicket, origin: str, slas: bool = False) -> dict[str, Any]:
        if ticket.raw is not None:
            return dict(ticket.raw)
        data: dict[str, Any] = {
            "url": f"{origin}/api/v2/tickets/{ticket.id}.json",
            "id": ticket.id,
            "external_id": None,
            "via": {"channel": ticket.channel, "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": iso(ticket.created_at),
            "updated_at": iso(ticket.updated_at),
            "generated_timestamp": ticket.generated,
            "type": ticket.type,
            "subject": ticket.subject,
            "raw_subject": ticket.subject,
            "description": "Please help",
            "priority": ticket.priority,
            "status": ticket.status,
            "recipient": None,
            "requester_id": ticket.requester_id,
            "submitter_id": ticket.requester_id,
            "assignee_id": ticket.assignee_id,
            "organization_id": ticket.organization_id,
            "group_id": ticket.group_id,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "problem_id": None,
            "has_incidents": False,
            "is_public": True,
            "due_at": None,
            "tags": list(ticket.tags),
            "custom_fields": [],
            "satisfaction_rating": None,
            "sharing_agreement_ids": [],
            "fields": [],
            "followup_ids": [],
            "ticket_form_id": None,
            "brand_id": 401,
            "allow_channelback": False,
            "allow_attachments": True,
        }
        if slas:
            data["slas"] = {
                "policy_metrics": [
                    {
                        "breach_at": iso(at) if at is not None else None,
                        "stage": "active" if at is not None else "paused",
                        "metric": metric,
                        "days": 0,
                        "hours": 0,
                        "minutes": 0,
                    }
                    for metric, at in ticket.slas.items()
                ]
            }
        data.update(ticket.output)
        for name in ticket.dropped:
            data.pop(name, None)
        return data

    def audit_json(self, audit: FakeAudit) -> dict[str, Any]:
        events = []
        for event in audit.events:
            item = dict(event)
            if event["type"] == "Comment":
                item.update(
                    html_body=f"<p>{event['body']}</p>",
                    plain_body=event["body"],
                    attachments=[],
                    audit_id=audit.id,
                )
            events.append(item)
        return {
            "id": audit.id,
            "ticket_id": audit.ticket_id,
            "created_at": iso(audit.at),
            "author_id": audit.author_id,
            "via": {"channel": audit.channel, "source": {"from": {}, "to": {}, "rel": None}},
            "metadata": {"system": {}, "custom": {}},
            "events": events,
        }

    def ticket_event_json(self, audit: FakeAudit, comments: bool) -> dict[str, Any]:
        via = VIA_NAMES.get(audit.channel, "Web service")
        children = []
        for event in audit.events:
            if event["type"] == "Comment":
                if comments:
                    children.append(
                        {
                            "id": event["id"],
                            "via": {
                                "channel": audit.channel,
                                "source": {"from": {}, "to": {}, "rel": None},
                            },
                            "via_reference_id": None,
                            "type": "Comment",
                            "author_id": event["author_id"],
                            "body": event["body"],
                            "html_body": f"<p>{event['body']}</p>",
                            "public": event["public"],
                            "attachments": [],
                            "audit_id": audit.id,
                            "created_at": iso(audit.at),
                            "event_type": "Comment",
                        }
                    )
                else:
                    children.append(
                        {
                            "id": event["id"],
                            "via": via,
                            "via_reference_id": None,
                            "comment_present": True,
                            "comment_public": event["public"],
                            "event_type": "Comment",
                        }
                    )
                continue
            child: dict[str, Any] = {
                "id": event["id"],
                "via": via,
                "via_reference_id": None,
                event["field_name"]: event["value"],
                "event_type": event["type"],
            }
            if event["type"] == "Change":
                child["previous_value"] = event["previous_value"]
                if event["field_name"] == "tags":
                    before, after = set(event["previous_value"] or []), set(event["value"] or [])
                    child["added_tags"] = sorted(after - before)
                    child["removed_tags"] = sorted(before - after)
            children.append(child)
        return {
            "id": audit.id,
            "ticket_id": audit.ticket_id,
            "timestamp": audit.at,
            "created_at": iso(audit.at),
            "updater_id": audit.author_id,
            "via": via,
            "system": {},
            "metadata": {},
            "event_type": "Audit",
            "merged_ticket_ids": [],
            "child_events": children,
        }

    def visible(self) -> list[FakeTicket]:
        return [t for t in self.tickets.values() if not t.gone]

    # ------------------------------------------------------------------ limits

    def throttle(self, path: str) -> web.Response | None:
        now = time.monotonic()
        window = self.limits["window"]
        queues = [(self._account_sent, self.limits["account_per_minute"])]
        if path.startswith("/api/v2/incremental/"):
            queues.append((self._incremental_sent, self.limits["incremental_per_minute"]))
        for sent, limit in queues:
            while sent and now - sent[0] >= window:
                sent.popleft()
            if len(sent) >= limit:
                self.throttled += 1
                wait = max(1, math.ceil(sent[0] + window - now))
                return json_body(
                    {"error": "APIRateLimitExceeded", "description": "Rate limit exceeded"},
                    status=429,
                    headers={"Retry-After": str(wait)},
                )
        for sent, _ in queues:
            sent.append(now)
        return None

    def rate_headers(self) -> dict[str, str]:
        limit = int(self.limits["account_per_minute"])
        remaining = max(0, limit - len(self._account_sent))
        return {
            "X-Rate-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(remaining),
            "ratelimit-limit": str(limit),
            "ratelimit-remaining": str(remaining),
            "ratelimit-reset": str(int(self.limits["window"])),
        }

    def injected_failure(self, path: str) -> web.Response | None:
        plan = self.failures.get(path.removesuffix(".json"))
        if plan is None:
            return None
        if plan["after"] > 0:
            plan["after"] -= 1
            return None
        if plan["count"] <= 0:
            return None
        plan["count"] -= 1
        return json_body({"error": "InjectedFailure"}, status=plan["status"])


DESK = web.AppKey("zendesk", FakeZendesk)


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _authorized(request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    if header == f"Bearer {API_TOKEN}":
        return True
    if not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:]).decode()
    except ValueError:
        return False
    return decoded == f"{AGENT_EMAIL}/token:{API_TOKEN}"


def _api(handler: Handler) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        desk = request.app[DESK]
        if not _authorized(request):
            return json_body({"error": "Couldn't authenticate you"}, status=401)
        failure = desk.injected_failure(request.path)
        if failure is not None:
            return failure
        limited = desk.throttle(request.path)
        if limited is not None:
            return limited
        response = await handler(request)
        response.headers.update(desk.rate_headers())
        return response

    return answer


def _int_param(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"error": "InvalidValue", "description": "' + name + ' must be an integer"}',
            content_type="application/json",
        ) from None


def _bad_request(status: int, error: str, description: str) -> web.Response:
    return json_body({"error": error, "description": description}, status=status)


def _ids(request: web.Request) -> list[int]:
    return [int(i) for i in request.query.get("ids", "").split(",") if i.strip().isdigit()]


# ---------------------------------------------------------------------------- API handlers


async def ticket_export(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    per_page = min(_int_param(request, "per_page", 1000) or 1000, 1000)
    include = set(request.query.get("include", "").split(","))
    horizon = desk.now() - desk.limits["lag"]
    if "cursor" in request.query:
        try:
            stamp, _, rest = _decode(request.query["cursor"]).partition("||")
            position = (int(float(stamp)), int(rest.rstrip("|")))
        except ValueError:
            return _bad_request(400, "InvalidPaginationParameter", "cursor is invalid")
    else:
        start = _int_param(request, "start_time")
        if start is None:
            return _bad_request(400, "InvalidValue", "start_time or cursor is required")
        if start > horizon:
            return _bad_request(
                422, "InvalidValue", "Too recent start_time. Use a start_time older than 1 minute"
            )
        position = (start, -1)
    exclude_deleted = request.query.get("exclude_deleted") == "true"
    candidates = sorted(
        (t for t in desk.visible() if t.generated <= horizon and (t.generated, t.id) > position),
        key=lambda t: (t.generated, t.id),
    )
    if exclude_deleted:
        candidates = [t for t in candidates if t.status != "deleted"]
    page = candidates[:per_page]
    if page:
        position = (page[-1].generated, page[-1].id)
    cursor = _encode(f"{position[0]}.0||{position[1]}|")
    origin = _origin(request)
    tickets = [desk.ticket_json(t, origin, slas="slas" in include) for t in page]
    body: dict[str, Any] = {
        "tickets": tickets,
        "after_url": f"{origin}/api/v2/incremental/tickets/cursor.json?cursor={cursor}",
        "after_cursor": cursor,
        "before_url": None,
        "before_cursor": None,
        "end_of_stream": len(candidates) <= per_page,
    }
    real = [t for t in page if t.raw is None]
    if "users" in include:
        ids = {i for t in real for i in (t.requester_id, t.assignee_id) if i is not None}
        body["users"] = [desk.users[i] for i in sorted(ids) if i in desk.users]
    if "groups" in include:
        ids = {t.group_id for t in real if t.group_id is not None}
        body["groups"] = [{"id": i, "name": GROUPS[i]} for i in sorted(ids) if i in GROUPS]
    if "organizations" in include:
        ids = {t.organization_id for t in real if t.organization_id is not None}
        body["organizations"] = [
            {"id": i, "name": ORGANIZATIONS[i]} for i in sorted(ids) if i in ORGANIZATIONS
        ]
    return json_body(body)


async def ticket_events(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    start = _int_param(request, "start_time")
    if start is None:
        return _bad_request(400, "InvalidValue", "start_time is required")
    horizon = desk.now() - desk.limits["lag"]
    if start > horizon:
        return _bad_request(
            422, "InvalidValue", "Too recent start_time. Use a start_time older than 1 minute"
        )
    per_page = min(_int_param(request, "per_page", 1000) or 1000, 1000)
    comments = "comment_events" in request.query.get("include", "").split(",")
    first = bisect.bisect_left(desk._audit_keys, (start, -1))
    page: list[FakeAudit] = []
    index = first
    while index < len(desk.audits):
        audit = desk.audits[index]
        if audit.at > horizon:
            break
        if len(page) >= per_page and audit.at != page[-1].at:
            break
        if not desk.tickets[audit.ticket_id].gone:
            page.append(audit)
        index += 1
    more = index < len(desk.audits) and desk.audits[index].at <= horizon
    end_time = page[-1].at if page else start
    origin = _origin(request)
    return json_body(
        {
            "ticket_events": [desk.ticket_event_json(a, comments) for a in page],
            "next_page": f"{origin}/api/v2/incremental/ticket_events.json?start_time={end_time}",
            "count": len(page),
            "end_of_stream": not more,
            "end_time": end_time,
        }
    )


async def ticket_audits(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    ticket = desk.tickets.get(int(request.match_info["ticket_id"]))
    if ticket is None or ticket.gone or ticket.raw is not None:
        return _bad_request(404, "RecordNotFound", "Not found")
    audits = sorted(desk.audits_by_ticket.get(ticket.id, []), key=lambda a: (a.at, a.id))
    origin = _origin(request)
    path = f"{origin}/api/v2/tickets/{ticket.id}/audits.json"
    if "page[size]" in request.query:
        size = min(_int_param(request, "page[size]", 100) or 100, 100)
        after = request.query.get("page[after]")
        start = int(_decode(after)) if after else 0
        chunk = audits[start : start + size]
        has_more = start + size < len(audits)
        cursor = _encode(str(start + size)) if has_more else None
        return json_body(
            {
                "audits": [desk.audit_json(a) for a in chunk],
                "meta": {"has_more": has_more, "after_cursor": cursor, "before_cursor": None},
                "links": {
                    "next": f"{path}?page[size]={size}&page[after]={cursor}" if has_more else None,
                    "prev": None,
                },
            }
        )
    per_page = min(_int_param(request, "per_page", 100) or 100, 100)
    number = _int_param(request, "page", 1) or 1
    chunk = audits[(number - 1) * per_page : number * per_page]
    more = number * per_page < len(audits)
    return json_body(
        {
            "audits": [desk.audit_json(a) for a in chunk],
            "next_page": f"{path}?page={number + 1}&per_page={per_page}" if more else None,
            "previous_page": None,
            "count": len(audits),
        }
    )


async def tickets_show_many(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    origin = _origin(request)
    found = []
    for ticket_id in _ids(request)[:100]:
        ticket = desk.tickets.get(ticket_id)
        if (
            ticket is not None
            and not ticket.gone
            and ticket.raw is None
            and ticket.status != "deleted"
        ):
            found.append(desk.ticket_json(ticket, origin))
    return json_body(
        {"tickets": found, "next_page": None, "previous_page": None, "count": len(found)}
    )


async def users_show_many(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    users = [desk.users[i] for i in _ids(request)[:100] if i in desk.users]
    return json_body(
        {"users": users, "next_page": None, "previous_page": None, "count": len(users)}
    )


async def groups(request: web.Request) -> web.Response:
    items = [{"id": i, "name": name, "deleted": False} for i, name in GROUPS.items()]
    if "page[size]" in request.query:
        return json_body(
            {
                "groups": items,
                "meta": {"has_more": False, "after_cursor": None},
                "links": {"next": None},
            }
        )
    return json_body(
        {"groups": items, "next_page": None, "previous_page": None, "count": len(items)}
    )


async def search_export(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    if request.query.get("filter[type]") != "ticket":
        return _bad_request(
            400, "InvalidSearchParameter", "filter[type] is required and must be ticket"
        )
    statuses = set(OPEN_STATUSES) | {"solved", "closed"}
    for term in request.query.get("query", "").split():
        if term == "status<solved":
            statuses &= set(OPEN_STATUSES)
        elif term.startswith("status:"):
            statuses &= {term.split(":", 1)[1]}
    size = min(_int_param(request, "page[size]", 100) or 100, 1000)
    after = request.query.get("page[after]")
    last = int(_decode(after)) if after else 0
    matches = sorted(
        (t for t in desk.visible() if t.raw is None and t.status in statuses and t.id > last),
        key=lambda t: t.id,
    )
    chunk = matches[:size]
    has_more = len(matches) > size
    cursor = _encode(str(chunk[-1].id)) if has_more else None
    origin = _origin(request)
    results = [{**desk.ticket_json(t, origin), "result_type": "ticket"} for t in chunk]
    return json_body(
        {
            "results": results,
            "facets": None,
            "meta": {"has_more": has_more, "after_cursor": cursor, "before_cursor": None},
            "links": {
                "next": f"{origin}/api/v2/search/export.json?page[after]={cursor}"
                if has_more
                else None,
                "prev": None,
            },
        }
    )


# ---------------------------------------------------------------------------- scenario endpoints


def _ticket(request: web.Request) -> FakeTicket:
    desk = request.app[DESK]
    ticket = desk.tickets.get(int(request.match_info["ticket_id"]))
    if ticket is None:
        raise web.HTTPNotFound(text="no such ticket")
    return ticket


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    data = await request.json()
    return data if isinstance(data, dict) else {}


async def fake_clock(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    if request.method == "POST":
        body = await _body(request)
        if "set" in body:
            desk.offset = float(body["set"]) - time.time()
        desk.offset += float(body.get("advance", 0))
    return json_body({"now": desk.now(), "iso": iso(desk.now())})


async def fake_limits(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    for name in desk.limits:
        if name in body:
            desk.limits[name] = float(body[name])
    desk._incremental_sent.clear()
    desk._account_sent.clear()
    return json_body(desk.limits)


async def fake_fail(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    desk.failures[str(body["path"]).removesuffix(".json")] = {
        "after": int(body.get("after", 0)),
        "status": int(body.get("status", 500)),
        "count": int(body.get("count", 1)),
    }
    return json_body({"ok": True})


async def fake_create(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    ticket = desk.create(await _body(request))
    return json_body({"id": ticket.id, "requester_id": ticket.requester_id})


async def fake_reply(request: web.Request) -> web.Response:
    request.app[DESK].reply(_ticket(request), await _body(request))
    return json_body({"ok": True})


async def fake_update(request: web.Request) -> web.Response:
    request.app[DESK].update(_ticket(request), await _body(request))
    return json_body({"ok": True})


async def fake_sla(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    ticket = _ticket(request)
    for metric, value in (await _body(request)).items():
        if value is None:
            ticket.slas[metric] = None
        elif value == "remove":
            ticket.slas.pop(metric, None)
        else:
            ticket.slas[metric] = _epoch(value, 0)
    desk.system_update(ticket)
    return json_body({"ok": True})


async def fake_delete(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    ticket = _ticket(request)
    ticket.status = "deleted"
    ticket.updated_at = ticket.generated = max(desk.now(), ticket.generated)
    return json_body({"ok": True})


async def fake_purge(request: web.Request) -> web.Response:
    _ticket(request).gone = True
    return json_body({"ok": True})


async def fake_merge(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    target = desk.tickets[int(body["into"])]
    desk.merge(_ticket(request), target)
    return json_body({"ok": True})


async def fake_touch(request: web.Request) -> web.Response:
    request.app[DESK].system_update(_ticket(request))
    return json_body({"ok": True})


async def fake_output(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    ticket = _ticket(request)
    body = await _body(request)
    ticket.output.update(body.get("set", {}))
    ticket.dropped.extend(body.get("drop", []))
    desk.system_update(ticket)
    return json_body({"ok": True})


async def fake_inject(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    at = desk.now()
    ticket = FakeTicket(
        id=desk._next("ticket"), created_at=at, updated_at=at, generated=at, raw=body["item"]
    )
    desk.tickets[ticket.id] = ticket
    return json_body({"id": ticket.id})


async def fake_bulk(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    started = time.monotonic()
    desk.bulk(
        int(body.get("tickets", 100)), int(body.get("seed", 1)), int(body.get("span", 86_400))
    )
    return json_body(
        {
            "tickets": len(desk.tickets),
            "audits": len(desk.audits),
            "seconds": time.monotonic() - started,
        }
    )


async def fake_state(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    by_status: dict[str, int] = {}
    for ticket in desk.visible():
        by_status[ticket.status] = by_status.get(ticket.status, 0) + 1
    return json_body(
        {
            "now": desk.now(),
            "tickets": len(desk.tickets),
            "audits": len(desk.audits),
            "by_status": by_status,
            "throttled": desk.throttled,
        }
    )


def make_app() -> web.Application:
    app = base_app()
    app[DESK] = FakeZendesk()
    api_routes: list[tuple[str, Handler]] = [
        ("/api/v2/incremental/tickets/cursor", ticket_export),
        ("/api/v2/incremental/ticket_events", ticket_events),
        (r"/api/v2/tickets/{ticket_id:\d+}/audits", ticket_audits),
        ("/api/v2/tickets/show_many", tickets_show_many),
        ("/api/v2/users/show_many", users_show_many),
        ("/api/v2/groups", groups),
        ("/api/v2/search/export", search_export),
    ]
    for path, handler in api_routes:
        wrapped = _api(handler)
        app.router.add_get(path, wrapped)
        app.router.add_get(f"{path}.json", wrapped)
    app.router.add_route("*", "/_fake/clock", fake_clock)
    app.router.add_post("/_fake/limits", fake_limits)
    app.router.add_post("/_fake/fail", fake_fail)
    app.router.add_post("/_fake/tickets", fake_create)
    app.router.add_post(r"/_fake/tickets/{ticket_id:\d+}/reply", fake_reply)
    app.router.add_post(r"/_fake/tickets/{ticket_id:\d+}/update", fake_update)
    app.router.add_post(r"/_fake/tickets/{ticket_id:\d+}/sla", fake_sla)
    app.router.add_post(r"/_fake/tickets/{ticket_id:\d+}/delete", fake_delete)
    app.router.add_post(r"/_fake/tickets/{ticket_id:\d+}/purge", fake_purge)
    app.router.add_post(r"/_fake/tickets/{ticket_id:\d+}/merge", fake_merge)
    app.router.add_post(r"/_fake/tickets/{ticket_id:\d+}/touch", fake_touch)
    app.router.add_post(r"/_fake/tickets/{ticket_id:\d+}/output", fake_output)
    app.router.add_post("/_fake/inject", fake_inject)
    app.router.add_post("/_fake/bulk", fake_bulk)
    app.router.add_get("/_fake/state", fake_state)
    return app
