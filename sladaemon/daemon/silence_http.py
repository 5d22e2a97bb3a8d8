"""The silences API, beside the ack API and behind the same bearer tokens (``ack.api_tokens``).

* ``POST /api/v1/silences`` takes ``{"matchers": ["queue=billing", ...], "for": "2h"`` (or
  ``"ends_at": ISO``), ``"starts_at": ISO`` (optional), ``"comment", "created_by"}`` and answers
  the new silence (``{"id", ...}``, 201).
* ``GET /api/v1/silences`` lists the active and pending ones (``?all=1``: expired ones too).
* ``DELETE /api/v1/silences/{id}?by=NAME`` expires one now.

A silence is committed before it is answered. Refusals answer ``{"ok": false, "message"}`` and
are counted (``sladaemon_silence_requests_refused_total{reason}``); requests per client address
are limited by ``ack.rate`` like the ack API, bodies by the listener (64 KiB).
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Callable

from aiohttp import web

from sladaemon.clock import Clock
from sladaemon.config.chains import AckConfig
from sladaemon.escalate.silence_store import SilenceStore, UnknownSilence
from sladaemon.escalate.silences import MAX_TEXT, SilenceError, silence_from_request, silence_json
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.ratelimit import RateLimit


class SilenceApi:
    def __init__(
        self,
        ack: Callable[[], AckConfig | None],
        store: SilenceStore,
        metrics: DaemonMetrics,
        clock: Clock,
    ) -> None:
        self.ack = ack  # the current ack: section (tokens and rate), reloads included
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.log = get_logger("sladaemon.silences")
        self.limit = RateLimit(5.0)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/silences", self._add),
            web.get("/api/v1/silences", self._list),
            web.delete("/api/v1/silences/{id}", self._expire),
        ]

    def _refuse(self, reason: str, status: int, message: str) -> web.Response:
        self.metrics.silence_refused.labels(reason).inc()
        self.log.warning("silence_refused", reason=reason, message=message)
        return web.json_response({"ok": False, "message": message}, status=status)

    def _checked(self, request: web.Request) -> web.Response | None:
        """A refusal when the client is over its rate or has no valid token, else None."""
        ack = self.ack()
        self.limit.rate = ack.rate if ack else self.limit.rate
        if not self.limit.allow(request.remote or ""):
            return self._refuse("rate_limited", 429, "too many requests: try again shortly")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        tokens = ack.api_tokens if ack else []
        if not given or not any(
            hmac.compare_digest(given.encode(), t.get_secret_value().encode()) for t in tokens
        ):
            return self._refuse("unauthorized", 401, "a valid bearer token is needed")
        return None

    async def _add(self, request: web.Request) -> web.Response:
        if (refused := self._checked(request)) is not None:
            return refused
        try:
            body = json.loads(await request.text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._refuse("malformed", 400, "the body is not JSON")
        if not isinstance(body, dict):
            return self._refuse("malformed", 400, "the body is a JSON object")
        now = self.clock.now()
        try:
            silence = silence_from_request(body, silence_id=str(uuid.uuid4()), now=now)
        except SilenceError as exc:
            return self._refuse("malformed", 400, str(exc))
        self.store.add(silence)
        self.log.info(
            "silence_added",
            id=silence.id,
            matchers=[str(m) for m in silence.matchers],
            until=silence.ends_at.isoformat(),
            by=silence.created_by,
        )
        return web.json_response(silence_json(silence, now), status=201)

    async def _list(self, request: web.Request) -> web.Response:
        if (refused := self._checked(request)) is not None:
            return refused
        now = self.clock.now()
        include_expired = request.query.get("all", "") not in ("", "0", "false")
        listed = self.store.listed(now, include_expired=include_expired)
        return web.json_response({"silences": [silence_json(s, now) for s in listed]})

    async def _expire(self, request: web.Request) -> web.Response:
        if (refused := self._checked(request)) is not None:
            return refused
        by = request.query.get("by", "") or "api"
        if len(by) > MAX_TEXT:
            return self._refuse("malformed", 400, f"by is at most {MAX_TEXT} long")
        now = self.clock.now()
        try:
            ended = self.store.expire(request.match_info["id"], by, now)
        except UnknownSilence as exc:
            return self._refuse("unknown", 404, str(exc))
        except SilenceError as exc:
            return self._refuse("expired", 409, str(exc))
        self.log.info("silence_expired", id=ended.id, by=by)
        return web.json_response(silence_json(ended, now))


def silence_routes(
    ack: Callable[[], AckConfig | None],
    store: SilenceStore,
    metrics: DaemonMetrics,
    clock: Clock,
) -> list[web.RouteDef]:
    return SilenceApi(ack, store, metrics, clock).routes()
