"""Request Tracker REST2 calls on top of HelpdeskHttp (which does every retry).

* Auth: ``Authorization: token <token>`` (RT::Authen::Token), or HTTP Basic with
  ``user``/``password``.
* Searches: ``GET /REST/2.0/tickets?query=<TicketSQL>`` and
  ``GET /REST/2.0/transactions?query=<TransactionSQL>`` with ``per_page`` (at most 100),
  ``orderby``/``order`` pairs and ``fields``. Paging follows ``next_page`` and stops when it
  is absent. RT before 5.0.5 leaves ``total``, ``pages`` and ``next_page`` out for users who
  may not see every match; then a full page is followed by a look at the next page number,
  which ends the walk when it comes back empty, clamped (another ``page`` than asked for) or
  repeating what was already seen.
* Dates in TicketSQL are read in the API user's time zone: the literals sent here are UTC,
  so that user's RT time zone should be UTC.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlsplit

from multidict import MultiDict
from pydantic import ValidationError

from sladaemon.config.models import RequestTrackerSourceConfig
from sladaemon.errors import RowIssue
from sladaemon.sources.base import SourceError
from sladaemon.sources.http import HelpdeskHttp, Response
from sladaemon.sources.rt.mapping import HISTORY_TYPES
from sladaemon.sources.rt.payloads import RtPage, RtQueue, RtTicket, RtTransaction, RtUser

API_PATH = "/REST/2.0"
MAX_PER_PAGE = 100  # REST2 clamps larger values
TICKET_FIELDS = "Status,Queue,Owner,Priority,Created,LastUpdated,Due,SLA,Requestor,CustomFields"
TRANSACTION_FIELDS = "Type,Creator,Created,Field,OldValue,NewValue,ObjectId,ObjectType"
USER_EXPANSION = "Name,EmailAddress"


@dataclass
class TicketPage:
    """One page of a ticket search: the tickets that parsed, the items that did not, and
    what is needed to ask for the next page."""

    tickets: list[RtTicket]
    issues: list[RowIssue]
    server_time: datetime | None  # the response's Date header
    next_params: MultiDict[str] | None
    raw_ids: list[str]
    clamped: bool = False  # RT answered with another page than the one asked for


class RequestTrackerClient:
    def __init__(
        self,
        cfg: RequestTrackerSourceConfig,
        *,
        first_backoff: float = 1.0,
        max_attempts: int = 5,
    ) -> None:
        headers: dict[str, str] = {}
        if cfg.token is not None:
            headers["Authorization"] = f"token {cfg.token.get_secret_value()}"
        elif cfg.user and cfg.password is not None:
            pair = f"{cfg.user}:{cfg.password.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        self.http = HelpdeskHttp(
            cfg.url + API_PATH,
            headers=headers,
            timeout=cfg.timeout.total_seconds(),
            first_backoff=first_backoff,
            max_backoff=max(first_backoff, min(30.0, first_backoff * 30)),
            max_attempts=max_attempts,
        )
        self.per_page = min(cfg.page_size, MAX_PER_PAGE)

    @property
    def requests(self) -> int:
        return self.http.requests

    async def close(self) -> None:
        await self.http.close()

    # ------------------------------------------------------------------ tickets

    async def search_tickets(self, query: str, *, full: bool = True) -> TicketPage:
        """The first page of a TicketSQL search, oldest change first. ``full=False`` asks
        only for LastUpdated and Status (reconciliation)."""
        params: MultiDict[str] = MultiDict(
            [
                ("query", query),
                ("orderby", "LastUpdated"),
                ("order", "ASC"),
                ("orderby", "id"),
                ("order", "ASC"),
                ("per_page", str(self.per_page)),
                ("page", "1"),
            ]
        )
        if full:
            params.extend(
                [
                    ("fields", TICKET_FIELDS),
                    ("fields[Queue]", "Name"),
                    ("fields[Owner]", USER_EXPANSION),
                    ("fields[Requestor]", USER_EXPANSION),
                ]
            )
        else:
            params.add("fields", "LastUpdated,Status")
        return await self._ticket_page(params)

    async def next_tickets(self, page: TicketPage, seen: set[str]) -> TicketPage | None:
        """The page after ``page``, or None at the end. ``seen``: ticket ids of this walk."""
        if page.next_params is None:
            return None
        following = await self._ticket_page(page.next_params)
        if not following.raw_ids or following.clamped or set(following.raw_ids) <= seen:
            return None  # an empty, clamped or repeated page: the walk is over
        return following

    async def _ticket_page(self, params: MultiDict[str]) -> TicketPage:
        response = await self.http.get_json("tickets", params=params)
        envelope = _envelope(response, "tickets")
        tickets: list[RtTicket] = []
        issues: list[RowIssue] = []
        raw_ids: list[str] = []
        for item in envelope.items:
            raw_id = str(item.get("id", "?")) if isinstance(item, dict) else "?"
            raw_ids.append(raw_id)
            try:
                tickets.append(RtTicket.model_validate(item))
            except ValidationError as exc:
                issues.append(RowIssue(0, f"ticket {raw_id}: {describe(exc)}"))
        return TicketPage(
            tickets=tickets,
            issues=issues,
            server_time=_server_time(response),
            next_params=_next_params(envelope, params, len(envelope.items)),
            raw_ids=raw_ids,
            clamped=_clamped(envelope, params),
        )

    async def ticket(self, ticket_id: int) -> RtTicket | None:
        """``GET /ticket/{id}``: a merged ticket answers with the ticket it was merged into,
        a deleted one with status "deleted". None when RT no longer gives it out."""
        try:
            response = await self.http.get_json(
                f"ticket/{ticket_id}",
                params={"fields[Queue]": "Name", "fields[Owner]": USER_EXPANSION},
            )
        except SourceError as exc:
            if exc.retryable:
                raise
            return None
        if not isinstance(response.data, dict):
            return None
        try:
            return RtTicket.model_validate(response.data)
        except ValidationError:
            return None

    # ------------------------------------------------------------------ history

    async def histories(
        self, full: Iterable[int], since: Sequence[tuple[int, int]]
    ) -> tuple[dict[int, list[RtTransaction]], list[RowIssue], datetime | None]:
        """Transactions of several tickets in one TransactionSQL search: the whole history of
        the tickets in ``full``, and of the (ticket, last transaction id) pairs in ``since``
        those after the smallest of those ids (callers drop what they have already seen).
        Returns them per ticket in id order, the items that did not parse, and the server's
        time of the last response."""
        full_ids = sorted(set(full))
        clauses = []
        if full_ids:
            clauses.append(_any_of("ObjectId", full_ids))
        if since:
            after = min(last for _, last in since)
            clauses.append(
                f"({_any_of('ObjectId', sorted({t for t, _ in since}))} AND id > {after})"
            )
        if not clauses:
            return {}, [], None
        types = _any_of("Type", [f"'{t}'" for t in HISTORY_TYPES])
        query = f"ObjectType = 'RT::Ticket' AND {types} AND ({' OR '.join(clauses)})"
        params: MultiDict[str] = MultiDict(
            [
                ("query", query),
                ("orderby", "id"),
                ("order", "ASC"),
                ("per_page", str(MAX_PER_PAGE)),
                ("page", "1"),
                ("fields", TRANSACTION_FIELDS),
                ("fields[Creator]", USER_EXPANSION),
            ]
        )
        by_ticket: dict[int, list[RtTransaction]] = {}
        issues: list[RowIssue] = []
        seen: set[str] = set()
        server_time: datetime | None = None
        next_params: MultiDict[str] | None = params
        while next_params is not None:
            response = await self.http.get_json("transactions", params=next_params)
            envelope = _envelope(response, "transactions")
            server_time = _server_time(response) or server_time
            raw_ids = [
                str(i.get("id", "?")) if isinstance(i, dict) else "?" for i in envelope.items
            ]
            if next_params is not params and (
                not raw_ids or _clamped(envelope, next_params) or set(raw_ids) <= seen
            ):
                break
            seen.update(raw_ids)
            for item in envelope.items:
                try:
                    txn = RtTransaction.model_validate(item)
                except ValidationError as exc:
                    ticket = item.get("ObjectId", "?") if isinstance(item, dict) else "?"
                    number = item.get("id", "?") if isinstance(item, dict) else "?"
                    issues.append(
                        RowIssue(0, f"ticket {ticket}: transaction {number}: {describe(exc)}")
                    )
                    continue
                if txn.ticket_id is not None and txn.object_type in ("", "RT::Ticket"):
                    by_ticket.setdefault(txn.ticket_id, []).append(txn)
            next_params = _next_params(envelope, next_params, len(envelope.items))
        for transactions in by_ticket.values():
            transactions.sort(key=lambda t: t.id)
        return by_ticket, issues, server_time

    # ------------------------------------------------------------------ users and queues

    async def user(self, user_id: str) -> RtUser | None:
        """``GET /user/{id}``; None when RT does not give it out (gone, or not permitted)."""
        try:
            response = await self.http.get_json(f"user/{user_id}")
        except SourceError as exc:
            if exc.retryable:
                raise
            return None
        try:
            return RtUser.model_validate(response.data)
        except ValidationError:
            return None

    async def queue_names(self) -> dict[str, str]:
        """Queue id -> name, for history entries that name a queue by id."""
        names: dict[str, str] = {}
        params: MultiDict[str] | None = MultiDict(
            [("per_page", str(MAX_PER_PAGE)), ("page", "1"), ("fields", "Name")]
        )
        seen: set[str] = set()
        while params is not None:
            envelope = _envelope(await self.http.get_json("queues/all", params=params), "queues")
            ids = [str(i.get("id", "?")) if isinstance(i, dict) else "?" for i in envelope.items]
            if seen and (not ids or _clamped(envelope, params) or set(ids) <= seen):
                break
            seen.update(ids)
            for item in envelope.items:
                with contextlib.suppress(ValidationError):
                    queue = RtQueue.model_validate(item)
                    names[str(queue.id)] = queue.name
            params = _next_params(envelope, params, len(envelope.items))
        return names


def ticketsql_text(value: str) -> str:
    """A quoted TicketSQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ticketsql_time(at: datetime) -> str:
    """A quoted TicketSQL date literal (UTC, whole seconds)."""
    return f"'{at:%Y-%m-%d %H:%M:%S}'"


def describe(exc: ValidationError) -> str:
    """The first problem of a validation error, short enough for a log line."""
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _any_of(name: str, values: Sequence[object]) -> str:
    return "(" + " OR ".join(f"{name} = {v}" for v in values) + ")"


def _envelope(response: Response, what: str) -> RtPage:
    if not isinstance(response.data, dict):
        raise SourceError(f"GET {what}: expected a collection, got {type(response.data).__name__}")
    try:
        return RtPage.model_validate(response.data)
    except ValidationError as exc:
        raise SourceError(f"GET {what}: unexpected collection ({describe(exc)})") from None


def _next_params(envelope: RtPage, params: MultiDict[str], received: int) -> MultiDict[str] | None:
    """Parameters of the next page: from ``next_page`` (only its query: the host in it may
    be RT's idea of itself, not ours), or, when RT hides totals and sent a full page, the
    next page number."""
    if envelope.next_page:
        following: MultiDict[str] = MultiDict(
            parse_qsl(urlsplit(envelope.next_page).query, keep_blank_values=True)
        )
        return following if following else None
    per_page = envelope.per_page or int(params.get("per_page", "20") or 20)
    if envelope.total is None and received >= per_page > 0:
        current = envelope.page or int(params.get("page", "1") or 1)
        following = params.copy()
        following["page"] = str(current + 1)
        return following
    return None


def _clamped(envelope: RtPage, params: MultiDict[str]) -> bool:
    asked = params.get("page", "1")
    return envelope.page is not None and asked.isdigit() and envelope.page != int(asked)


def _server_time(response: Response) -> datetime | None:
    date = next((v for k, v in response.headers.items() if k.lower() == "date"), None)
    if not date:
        return None
    try:
        return parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
