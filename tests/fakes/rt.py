"""A fake Request Tracker 5 REST2 server, shaped like RT 5.0.3 (Debian 12's package).

API (under ``/REST/2.0``; ``Authorization: token <token>``, ``?token=``, or HTTP Basic;
anything else gets RT's ``401 {"message":"Unauthorized"}``):

* ``GET /tickets?query=<TicketSQL>`` and ``GET /transactions?query=<TransactionSQL>``: AND,
  OR, parentheses and ``= != > >= < <= LIKE`` on the fields the connector uses; dates are
  UTC literals, ``=`` on a date means that whole day; ``Status = '__Active__'`` /
  ``'__Inactive__'``; deleted and merged tickets are never found; an unknown field is a
  400 ``{"message": "Unknown field: ..."}``. ``orderby``/``order`` pairs, ``per_page``
  (default 20, at most 100), ``page`` (a page past the end comes back empty, as in 5.0.3),
  ``fields`` with ``fields[Queue]=Name`` style expansions, and the collection envelope
  ``{count, page, per_page, total, pages, next_page, prev_page, items}``.
* ``GET /ticket/{id}`` (a merged ticket answers with the one it was merged into),
  ``GET /ticket/{id}/history`` (paged transactions), ``GET /queues/all``, ``GET /user/{id}``
  (by number or name: ``{id, Name, EmailAddress, ...}``). As in RT, users have numbers
  (``RT_System`` 1, ``Nobody`` 6) and owner changes record them: ``Set`` (or ``Give``,
  ``Take``, ``Untake``) of ``Owner`` with the old and new owner's number.

Scenario endpoints (``/_fake/...``, JSON bodies; ``by`` is "agent", "customer" (the first
requestor) or a user name):

* ``POST /_fake/tickets`` ``{subject, queue, requestor, by, owner, priority, status, sla,
  due, channel, custom_fields}`` -> ``{"id": n}`` (``due`` also records RT's ``Set Due``);
* ``POST /_fake/tickets/{id}/correspond`` ``{by, status}`` (an agent's reply opens a new
  ticket, a requestor's reopens a resolved one, as RT's scrips do), ``.../comment``,
  ``.../status`` ``{status, by}``, ``.../set`` ``{priority, queue, sla, owner, channel,
  custom_fields}`` (``owner``: a user name or email, ``Nobody`` to unassign; ``owner_by``
  the transaction type, ``Set`` unless given), ``.../due`` ``{due}`` (null unsets),
  ``.../delete``, ``.../merge`` ``{into}``;
* ``POST /_fake/tickets/{id}/raw`` and ``/_fake/transactions/{id}/raw``: replace fields of
  the serialised item (odd formats, nulls, garbage); ``{"_touch": false}`` keeps
  LastUpdated;
* ``POST /_fake/config`` ``{token, user, password, hide_totals, legacy_paging, clamp_pages,
  rate_limit}``: ``hide_totals`` answers like RT for users who may not see every match
  (``total``/``pages`` null; ``next_page`` only when more exists, or never with
  ``legacy_paging`` as before RT 5.0.5); ``clamp_pages`` clamps a page past the end to the
  last one; ``rate_limit`` (requests per minute) adds ``X-RateLimit-*`` headers and 429s,
  as a proxy in front of RT would (RT itself sends none);
* ``POST /_fake/bulk`` ``{"tickets": N, "seed": S, "resolved_share": 0.2}``: N tickets
  with a few replies each, their histories spread over the past days, all with the load
  time as LastUpdated (as an import stamps them).

Every scenario call takes ``at`` (default now): a past time imitates a change whose
timestamp lags behind, as with a database replica. ``POST /_fake/config {"fail": {"path":
"/REST/2.0/tickets", "page": 2, "status": 500, "count": 9}}`` fails that many requests for
that page of that path.
"""

from __future__ import annotations

import base64
import math
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.base import base_app, json_body

API = "/REST/2.0"
UNSET = "1970-01-01T00:00:00Z"
ACTIVE = frozenset({"new", "open", "stalled"})
INACTIVE = frozenset({"resolved", "rejected", "deleted"})
AGENT = "agent"
SYSTEM = "RT_System"
NOBODY = "Nobody"
TOKEN = "fake-token"  # the auth token the fake accepts (also root/password over Basic auth)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _w3c(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ") if at else UNSET


def _sql(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "1970-01-01 00:00:00"


def _parse_time(text: str) -> datetime:
    value = text.strip().replace("T", " ").rstrip("Z")
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise QueryError(f"Couldn't parse date '{text}'")


# ---------------------------------------------------------------------------- model


@dataclass(slots=True)
class Txn:
    id: int
    ticket: int
    type: str
    creator: str
    created: datetime
    field: str = ""
    old: str = ""
    new: str = ""
    raw: dict[str, Any] | None = None


@dataclass(slots=True)
class Ticket:
    id: int
    subject: str
    status: str
    queue: int
    requestors: list[str]
    creator: str
    created: datetime
    last_updated: datetime
    priority: int = 0
    owner: str = "Nobody"
    sla: str = ""
    due: datetime | None = None
    told: datetime | None = None
    custom_fields: dict[str, str] = field(default_factory=dict)
    effective_id: int = 0
    raw: dict[str, Any] | None = None

    @property
    def searchable(self) -> bool:
        return self.status != "deleted" and self.effective_id == self.id


@dataclass
class Settings:
    token: str = TOKEN
    user: str = "root"
    password: str = "password"
    hide_totals: bool = False
    legacy_paging: bool = False
    clamp_pages: bool = False
    rate_limit: int = 0
    fail: dict[str, Any] | None = None  # {"path": ..., "page": n, "status": 500, "count": n}


class Desk:
    """The fake RT's data."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.tickets: dict[int, Ticket] = {}
        self.txns: dict[int, Txn] = {}
        self.by_ticket: dict[int, list[Txn]] = {}
        self.queues: dict[int, str] = {1: "General"}
        self.custom_field_ids: dict[str, int] = {}
        self.users: dict[str, str] = {AGENT: "agent@example.com", "root": "root@localhost"}
        self.user_ids: dict[str, int] = {SYSTEM: 1, NOBODY: 6, "root": 14, AGENT: 15}
        self.next_ticket = 1
        self.next_txn = 1
        self.version = 0
        self.cache: dict[tuple[object, ...], list[int]] = {}
        self.window_start = time.monotonic()
        self.window_used = 0

    # -- changes

    def changed(self) -> None:
        self.version += 1
        self.cache.clear()

    def queue_id(self, name: str) -> int:
        for qid, qname in self.queues.items():
            if qname.lower() == name.lower() or str(qid) == name:
                return qid
        qid = max(self.queues) + 1
        self.queues[qid] = name
        return qid

    def user(self, who: str, ticket: Ticket | None = None) -> str:
        if who == "customer" and ticket is not None:
            return ticket.requestors[0] if ticket.requestors else "customer@example.com"
        if who not in self.users and who != NOBODY:
            self.users[who] = who if "@" in who else f"{who}@example.com"
        self.user_ids.setdefault(who, max(self.user_ids.values()) + 1)
        return who

    def record(
        self,
        ticket: Ticket,
        kind: str,
        creator: str,
        at: datetime,
        field_name: str = "",
        old: str = "",
        new: str = "",
    ) -> Txn:
        txn = Txn(self.next_txn, ticket.id, kind, creator, at, field_name, old, new)
        self.next_txn += 1
        self.txns[txn.id] = txn
        self.by_ticket.setdefault(ticket.id, []).append(txn)
        ticket.last_updated = max(ticket.last_updated, at)
        return txn

    def create(self, body: dict[str, Any], at: datetime | None = None) -> Ticket:
        at = at or _now()
        requestor = str(body.get("requestor") or "customer@example.com")
        self.user(requestor)
        creator = self.user(str(body.get("by") or requestor))
        ticket = Ticket(
            id=self.next_ticket,
            subject=str(body.get("subject") or f"ticket {self.next_ticket}"),
            status=str(body.get("status") or "new"),
            queue=self.queue_id(str(body.get("queue") or "General")),
            requestors=[requestor],
            creator=creator,
            created=at,
            last_updated=at,
            priority=int(body.get("priority") or 0),
            sla=str(body.get("sla") or ""),
            owner=self.user(str(body.get("owner") or NOBODY)),
        )
        ticket.effective_id = ticket.id
        if body.get("channel"):
            ticket.custom_fields["Channel"] = str(body["channel"])
        for name, value in dict(body.get("custom_fields") or {}).items():
            ticket.custom_fields[str(name)] = str(value)
        for name in ticket.custom_fields:
            self.custom_field_ids.setdefault(name, len(self.custom_field_ids) + 1)
        self.next_ticket += 1
        self.tickets[ticket.id] = ticket
        self.record(ticket, "Create", creator, at)
        if body.get("due"):
            self.set_due(ticket, _parse_time(str(body["due"])), at)
        self.changed()
        return ticket

    def set_due(self, ticket: Ticket, due: datetime | None, at: datetime | None = None) -> None:
        self.record(ticket, "Set", SYSTEM, at or _now(), "Due", _sql(ticket.due), _sql(due))
        ticket.due = due

    def set_status(self, ticket: Ticket, status: str, by: str, at: datetime | None = None) -> None:
        if status == ticket.status:
            return
        self.record(ticket, "Status", by, at or _now(), "Status", ticket.status, status)
        ticket.status = status

    def correspond(self, ticket: Ticket, by: str, at: datetime | None = None) -> None:
        at = at or _now()
        self.record(ticket, "Correspond", by, at)
        from_requestor = by in ticket.requestors and by != ticket.owner
        if not from_requestor:
            ticket.told = at
            if ticket.status == "new":
                self.set_status(ticket, "open", SYSTEM, at)
        elif ticket.status in ("resolved", "rejected"):
            self.set_status(ticket, "open", SYSTEM, at)

    # -- rate limiting, as a proxy in front of RT would do it

    def rate_headers(self) -> tuple[bool, dict[str, str]]:
        limit = self.settings.rate_limit
        if not limit:
            return True, {}
        elapsed = time.monotonic() - self.window_start
        if elapsed >= 60:
            self.window_start, self.window_used, elapsed = time.monotonic(), 0, 0.0
        reset = str(max(1, math.ceil(60 - elapsed)))
        if self.window_used >= limit:
            return False, {"Retry-After": reset, "X-RateLimit-Limit": str(limit)}
        self.window_used += 1
        return True, {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(limit - self.window_used),
            "X-RateLimit-Reset": reset,
        }


DESK_KEY = web.AppKey("rt_desk", Desk)


# ---------------------------------------------------------------------------- TicketSQL


class QueryError(ValueError):
    pass


_TOKEN = re.compile(
    r"""\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
    r"""|(?P<op>>=|<=|!=|<>|=|>|<)|(?P<num>-?\d+(?![\w:]))|(?P<word>[A-Za-z_][\w.{}:-]*))"""
)

Node = tuple[Any, ...]


def parse_query(text: str) -> Node:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise QueryError(f"Wrong query, expecting a field near '{text[position:]}'")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        position = match.end()
    parser = _Parser(tokens)
    node = parser.expression()
    if parser.position != len(tokens):
        raise QueryError(f"Wrong query near '{tokens[parser.position][1]}'")
    return node


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if not token[0]:
            raise QueryError("Wrong query: it ends too early")
        self.position += 1
        return token

    def keyword(self, word: str) -> bool:
        kind, value = self.peek()
        if kind == "word" and value.upper() == word:
            self.position += 1
            return True
        return False

    def expression(self) -> Node:
        terms = [self.term()]
        while self.keyword("OR"):
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else ("or", terms)

    def term(self) -> Node:
        factors = [self.factor()]
        while self.keyword("AND"):
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else ("and", factors)

    def factor(self) -> Node:
        kind, value = self.take()
        if kind == "lp":
            node = self.expression()
            if self.take()[0] != "rp":
                raise QueryError("Wrong query: missing ')'")
            return node
        if kind != "word":
            raise QueryError(f"Wrong query, expecting a field near '{value}'")
        op_kind, op = self.take()
        if op_kind == "word" and op.upper() in ("LIKE", "NOT"):
            op = "NOT LIKE" if op.upper() == "NOT" and self.keyword("LIKE") else op.upper()
        elif op_kind != "op":
            raise QueryError(f"Wrong query, expecting an operator after '{value}'")
        operand_kind, operand = self.take()
        if operand_kind not in ("str", "num", "word"):
            raise QueryError(f"Wrong query, expecting a value after '{value} {op}'")
        return ("cmp", value, "!=" if op == "<>" else op, operand)


Getter = Callable[[Any], Any]


def compile_query(node: Node, fields: dict[str, tuple[str, Getter]]) -> Callable[[Any], bool]:
    if node[0] in ("and", "or"):
        parts = [compile_query(child, fields) for child in node[1]]
        if node[0] == "and":
            return lambda item: all(p(item) for p in parts)
        return lambda item: any(p(item) for p in parts)
    _, name, op, operand = node
    spec = fields.get(name.lower())
    if spec is None:
        raise QueryError(f"Unknown field: {name}")
    kind, get = spec
    if kind == "int":
        try:
            number = int(operand)
        except ValueError:
            raise QueryError(f"Invalid value '{operand}' for {name}") from None
        return _compare(get, op, number)
    if kind == "date":
        moment = _parse_time(operand)
        if op == "=":
            day = moment.date()
            return lambda item: (v := get(item)) is not None and v.date() == day
        return _compare(get, op, moment)
    if kind == "status":
        wanted = operand.lower()
        group = {"__active__": ACTIVE, "__inactive__": INACTIVE}.get(wanted)

        def matches(item: Any) -> bool:
            status = str(get(item)).lower()
            if group is not None:
                hit = status in group or (group is ACTIVE and status not in INACTIVE)
            else:
                hit = status == wanted
            return hit if op == "=" else not hit

        return matches
    if kind == "list":
        needle = operand.lower()
        return lambda item: (needle in [v.lower() for v in get(item)]) == (op == "=")
    return _compare_text(get, op, operand.lower())


def _compare(get: Getter, op: str, value: Any) -> Callable[[Any], bool]:
    def check(item: Any) -> bool:
        v = get(item)
        if v is None:
            return op == "!="
        if op == "=":
            return bool(v == value)
        if op == "!=":
            return bool(v != value)
        if op == ">":
            return bool(v > value)
        if op == ">=":
            return bool(v >= value)
        if op == "<":
            return bool(v < value)
        if op == "<=":
            return bool(v <= value)
        raise QueryError(f"Invalid operator {op}")

    return check


def _compare_text(get: Getter, op: str, value: str) -> Callable[[Any], bool]:
    def check(item: Any) -> bool:
        v = str(get(item) or "").lower()
        if op == "LIKE":
            return value in v
        if op == "NOT LIKE":
            return value not in v
        if op == "=":
            return v == value
        if op == "!=":
            return v != value
        return _compare(lambda _: v, op, value)(item)

    return check


def required_ids(node: Node, name: str) -> set[int] | None:
    """Ids that every match must have in field ``name`` (for indexed lookups), or None."""
    if node[0] == "cmp":
        if node[1].lower() == name.lower() and node[2] == "=" and node[3].lstrip("-").isdigit():
            return {int(node[3])}
        return None
    found = [required_ids(child, name) for child in node[1]]
    if node[0] == "and":
        known = [s for s in found if s is not None]
        return min(known, key=len) if known else None
    if any(s is None for s in found):
        return None
    return set().union(*(s for s in found if s is not None))


def ticket_fields(desk: Desk) -> dict[str, tuple[str, Getter]]:
    return {
        "id": ("int", lambda t: t.id),
        "effectiveid": ("int", lambda t: t.effective_id),
        "status": ("status", lambda t: t.status),
        "queue": ("text", lambda t: desk.queues.get(t.queue, "")),
        "subject": ("text", lambda t: t.subject),
        "owner": ("text", lambda t: t.owner),
        "priority": ("int", lambda t: t.priority),
        "sla": ("text", lambda t: t.sla),
        "created": ("date", lambda t: t.created),
        "lastupdated": ("date", lambda t: t.last_updated),
        "due": ("date", lambda t: t.due),
        "told": ("date", lambda t: t.told),
        "requestor": ("list", lambda t: t.requestors),
        "requestors": ("list", lambda t: t.requestors),
        "type": ("text", lambda t: "ticket"),
    }


def transaction_fields() -> dict[str, tuple[str, Getter]]:
    return {
        "id": ("int", lambda x: x.id),
        "objectid": ("int", lambda x: x.ticket),
        "ticketid": ("int", lambda x: x.ticket),
        "objecttype": ("text", lambda x: "RT::Ticket"),
        "type": ("text", lambda x: x.type),
        "field": ("text", lambda x: x.field),
        "oldvalue": ("text", lambda x: x.old),
        "newvalue": ("text", lambda x: x.new),
        "creator": ("text", lambda x: x.creator),
        "created": ("date", lambda x: x.created),
    }


# ---------------------------------------------------------------------------- serialising


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}{API}"


def _user(request: web.Request, desk: Desk, name: str, expand: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "user", "id": name, "_url": f"{_base(request)}/user/{name}"}
    for sub in expand:
        if sub == "Name":
            out["Name"] = name
        elif sub == "EmailAddress":
            out["EmailAddress"] = "" if name == "Nobody" else desk.users.get(name, "")
    return out


def ticket_record(
    request: web.Request, desk: Desk, ticket: Ticket, *, in_search: bool
) -> dict[str, Any]:
    def expand(name: str) -> list[str]:
        value = request.query.get(f"fields[{name}]", "")
        return [v for v in value.split(",") if v]

    queue: dict[str, Any] = {
        "type": "queue",
        "id": str(ticket.queue),
        "_url": f"{_base(request)}/queue/{ticket.queue}",
    }
    if "Name" in expand("Queue"):
        queue["Name"] = desk.queues.get(ticket.queue, "")
    custom_fields = [
        {
            "type": "customfield",
            "id": str(desk.custom_field_ids[name]),
            "_url": f"{_base(request)}/customfield/{desk.custom_field_ids[name]}",
            "name": name,
            "values": [value],
        }
        for name, value in ticket.custom_fields.items()
    ]
    effective = {
        "type": "ticket",
        "id": str(ticket.effective_id),
        "_url": f"{_base(request)}/ticket/{ticket.effective_id}",
    }
    record: dict[str, Any] = {
        "type": "ticket",
        "id": str(ticket.id) if in_search else ticket.id,
        "_url": f"{_base(request)}/ticket/{ticket.id}",
        "Type": "ticket",
        "Subject": ticket.subject,
        "Status": ticket.status,
        "Queue": queue,
        "Owner": _user(request, desk, ticket.owner, expand("Owner")),
        "Creator": _user(request, desk, ticket.creator, expand("Creator")),
        "Priority": str(ticket.priority),
        "InitialPriority": "0",
        "FinalPriority": "0",
        "Created": _w3c(ticket.created),
        "LastUpdated": _w3c(ticket.last_updated),
        "Starts": UNSET,
        "Started": UNSET,
        "Resolved": UNSET,
        "Told": _w3c(ticket.told),
        "Due": _w3c(ticket.due),
        "SLA": ticket.sla,
        "Requestor": [_user(request, desk, r, expand("Requestor")) for r in ticket.requestors],
        "Cc": [],
        "AdminCc": [],
        "CustomFields": custom_fields if custom_fields or not in_search else "",
        "EffectiveId": str(ticket.effective_id) if in_search else effective,
    }
    if ticket.raw:
        record.update(ticket.raw)
    return record


def transaction_record(request: web.Request, desk: Desk, txn: Txn) -> dict[str, Any]:
    expand = [v for v in request.query.get("fields[Creator]", "").split(",") if v]
    record: dict[str, Any] = {
        "type": "transaction",
        "id": str(txn.id),
        "_url": f"{_base(request)}/transaction/{txn.id}",
        "Type": txn.type,
        "Creator": _user(request, desk, txn.creator, expand),
        "Created": _w3c(txn.created),
        "Field": txn.field,
        "OldValue": txn.old,
        "NewValue": txn.new,
        "ObjectId": str(txn.ticket),
        "ObjectType": "RT::Ticket",
        "Description": "",
    }
    if txn.raw:
        record.update(txn.raw)
    return record


def _select(record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """A search item: the stub plus the requested fields (RT sends "" for unknown ones)."""
    item: dict[str, Any] = {k: record[k] for k in ("type", "id", "_url") if k in record}
    for name in fields:
        item[name] = record.get(name, "")
    return item


# ---------------------------------------------------------------------------- paging


def _paging(request: web.Request) -> tuple[int, int]:
    per_page_text = request.query.get("per_page", "") or "20"
    per_page = int(per_page_text) if per_page_text.isdigit() else 20
    per_page = 20 if per_page == 0 else min(per_page, 100)
    page_text = request.query.get("page", "") or "1"
    page = int(page_text) if page_text.isdigit() else 1
    return per_page, max(page, 1)


def _page_url(request: web.Request, page: int) -> str:
    pairs = [(k, v) for k, v in request.query.items() if k != "page"]
    pairs.append(("page", str(page)))
    return f"{request.scheme}://{request.host}{request.path}?{urlencode(pairs)}"


def collection(
    request: web.Request,
    desk: Desk,
    matching: list[Any],
    serialize: Callable[[Any], dict[str, Any]],
) -> web.Response:
    per_page, page = _paging(request)
    total = len(matching)
    pages = math.ceil(total / per_page) if total else 0
    if desk.settings.clamp_pages and pages and page > pages:
        page = pages
    chunk = matching[(page - 1) * per_page : page * per_page]
    fields = [f for f in request.query.get("fields", "").split(",") if f]
    items = [_select(serialize(x), fields) if fields else _stub(serialize(x)) for x in chunk]
    body: dict[str, Any] = {
        "count": len(items),
        "page": page,
        "per_page": per_page,
        "items": items,
    }
    if desk.settings.hide_totals:
        body["total"] = None
        body["pages"] = None
        if not desk.settings.legacy_paging and page * per_page < total:
            body["next_page"] = _page_url(request, page + 1)
    else:
        body["total"] = total
        body["pages"] = pages if total else 0.0  # RT 5.0.3 really sends 0.0 here
        if page < pages:
            body["next_page"] = _page_url(request, page + 1)
        if page > 1 and pages:
            body["prev_page"] = _page_url(request, min(page - 1, pages))
    return json_body(body)


def _stub(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("type", "id", "_url") if k in record}


def _order(request: web.Request, allowed: dict[str, Getter]) -> list[tuple[Getter, bool]]:
    orders = request.query.getall("order", [])
    out: list[tuple[Getter, bool]] = []
    for i, name in enumerate(request.query.getall("orderby", [])):
        get = allowed.get(name.lower())
        if get is not None:
            descending = i < len(orders) and orders[i].upper() == "DESC"
            out.append((get, descending))
    return out


def _sorted(items: Iterable[Any], order: list[tuple[Getter, bool]]) -> list[Any]:
    result = list(items)
    for get, descending in reversed(order):
        result.sort(
            key=lambda x: (get(x) is None, get(x) if get(x) is not None else 0), reverse=descending
        )
    return result


# ---------------------------------------------------------------------------- handlers


def _error(status: int, message: str) -> web.Response:
    return json_body({"message": message}, status=status)


def _authorized(request: web.Request, desk: Desk) -> bool:
    header = request.headers.get("Authorization", "")
    token_match = re.match(r"(?i)^token (.*)$", header)
    if token_match:
        return token_match.group(1) == desk.settings.token
    if "token" in request.query:
        return request.query["token"] == desk.settings.token
    basic = re.match(r"(?i)^basic (.*)$", header)
    if basic:
        try:
            user, _, password = base64.b64decode(basic.group(1)).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == desk.settings.user and password == desk.settings.password
    return False


@web.middleware
async def rt_middleware(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    if not request.path.startswith(API):
        response: web.StreamResponse = await handler(request)
        return response
    desk = request.app[DESK_KEY]
    if not _authorized(request, desk):
        return _error(401, "Unauthorized")
    failure = desk.settings.fail
    if failure and request.path == failure.get("path", request.path):
        page = request.query.get("page", "1")
        if int(failure.get("page", 0) or 0) in (0, int(page) if page.isdigit() else 1):
            failure["count"] = int(failure.get("count", 1)) - 1
            if failure["count"] <= 0:
                desk.settings.fail = None
            return _error(int(failure.get("status", 500)), "injected failure")
    allowed, headers = desk.rate_headers()
    if not allowed:
        return web.Response(status=429, text="Too Many Requests", headers=headers)
    response = await handler(request)
    response.headers.update(headers)
    return response


async def search_tickets(request: web.Request) -> web.Response:
    desk = request.app[DESK_KEY]
    query = request.query.get("query", "")
    fields = ticket_fields(desk)
    order = _order(
        request,
        {
            "id": lambda t: t.id,
            "lastupdated": lambda t: t.last_updated,
            "created": lambda t: t.created,
            "priority": lambda t: t.priority,
            "due": lambda t: t.due,
        },
    )
    key = (
        "tickets",
        query,
        tuple(request.query.getall("orderby", [])),
        tuple(request.query.getall("order", [])),
    )
    ids = desk.cache.get(key)
    if ids is None:
        try:
            predicate = compile_query(parse_query(query), fields) if query.strip() else None
        except QueryError as exc:
            return _error(
                400, f"{exc} at /usr/share/request-tracker5/lib/RT/Tickets.pm line 3187.\n"
            )
        candidates = (t for t in desk.tickets.values() if t.searchable)
        matching = [t for t in candidates if predicate is None or predicate(t)]
        ids = desk.cache[key] = [
            t.id for t in _sorted(matching, order or [(lambda t: t.id, False)])
        ]
    tickets = [desk.tickets[i] for i in ids]
    return collection(
        request, desk, tickets, lambda t: ticket_record(request, desk, t, in_search=True)
    )


async def search_transactions(request: web.Request) -> web.Response:
    desk = request.app[DESK_KEY]
    query = request.query.get("query", "")
    try:
        node = parse_query(query) if query.strip() else None
        predicate = compile_query(node, transaction_fields()) if node is not None else None
    except QueryError as exc:
        return _error(400, f"{exc}")
    pool: Iterable[Txn]
    wanted = required_ids(node, "ObjectId") if node is not None else None
    if wanted is not None:
        pool = [t for i in sorted(wanted) for t in desk.by_ticket.get(i, [])]
    else:
        pool = desk.txns.values()
    matching = [t for t in pool if predicate is None or predicate(t)]
    order = _order(request, {"id": lambda x: x.id, "created": lambda x: x.created})
    matching = _sorted(matching, order or [(lambda x: x.id, False)])
    return collection(request, desk, matching, lambda x: transaction_record(request, desk, x))


async def ticket_history(request: web.Request) -> web.Response:
    desk = request.app[DESK_KEY]
    ticket = desk.tickets.get(int(request.match_info["id"]))
    if ticket is None:
        return _error(404, "Not Found")
    members = [t.id for t in desk.tickets.values() if t.effective_id == ticket.effective_id]
    txns = sorted((x for i in members for x in desk.by_ticket.get(i, [])), key=lambda x: x.id)
    return collection(request, desk, txns, lambda x: transaction_record(request, desk, x))


async def get_ticket(request: web.Request) -> web.Response:
    desk = request.app[DESK_KEY]
    ticket = desk.tickets.get(int(request.match_info["id"]))
    if ticket is None:
        return _error(404, "Not Found")
    ticket = desk.tickets.get(ticket.effective_id, ticket)
    record = ticket_record(request, desk, ticket, in_search=False)
    return json_body(record, headers={"ETag": f'"{desk.version}"'})


async def get_user(request: web.Request) -> web.Response:
    desk = request.app[DESK_KEY]
    key = request.match_info["id"]
    names = {str(number): name for name, number in desk.user_ids.items()}
    name = names.get(key, key if key in desk.user_ids else None)
    if name is None:
        return _error(404, "Not Found")
    return json_body(
        {
            "id": desk.user_ids[name],
            "Name": name,
            "EmailAddress": desk.users.get(name, ""),
            "RealName": "Nobody in particular" if name == NOBODY else name,
            "Privileged": 1,
            "Disabled": "0",
            "_hyperlinks": [{"ref": "self", "type": "user", "id": desk.user_ids[name]}],
        }
    )


async def list_queues(request: web.Request) -> web.Response:
    desk = request.app[DESK_KEY]
    queues = sorted(desk.queues.items())

    def serialize(entry: tuple[int, str]) -> dict[str, Any]:
        qid, name = entry
        return {
            "type": "queue",
            "id": str(qid),
            "_url": f"{_base(request)}/queue/{qid}",
            "Name": name,
        }

    return collection(request, desk, queues, serialize)


async def not_found(request: web.Request) -> web.Response:
    return _error(404, "Not Found")


# ---------------------------------------------------------------------------- scenarios


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    data = await request.json()
    return data if isinstance(data, dict) else {}


def _ticket(request: web.Request) -> Ticket:
    desk = request.app[DESK_KEY]
    ticket = desk.tickets.get(int(request.match_info["id"]))
    if ticket is None:
        raise web.HTTPNotFound(text="no such ticket")
    return ticket


def _at(body: dict[str, Any]) -> datetime:
    """``at``: when the change happened (default now); a past time imitates a change whose
    timestamp lags, as with a database replica."""
    return _parse_time(str(body["at"])) if body.get("at") else _now()


async def fake_create(request: web.Request) -> web.Response:
    desk, body = request.app[DESK_KEY], await _body(request)
    ticket = desk.create(body, _at(body))
    return json_body({"id": ticket.id})


async def fake_correspond(request: web.Request) -> web.Response:
    desk, ticket, body = request.app[DESK_KEY], _ticket(request), await _body(request)
    at = _at(body)
    desk.correspond(ticket, desk.user(str(body.get("by") or AGENT), ticket), at)
    if body.get("status"):
        desk.set_status(
            ticket, str(body["status"]), desk.user(str(body.get("by") or AGENT), ticket), at
        )
    desk.changed()
    return json_body({"ok": True})


async def fake_comment(request: web.Request) -> web.Response:
    desk, ticket, body = request.app[DESK_KEY], _ticket(request), await _body(request)
    desk.record(ticket, "Comment", desk.user(str(body.get("by") or AGENT), ticket), _at(body))
    desk.changed()
    return json_body({"ok": True})


async def fake_status(request: web.Request) -> web.Response:
    desk, ticket, body = request.app[DESK_KEY], _ticket(request), await _body(request)
    by = desk.user(str(body.get("by") or AGENT), ticket)
    desk.set_status(ticket, str(body["status"]), by, _at(body))
    desk.changed()
    return json_body({"ok": True})


async def fake_set(request: web.Request) -> web.Response:
    desk, ticket, body = request.app[DESK_KEY], _ticket(request), await _body(request)
    at, by = _at(body), desk.user(str(body.get("by") or AGENT), ticket)
    if "priority" in body:
        new = int(body["priority"])
        desk.record(ticket, "Set", by, at, "Priority", str(ticket.priority), str(new))
        ticket.priority = new
    if "queue" in body:
        new_queue = desk.queue_id(str(body["queue"]))
        desk.record(ticket, "Set", by, at, "Queue", str(ticket.queue), str(new_queue))
        ticket.queue = new_queue
    if "sla" in body:
        desk.record(ticket, "Set", by, at, "SLA", ticket.sla, str(body["sla"] or ""))
        ticket.sla = str(body["sla"] or "")
    if "owner" in body:
        owner = desk.user(str(body["owner"] or NOBODY), ticket)
        numbers = desk.user_ids[ticket.owner], desk.user_ids[owner]
        kind = str(body.get("owner_by") or "Set")
        desk.record(ticket, kind, by, at, "Owner", *(str(n) for n in numbers))
        ticket.owner = owner
    changes = dict(body.get("custom_fields") or {})
    if "channel" in body:
        changes["Channel"] = body["channel"]
    for name, value in changes.items():
        cf_id = desk.custom_field_ids.setdefault(str(name), len(desk.custom_field_ids) + 1)
        old = ticket.custom_fields.get(str(name), "")
        desk.record(ticket, "CustomField", by, at, str(cf_id), old, str(value))
        ticket.custom_fields[str(name)] = str(value)
    desk.changed()
    return json_body({"ok": True})


async def fake_due(request: web.Request) -> web.Response:
    desk, ticket, body = request.app[DESK_KEY], _ticket(request), await _body(request)
    due = body.get("due")
    desk.set_due(ticket, _parse_time(str(due)) if due else None, _at(body))
    desk.changed()
    return json_body({"ok": True, "due": _w3c(ticket.due)})


async def fake_delete(request: web.Request) -> web.Response:
    desk, ticket = request.app[DESK_KEY], _ticket(request)
    desk.set_status(ticket, "deleted", AGENT)
    desk.changed()
    return json_body({"ok": True})


async def fake_merge(request: web.Request) -> web.Response:
    desk, ticket, body = request.app[DESK_KEY], _ticket(request), await _body(request)
    target = desk.tickets[int(body["into"])]
    at = _now()
    uri = f"fsck.com-rt://fake/ticket/{target.id}"
    desk.record(ticket, "AddLink", AGENT, at, "MergedInto", "", uri)
    desk.record(target, "AddLink", AGENT, at, "MergedInto", "", uri)
    for other in desk.tickets.values():
        if other.effective_id == ticket.id:
            other.effective_id = target.id
    desk.changed()
    return json_body({"ok": True})


async def fake_ticket_raw(request: web.Request) -> web.Response:
    desk, ticket, body = request.app[DESK_KEY], _ticket(request), await _body(request)
    touch = body.pop("_touch", True)
    ticket.raw = {**(ticket.raw or {}), **body}
    if touch:
        ticket.last_updated = max(ticket.last_updated, _now())
    desk.changed()
    return json_body({"ok": True})


async def fake_transaction_raw(request: web.Request) -> web.Response:
    desk, body = request.app[DESK_KEY], await _body(request)
    txn = desk.txns[int(request.match_info["id"])]
    txn.raw = {**(txn.raw or {}), **body}
    desk.changed()
    return json_body({"ok": True})


async def fake_transactions(request: web.Request) -> web.Response:
    """The transactions of a ticket as the fake holds them (ids, for raw edits)."""
    desk, ticket = request.app[DESK_KEY], _ticket(request)
    return json_body(
        [
            {"id": t.id, "type": t.type, "field": t.field, "creator": t.creator}
            for t in desk.by_ticket.get(ticket.id, [])
        ]
    )


async def fake_config(request: web.Request) -> web.Response:
    desk, body = request.app[DESK_KEY], await _body(request)
    for name, value in body.items():
        if not hasattr(desk.settings, name):
            raise web.HTTPBadRequest(text=f"unknown setting {name}")
        setattr(desk.settings, name, value)
    return json_body(vars(desk.settings))


async def fake_bulk(request: web.Request) -> web.Response:
    """N tickets with a few replies each over the past days, LastUpdated now; most active."""
    desk, body = request.app[DESK_KEY], await _body(request)
    count, rng = int(body.get("tickets", 100)), random.Random(int(body.get("seed", 1)))
    resolved_share = float(body.get("resolved_share", 0.2))
    now = _now()
    queues = ["General", "Support", "Billing"]
    for n in range(count):
        at = now - timedelta(seconds=rng.randrange(60, 5 * 86_400))
        ticket = desk.create(
            {
                "subject": f"bulk {n}",
                "queue": rng.choice(queues),
                "requestor": f"customer{n % 500}@example.com",
                "priority": rng.choice([0, 50, 100]),
                "sla": "standard",
                "channel": rng.choice(["email", "web", "phone"]),
            },
            at,
        )
        desk.set_due(ticket, at + timedelta(hours=4), at)
        for _ in range(rng.randrange(1, 4)):
            at += timedelta(seconds=rng.randrange(60, 7200))
            if at >= now:
                break
            by = AGENT if rng.random() < 0.6 else ticket.requestors[0]
            desk.correspond(ticket, by, at)
        if rng.random() < resolved_share and at < now:
            desk.set_status(ticket, "resolved", AGENT, at)
        ticket.last_updated = now  # loaded now, as an import stamps it
    desk.changed()
    return json_body({"tickets": len(desk.tickets), "transactions": len(desk.txns)})


def make_app() -> web.Application:
    app = base_app()
    app.middlewares.append(rt_middleware)
    app[DESK_KEY] = Desk()
    app.router.add_get(f"{API}/tickets", search_tickets)
    app.router.add_get(f"{API}/transactions", search_transactions)
    app.router.add_get(f"{API}/ticket/{{id:\\d+}}", get_ticket)
    app.router.add_get(f"{API}/ticket/{{id:\\d+}}/history", ticket_history)
    app.router.add_get(f"{API}/queues/all", list_queues)
    app.router.add_get(f"{API}/user/{{id}}", get_user)
    app.router.add_route("*", f"{API}/{{tail:.*}}", not_found)
    app.router.add_post("/_fake/tickets", fake_create)
    app.router.add_post("/_fake/tickets/{id}/correspond", fake_correspond)
    app.router.add_post("/_fake/tickets/{id}/comment", fake_comment)
    app.router.add_post("/_fake/tickets/{id}/status", fake_status)
    app.router.add_post("/_fake/tickets/{id}/set", fake_set)
    app.router.add_post("/_fake/tickets/{id}/due", fake_due)
    app.router.add_post("/_fake/tickets/{id}/delete", fake_delete)
    app.router.add_post("/_fake/tickets/{id}/merge", fake_merge)
    app.router.add_post("/_fake/tickets/{id}/raw", fake_ticket_raw)
    app.router.add_get("/_fake/tickets/{id}/transactions", fake_transactions)
    app.router.add_post("/_fake/transactions/{id}/raw", fake_transaction_raw)
    app.router.add_post("/_fake/config", fake_config)
    app.router.add_post("/_fake/bulk", fake_bulk)
    return app
