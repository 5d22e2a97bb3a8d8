"""sladaemon's own JSON webhook against the real webhook receiver process: the whole payload
is posted; a 5xx is tried again, no answer in time may have been a delivery, a refused
connection is tried again, and a bad URL is refused when the config is read."""

from __future__ import annotations

import pytest

from sladaemon.model import NotificationKind
from sladaemon.notify.apprise_notifier import describe_url, url_problem, url_secrets
from sladaemon.notify.message import render
from sladaemon.notify.webhook import post_webhook
from tests.e2e.conftest import Receivers

PAYLOAD = {
    "id": 'group/desk/{}:{queue="vip"}/1',
    "kind": NotificationKind.GROUP.value,
    "title": "vip / first_response: 2 tickets breached",
    "body": "- V1\n- V2",
    "items": [{"ticket_id": "V1"}, {"ticket_id": "V2"}],
}


async def test_the_whole_payload_is_posted_and_failures_are_read_like_deliveries(
    receivers: Receivers,
) -> None:
    hook = receivers.webhook()
    url = f"webhook+http://127.0.0.1:{hook.port}/sla?key=s3cretkeyvalue"
    message = render(PAYLOAD)
    outcome = await post_webhook(url, message, timeout=5)
    assert outcome.delivered
    (posted,) = hook.messages()
    assert posted["path"] == "/sla" and posted["query"] == "key=s3cretkeyvalue"
    assert posted["body"]["data"]["items"] == PAYLOAD["items"]
    assert posted["body"]["title"] == PAYLOAD["title"]

    hook.set_mode("fail")
    failed = await post_webhook(url, message, timeout=5)
    assert (failed.delivered, failed.retryable, failed.maybe_sent) == (False, True, False)
    assert failed.error == "webhook+http://127.0.0.1 answered HTTP 500"

    hook.set_mode("hang")
    hung = await post_webhook(url, message, timeout=1)
    assert (hung.delivered, hung.retryable, hung.maybe_sent) == (False, True, True)
    hook.set_mode("ok")

    refused = await post_webhook("webhook+http://127.0.0.1:9/sla", message, timeout=5)
    assert (refused.delivered, refused.retryable) == (False, True)


@pytest.mark.parametrize("url", ["webhook+https://", "webhook+http:///path"])
def test_a_webhook_url_without_a_host_is_refused(url: str) -> None:
    assert url_problem(url) == "webhook URL: no host (webhook+https://host/path)"


def test_a_webhook_url_is_logged_by_its_host_and_its_key_is_redacted() -> None:
    url = "webhook+https://hooks.example.com/T0123/s3cretkeyvalue"
    assert describe_url(url) == "webhook+https://hooks.example.com"
    assert "s3cretkeyvalue" in url_secrets(url)
    assert url_problem(url) is None
