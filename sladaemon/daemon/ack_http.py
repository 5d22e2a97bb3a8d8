"""The HTTP surface for people: the ack page behind every signed link, and the ack API.

* ``GET /ack/{token}`` shows what the link acknowledges and a button; it changes nothing (mail
  scanners fetch links before anyone reads them).
* ``POST /ack/{token}`` acknowledges the chain for the person the link was sent to. A forged,
  expired or already used link is refused with its reason and counted
  (``sladaemon_ack_refused_total{reason}``).
* ``POST /api/v1/acks`` and ``POST /api/v1/unacks`` (``Authorization: Bearer <ack.api_tokens>``)
  take ``{"ticket": ..., "source": ..., "metric": ..., "by": ..., "note": ...}`` or
  ``{"chain": KEY, ...}`` and answer ``{"ok", "message", "chains"}``.

Every ack is committed before it is answered. Bodies are capped by the listener (64 KiB) and
requests per client address by ``ack.rate`` (a token bucket; beyond it 429).
"""

from __future__ import annotations

import hmac
import html
import json
import time
from typing import Any

from aiohttp import web

from sladaemon.config.chains import AckConfig
from sladaemon.escalate.acks import AckOutcome
from sladaemon.escalate.chain_runner import ChainRunner
from sladaemon.escalate.links import AckLinks, LinkClaim, LinkRefused
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import Metric
from sladaemon.ratelimit import RateLimit

MAX_FIELD = 500  # characters of `by`, `note`, `ticket`


class AckPages:
    def __init__(self, runner: ChainRunner, metrics: DaemonMetrics) -> None:
        self.runner = runner
        self.metrics = metrics
        self.log = get_logger("sladaemon.ack")
        self.limit = RateLimit(5.0)

    @property
    def config(self) -> AckConfig | None:
        return self.runner.config.settings.ack

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ack/{token}", self._page),
            web.post("/ack/{token}", self._ack_by_link),
            web.post("/api/v1/acks", self._api_ack),
            web.post("/api/v1/unacks", self._api_unack),
        ]

    # ------------------------------------------------------------------ links

    def _links(self) -> AckLinks | None:
        return self.runner.links

    def _refuse(self, reason: str, status: int, message: str, *, page: bool) -> web.Response:
        self.metrics.ack_refused.labels(reason).inc()
        self.log.warning("ack_refused", reason=reason, message=message)
        if page:
            return _html(status, "Not acknowledged", f"<p>{html.escape(message)}</p>")
        return web.json_response({"ok": False, "message": message}, status=status)

    def _limited(self, request: web.Request, *, page: bool) -> web.Response | None:
        cfg = self.config
        self.limit.rate = cfg.rate if cfg else self.limit.rate
        if self.limit.allow(request.remote or ""):
            return None
        return self._refuse("rate_limited", 429, "too many requests: try again shortly", page=page)

    def _claim(self, request: web.Request) -> LinkClaim | web.Response:
        """What the request's link claims, or the page refusing it (rate, forgery, expiry)."""
        if (limited := self._limited(request, page=True)) is not None:
            return limited
        links = self._links()
        if links is None:
            return self._refuse("disabled", 404, "acknowledgement is not configured", page=True)
        try:
            return links.verify(request.match_info["token"], time.time())
        except LinkRefused as exc:
            return self._refuse(exc.reason, 403, str(exc), page=True)

    async def _page(self, request: web.Request) -> web.Response:
        claim = self._claim(request)
        if isinstance(claim, web.Response):
            return claim
        found = self.runner.store.get(claim.chain)
        if found is None:
            return self._refuse("unknown", 404, "this escalation is not known here", page=True)
        chain, payload = found
        what = html.escape(
            f"ticket {chain.ticket_id} — {chain.metric.value} ({chain.level}), policy "
            f"{payload.get('policy', '')}"
        )
        state = html.escape(
            f"acknowledged by {chain.acked_by} via {chain.acked_via}"
            if chain.state == "acked"
            else {"met": "met already: nothing to do", "done": "every step was sent"}.get(
                chain.state, "waiting for someone to take it"
            )
        )
        who = html.escape(claim.person or "you")
        body = (
            f"<p>{what}</p><p>Now: {state}.</p>"
            f'<form method="post"><label for="note">Note (optional)</label><br>'
            f'<input id="note" name="note" maxlength="{MAX_FIELD}"><br>'
            f'<button type="submit">Acknowledge as {who}</button></form>'
        )
        return _html(200, "Acknowledge this escalation?", body)

    async def _ack_by_link(self, request: web.Request) -> web.Response:
        claim = self._claim(request)
        if isinstance(claim, web.Response):
            return claim
        store = self.runner.store
        if store.link_used(claim.link_id):
            return self._refuse("replayed", 409, "this link was used already", page=True)
        form = await request.post()
        note = str(form.get("note", ""))[:MAX_FIELD]
        outcome = await self.runner.acknowledge(claim.chain, claim.person or "link", "link", note)
        store.use_link(claim.link_id)  # after the ack: a crash between leaves the link usable
        status = 200 if outcome.ok else 409
        title = "Acknowledged" if outcome.ok else "Not acknowledged"
        return _html(status, title, f"<p>{html.escape(outcome.message)}.</p>")

    # ------------------------------------------------------------------ API

    def _authorized(self, request: web.Request) -> bool:
        cfg = self.config
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if cfg is None or not given:
            return False
        return any(
            hmac.compare_digest(given.encode(), t.get_secret_value().encode())
            for t in cfg.api_tokens
        )

    async def _api_request(self, request: web.Request) -> dict[str, Any] | web.Response:
        if (limited := self._limited(request, page=False)) is not None:
            return limited
        if not self._authorized(request):
            return self._refuse("unauthorized", 401, "a valid bearer token is needed", page=False)
        try:
            body = json.loads(await request.text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._refuse("malformed", 400, "the body is not JSON", page=False)
        if not isinstance(body, dict) or not (body.get("ticket") or body.get("chain")):
            return self._refuse("malformed", 400, "give a ticket (or a chain)", page=False)
        fields = {k: body.get(k) for k in ("ticket", "source", "metric", "by", "note", "chain")}
        if any(v is not None and not isinstance(v, str) for v in fields.values()):
            return self._refuse("malformed", 400, "every field is a string", page=False)
        if any(v and len(v) > MAX_FIELD for v in fields.values()):
            return self._refuse(
                "malformed", 400, f"fields are at most {MAX_FIELD} long", page=False
            )
        if fields["metric"] and fields["metric"] not in {m.value for m in Metric}:
            return self._refuse("malformed", 400, f"unknown metric {fields['metric']}", page=False)
        return fields

    async def _api_ack(self, request: web.Request) -> web.Response:
        fields = await self._api_request(request)
        if isinstance(fields, web.Response):
            return fields
        by, note = fields["by"] or "api", fields["note"] or ""
        via = "cli" if request.headers.get("User-Agent", "").startswith("sladaemon-cli") else "api"
        if fields["chain"]:
            outcome = await self.runner.acknowledge(fields["chain"], by, via, note)
        else:
            metric = Metric(fields["metric"]) if fields["metric"] else None
            outcome = await self.runner.acknowledge_ticket(
                fields["source"], fields["ticket"], metric, by, via, note
            )
        return _answer(outcome)

    async def _api_unack(self, request: web.Request) -> web.Response:
        fields = await self._api_request(request)
        if isinstance(fields, web.Response):
            return fields
        by = fields["by"] or "api"
        via = "cli" if request.headers.get("User-Agent", "").startswith("sladaemon-cli") else "api"
        if fields["chain"]:
            outcome = await self.runner.unacknowledge(fields["chain"], by, via)
        else:
            metric = Metric(fields["metric"]) if fields["metric"] else None
            outcome = await self.runner.unacknowledge_ticket(
                fields["source"], fields["ticket"], metric, by, via
            )
        return _answer(outcome)


def _answer(outcome: AckOutcome) -> web.Response:
    body = {"ok": outcome.ok, "message": outcome.message, "chains": list(outcome.chains)}
    return web.json_response(body, status=200 if outcome.ok else 404)


def _html(status: int, title: str, body: str) -> web.Response:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:2em auto;"
        "padding:0 1em;color:#111}button{font-size:1em;padding:.5em 1em}"
        "input{font-size:1em;width:100%;margin:.3em 0 1em}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(
        status=status,
        text=page,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'",
        },
    )
