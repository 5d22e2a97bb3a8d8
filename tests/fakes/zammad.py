"""A fake Zammad (REST API v1) for the connector's tests and benchmarks.

API routes, as Zammad answers them (token auth: ``Authorization: Token token=<TOKEN>``; a
missing credential is a 403 ``Authentication required``, a wrong token a 401):

* ``GET /api/v1/tickets/search?query=&sort_by=&order_by=&page=&per_page=&expand=true`` — an
  array of tickets; ``per_page`` (alias ``limit``) defaults to 50, at most 200; no total, no
  next link. The query understands what the connector sends, in Elasticsearch query_string
  syntax joined by ``AND``: ``updated_at:>=2024-05-01T10\\:00\\:00.000Z`` (also ``>``, ``<``,
  ``<=`` and ``created_at``), ``state.state_type_id:(1 OR 2)``, ``state.name:(...)``,
  ``group.name:("A" OR "B")``, ``id:(1 OR 2)``; anything else is a 422.
* ``GET /api/v1/tickets/{id}?expand=true``, ``GET /api/v1/tickets?page=&per_page=``.
* ``GET /api/v1/ticket_articles/by_ticket/{id}``, ``GET /api/v1/ticket_history/{id}``.
* ``GET /api/v1/ticket_states``, ``GET /api/v1/ticket_priorities``, ``GET /api/v1/users/{id}``.

Owners are users: id 1 is Zammad's ``-`` (nobody); an agent named by email gets a user with
that email and the email's local part as login. A ticket shows ``owner_id`` (and the owner's
login as ``owner`` when expanded); an owner change is a history entry ``owner`` with the names
in ``value_from``/``value_to`` and the user ids in ``id_from``/``id_to``, and the history
answer brings the users its entries name in ``assets.User``.

Timestamps are ``2024-05-01T10:00:00.123Z``. Zammad sends no rate-limit headers; a reverse
proxy in front of it may (``/_fake/proxy_limit``).

Scenario endpoints (POST, JSON; each answers the ticket, article or a summary):

* ``tickets`` ``{title, group, owner, state, priority, customer, organization, type, sender,
  internal, article}`` creates a ticket, by default with a customer email as first article;
* ``articles`` ``{ticket_id, sender, type, internal}`` adds an article (a public customer
  article reopens a pending or closed ticket, as Zammad's follow-up handling does);
* ``update`` ``{ticket_id, state, priority, group, owner, state_type_id}`` (a new state name
  is created on the fly, of ``state_type_id`` — open unless given; ``owner: null`` unassigns);
* ``merge`` ``{ticket_id, into}``; ``delete`` ``{ticket_id}`` (gone for good, 404 afterwards);
* ``deadlines`` ``{ticket_id, first_response, update, close}`` (ISO or null) sets the
  ``*_escalation_at`` fields;
* ``raw`` ``{ticket_id | article_id, fields: {name: value | "__drop__"}}`` rewrites what the
  API shows (odd timestamps, nulls, missing or broken fields);
* ``index`` ``{ticket_id, visible}`` hides a ticket from search (index lag / a lost update);
* ``clock`` ``{advance: seconds}`` moves the helpdesk's clock forward;
* ``fail_search`` ``{after, status, count}``: after ``after`` good searches, ``count`` fail;
* ``proxy_limit`` ``{limit, window}``: X-RateLimit-* headers and 429 + Retry-After beyond;
* ``bulk`` ``{tickets: N, seed: S}`` creates N tickets with a few articles each, quickly.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from tests.fakes.base import Handler, base_app, json_body

TOKEN = "fake-token"
NOBODY = 1  # Zammad's "-" user: an unassigned ticket's owner
DROP = "__drop__"
MAX_PER_PAGE = 200

STATE_TYPES = {  # seeded state -> (state id, state type id)
    "new": (1, 1),
    "open": (2, 2),
    "pending reminder": (3, 3),
    "closed": (4, 5),
    "merged": (5, 6),
    "removed": (6, 7),
    "pending close": (7, 4),
}
PRIORITIES = {"1 low": 1, "2 normal": 2, "3 high": 3}
SENDERS = {"Agent": 1, "Customer": 2, "System": 3}
ARTICLE_TYPES = {
    "email": 1,
    "sms": 2,
    "chat": 3,
    "fax": 4,
    "phone": 5,
    "twitter status": 6,
    "twitter direct-message": 7,
    "facebook feed post": 8,
    "facebook feed comment": 9,
    "note": 10,
    "web": 11,
    "telegram personal-message": 12,
    "facebook direct-message": 13,
    "whatsapp message": 14,
}
PENDING_OR_CLOSED_TYPES = {3, 4, 5}
CLOSED_TYPES = {5, 6, 7}
ESCALATIONS = ("first_response_escalation_at", "update_escalation_at", "close_escalation_at")


def stamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class Ticket:
    id: int
    title: str
    group: str
    state: str
    priority: str
    customer: str
    owner_id: int
    organization: str | None
    created_at: datetime
    updated_at: datetime
    create_article_type: str | None = None
    create_article_sender: str | None = None
    article_count: int = 0
    first_response_at: datetime | None = None
    close_at: datetime | None = None
    last_close_at: datetime | None = None
    escalations: dict[str, datetime | None] = field(
        default_factory=lambda: dict.fromkeys(ESCALATIONS)
    )
    indexed: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class Article:
    id: int
    ticket_id: int
    type: str
    sender: str
    internal: bool
    created_at: datetime
    body: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class HistoryEntry:
    id: int
    o_id: int
    object: str
    type: str
    created_at: datetime
    attribute: str | None = None
    value_from: str | None = None
    value_to: str | None = None
    related_o_id: int | None = None
    ids: tuple[int, int] | None = None  # owner changes: the user ids from and to


@dataclass
class ProxyLimit:
    limit: int
    window: float
    started: float = 0.0
    used: int = 0


class FakeZammad:
    """The helpdesk's data and the operations the scenario endpoints drive."""

    def __init__(self) -> None:
        self.tickets: dict[int, Ticket] = {}
        self.articles: dict[int, list[Article]] = {}
        self.history: dict[int, list[HistoryEntry]] = {}
        self.states: dict[str, tuple[int, int]] = dict(STATE_TYPES)
        self.priorities: dict[str, int] = dict(PRIORITIES)
        self.groups: dict[str, int] = {"Users": 1}
        self.users: dict[int, dict[str, Any]] = {
            NOBODY: {"id": NOBODY, "login": "-", "email": "", "firstname": "-", "lastname": ""}
        }
        self.offset = timedelta(0)
        self._last = datetime.now(UTC)
        self._ids = {"ticket": 0, "article": 0, "history": 0}
        self.searches_before_failure: int | None = None
        self.search_failure_status = 500
        self.search_failures = 0
        self.proxy: ProxyLimit | None = None

    # ------------------------------------------------------------------ time and ids

    def now(self) -> datetime:
        """The helpdesk's clock; every change gets its own millisecond."""
        moment = datetime.now(UTC) + self.offset
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        if moment <= self._last:
            moment = self._last + timedelta(milliseconds=1)
        self._last = moment
        return moment

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    # ------------------------------------------------------------------ operations

    def user_id(self, email: str | None) -> int:
        """The agent with this email (created on first mention); nobody for None."""
        if not email:
            return NOBODY
        for user in self.users.values():
            if user["email"].lower() == email.lower():
                return int(user["id"])
        user_id = len(self.users) + 1
        local = email.split("@")[0]
        self.users[user_id] = {
            "id": user_id,
            "login": local.lower(),
            "email": email,
            "firstname": local.title(),
            "lastname": "Agent",
        }
        return user_id

    def full_name(self, user_id: int) -> str:
        user = self.users[user_id]
        return f"{user['firstname']} {user['lastname']}".strip()

    def create_ticket(self, spec: dict[str, Any], at: datetime | None = None) -> Ticket:
        at = at or self.now()
        ticket = Ticket(
            id=self._next("ticket"),
            title=str(spec.get("title", "Help needed")),
            group=str(spec.get("group", "Users")),
            state=str(spec.get("state", "new")),
            priority=str(spec.get("priority", "2 normal")),
            customer=str(spec.get("customer", "customer@example.com")),
            owner_id=self.user_id(spec.get("owner")),
            organization=spec.get("organization"),
            created_at=at,
            updated_at=at,
        )
        self._known_state(ticket.state, 2)
        self.groups.setdefault(ticket.group, len(self.groups) + 1)
        self.priorities.setdefault(ticket.priority, len(self.priorities) + 1)
        self.tickets[ticket.id] = ticket
        self.articles[ticket.id] = []
        self.history[ticket.id] = []
        self._log(ticket.id, "Ticket", "created", at, o_id=ticket.id)
        if spec.get("article", True):
            self.add_article(
                ticket.id,
                sender=str(spec.get("sender", "Customer")),
                type_=str(spec.get("type", "email")),
                internal=bool(spec.get("internal", False)),
                at=at + timedelta(milliseconds=1),
            )
        return ticket

    def add_article(
        self,
        ticket_id: int,
        *,
        sender: str,
        type_: str,
        internal: bool,
        at: datetime | None = None,
        body: str = "...",
    ) -> Article:
        ticket = self.tickets[ticket_id]
        at = at or self.now()
        article = Article(self._next("article"), ticket_id, type_, sender, internal, at, body)
        self.articles[ticket_id].append(article)
        self._log(ticket_id, "Ticket::Article", "created", at, o_id=article.id)
        if sender != "System":
            ticket.article_count += 1
        if len(self.articles[ticket_id]) == 1:
            ticket.create_article_type, ticket.create_article_sender = type_, sender
        public = not internal
        communication = type_ != "note"
        if sender == "Agent" and public and communication and ticket.first_response_at is None:
            ticket.first_response_at = at
            ticket.escalations["first_response_escalation_at"] = None
        if (
            sender == "Customer"
            and public
            and self.state_type(ticket.state) in (PENDING_OR_CLOSED_TYPES)
        ):
            self._set(ticket, "state", "open", at)
        ticket.updated_at = at
        return article

    def update(self, ticket_id: int, changes: dict[str, Any], at: datetime | None = None) -> Ticket:
        ticket = self.tickets[ticket_id]
        at = at or self.now()
        if "state" in changes:
            self._known_state(str(changes["state"]), int(changes.get("state_type_id", 2)))
        for attribute in ("state", "priority", "group"):
            if attribute in changes and changes[attribute] != getattr(ticket, attribute):
                self._set(ticket, attribute, str(changes[attribute]), at)
        if "owner" in changes:
            owner = self.user_id(changes["owner"])
            if owner != ticket.owner_id:
                names = self.full_name(ticket.owner_id), self.full_name(owner)
                self._log(ticket.id, "Ticket", "updated", at, "owner", *names, o_id=ticket.id)
                self.history[ticket.id][-1].ids = (ticket.owner_id, owner)
                ticket.owner_id = owner
        if "title" in changes:
            ticket.title = str(changes["title"])
        ticket.updated_at = at
        return ticket

    def merge(self, ticket_id: int, into: int) -> Ticket:
        source, target = self.tickets[ticket_id], self.tickets[into]
        at = self.now()
        moved = self.articles[ticket_id]
        self.articles[ticket_id] = []
        for article in moved:
            article.ticket_id = into
        self.articles[into].extend(moved)
        target.article_count += sum(1 for a in moved if a.sender != "System")
        target.updated_at = at
        source.article_count = 0
        self._set(source, "state", "merged", at)
        self._log(ticket_id, "Ticket", "merged_into", at, o_id=ticket_id, related_o_id=into)
        source.updated_at = at
        return source

    def delete(self, ticket_id: int) -> None:
        del self.tickets[ticket_id]
        del self.articles[ticket_id]
        del self.history[ticket_id]

    def set_deadlines(self, ticket_id: int, values: dict[str, Any]) -> Ticket:
        ticket = self.tickets[ticket_id]
        names = {
            "first_response": "first_response_escalation_at",
            "update": "update_escalation_at",
            "close": "close_escalation_at",
        }
        for key, name in names.items():
            if key in values:
                value = values[key]
                ticket.escalations[name] = parse_stamp(value) if value else None
        ticket.updated_at = self.now()
        return ticket

    def state_type(self, state: str) -> int:
        return self.states.get(state, (0, 2))[1]

    def _known_state(self, state: str, state_type_id: int) -> None:
        if state not in self.states:
            self.states[state] = (100 + len(self.states), state_type_id)

    def _set(self, ticket: Ticket, attribute: str, value: str, at: datetime) -> None:
        old = getattr(ticket, attribute)
        setattr(ticket, attribute, value)
        self._log(ticket.id, "Ticket", "updated", at, attribute, old, value, o_id=ticket.id)
        if attribute == "group":
            self.groups.setdefault(value, len(self.groups) + 1)
        if attribute == "priority":
            self.priorities.setdefault(value, len(self.priorities) + 1)
        if attribute == "state":
            kind = self.state_type(value)
            if kind in CLOSED_TYPES:
                ticket.close_at = ticket.close_at or at
                ticket.last_close_at = at
            if kind in PENDING_OR_CLOSED_TYPES:
                ticket.escalations = dict.fromkeys(ESCALATIONS)

    def _log(
        self,
        ticket_id: int,
        object_: str,
        type_: str,
        at: datetime,
        attribute: str | None = None,
        value_from: str | None = None,
        value_to: str | None = None,
        *,
        o_id: int,
        related_o_id: int | None = None,
    ) -> None:
        entry = HistoryEntry(
            self._next("history"),
            o_id,
            object_,
            type_,
            at,
            attribute,
            value_from,
            value_to,
            ticket_id if object_ != "Ticket" else related_o_id,
        )
        self.history[ticket_id].append(entry)

    def bulk(self, count: int, seed: int) -> int:
        """``count`` tickets with a customer email, often an agent reply and a state change,
        sometimes an internal note; groups and priorities drawn at random. Into an empty
        helpdesk they arrive with a history spread over the past hours; otherwise they are
        new: every change is stamped now, as a real helpdesk would."""
        rng = random.Random(seed)
        backdated = not self.tickets
        origin = self.now() - timedelta(seconds=count * 2 + 4000)
        groups = ["Users", "Support", "Sales"]
        for name in groups:
            self.groups.setdefault(name, len(self.groups) + 1)

        def later(moment: datetime, seconds: float) -> datetime:
            return moment + timedelta(seconds=seconds) if backdated else self.now()

        for i in range(count):
            spec = {
                "title": f"Bulk ticket {i}",
                "group": rng.choice(groups),
                "priority": rng.choice(["1 low", "2 normal", "2 normal", "3 high"]),
                "customer": f"customer{i % 500}@example.com",
                "owner": f"agent{i % 3}@example.com",
            }
            moment = later(origin, i * 2)
            ticket = self.create_ticket(spec, at=moment)
            moment = ticket.updated_at
            if rng.random() < 0.3:
                moment = later(moment, rng.randint(10, 600))
                self.add_article(ticket.id, sender="Agent", type_="note", internal=True, at=moment)
            if rng.random() < 0.6:
                moment = later(moment, rng.randint(60, 3000))
                self.add_article(
                    ticket.id, sender="Agent", type_="email", internal=False, at=moment
                )
                moment = later(moment, 0.001)
                self._set(ticket, "state", "open", moment)
                ticket.updated_at = moment
            roll = rng.random()
            final = "closed" if roll < 0.2 else "pending reminder" if roll < 0.3 else None
            if final is not None:
                moment = later(moment, rng.randint(10, 300))
                self._set(ticket, "state", final, moment)
                ticket.updated_at = moment
        return count

    # ------------------------------------------------------------------ search

    def search(self, query: str) -> list[Ticket]:
        tests = [_term(part.strip(), self) for part in re.split(r"\s+AND\s+", query.strip())]
        return [t for t in self.tickets.values() if t.indexed and all(test(t) for test in tests)]

    # ------------------------------------------------------------------ JSON

    def ticket_json(self, ticket: Ticket, expand: bool) -> dict[str, Any]:
        state_id, _ = self.states.get(ticket.state, (0, 2))
        escalations = [e for e in ticket.escalations.values() if e is not None]
        data: dict[str, Any] = {
            "id": ticket.id,
            "group_id": self.groups.get(ticket.group),
            "priority_id": self.priorities.get(ticket.priority),
            "state_id": state_id,
            "organization_id": 1 if ticket.organization else None,
            "number": str(31000 + ticket.id),
            "title": ticket.title,
            "owner_id": ticket.owner_id,
            "customer_id": 2,
            "note": None,
            "first_response_at": stamp(ticket.first_response_at),
            "first_response_escalation_at": stamp(
                ticket.escalations["first_response_escalation_at"]
            ),
            "first_response_in_min": None,
            "first_response_diff_in_min": None,
            "close_at": stamp(ticket.close_at),
            "close_escalation_at": stamp(ticket.escalations["close_escalation_at"]),
            "close_in_min": None,
            "close_diff_in_min": None,
            "update_escalation_at": stamp(ticket.escalations["update_escalation_at"]),
            "update_in_min": None,
            "update_diff_in_min": None,
            "last_close_at": stamp(ticket.last_close_at),
            "last_contact_at": stamp(ticket.updated_at),
            "create_article_type_id": ARTICLE_TYPES.get(ticket.create_article_type or ""),
            "create_article_sender_id": SENDERS.get(ticket.create_article_sender or ""),
            "article_count": ticket.article_count,
            "escalation_at": stamp(min(escalations)) if escalations else None,
            "pending_time": None,
            "type": None,
            "time_unit": None,
            "preferences": {},
            "updated_by_id": 1,
            "created_by_id": 1,
            "created_at": stamp(ticket.created_at),
            "updated_at": stamp(ticket.updated_at),
        }
        if expand:
            data.update(
                group=ticket.group,
                state=ticket.state,
                priority=ticket.priority,
                owner=self.users[ticket.owner_id]["login"],
                customer=ticket.customer,
                organization=ticket.organization,
                create_article_type=ticket.create_article_type,
                create_article_sender=ticket.create_article_sender,
                created_by="-",
                updated_by="-",
            )
        return _overridden(data, ticket.overrides)

    def article_json(self, article: Article) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": article.id,
            "ticket_id": article.ticket_id,
            "type_id": ARTICLE_TYPES.get(article.type),
            "sender_id": SENDERS.get(article.sender),
            "from": "customer@example.com" if article.sender == "Customer" else "agent",
            "to": None,
            "cc": None,
            "subject": None,
            "reply_to": None,
            "message_id": None,
            "content_type": "text/plain",
            "body": article.body,
            "internal": article.internal,
            "preferences": {},
            "updated_by_id": 1,
            "created_by_id": 1,
            "origin_by_id": None,
            "attachments": [],
            "created_at": stamp(article.created_at),
            "updated_at": stamp(article.created_at),
            "type": article.type,
            "sender": article.sender,
            "created_by": "-",
            "updated_by": "-",
        }
        return _overridden(data, article.overrides)

    def history_json(self, entry: HistoryEntry) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": entry.id,
            "o_id": entry.o_id,
            "object": entry.object,
            "type": entry.type,
            "created_at": stamp(entry.created_at),
            "created_by_id": 1,
        }
        if entry.attribute is not None:
            data["attribute"] = entry.attribute
            data["value_from"] = entry.value_from
            data["value_to"] = entry.value_to
        if entry.ids is not None:
            data["id_from"], data["id_to"] = entry.ids
        if entry.related_o_id is not None:
            data["related_o_id"] = entry.related_o_id
            data["related_object"] = "Ticket"
        return data


def _overridden(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if value == DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return data


# ---------------------------------------------------------------------- query terms

_RANGE = re.compile(r"^(updated_at|created_at):(>=|<=|>|<)(.+)$")
_LIST = re.compile(r"^(state\.state_type_id|state\.name|group\.name|id):(?:\((.+)\)|(.+))$")


def _term(text: str, desk: FakeZammad) -> Any:
    match = _RANGE.match(text)
    if match:
        name, op, raw = match.groups()
        bound = parse_stamp(raw.replace("\\:", ":").strip('"'))

        def in_range(t: Ticket) -> bool:
            value: datetime = getattr(t, name)
            return {
                ">=": value >= bound,
                ">": value > bound,
                "<=": value <= bound,
                "<": value < bound,
            }[op]

        return in_range
    match = _LIST.match(text)
    if match:
        name = match.group(1)
        body = match.group(2) or match.group(3)
        values = [_unquote(v) for v in re.split(r"\s+OR\s+", body.strip())]
        if name == "state.state_type_id":
            wanted = {int(v) for v in values}
            return lambda t: desk.state_type(t.state) in wanted
        if name == "id":
            ids = {int(v) for v in values}
            return lambda t: t.id in ids
        lowered = {v.lower() for v in values}
        attribute = "state" if name == "state.name" else "group"
        return lambda t: getattr(t, attribute).lower() in lowered
    raise ValueError(f"unsupported query term {text!r}")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


# ---------------------------------------------------------------------- HTTP

DESK = web.AppKey("zammad", FakeZammad)


def _authorized(request: web.Request) -> web.Response | None:
    header = request.headers.get("Authorization", "")
    match = re.match(r'^(?:Token\s+token="?([^"\s]+)"?|Bearer\s+(\S+))$', header.strip())
    if not header:
        error = "Authentication required"
        return json_body({"error": error, "error_human": error}, status=403)
    token = (match.group(1) or match.group(2)) if match else None
    if token != TOKEN:
        error = "Can't find User for Token"
        return json_body({"error": error, "error_human": error}, status=401)
    return None


def _not_found(kind: str, ident: object) -> web.Response:
    error = f"Couldn't find {kind} with 'id'={ident}"
    return json_body({"error": error, "error_human": error}, status=404)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _expand(request: web.Request) -> bool:
    return request.query.get("expand", "").lower() in ("true", "1")


async def search(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    if desk.searches_before_failure is not None:
        if desk.searches_before_failure > 0:
            desk.searches_before_failure -= 1
        elif desk.search_failures > 0:
            desk.search_failures -= 1
            status = desk.search_failure_status
            return json_body({"error": f"search failed ({status})"}, status=status)
    query = request.query.get("query", "")
    if not query.strip():
        return json_body([])
    try:
        found = desk.search(query)
    except ValueError as exc:
        return json_body({"error": str(exc), "error_human": str(exc)}, status=422)
    sort_by = request.query.get("sort_by", "updated_at")
    if sort_by not in ("updated_at", "created_at", "id"):
        return json_body({"error": f"cannot sort by {sort_by}"}, status=422)
    descending = request.query.get("order_by", "desc").lower() == "desc"
    found.sort(key=lambda t: (getattr(t, sort_by), t.id), reverse=descending)
    per_page = _int(request.query.get("per_page") or request.query.get("limit"), 50)
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    page = max(1, _int(request.query.get("page"), 1))
    chosen = found[(page - 1) * per_page : page * per_page]
    expand = _expand(request)
    return json_body([desk.ticket_json(t, expand) for t in chosen])


async def list_tickets(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    per_page = max(1, min(_int(request.query.get("per_page"), 100), 100))
    page = max(1, _int(request.query.get("page"), 1))
    ordered = sorted(desk.tickets.values(), key=lambda t: t.id)
    chosen = ordered[(page - 1) * per_page : page * per_page]
    return json_body([desk.ticket_json(t, _expand(request)) for t in chosen])


async def show_ticket(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    ticket = desk.tickets.get(_int(request.match_info["id"], -1))
    if ticket is None:
        return _not_found("Ticket", request.match_info["id"])
    return json_body(desk.ticket_json(ticket, _expand(request)))


async def articles_by_ticket(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    ticket_id = _int(request.match_info["id"], -1)
    if ticket_id not in desk.tickets:
        return _not_found("Ticket", request.match_info["id"])
    articles = sorted(desk.articles[ticket_id], key=lambda a: (a.created_at, a.id))
    return json_body([desk.article_json(a) for a in articles])


async def ticket_history(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    ticket_id = _int(request.match_info["id"], -1)
    if ticket_id not in desk.tickets:
        return _not_found("Ticket", request.match_info["id"])
    entries = sorted(desk.history[ticket_id], key=lambda h: (h.created_at, h.id))
    named = {i for h in entries if h.ids is not None for i in h.ids}
    users = {str(i): desk.users[i] for i in sorted(named)}
    assets = {"User": users} if users else {}
    return json_body({"history": [desk.history_json(h) for h in entries], "assets": assets})


async def show_user(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    user = desk.users.get(_int(request.match_info["id"], -1))
    if user is None:
        return _not_found("User", request.match_info["id"])
    return json_body(user)


async def ticket_states(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    return json_body(
        [
            {"id": state_id, "name": name, "state_type_id": type_id, "active": True}
            for name, (state_id, type_id) in desk.states.items()
        ]
    )


async def ticket_priorities(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    return json_body(
        [{"id": pid, "name": name, "active": True} for name, pid in desk.priorities.items()]
    )


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Auth, the helpdesk's Date header, and the optional reverse-proxy rate limit (and a 404
    for scenario calls about tickets that do not exist)."""
    if not request.path.startswith("/api/"):
        try:
            return await handler(request)
        except KeyError as missing:
            return json_body({"error": f"no such record: {missing}"}, status=404)
    desk = request.app[DESK]
    limit_headers: dict[str, str] = {}
    if desk.proxy is not None:
        proxy = desk.proxy
        clock = time.monotonic()
        if clock - proxy.started >= proxy.window:
            proxy.started, proxy.used = clock, 0
        reset = max(1, round(proxy.window - (clock - proxy.started)))
        if proxy.used >= proxy.limit:
            return json_body(
                {"error": "rate limited"},
                status=429,
                headers={"Retry-After": str(reset), "X-RateLimit-Limit": str(proxy.limit)},
            )
        proxy.used += 1
        limit_headers = {
            "X-RateLimit-Limit": str(proxy.limit),
            "X-RateLimit-Remaining": str(proxy.limit - proxy.used),
            "X-RateLimit-Reset": str(reset),
        }
    denied = _authorized(request)
    response = denied if denied is not None else await handler(request)
    response.headers.update(limit_headers)
    response.headers["Date"] = format_datetime(datetime.now(UTC) + desk.offset, usegmt=True)
    return response


# ---------------------------------------------------------------------- scenario endpoints


async def _body(request: web.Request) -> dict[str, Any]:
    data = await request.json()
    return data if isinstance(data, dict) else {}


async def fake_tickets(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    ticket = desk.create_ticket(await _body(request))
    return json_body(desk.ticket_json(ticket, True))


async def fake_articles(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    article = desk.add_article(
        int(body["ticket_id"]),
        sender=str(body.get("sender", "Agent")),
        type_=str(body.get("type", "email")),
        internal=bool(body.get("internal", False)),
    )
    return json_body(desk.article_json(article))


async def fake_update(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    ticket = desk.update(int(body["ticket_id"]), body)
    return json_body(desk.ticket_json(ticket, True))


async def fake_merge(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    ticket = desk.merge(int(body["ticket_id"]), int(body["into"]))
    return json_body(desk.ticket_json(ticket, True))


async def fake_delete(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    desk.delete(int(body["ticket_id"]))
    return json_body({"deleted": int(body["ticket_id"])})


async def fake_deadlines(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    ticket = desk.set_deadlines(int(body["ticket_id"]), body)
    return json_body(desk.ticket_json(ticket, True))


async def fake_raw(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    fields = dict(body.get("fields", {}))
    if "article_id" in body:
        wanted = int(body["article_id"])
        for articles in desk.articles.values():
            for article in articles:
                if article.id == wanted:
                    article.overrides.update(fields)
                    return json_body(desk.article_json(article))
        return _not_found("Ticket::Article", wanted)
    ticket = desk.tickets[int(body["ticket_id"])]
    ticket.overrides.update(fields)
    return json_body(desk.ticket_json(ticket, True))


async def fake_index(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    ticket = desk.tickets[int(body["ticket_id"])]
    ticket.indexed = bool(body.get("visible", True))
    return json_body({"ticket_id": ticket.id, "visible": ticket.indexed})


async def fake_clock(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    desk.offset += timedelta(seconds=float(body.get("advance", 0)))
    return json_body({"now": stamp(datetime.now(UTC) + desk.offset)})


async def fake_fail_search(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    desk.searches_before_failure = int(body.get("after", 0))
    desk.search_failure_status = int(body.get("status", 500))
    desk.search_failures = int(body.get("count", 1))
    return json_body({"after": desk.searches_before_failure, "count": desk.search_failures})


async def fake_proxy_limit(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    limit = body.get("limit")
    desk.proxy = None if limit is None else ProxyLimit(int(limit), float(body.get("window", 60)))
    return json_body({"limit": limit})


async def fake_bulk(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _body(request)
    started = time.monotonic()
    created = desk.bulk(int(body.get("tickets", 100)), int(body.get("seed", 1)))
    return json_body({"created": created, "seconds": round(time.monotonic() - started, 3)})


def make_app() -> web.Application:
    app = base_app()
    app[DESK] = FakeZammad()
    app.middlewares.append(api_middleware)
    app.router.add_get("/api/v1/tickets/search", search)
    app.router.add_get("/api/v1/tickets", list_tickets)
    app.router.add_get("/api/v1/tickets/{id}", show_ticket)
    app.router.add_get("/api/v1/ticket_articles/by_ticket/{id}", articles_by_ticket)
    app.router.add_get("/api/v1/ticket_history/{id}", ticket_history)
    app.router.add_get("/api/v1/ticket_states", ticket_states)
    app.router.add_get("/api/v1/ticket_priorities", ticket_priorities)
    app.router.add_get("/api/v1/users/{id}", show_user)
    for name, handler in (
        ("tickets", fake_tickets),
        ("articles", fake_articles),
        ("update", fake_update),
        ("merge", fake_merge),
        ("delete", fake_delete),
        ("deadlines", fake_deadlines),
        ("raw", fake_raw),
        ("index", fake_index),
        ("clock", fake_clock),
        ("fail_search", fake_fail_search),
        ("proxy_limit", fake_proxy_limit),
        ("bulk", fake_bulk),
    ):
        app.router.add_post(f"/_fake/{name}", handler)
    return app
