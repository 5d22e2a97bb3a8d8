"""The Slack app against a fake Slack run as its own process: messages posted and rewritten,
Slack's errors read, and button clicks signed by Slack acted on through the interactions route
served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from sladaemon.daemon.slack_interactions import (
    INTERACTIONS_PATH,
    MAX_BODY,
    SlackClicks,
    slack_routes,
)
from sladaemon.daemon.slack_socket import SlackSocket
from sladaemon.escalate.acks import AckOutcome
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import NotificationKind
from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.notify.message import Notification
from sladaemon.notify.slack_app import SlackApp
from sladaemon.notify.slack_blocks import ACK_ACTION, ESCALATE_ACTION
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, FakeSlack

CHAIN = "desk/42/first_response/0/breach"
SECRET = "f00dfeedsigningsecret0123456789a"
WAIT_LIMIT = 10.0  # seconds a test waits for a background rewrite before it fails


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.stop()


def _message(chain: str = CHAIN) -> Notification:
    return Notification(
        id=CHAIN,
        kind=NotificationKind.BREACH,
        title="SLA breached: ticket 42 first_response breached",
        body="ticket: 42 <https://desk.example/42>",
        chain=chain,
        ack_url="https://sla.example/ack/t0k3n" if chain else "",
    )


def _posted(slack: FakeSlack, ts: str) -> dict[str, Any]:
    (message,) = [m for m in slack.messages() if m["ts"] == ts]
    return dict(message)


async def _post(slack: FakeSlack, app: SlackApp, channel: str = "C0ALERTS") -> str:
    before = {m["ts"] for m in slack.messages()}
    outcome = await app.send(channel, _message())
    assert outcome.delivered, outcome.error
    (ts,) = {str(m["ts"]) for m in slack.messages()} - before
    return ts


# ---------------------------------------------------------------------------- posting


async def test_a_chain_message_is_posted_with_its_buttons_and_rewritten_after_an_ack(
    slack: FakeSlack,
) -> None:
    app = SlackApp(BOT_TOKEN, slack.api_url)
    ts = await _post(slack, app)
    posted = _posted(slack, ts)
    assert posted["channel"] == "C0ALERTS"
    assert posted["text"] == "SLA breached: ticket 42 first_response breached"
    assert posted["blocks"][1]["text"]["text"] == "ticket: 42 &lt;https://desk.example/42&gt;"
    (actions,) = [b for b in posted["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        (ACK_ACTION, CHAIN),
        (ESCALATE_ACTION, CHAIN),
    ]
    outcome = await app.update_acknowledged(
        "C0ALERTS", ts, "Acknowledged by alice at noon via slack", posted["blocks"]
    )
    assert outcome.delivered, outcome.error
    (update,) = _posted(slack, ts)["updates"]
    assert update["text"] == "Acknowledged by alice at noon via slack"
    assert [b["type"] for b in update["blocks"]] == ["header", "section", "context"]
    assert update["blocks"][-1]["elements"][0]["text"] == "Acknowledged by alice at noon via slack"


async def test_a_wrong_token_or_an_unknown_channel_fails_for_good(slack: FakeSlack) -> None:
    wrong = await SlackApp("xoxb-not-the-token", slack.api_url).send("C0ALERTS", _message())
    assert (wrong.delivered, wrong.retryable) == (False, False)
    assert wrong.error == "slack chat.postMessage: invalid_auth"
    nowhere = await SlackApp(BOT_TOKEN, slack.api_url).send("#alerts", _message())
    assert (nowhere.retryable, nowhere.error) == (
        False,
        "slack chat.postMessage: channel_not_found",
    )


async def test_a_rate_limit_or_a_slack_outage_is_tried_again(slack: FakeSlack) -> None:
    app = SlackApp(BOT_TOKEN, slack.api_url)
    slack.fail("chat.postMessage", "ratelimited", retry_after=7)
    limited = await app.send("C0ALERTS", _message())
    assert (limited.delivered, limited.retryable, limited.retry_after) == (False, True, 7.0)
    assert limited.error == "slack chat.postMessage: ratelimited"
    slack.fail("chat.postMessage", "service_unavailable", status=503)
    outage = await app.send("C0ALERTS", _message())
    assert (outage.delivered, outage.retryable, outage.maybe_sent) == (False, True, False)
    assert (await app.send("C0ALERTS", _message())).delivered  # the faults are spent


async def test_a_slack_that_does_not_answer_in_time_may_have_posted(slack: FakeSlack) -> None:
    slack.fail("chat.postMessage", "", hang=2)
    started = time.monotonic()
    outcome = await SlackApp(BOT_TOKEN, slack.api_url, timeout=0.5).send("C0ALERTS", _message())
    assert time.monotonic() - started < 2
    assert (outcome.delivered, outcome.retryable, outcome.maybe_sent) == (False, True, True)
    assert outcome.error == "slack chat.postMessage: no answer within 0.5s"


@dataclass
class _Receiver:
    urls: list[SecretStr]
    template: str | None = None
    timeout: timedelta = timedelta(seconds=5)


async def test_the_notifier_sends_slack_app_urls_through_the_slack_app(slack: FakeSlack) -> None:
    receivers = {"oncall": _Receiver([SecretStr("slack-app://U0ALICE")])}
    notifier = AppriseNotifier(receivers, io.StringIO(), slack=SlackApp(BOT_TOKEN, slack.api_url))
    without = AppriseNotifier(receivers, io.StringIO())
    try:
        before = len(slack.messages())
        outcome = await notifier.send("oncall", 0, _message(chain=""))
        assert outcome.delivered, outcome.error
        messages = slack.messages()
        assert len(messages) == before + 1 and messages[-1]["channel"] == "U0ALICE"
        assert [b["type"] for b in messages[-1]["blocks"]] == ["header", "section"]
        refused = await without.send("oncall", 0, _message())
        assert (refused.delivered, refused.retryable) == (False, False)
        assert "needs daemon.slack" in refused.error
        assert len(slack.messages()) == before + 1
    finally:
        notifier.close()
        without.close()


# ---------------------------------------------------------------------------- clicks


@dataclass
class RecordingDesk:
    """An ack desk that records what it is asked and answers as told."""

    calls: list[tuple[str, str, str, str]] = field(default_factory=list)
    answer: AckOutcome | None = None

    async def acknowledge(self, chain: str, by: str, via: str, note: str = "") -> AckOutcome:
        self.calls.append(("acknowledge", chain, by, via))
        return self.answer or AckOutcome(True, f"acknowledged by {by}", (chain,))

    async def escalate(self, chain: str, by: str, via: str) -> AckOutcome:
        self.calls.append(("escalate", chain, by, via))
        return self.answer or AckOutcome(True, f"escalated by {by}", (chain,))


@dataclass
class Daemon:
    url: str
    desk: RecordingDesk
    metrics: DaemonMetrics

    def refused(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "sladaemon_ack_refused_total", {"reason": reason}
        )
        return value or 0.0


def _person_of(slack_id: str, slack_name: str) -> str:
    return {"U0ALICE": "alice"}.get(slack_id, slack_name)


@pytest.fixture
async def daemon(slack: FakeSlack) -> AsyncIterator[Daemon]:
    desk = RecordingDesk()
    metrics = DaemonMetrics()
    routes, clicks = slack_routes(
        desk, SlackApp(BOT_TOKEN, slack.api_url), SECRET, _person_of, metrics
    )
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield Daemon(f"http://127.0.0.1:{port}{INTERACTIONS_PATH}", desk, metrics)
    await clicks.settle()
    await runner.cleanup()


async def _click(slack: FakeSlack, ts: str, action: str, **spec: Any) -> dict[str, Any]:
    return await asyncio.to_thread(slack.click, ts, action, **spec)


async def _eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_LIMIT}s: {what}")
        await asyncio.sleep(0.05)


async def test_an_acknowledge_click_acks_the_chain_and_rewrites_the_message(
    slack: FakeSlack, daemon: Daemon
) -> None:
    ts = await _post(slack, SlackApp(BOT_TOKEN, slack.api_url))
    answer = await _click(slack, ts, ACK_ACTION, url=daemon.url, signing_secret=SECRET)
    assert answer["status"] == 200
    assert daemon.desk.calls == [("acknowledge", CHAIN, "alice", "slack")]
    await _eventually(lambda: bool(_posted(slack, ts)["updates"]), "the message rewritten")
    (update,) = _posted(slack, ts)["updates"]
    said = update["blocks"][-1]["elements"][0]["text"]
    assert said.startswith("Acknowledged by alice at <!date^") and said.endswith(" via slack")
    assert not [b for b in update["blocks"] if b["type"] == "actions"]


async def test_an_escalate_click_escalates_and_keeps_the_acknowledge_button(
    slack: FakeSlack, daemon: Daemon
) -> None:
    ts = await _post(slack, SlackApp(BOT_TOKEN, slack.api_url))
    answer = await _click(
        slack,
        ts,
        ESCALATE_ACTION,
        url=daemon.url,
        signing_secret=SECRET,
        user_id="U0BOB",
        user_name="bob",
    )
    assert answer["status"] == 200
    assert daemon.desk.calls == [("escalate", CHAIN, "bob", "slack")]  # no person: Slack's name
    await _eventually(lambda: bool(_posted(slack, ts)["updates"]), "the message rewritten")
    (update,) = _posted(slack, ts)["updates"]
    assert update["blocks"][-1]["elements"][0]["text"].startswith("Escalated by bob at ")
    assert [b for b in update["blocks"] if b["type"] == "actions"]


async def test_a_chain_acked_already_says_so_and_loses_its_buttons(
    slack: FakeSlack, daemon: Daemon
) -> None:
    daemon.desk.answer = AckOutcome(False, "already acknowledged by carol at 10:02")
    ts = await _post(slack, SlackApp(BOT_TOKEN, slack.api_url))
    answer = await _click(slack, ts, ACK_ACTION, url=daemon.url, signing_secret=SECRET)
    assert answer["status"] == 200
    await _eventually(lambda: bool(_posted(slack, ts)["updates"]), "the message rewritten")
    (update,) = _posted(slack, ts)["updates"]
    said = update["blocks"][-1]["elements"][0]["text"]
    assert said.startswith("already acknowledged by carol at 10:02 (clicked by alice at ")
    assert not [b for b in update["blocks"] if b["type"] == "actions"]


async def test_a_forged_or_stale_click_is_refused_and_counted(
    slack: FakeSlack, daemon: Daemon
) -> None:
    ts = await _post(slack, SlackApp(BOT_TOKEN, slack.api_url))
    forged = await _click(slack, ts, ACK_ACTION, url=daemon.url, signing_secret="guessed")
    stale = await _click(slack, ts, ACK_ACTION, url=daemon.url, signing_secret=SECRET, age=600)
    assert (forged["status"], stale["status"]) == (401, 401)
    assert daemon.desk.calls == []
    assert (daemon.refused("forged"), daemon.refused("expired")) == (1.0, 1.0)
    assert _posted(slack, ts)["updates"] == []


async def test_a_replayed_or_oversized_request_is_refused(daemon: Daemon) -> None:
    from sladaemon.daemon.slack_interactions import signature

    payload = (
        '{"type": "block_actions", "user": {"id": "U0ALICE", "username": "alice"}, '
        f'"actions": [{{"action_id": "{ACK_ACTION}", "value": "{CHAIN}"}}]}}'
    )
    body = urlencode({"payload": payload}).encode()  # as Slack encodes it
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature(SECRET, stamp, body),
    }
    big = b"payload=" + b"x" * MAX_BODY
    big_headers = headers | {"X-Slack-Signature": signature(SECRET, stamp, big)}
    async with aiohttp.ClientSession() as session:
        async with session.post(daemon.url, data=body, headers=headers) as first:
            assert first.status == 200
        async with session.post(daemon.url, data=body, headers=headers) as again:
            assert again.status == 401
        async with session.post(daemon.url, data=big, headers=big_headers) as oversized:
            assert oversized.status == 413
    assert daemon.desk.calls == [("acknowledge", CHAIN, "alice", "slack")]
    assert (daemon.refused("replayed"), daemon.refused("too_large")) == (1.0, 1.0)


# ---------------------------------------------------------------------------- Socket Mode


async def test_a_click_over_socket_mode_acks_the_chain_and_is_acknowledged(
    slack: FakeSlack,
) -> None:
    desk = RecordingDesk()
    app = SlackApp(BOT_TOKEN, slack.api_url)
    clicks = SlackClicks(desk, app, _person_of, DaemonMetrics())
    socket = SlackSocket(APP_TOKEN, slack.api_url, clicks)
    ts = await _post(slack, app)
    await socket.start()
    try:
        answer = await _click(slack, ts, ACK_ACTION, socket=True)
        assert answer == {"acknowledged": True}
        assert desk.calls == [("acknowledge", CHAIN, "alice", "slack")]
        await _eventually(lambda: bool(_posted(slack, ts)["updates"]), "the message rewritten")
        (update,) = _posted(slack, ts)["updates"]
        assert update["blocks"][-1]["elements"][0]["text"].startswith("Acknowledged by alice at ")
    finally:
        await socket.stop()


async def test_a_click_the_desk_cannot_record_is_left_for_slack_to_send_again(
    slack: FakeSlack,
) -> None:
    class BrokenDesk(RecordingDesk):
        async def acknowledge(self, chain: str, by: str, via: str, note: str = "") -> AckOutcome:
            raise OSError("disk full")

    app = SlackApp(BOT_TOKEN, slack.api_url)
    socket = SlackSocket(
        APP_TOKEN, slack.api_url, SlackClicks(BrokenDesk(), app, _person_of, DaemonMetrics())
    )
    ts = await _post(slack, app)
    await socket.start()
    try:
        unanswered = await _click(slack, ts, ACK_ACTION, socket=True, ack_wait=2)
        assert unanswered == {"acknowledged": False}
    finally:
        await socket.stop()
    assert _posted(slack, ts)["updates"] == []
