"""The test receivers take real apprise deliveries, record them, and misbehave on request."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import apprise
import pytest
from apprise import NotifyFormat, NotifyType

from tests.e2e.conftest import (
    HOST,
    MAIL_FROM,
    MAIL_TO,
    Receiver,
    Receivers,
    SmtpReceiver,
    WebhookReceiver,
    free_port,
)

TITLE = "Ticket T-42: SLA breach — 1ère réponse"
BODY = "First response overdue by 15m.\nQueue: support <vip> & co, ünïcode"


def notify(
    url: str,
    title: str = TITLE,
    body: str = BODY,
    notify_type: NotifyType = NotifyType.INFO,
    body_format: NotifyFormat | None = None,
) -> bool:
    """Send one notification through a fresh apprise instance (no per-plugin throttling)."""
    notifier = apprise.Apprise()
    assert notifier.add(url), f"apprise rejected {url}"
    return bool(
        notifier.notify(title=title, body=body, notify_type=notify_type, body_format=body_format)
    )


def parse_received_at(message: dict[str, Any]) -> datetime:
    received_at = datetime.fromisoformat(message["received_at"])
    assert received_at.utcoffset() is not None
    return received_at


def test_webhook_records_an_apprise_json_post(webhook_receiver: WebhookReceiver):
    before = datetime.now(UTC)
    assert notify(webhook_receiver.url, notify_type=NotifyType.WARNING)
    after = datetime.now(UTC)

    [message] = webhook_receiver.wait_for(1)
    assert message["body"] == {
        "version": "1.0",
        "title": TITLE,
        "message": BODY,
        "attachments": [],
        "type": "warning",
    }
    assert message["status"] == 200
    assert message["method"] == "POST"
    assert message["path"] == "/hook"
    assert message["headers"]["Content-Type"].startswith("application/json")
    assert before <= parse_received_at(message) <= after
    assert webhook_receiver.accepted() == [message]


def test_webhook_fail_mode_answers_500_and_records_the_rejection(
    webhook_receiver: WebhookReceiver,
):
    webhook_receiver.set_mode("fail")
    assert webhook_receiver.mode() == "fail"

    assert not notify(webhook_receiver.url, body="rejected")
    [rejected] = webhook_receiver.wait_for(1)
    assert rejected["status"] == 500
    assert rejected["body"]["message"] == "rejected"
    assert webhook_receiver.accepted() == []

    webhook_receiver.set_mode("ok")
    assert notify(webhook_receiver.url, body="accepted")
    assert [m["body"]["message"] for m in webhook_receiver.accepted()] == ["accepted"]


def test_webhook_hang_mode_outlasts_the_apprise_read_timeout(webhook_receiver: WebhookReceiver):
    webhook_receiver.set_mode("hang")

    started = time.monotonic()
    assert not notify(f"{webhook_receiver.url}?cto=1&rto=1", body="unanswered")
    elapsed = time.monotonic() - started

    assert elapsed >= 0.9, "gave up before the read timeout"
    assert elapsed < 30.0, "the read timeout did not end the call"  # the receiver never answers
    [unanswered] = webhook_receiver.wait_for(1)
    assert unanswered["status"] is None
    assert unanswered["body"]["message"] == "unanswered"

    webhook_receiver.set_mode("ok")
    assert notify(webhook_receiver.url, body="answered")
    assert [m["body"]["message"] for m in webhook_receiver.accepted()] == ["answered"]


def test_webhook_hang_ends_with_a_dropped_connection_when_the_mode_changes(
    receivers: Receivers,
):
    webhook = receivers.webhook(mode="hang")
    request = urllib.request.Request(
        f"http://{HOST}:{webhook.port}/hook", data=b"{}", method="POST"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    release = threading.Timer(0.3, webhook.set_mode, ["ok"])
    release.start()
    try:
        started = time.monotonic()
        with pytest.raises((ConnectionError, urllib.error.URLError)):
            opener.open(request, timeout=60)
        assert time.monotonic() - started < 30.0, "ended by the client's timeout, not the drop"
    finally:
        release.join()
    assert webhook.messages()[0]["status"] is None


def test_webhook_control_rejects_an_unknown_mode(webhook_receiver: WebhookReceiver):
    request = urllib.request.Request(
        f"http://{HOST}:{webhook_receiver.port}/_control",
        data=json.dumps({"mode": "sulk"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as raised:
        opener.open(request, timeout=5)
    with raised.value:
        assert raised.value.code == 400
    assert webhook_receiver.mode() == "ok"


def test_smtp_records_an_apprise_email(smtp_receiver: SmtpReceiver):
    before = datetime.now(UTC)
    assert notify(smtp_receiver.url, body_format=NotifyFormat.TEXT)
    after = datetime.now(UTC)

    [message] = smtp_receiver.wait_for(1)
    assert message["mail_from"] == MAIL_FROM
    assert message["rcpt_tos"] == [MAIL_TO]
    assert message["headers"]["From"] == MAIL_FROM
    assert message["headers"]["To"] == MAIL_TO
    assert message["subject"] == TITLE
    assert message["body"] == BODY + "\n"
    assert message["html"] is None
    assert before <= parse_received_at(message) <= after


def test_smtp_html_email_carries_the_body_verbatim_in_its_html_part(
    smtp_receiver: SmtpReceiver,
):
    assert notify(smtp_receiver.url)

    [message] = smtp_receiver.wait_for(1)
    assert message["subject"] == TITLE
    assert message["html"] == BODY
    assert message["body"] != BODY  # apprise's HTML-to-text rendering of the same body


@pytest.mark.parametrize("kind", ["webhook", "smtp"])
def test_a_stopped_receiver_comes_back_on_the_same_port(receivers: Receivers, kind: str):
    receiver: Receiver = receivers.webhook() if kind == "webhook" else receivers.smtp()
    port = receiver.port
    assert notify(receiver.url, body="before")

    receiver.stop()
    assert not receiver.running
    assert not notify(receiver.url, body="while down")

    receiver.start()
    assert receiver.port == port
    assert notify(receiver.url, body="after")

    messages = receiver.wait_for(2)
    bodies = [m["body"]["message"] if kind == "webhook" else m["html"] for m in messages]
    assert bodies == ["before", "after"]


@pytest.mark.parametrize("kind", ["webhook", "smtp"])
def test_acknowledged_messages_survive_sigkill(receivers: Receivers, kind: str):
    receiver: Receiver = receivers.webhook() if kind == "webhook" else receivers.smtp()
    assert notify(receiver.url, body="acknowledged")
    receiver.kill()

    assert len(receiver.messages()) == 1
    receiver.start()
    assert len(receiver.messages()) == 1


def test_wait_for_reports_what_was_received(webhook_receiver: WebhookReceiver):
    assert notify(webhook_receiver.url, body="only one")

    with pytest.raises(AssertionError, match="only one"):
        webhook_receiver.wait_for(2, timeout=0.2)


def test_a_receiver_listens_on_a_port_chosen_beforehand(tmp_path):
    port = free_port()
    receiver = WebhookReceiver(tmp_path, "fixed", port=port)
    receiver.start()
    try:
        assert receiver.port == port
        assert notify(receiver.url)
    finally:
        receiver.stop()
    assert receiver.wait_for(1)[0]["status"] == 200


@pytest.mark.parametrize("kind", ["webhook", "smtp"])
def test_stop_ends_the_process_cleanly(receivers: Receivers, kind: str):
    receiver: Receiver = receivers.webhook() if kind == "webhook" else receivers.smtp()
    receiver.stop()
    assert not receiver.running
    assert receiver.exit_status == 0
    assert receiver.stderr() == ""
