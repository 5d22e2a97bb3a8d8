"""Clicks on the Acknowledge and Escalate buttons of Slack messages.

Slack posts each click to ``POST /slack/interactions`` (the app's interactivity URL): a form
with one field, ``payload``, a ``block_actions`` JSON document, signed with the app's signing
secret (``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<body>">``). A request
that is not signed so, is older than ``MAX_AGE`` or was seen already is refused (401) and
counted in ``sladaemon_ack_refused_total{reason}``. With Socket Mode the same payloads come
over a websocket instead (daemon/slack_socket.py) and are acted on the same way.

A click is acted on at once — the ack desk records it durably — and answered 200 well within
Slack's 3 seconds; the message is then rewritten in the background: the buttons replaced by
who did what, when.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from sladaemon.clock import Clock, SystemClock
from sladaemon.config.loader import Config
from sladaemon.escalate.acks import AckDesk, AckOutcome
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.notify.slack_app import SlackApp
from sladaemon.notify.slack_blocks import ACK_ACTION, ESCALATE_ACTION, escape, slack_date

INTERACTIONS_PATH = "/slack/interactions"
MAX_BODY = 64 * 1024  # bytes of a click's request
MAX_AGE = 300.0  # seconds a signed request stays valid (Slack's advice: 5 minutes)

# (Slack user id, Slack user name) -> the person who clicked: a person whose ``slack:`` is
# that id, else the Slack user name.
PersonOf = Callable[[str, str], str]


def slack_app(config: Config) -> SlackApp | None:
    """The Slack app of ``daemon.slack``, or None when it is not configured."""
    cfg = config.daemon.slack
    if cfg is None:
        return None
    return SlackApp(cfg.token.get_secret_value(), cfg.api_url, cfg.timeout.total_seconds())


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 request signature."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signature_problem(
    secret: str, timestamp: str, given: str, body: bytes, now: float
) -> str | None:
    """Why a request is not Slack's: ``forged`` (bad signature) or ``expired`` (its timestamp
    is more than ``MAX_AGE`` away from ``now``); None when it is."""
    try:
        sent = float(timestamp)
    except ValueError:
        return "forged"
    if not hmac.compare_digest(signature(secret, timestamp, body), given):
        return "forged"
    if sent != sent or abs(now - sent) > MAX_AGE:
        return "expired"
    return None


@dataclass(frozen=True)
class Click:
    """One button click of a ``block_actions`` payload."""

    action: str  # ACK_ACTION or ESCALATE_ACTION
    chain: str
    user_id: str
    user_name: str
    channel: str
    ts: str  # the message's
    blocks: tuple[Mapping[str, Any], ...]

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Click | None:
        """The click in ``payload``; None when it holds none of our buttons."""
        if payload.get("type") != "block_actions":
            return None
        actions = payload.get("actions")
        action = actions[0] if isinstance(actions, list) and actions else None
        if not isinstance(action, dict) or action.get("action_id") not in (
            ACK_ACTION,
            ESCALATE_ACTION,
        ):
            return None
        user = _mapping(payload.get("user"))
        message = _mapping(payload.get("message"))
        blocks = message.get("blocks")
        return cls(
            action=str(action["action_id"]),
            chain=str(action.get("value") or ""),
            user_id=str(user.get("id") or ""),
            user_name=str(user.get("username") or user.get("name") or user.get("id") or ""),
            channel=str(_mapping(payload.get("channel")).get("id") or ""),
            ts=str(message.get("ts") or _mapping(payload.get("container")).get("message_ts") or ""),
            blocks=tuple(b for b in blocks if isinstance(b, dict))
            if isinstance(blocks, list)
            else (),
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(eq=False)
class SlackClicks:
    """Acts on clicks (from the HTTP route or Socket Mode) and rewrites their messages."""

    desk: AckDesk
    slack: SlackApp
    person_of: PersonOf
    metrics: DaemonMetrics
    clock: Clock = field(default_factory=SystemClock)
    log: Any = field(default_factory=lambda: get_logger("sladaemon.slack"))
    _updates: set[asyncio.Task[None]] = field(default_factory=set)

    async def act(self, payload: Mapping[str, Any]) -> AckOutcome | None:
        """Acknowledge or escalate the chain of a click; the message's rewrite is started in
        the background. None when the payload holds no click of ours."""
        click = Click.of(payload)
        if click is None:
            return None
        by = self.person_of(click.user_id, click.user_name)
        if click.action == ACK_ACTION:
            outcome = await self.desk.acknowledge(click.chain, by, "slack")
            done = "Acknowledged"
        else:
            outcome = await self.desk.escalate(click.chain, by, "slack")
            done = "Escalated"
        self.log.info(
            "slack_action",
            action="acknowledge" if click.action == ACK_ACTION else "escalate",
            chain=click.chain,
            by=by,
            slack_user=click.user_id,
            ok=outcome.ok,
            outcome=outcome.message,
        )
        when = slack_date(self.clock.now().astimezone(UTC))
        if outcome.ok:
            text = f"{done} by {escape(by)} at {when} via slack"
        else:
            text = f"{escape(outcome.message)} (clicked by {escape(by)} at {when})"
        keep_buttons = outcome.ok and click.action == ESCALATE_ACTION  # still waits for an ack
        if click.channel and click.ts:
            task = asyncio.create_task(self._update(click, text, keep_buttons))
            self._updates.add(task)
            task.add_done_callback(self._updates.discard)
        return outcome

    async def _update(self, click: Click, text: str, keep_buttons: bool) -> None:
        result = await self.slack.update_acknowledged(
            click.channel, click.ts, text, click.blocks, keep_buttons
        )
        if not result.delivered:
            self.log.warning("slack_update_failed", chain=click.chain, error=result.error)

    async def settle(self) -> None:
        """Wait for the messages being rewritten (at a stop)."""
        if self._updates:
            await asyncio.gather(*self._updates, return_exceptions=True)


@dataclass(eq=False)
class SlackInteractionsRoute:
    """``POST /slack/interactions``: signed clicks, checked, then acted on."""

    clicks: SlackClicks
    signing_secret: str
    _seen: dict[str, float] = field(default_factory=dict)  # signature -> when it expires

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return self._refuse("too_large", 413)
        now = time.time()
        problem = signature_problem(
            self.signing_secret,
            request.headers.get("X-Slack-Request-Timestamp", ""),
            request.headers.get("X-Slack-Signature", ""),
            body,
            now,
        )
        if problem is None and self._replayed(request.headers["X-Slack-Signature"], now):
            problem = "replayed"
        if problem:
            return self._refuse(problem, 401)
        try:
            payload = json.loads(parse_qs(body.decode())["payload"][0])
        except (UnicodeDecodeError, KeyError, IndexError, ValueError):
            return self._refuse("malformed", 400)
        if not isinstance(payload, dict):
            return self._refuse("malformed", 400)
        try:
            await self.clicks.act(payload)
        except Exception as exc:  # the click fails, not the daemon; Slack shows it failed
            self.clicks.log.error("slack_action_failed", error=f"{type(exc).__name__}: {exc}")
            return web.Response(status=500, text="the click could not be recorded")
        return web.Response(status=200)

    def _replayed(self, given: str, now: float) -> bool:
        for sig in [s for s, until in self._seen.items() if until < now]:
            del self._seen[sig]
        if given in self._seen:
            return True
        self._seen[given] = now + 2 * MAX_AGE
        return False

    def _refuse(self, reason: str, status: int) -> web.Response:
        self.clicks.metrics.ack_refused.labels(reason).inc()
        self.clicks.log.warning("slack_request_refused", reason=reason)
        return web.Response(status=status, text=f"refused: {reason}")


def slack_routes(
    desk: AckDesk,
    slack: SlackApp,
    signing_secret: str,
    person_of: PersonOf,
    metrics: DaemonMetrics,
    clock: Clock | None = None,
) -> tuple[list[web.RouteDef], SlackClicks]:
    """The route of Slack's interactivity URL, and what acts on its clicks (``settle`` it at a
    stop)."""
    clicks = SlackClicks(desk, slack, person_of, metrics, clock or SystemClock())
    route = SlackInteractionsRoute(clicks, signing_secret)
    return [web.post(INTERACTIONS_PATH, route.handle)], clicks
