"""Slack, without a network: the config of the Slack app, how its messages look, how Slack's
errors are read and how a click's signature is checked."""

from __future__ import annotations

import hashlib
import hmac
import textwrap
from pathlib import Path

import pytest

from sladaemon.config import load_config
from sladaemon.config.slack import SlackConfig
from sladaemon.daemon.slack_interactions import MAX_AGE, Click, signature, signature_problem
from sladaemon.errors import ConfigError
from sladaemon.model import NotificationKind
from sladaemon.notify.apprise_notifier import url_problem
from sladaemon.notify.message import Notification
from sladaemon.notify.slack_app import MAX_RETRY_AFTER, slack_error
from sladaemon.notify.slack_blocks import (
    ACK_ACTION,
    ESCALATE_ACTION,
    SECTION_MAX,
    escape,
    message_blocks,
    outcome_blocks,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT = "xoxb-1111-2222-secretbottoken"

# ---------------------------------------------------------------------------- signatures


def test_slacks_documented_example_signature_is_reproduced() -> None:
    # api.slack.com/authentication/verifying-requests-from-slack, step by step
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert signature(SECRET, "1531420618", body) == expected
    assert signature_problem(SECRET, "1531420618", expected, body, now=1531420618 + 60) is None


@pytest.mark.parametrize(
    ("timestamp", "given", "body", "now_offset", "problem"),
    [
        ("1700000000", "good", b"payload=%7B%7D", 0, None),
        ("1700000000", "good", b"payload=%7B%7D", -MAX_AGE + 1, None),
        ("1700000000", "good", b"payload=%7B%7D", MAX_AGE + 1, "expired"),
        ("1700000000", "good", b"payload=%7B%7D", -MAX_AGE - 1, "expired"),
        ("1700000000", "v0=" + "0" * 64, b"payload=%7B%7D", 0, "forged"),
        ("1700000000", "", b"payload=%7B%7D", 0, "forged"),
        ("1700000001", "good", b"payload=%7B%7D", 0, "forged"),  # another timestamp
        ("1700000000", "good", b"payload=%7B%22x%22%7D", 0, "forged"),  # another body
        ("soon", "good", b"payload=%7B%7D", 0, "forged"),
    ],
)
def test_a_request_is_refused_unless_signed_with_the_secret_and_recent(
    timestamp: str, given: str, body: bytes, now_offset: float, problem: str | None
) -> None:
    signed = hmac.new(SECRET.encode(), b"v0:1700000000:payload=%7B%7D", hashlib.sha256).hexdigest()
    header = f"v0={signed}" if given == "good" else given
    assert signature_problem(SECRET, timestamp, header, body, 1700000000 + now_offset) == problem


def test_a_signature_with_another_secret_is_forged() -> None:
    body = b"payload=%7B%7D"
    other = signature("another-secret", "1700000000", body)
    assert signature_problem(SECRET, "1700000000", other, body, 1700000000) == "forged"


# ---------------------------------------------------------------------------- messages


def _message(chain: str = "", ack_url: str = "", body: str = "ticket: 42") -> Notification:
    return Notification(
        id="desk/42/first_response/0/breach",
        kind=NotificationKind.BREACH,
        title="SLA breached: ticket 42 first_response breached",
        body=body,
        chain=chain,
        ack_url=ack_url,
    )


def test_a_chain_message_has_acknowledge_and_escalate_buttons_carrying_the_chain_key() -> None:
    chain = "desk/42/first_response/0/breach"
    blocks = message_blocks(_message(chain=chain, ack_url="https://sla.example/ack/t0k3n"))
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "SLA breached: ticket 42 first_response breached"},
    }
    assert blocks[1]["text"]["text"] == "ticket: 42"
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    buttons = {e["action_id"]: e for e in actions["elements"]}
    assert set(buttons) == {ACK_ACTION, ESCALATE_ACTION}
    assert buttons[ACK_ACTION]["text"]["text"] == "Acknowledge"
    assert buttons[ACK_ACTION]["style"] == "primary"
    assert buttons[ESCALATE_ACTION]["text"]["text"] == "Escalate"
    assert {b["value"] for b in buttons.values()} == {chain}
    (link,) = [b for b in blocks if b["type"] == "context"]
    assert "<https://sla.example/ack/t0k3n|" in link["elements"][0]["text"]


def test_a_message_outside_a_chain_has_no_buttons_and_no_link() -> None:
    assert [b["type"] for b in message_blocks(_message())] == ["header", "section"]


def test_the_body_is_escaped_for_mrkdwn_and_cut_at_slacks_limit() -> None:
    body = "subject: <!channel> & <https://evil.example|click> *bold*"
    text = message_blocks(_message(body=body))[1]["text"]
    assert text["text"] == (
        "subject: &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; *bold*"
    )
    assert text["verbatim"] is True
    long = message_blocks(_message(body="é" * 5000))[1]["text"]["text"]
    assert len(long) == SECTION_MAX and long.endswith("…")
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_after_a_click_the_buttons_and_link_give_way_to_the_outcome() -> None:
    blocks = message_blocks(_message(chain="k", ack_url="https://sla.example/ack/x"))
    after = outcome_blocks(blocks, "Acknowledged by alice", keep_buttons=False)
    assert [b["type"] for b in after] == ["header", "section", "context"]
    assert after[-1]["elements"][0]["text"] == "Acknowledged by alice"
    escalated = outcome_blocks(blocks, "Escalated by bob", keep_buttons=True)
    assert [b["type"] for b in escalated] == ["header", "section", "actions", "context", "context"]


def test_a_click_is_read_from_a_block_actions_payload() -> None:
    payload = {
        "type": "block_actions",
        "user": {"id": "U0ALICE", "username": "alice"},
        "channel": {"id": "C0ALERTS"},
        "message": {"ts": "1700000000.000100", "blocks": [{"type": "header"}]},
        "actions": [{"action_id": ACK_ACTION, "value": "desk/42/first_response/0/breach"}],
    }
    click = Click.of(payload)
    assert click is not None
    assert (click.action, click.chain, click.user_id, click.user_name) == (
        ACK_ACTION,
        "desk/42/first_response/0/breach",
        "U0ALICE",
        "alice",
    )
    assert (click.channel, click.ts, click.blocks) == (
        "C0ALERTS",
        "1700000000.000100",
        ({"type": "header"},),
    )
    assert Click.of(payload | {"type": "view_submission"}) is None
    assert Click.of(payload | {"actions": [{"action_id": "other", "value": "x"}]}) is None


# ---------------------------------------------------------------------------- Slack's errors


@pytest.mark.parametrize(
    ("status", "error", "retryable", "maybe_sent"),
    [
        (429, "ratelimited", True, False),
        (500, None, True, False),
        (503, None, True, False),
        (200, "internal_error", True, False),
        (200, "request_timeout", True, True),
        (200, "invalid_auth", False, False),
        (200, "channel_not_found", False, False),
        (200, "not_in_channel", False, False),
        (200, "account_inactive", False, False),
    ],
)
def test_slacks_errors_are_permanent_unless_they_may_pass(
    status: int, error: str | None, retryable: bool, maybe_sent: bool
) -> None:
    data = {"ok": False, "error": error} if error else {}
    outcome = slack_error("chat.postMessage", status, data, {})
    assert not outcome.delivered
    assert (outcome.retryable, outcome.maybe_sent) == (retryable, maybe_sent)
    assert outcome.error == f"slack chat.postMessage: {error or f'HTTP {status}'}"


def test_a_rate_limit_asks_for_slacks_retry_after() -> None:
    assert slack_error("chat.postMessage", 429, {}, {"Retry-After": "17"}).retry_after == 17
    assert slack_error("chat.update", 429, {}, {"retry-after": "1e9"}).retry_after == (
        MAX_RETRY_AFTER
    )
    assert slack_error("chat.update", 429, {}, {"Retry-After": "soon"}).retry_after == 0


# ---------------------------------------------------------------------------- config


def test_slack_app_urls_name_a_channel_or_a_user() -> None:
    assert url_problem("slack-app://C0123ABCD") is None
    assert url_problem("slack-app://U0ALICE") is None
    assert "channel id" in str(url_problem("slack-app://#alerts"))
    assert "channel id" in str(url_problem("slack-app://"))


def test_the_slack_app_needs_a_way_for_clicks_to_arrive() -> None:
    assert SlackConfig(token=BOT, signing_secret=SECRET).api_url == "https://slack.com/api/"
    with pytest.raises(ValueError, match="signing_secret is needed"):
        SlackConfig(token=BOT)
    with pytest.raises(ValueError, match="socket_mode needs app_token"):
        SlackConfig(token=BOT, socket_mode=True)
    with pytest.raises(ValueError, match="starts with 'xapp-'"):
        SlackConfig(token=BOT, socket_mode=True, app_token="xoxb-wrong")
    with pytest.raises(ValueError, match="starts with 'xoxb-'"):
        SlackConfig(token="hunter2", signing_secret=SECRET)
    socket = SlackConfig(token=BOT, socket_mode=True, app_token="xapp-1-abc")
    assert socket.signing_secret is None


CONFIG = """\
calendars:
  office: {{timezone: UTC, hours: {{mon-fri: "09:00-17:00"}}}}
receivers:
  oncall:
    urls: [slack-app://C0ALERTS]
daemon:
  state: {state}
{slack}"""


def _write(tmp_path: Path, slack: str) -> Path:
    path = tmp_path / "sla.yaml"
    path.write_text(CONFIG.format(state=tmp_path / "state.sqlite", slack=slack))
    return path


def test_a_slack_app_url_without_daemon_slack_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (issue,) = caught.value.issues
    assert (issue.line, issue.path) == (5, "receivers.oncall.urls[0]")
    assert "needs daemon.slack" in issue.message


def test_slack_secrets_come_from_files_and_are_redacted(tmp_path: Path) -> None:
    (tmp_path / "bot").write_text(BOT + "\n")
    slack = textwrap.indent(
        f"slack:\n  token_file: {tmp_path / 'bot'}\n  signing_secret: {SECRET}\n"
        "  api_url: http://127.0.0.1:1/api\n",
        "  ",
    )
    config = load_config(_write(tmp_path, slack))
    assert config.daemon.slack is not None
    assert config.daemon.slack.token.get_secret_value() == BOT
    assert config.daemon.slack.api_url == "http://127.0.0.1:1/api/"
    assert {BOT, SECRET} <= config.secrets()


def test_commands_that_only_read_need_no_slack_secrets(tmp_path: Path) -> None:
    slack = textwrap.indent(f"slack:\n  token_file: {tmp_path / 'missing'}\n", "  ")
    path = _write(tmp_path, slack)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path)
    config = load_config(path, secrets=False)
    assert config.daemon.slack is None
