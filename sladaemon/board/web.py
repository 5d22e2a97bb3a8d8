"""The board's pages and actions over HTTP (aiohttp, Jinja2 templates, one small script).

Pages (GET): ``/`` the board (filters in the query), ``/rows`` the same rows as a fragment
(what the script fetches when the live feed says the board changed), ``/events`` the live feed,
``/ticket/{source}/{id}`` a ticket's page, ``/silences``, ``/report`` the KPI report of a chosen
period (``/report.html`` is the report itself, shown in the page), ``/login``.

Actions (POST, each with the CSRF token, each by a responder, each in the log and the audit
trail): ``/ticket/{source}/{id}/ack``, ``/unack``, ``/silence``; ``/silences`` (add),
``/silences/{id}/expire``; ``/login`` and ``/logout``. Every page reads without JavaScript.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from sladaemon.board.access import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_TTL,
    SESSION_COOKIE,
    Access,
    Identity,
)
from sladaemon.board.board import Board
from sladaemon.board.index import FILTERS, STATE_NAMES
from sladaemon.board.timeline import ticket_page
from sladaemon.calendar import to_us
from sladaemon.clock import Clock
from sladaemon.config import Config
from sladaemon.escalate.chain_runner import ChainRunner
from sladaemon.escalate.chain_store import AuditEntry
from sladaemon.escalate.labels import sla_labels
from sladaemon.escalate.silence_store import SilenceStore, UnknownSilence
from sladaemon.escalate.silences import MAX_TEXT, SilenceError, silence_from_request
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import Metric, NotificationKind, SlaEvent, SlaEventKind
from sladaemon.report.ledger import KpiLedger
from sladaemon.report.render import as_html
from sladaemon.sla.engine import TicketReplay

REPORT_DAYS = (1, 7, 30, 90)
STATIC = {"board.js": "text/javascript", "board.css": "text/css"}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'self'; "
    "base-uri 'none'"
)
_REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"

Handler = Callable[[web.Request, Identity], Awaitable[web.StreamResponse]]


class BoardPages:
    def __init__(
        self,
        board: Board,
        access: Access,
        config: Callable[[], Config],
        replays: Mapping[tuple[str, str], TicketReplay],
        chains: ChainRunner,
        silences: SilenceStore,
        ledger: KpiLedger,
        clock: Clock,
        metrics: DaemonMetrics,
    ) -> None:
        self.board = board
        self.access = access
        self.config = config
        self.replays = replays
        self.chains = chains
        self.silences = silences
        self.ledger = ledger
        self.clock = clock
        self.metrics = metrics
        self.log = get_logger("sladaemon.board")
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("sladaemon.board", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = _when
        self.static = {
            name: resources.files("sladaemon.board").joinpath("static", name).read_bytes()
            for name in STATIC
        }

    def routes(self) -> list[web.RouteDef]:
        signed = self._signed_in
        acting = self._acting
        return [
            web.get("/login", self._login_page),
            web.post("/login", self._login),
            web.post("/logout", signed(self._logout, post=True)),
            web.get("/", signed(self._board_page)),
            web.get("/rows", signed(self._rows)),
            web.get("/events", signed(self._events)),
            web.get("/ticket/{source}/{ticket}", signed(self._ticket_page)),
            web.post("/ticket/{source}/{ticket}/ack", acting(self._ack)),
            web.post("/ticket/{source}/{ticket}/unack", acting(self._unack)),
            web.post("/ticket/{source}/{ticket}/silence", acting(self._silence_ticket)),
            web.get("/silences", signed(self._silences_page)),
            web.post("/silences", acting(self._add_silence)),
            web.post("/silences/{id}/expire", acting(self._expire_silence)),
            web.get("/report", signed(self._report_page)),
            web.get("/report.html", signed(self._report_html)),
            web.get("/static/{name}", self._static),
        ]

    # ------------------------------------------------------------------ access

    def _signed_in(self, handler: Handler, *, post: bool = False) -> Callable[..., Any]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            identity = self.access.identify(request)
            if identity is None:
                if request.method == "GET" and request.path not in ("/rows", "/events"):
                    raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
                return self._refused(request, "signed_out", 401, "Sign in first.")
            if post:
                form = await request.post()
                if not self.access.csrf_ok(identity, str(form.get(CSRF_FIELD, ""))):
                    return self._refused(request, "csrf_refused", 403,
                                         "The form's security token is missing or stale: "
                                         "reload the page and try again.", identity)  # fmt: skip
            return await handler(request, identity)

        return wrapped

    def _acting(self, handler: Handler) -> Callable[..., Any]:
        async def as_responder(request: web.Request, identity: Identity) -> web.StreamResponse:
            if not identity.responder:
                return self._refused(request, "forbidden", 403,
                                     f"{identity.user} is a viewer: only responders can act.",
                                     identity)  # fmt: skip
            self.metrics.board_requests.labels("acted").inc()
            return await handler(request, identity)

        return self._signed_in(as_responder, post=True)

    def _refused(
        self,
        request: web.Request,
        outcome: str,
        status: int,
        message: str,
        identity: Identity | None = None,
    ) -> web.Response:
        self.metrics.board_requests.labels(outcome).inc()
        user = identity.user if identity else ""
        self.log.warning("board_refused", outcome=outcome, path=request.path, user=user)
        return self._page("message.html", identity, status=status, title="Not done",
                          message=message)  # fmt: skip

    async def _login_page(self, request: web.Request) -> web.Response:
        token, fresh = self.access.login_token(request)
        response = self._page("login.html", None, title="Sign in", token=token,
                              next=_local(request.query.get("next", "/")), error="")  # fmt: skip
        if fresh:
            self.access.set_cookie(response, request, LOGIN_COOKIE, token, LOGIN_TTL)
        return response

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        if not self.access.allowed(request):
            return self._refused(request, "rate_limited", 429,
                                 "Too many sign-in attempts: wait a minute.")  # fmt: skip
        if not self.access.login_csrf_ok(request, str(form.get(CSRF_FIELD, ""))):
            return self._refused(request, "csrf_refused", 403,
                                 "The sign-in form is stale: reload it and try again.")  # fmt: skip
        user = str(form.get("user", ""))[:200]
        session = await self.access.sign_in(user, str(form.get("password", ""))[:1000])
        target = _local(str(form.get("next", "/")))
        if session is None:
            self.metrics.board_requests.labels("sign_in_failed").inc()
            self.log.warning("board_sign_in_failed", user=user, client=request.remote)
            token, _ = self.access.login_token(request)
            return self._page("login.html", None, status=401, title="Sign in", token=token,
                              next=target, error="Wrong name or password.")  # fmt: skip
        self.metrics.board_requests.labels("signed_in").inc()
        self.log.info("board_signed_in", user=user, client=request.remote)
        response = web.HTTPSeeOther(target)
        ttl = int(self.access.config.session_ttl.total_seconds())
        self.access.set_cookie(response, request, SESSION_COOKIE, session, ttl)
        response.del_cookie(LOGIN_COOKIE, path="/")
        return response

    async def _logout(self, request: web.Request, identity: Identity) -> web.Response:
        self.access.sign_out(identity)
        self.log.info("board_signed_out", user=identity.user)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------------ the board

    def _question(self, request: web.Request) -> tuple[dict[str, str], str | None]:
        filters = {name: request.query.get(name, "") for name in FILTERS}
        state = request.query.get("state") or None
        return filters, state if state in STATE_NAMES else None

    async def _board_page(self, request: web.Request, identity: Identity) -> web.Response:
        filters, state = self._question(request)
        view = self.board.view(filters, state, self.config().settings.board.page_size)
        return self._page("board.html", identity, title="SLA board", view=view,
                          filters=filters, state=state or "", states=STATE_NAMES,
                          query=request.query_string)  # fmt: skip

    async def _rows(self, request: web.Request, identity: Identity) -> web.Response:
        filters, state = self._question(request)
        view = self.board.view(filters, state, self.config().settings.board.page_size)
        text = self.templates.get_template("_rows.html").render(view=view, identity=identity)
        return web.Response(text=text, content_type="text/html", headers=_headers())

    async def _events(self, request: web.Request, identity: Identity) -> web.StreamResponse:
        return await self.board.feed.stream(request)

    # ------------------------------------------------------------------ a ticket

    async def _ticket_page(self, request: web.Request, identity: Identity) -> web.Response:
        source, ticket_id = request.match_info["source"], request.match_info["ticket"]
        replay = self.replays.get((source, ticket_id))
        now = self.clock.now()
        evaluation = replay.evaluate(now) if replay is not None else None
        prefix = f"{source}/{ticket_id}/"
        store = self.board.store
        sent = sorted(
            store.sent_under(prefix) + store.digests_with(prefix), key=lambda r: r.created_at
        )
        chains = self.chains.chains_of(source, ticket_id, None)
        acks = [(c.metric.value, c.state, c.acked_by, c.acked_via) for c in chains]
        page = ticket_page(
            source, ticket_id, replay, evaluation, self.config().calendars,
            self.chains.store.audit(source, ticket_id), sent,
            self._silences_of(source, ticket_id, replay, now), acks,
        )  # fmt: skip
        return self._page("ticket.html", identity, title=f"Ticket {ticket_id}", page=page,
                          done=request.query.get("done", ""))  # fmt: skip

    def _silences_of(
        self, source: str, ticket_id: str, replay: TicketReplay | None, now: datetime
    ) -> list[Any]:
        """Active silences that hold some notification of the ticket."""
        fields = dict(replay.fields) if replay is not None else {}
        policy = replay.policy.name if replay is not None and replay.policy else ""
        labels = [
            sla_labels(source, SlaEvent(ticket_id, policy, metric, SlaEventKind.BREACH, now,
                                        None, "breach"), NotificationKind.BREACH, fields)
            for metric in Metric
        ]  # fmt: skip
        return [
            s
            for s in self.silences.listed(now)
            if s.state(now) == "active" and any(s.silences(lab, now) for lab in labels)
        ]

    def _back(self, request: web.Request, message: str) -> web.Response:
        source, ticket_id = request.match_info["source"], request.match_info["ticket"]
        target = f"/ticket/{_quote(source)}/{_quote(ticket_id)}?" + urlencode({"done": message})
        raise web.HTTPSeeOther(target)

    async def _ack(self, request: web.Request, identity: Identity) -> web.Response:
        form = await request.post()
        metric = _metric(str(form.get("metric", "")))
        note = str(form.get("note", ""))[:MAX_TEXT]
        source, ticket_id = request.match_info["source"], request.match_info["ticket"]
        outcome = await self.chains.acknowledge_ticket(source, ticket_id, metric, identity.user,
                                                       "board", note)  # fmt: skip
        self.log.info("board_ack", user=identity.user, ticket=ticket_id, ok=outcome.ok)
        return self._back(request, outcome.message)

    async def _unack(self, request: web.Request, identity: Identity) -> web.Response:
        form = await request.post()
        metric = _metric(str(form.get("metric", "")))
        source, ticket_id = request.match_info["source"], request.match_info["ticket"]
        outcome = await self.chains.unacknowledge_ticket(source, ticket_id, metric,
                                                         identity.user, "board")  # fmt: skip
        self.log.info("board_unack", user=identity.user, ticket=ticket_id, ok=outcome.ok)
        return self._back(request, outcome.message)

    async def _silence_ticket(self, request: web.Request, identity: Identity) -> web.Response:
        form = await request.post()
        source, ticket_id = request.match_info["source"], request.match_info["ticket"]
        body = {
            "matchers": [f"source={source}", f"ticket={ticket_id}"],
            "for": str(form.get("for", "")) or "1h",
            "comment": str(form.get("comment", ""))[:MAX_TEXT] or f"ticket {ticket_id}",
            "created_by": identity.user,
        }
        try:
            silence = self._add(body, identity)
        except SilenceError as exc:
            return self._back(request, f"not silenced: {exc}")
        until = f"{silence.ended_at:%Y-%m-%d %H:%M} UTC"
        return self._back(request, f"silenced until {until}")

    # ------------------------------------------------------------------ silences

    def _add(self, body: Mapping[str, object], identity: Identity) -> Any:
        now = self.clock.now()
        silence = silence_from_request(body, silence_id=str(uuid.uuid4()), now=now)
        self.silences.add(silence)
        self.log.info("silence_added", id=silence.id, by=identity.user, via="board",
                      matchers=[str(m) for m in silence.matchers],
                      until=silence.ends_at.isoformat())  # fmt: skip
        ticket = {m.name: m.value for m in silence.matchers if m.op == "="}
        if "ticket" in ticket and "source" in ticket:
            detail = f"{silence.describe()} until {silence.ended_at.isoformat()}"
            entry = AuditEntry("", to_us(now), "silence_added", identity.user, "board", detail)
            self.chains.store.note(ticket["source"], ticket["ticket"], entry)
        return silence

    async def _silences_page(self, request: web.Request, identity: Identity) -> web.Response:
        now = self.clock.now()
        listed = self.silences.listed(now, include_expired=True)
        return self._page("silences.html", identity, title="Silences", silences=listed,
                          now=now, done=request.query.get("done", ""))  # fmt: skip

    async def _add_silence(self, request: web.Request, identity: Identity) -> web.Response:
        form = await request.post()
        matchers = [line.strip() for line in str(form.get("matchers", "")).splitlines()]
        body: dict[str, object] = {
            "matchers": [m for m in matchers if m],
            "comment": str(form.get("comment", ""))[:MAX_TEXT],
            "created_by": identity.user,
        }
        until = str(form.get("ends_at", "")).strip()
        if until:
            body["ends_at"] = until
        else:
            body["for"] = str(form.get("for", "")).strip() or "1h"
        try:
            silence = self._add(body, identity)
        except SilenceError as exc:
            raise web.HTTPSeeOther(
                "/silences?" + urlencode({"done": f"not added: {exc}"})
            ) from None
        raise web.HTTPSeeOther("/silences?" + urlencode({"done": f"added {silence.describe()}"}))

    async def _expire_silence(self, request: web.Request, identity: Identity) -> web.Response:
        try:
            ended = self.silences.expire(request.match_info["id"], identity.user, self.clock.now())
        except (UnknownSilence, SilenceError) as exc:
            raise web.HTTPSeeOther("/silences?" + urlencode({"done": str(exc)})) from None
        self.log.info("silence_expired", id=ended.id, by=identity.user, via="board")
        raise web.HTTPSeeOther("/silences?" + urlencode({"done": f"expired {ended.describe()}"}))

    # ------------------------------------------------------------------ KPI report

    def _period(self, request: web.Request) -> int:
        text = request.query.get("days", "7")
        return int(text) if text.isdigit() and int(text) in REPORT_DAYS else 7

    async def _report_page(self, request: web.Request, identity: Identity) -> web.Response:
        return self._page("report.html", identity, title="KPI report",
                          days=self._period(request), choices=REPORT_DAYS)  # fmt: skip

    async def _report_html(self, request: web.Request, identity: Identity) -> web.Response:
        days = self._period(request)
        end = self.clock.now()
        start = end - timedelta(days=days)
        zone = self.config().report_timezone(None)

        def count() -> str:
            report = self.ledger.report(start, end, zone)
            report.previous = self.ledger.report(start - timedelta(days=days), start, zone)
            return as_html(report)

        text = await asyncio.to_thread(count)
        headers = {**_headers(), "Content-Security-Policy": _REPORT_CSP}
        return web.Response(text=text, content_type="text/html", headers=headers)

    # ------------------------------------------------------------------ plumbing

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.static:
            raise web.HTTPNotFound()
        return web.Response(
            body=self.static[name],
            content_type=STATIC[name],
            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    def _page(
        self, template: str, identity: Identity | None, *, status: int = 200, **values: Any
    ) -> web.Response:
        text = self.templates.get_template(template).render(
            identity=identity, csrf_field=CSRF_FIELD, **values
        )
        return web.Response(status=status, text=text, content_type="text/html",
                            headers=_headers())  # fmt: skip


def _headers() -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",
        "Content-Security-Policy": _CSP,
    }


def _local(target: str) -> str:
    """Only a path of this site (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _metric(value: str) -> Metric | None:
    return Metric(value) if value in {m.value for m in Metric} else None


def _quote(text: str) -> str:
    return quote(text, safe="")


def _when(at: datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M} UTC"
