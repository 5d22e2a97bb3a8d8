"""A fake Slack: the Web API methods sladaemon calls, and a user clicking message buttons.

Run with ``python -m tests.fakes slack --port 0`` (prints ``READY <port>``); :class:`FakeSlack`
does that for a test. The Web API lives under ``/api/`` (the app's ``api_url``):

* ``auth.test``, ``chat.postMessage``, ``chat.update`` with the bot token :data:`BOT_TOKEN`
  (``Authorization: Bearer``), JSON or form bodies as ``slack_sdk`` sends them, answered like
  Slack (``{"ok": true, "channel", "ts", "message"}``; a wrong token ``invalid_auth``, an
  unknown channel — one not starting with C, G, D, U or W — ``channel_not_found``, an update of
  an unknown message ``message_not_found``);
* ``apps.connections.open`` with the app token :data:`APP_TOKEN` answers a websocket URL on
  this fake (Socket Mode): it says ``hello`` and carries clicks as ``interactive`` envelopes.

Control endpoints, under ``/_control``:

* ``GET /_control/messages``: every message posted, ``{channel, ts, text, blocks, updates}``,
  ``updates`` the ``{text, blocks}`` of each ``chat.update`` of it, in order;
* ``POST /_control/click`` ``{ts, action_id, user_id, user_name, url, signing_secret}``: a
  user clicks a button of message ``ts``; the fake posts the signed ``block_actions`` payload
  to ``url`` as Slack does (form field ``payload``) and answers ``{"status": <the daemon's>}``.
  ``age`` (seconds) back-dates the request's timestamp; ``"socket": true`` sends the click over
  the Socket Mode websocket instead and answers ``{"acknowledged": true|false}`` (whether the
  envelope was acknowledged within ``ack_wait`` seconds, default 10);
* ``POST /_control/fail`` ``{method, error, count, retry_after, status}``: the next ``count``
  calls of ``method`` fail with Slack's ``error`` (``ratelimited``: HTTP 429 with
  ``Retry-After``); with ``hang`` (seconds) instead, they are answered that late.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from tests.fakes.process import FakeHelpdesk

BOT_TOKEN = "xoxb-1111-2222-fakeslackbottoken"
APP_TOKEN = "xapp-1-A111-2222-fakeslackapptoken"
_CHANNEL_PREFIXES = ("C", "G", "D", "U", "W")
ACK_WAIT = 10.0  # seconds a Socket Mode click waits for the client's acknowledgement


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    updates: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "ts": self.ts,
            "text": self.text,
            "blocks": self.blocks,
            "updates": self.updates,
        }


@dataclass
class SlackState:
    messages: dict[str, Message] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    acks: dict[str, asyncio.Event] = field(default_factory=dict)  # envelope id -> acked
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self.counter):06d}"

    def failure(self, method: str) -> dict[str, Any] | None:
        for fault in self.failures:
            if fault.get("method") == method and int(fault.get("count", 1)) > 0:
                fault["count"] = int(fault.get("count", 1)) - 1
                if fault["count"] <= 0:
                    self.failures.remove(fault)
                return fault
        return None


STATE = web.AppKey("slack_state", SlackState)


async def _arguments(request: web.Request) -> dict[str, Any]:
    """A Web API call's arguments: query, then a JSON or form body."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        args.update(body if isinstance(body, dict) else {})
    elif request.can_read_body:
        args.update(await request.post())
    return args


def _fail(error: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"ok": False, "error": error}, status=status, headers=headers)


async def api(request: web.Request) -> web.Response:
    state = request.app[STATE]
    method = request.match_info["method"]
    fault = state.failure(method)
    if fault is not None and "hang" in fault:  # answers, late
        await asyncio.sleep(float(fault["hang"]))
    elif fault is not None:
        error = str(fault.get("error", "internal_error"))
        if error == "ratelimited":
            retry = str(fault.get("retry_after", 30))
            return _fail(error, int(fault.get("status", 429)), {"Retry-After": retry})
        return _fail(error, int(fault.get("status", 200)))
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    args = await _arguments(request)
    if method == "apps.connections.open":
        if token != APP_TOKEN:
            return _fail("invalid_auth")
        host = request.host
        return web.json_response({"ok": True, "url": f"ws://{host}/_socket"})
    if token != BOT_TOKEN:
        return _fail("invalid_auth")
    if method == "auth.test":
        return web.json_response(
            {
                "ok": True,
                "url": "https://fake.slack.invalid/",
                "team": "Fake",
                "user": "sladaemon",
                "team_id": "T0FAKE",
                "user_id": "U0BOT",
                "bot_id": "B0BOT",
            }
        )
    if method == "chat.postMessage":
        return _post(state, args)
    if method == "chat.update":
        return _update(state, args)
    return _fail("unknown_method", 404)


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = args.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


def _post(state: SlackState, args: dict[str, Any]) -> web.Response:
    channel = str(args.get("channel", ""))
    if not channel.startswith(_CHANNEL_PREFIXES):
        return _fail("channel_not_found")
    if not args.get("text") and not args.get("blocks"):
        return _fail("no_text")
    message = Message(channel, state.next_ts(), str(args.get("text", "")), _blocks(args))
    state.messages[message.ts] = message
    answer = {"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks}
    return web.json_response({"ok": True, "channel": channel, "ts": message.ts, "message": answer})


def _update(state: SlackState, args: dict[str, Any]) -> web.Response:
    message = state.messages.get(str(args.get("ts", "")))
    if message is None or message.channel != args.get("channel"):
        return _fail("message_not_found")
    message.text = str(args.get("text", message.text))
    if "blocks" in args:
        message.blocks = _blocks(args)
    message.updates.append({"text": message.text, "blocks": message.blocks})
    answer = {"text": message.text, "blocks": message.blocks}
    return web.json_response(
        {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "text": message.text,
            "message": answer,
        }
    )


def block_actions(message: Message, action_id: str, user_id: str, user_name: str) -> dict[str, Any]:
    """The payload Slack sends when a user clicks the button ``action_id`` of ``message``."""
    action = next(
        (
            (block, element)
            for block in message.blocks
            if block.get("type") == "actions"
            for element in block.get("elements", [])
            if element.get("action_id") == action_id
        ),
        None,
    )
    if action is None:
        raise web.HTTPBadRequest(text=f"message {message.ts} has no button {action_id}")
    block, element = action
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": "T0FAKE"},
        "api_app_id": "A0FAKE",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
        },
        "trigger_id": "1.2.3",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "channel": {"id": message.channel, "name": "alerts"},
        "message": {
            "type": "message",
            "ts": message.ts,
            "text": message.text,
            "blocks": message.blocks,
        },
        "response_url": "https://hooks.slack.invalid/actions/1",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block.get("block_id", ""),
                "value": element.get("value", ""),
                "text": element.get("text"),
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


async def click(request: web.Request) -> web.Response:
    state = request.app[STATE]
    spec = await request.json()
    message = state.messages.get(str(spec["ts"]))
    if message is None:
        raise web.HTTPNotFound(text=f"no message {spec['ts']}")
    payload = block_actions(message, spec["action_id"], spec["user_id"], spec["user_name"])
    if spec.get("socket"):
        wait = float(spec.get("ack_wait", ACK_WAIT))
        return web.json_response({"acknowledged": await _over_socket(state, payload, wait)})
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time() - float(spec.get("age", 0))))
    base = b"v0:" + timestamp.encode() + b":" + body
    signature = hmac.new(spec["signing_secret"].encode(), base, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={signature}",
    }
    async with (
        aiohttp.ClientSession(trust_env=False) as session,
        session.post(spec["url"], data=body, headers=headers) as answer,
    ):
        return web.json_response({"status": answer.status, "body": await answer.text()})


async def _over_socket(state: SlackState, payload: dict[str, Any], wait: float) -> bool:
    open_sockets = [ws for ws in state.sockets if not ws.closed]
    if not open_sockets:
        raise web.HTTPConflict(text="no Socket Mode connection")
    envelope_id = str(uuid.uuid4())
    acked = state.acks[envelope_id] = asyncio.Event()
    await open_sockets[-1].send_json(
        {
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": False,
            "payload": payload,
            "retry_attempt": 0,
            "retry_reason": "",
        }
    )
    try:
        await asyncio.wait_for(acked.wait(), wait)
    except TimeoutError:
        return False
    return True


async def socket(request: web.Request) -> web.WebSocketResponse:
    state = request.app[STATE]
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    state.sockets.append(ws)
    await ws.send_json(
        {
            "type": "hello",
            "num_connections": len(state.sockets),
            "connection_info": {"app_id": "A0FAKE"},
            "debug_info": {"host": "fake"},
        }
    )
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            data = json.loads(msg.data)
            event = state.acks.get(str(data.get("envelope_id", "")))
            if event is not None:
                event.set()
    return ws


async def messages(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response([m.as_json() for m in state.messages.values()])


async def fail(request: web.Request) -> web.Response:
    state = request.app[STATE]
    spec = await request.json()
    state.failures.append(dict(spec))
    return web.json_response({"failures": state.failures})


async def _close_sockets(app: web.Application) -> None:
    for ws in app[STATE].sockets:
        await ws.close()


def make_app() -> web.Application:
    app = web.Application()
    app[STATE] = SlackState()
    app.router.add_route("*", "/api/{method}", api)
    app.router.add_get("/_socket", socket)
    app.router.add_get("/_control/messages", messages)
    app.router.add_post("/_control/click", click)
    app.router.add_post("/_control/fail", fail)
    app.on_shutdown.append(_close_sockets)
    return app


class FakeSlack(FakeHelpdesk):
    """The fake Slack as a process: ``api_url`` for the app, ``control`` for the test."""

    def __init__(self) -> None:
        super().__init__("slack")
        self.api_url = f"{self.url}/api/"

    def control(self, path: str, body: Any = None, method: str | None = None) -> Any:
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_control/{path.lstrip('/')}",
            data=data,
            method=method or ("GET" if body is None else "POST"),
            headers={"Content-Type": "application/json"},
        )
        with self._opener.open(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def messages(self) -> list[dict[str, Any]]:
        return list(self.control("messages"))

    def click(self, ts: str, action_id: str, **spec: Any) -> dict[str, Any]:
        body = {"ts": ts, "action_id": action_id, "user_id": "U0ALICE", "user_name": "alice"}
        return dict(self.control("click", body | spec))

    def fail(self, method: str, error: str, count: int = 1, **spec: Any) -> None:
        self.control("fail", {"method": method, "error": error, "count": count} | spec)
