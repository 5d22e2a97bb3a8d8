"""The ownership loop end to end, with the real daemon process: whoever is on call is paged on
Slack (a fake Slack Web API process) with Acknowledge and Escalate buttons; a click — posted to
the daemon signed the way Slack signs it — acknowledges the chain, so the second step (an
email to a person, through a real SMTP server) is never sent; without a click it is sent at
its instant."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sladaemon.notify.slack_blocks import ACK_ACTION, ESCALATE_ACTION
from tests.e2e.conftest import Receivers, SmtpReceiver, free_port
from tests.e2e.daemon_process import DaemonProcess, EventFile, body_fields
from tests.e2e.test_chains import sladaemon
from tests.fakes.slack import BOT_TOKEN, FakeSlack

SIGNING_SECRET = "fake-slack-signing-secret-0123"
WAIT = 6  # seconds between the two steps
LATE_LIMIT = 5.0


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.stop()


def config(tmp_path: Path, slack: FakeSlack, smtp: SmtpReceiver, port: int) -> str:
    return f"""
calendars:
  always: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}
people:
  alice: {{slack: U0ALICE}}
  bob: {{email: bob@example.com, urls: ["{smtp.url}"]}}
schedules:
  l1:
    layers: [{{name: all, members: [alice], rotation: 1w, start: "2020-01-06T00:00"}}]
chains:
  page:
    steps: [{{notify: [oncall:l1]}}, {{wait: {WAIT}s}}, {{notify: [person:bob]}}]
policies:
  - name: desk
    calendar: always
    targets: {{first_response: 2s}}
    escalation: [{{at: breach, chain: page}}]
sources:
  desk: {{type: csv, path: {tmp_path / "events.csv"}, poll_interval: 1s}}
ack:
  public_url: "http://127.0.0.1:{port}"
  secret: an-ack-secret-of-some-length
daemon:
  state: {tmp_path / "state.sqlite"}
  log_level: debug
  delivery: {{first_retry: 1s, max_retry: 2s, max_attempts: 50}}
  http: {{listen: "127.0.0.1:{port}"}}
  slack: {{token: {BOT_TOKEN}, signing_secret: {SIGNING_SECRET}, api_url: "{slack.api_url}"}}
"""


class OnCallDesk:
    def __init__(
        self,
        tmp_path: Path,
        slack: FakeSlack,
        receivers: Receivers,
        daemons: list[DaemonProcess],
    ) -> None:
        self.tmp_path, self.slack = tmp_path, slack
        self.smtp = receivers.smtp()
        self.port = free_port()
        self.events = EventFile(tmp_path / "events.csv")
        self.daemon = DaemonProcess(tmp_path, config(tmp_path, slack, self.smtp, self.port))
        daemons.append(self.daemon)
        self.daemon.start()

    def page(self, ticket: str) -> dict[str, Any]:
        """Create ``ticket``; the Slack message that pages alice for its breach."""
        self.created = datetime.now(UTC)
        self.events.add(ticket, "created", "new", at=self.created)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = [m for m in self.slack.messages() if f"ticket {ticket} " in m["text"]]
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(f"no Slack message for {ticket}: {self.slack.messages()}")

    def click(self, message: dict[str, Any], action: str) -> int:
        answer = self.slack.click(
            message["ts"],
            action,
            user_id="U0ALICE",
            user_name="alice.s",
            url=f"http://127.0.0.1:{self.port}/slack/interactions",
            signing_secret=SIGNING_SECRET,
        )
        return int(answer["status"])

    def updated(self, ts: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            (message,) = [m for m in self.slack.messages() if m["ts"] == ts]
            if message["updates"]:
                return list(message["updates"])
            time.sleep(0.2)
        raise AssertionError(f"message {ts} was not updated")

    def second_instant(self) -> datetime:
        return self.created + timedelta(seconds=2 + WAIT)


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (element["action_id"], element["value"])
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def test_on_call_is_paged_on_slack_and_without_an_ack_the_email_step_follows(
    tmp_path: Path, slack: FakeSlack, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    desk = OnCallDesk(tmp_path, slack, receivers, daemons)
    message = desk.page("S1")
    assert message["channel"] == "U0ALICE"  # a direct message to whoever is on call
    chain = "desk/S1/first_response/0/breach"
    assert buttons(message) == [(ACK_ACTION, chain), (ESCALATE_ACTION, chain)]
    (mail,) = desk.smtp.wait_for(1, timeout=30)
    assert mail["rcpt_tos"] == ["oncall@example.com"]
    fields = body_fields(mail)
    assert fields["id"] == f"{chain}/page2"
    assert fields["acknowledge"].startswith(f"http://127.0.0.1:{desk.port}/ack/")
    received = datetime.fromisoformat(str(mail["received_at"]).replace("Z", "+00:00"))
    assert -0.01 <= (received - desk.second_instant()).total_seconds() <= LATE_LIMIT
    trail = sladaemon(tmp_path, "explain", "--source", "desk", "S1").stdout
    assert "breach: paged alice via person:alice (oncall:l1)" in trail
    assert "breach: paged bob via person:bob (person:bob)" in trail


def test_an_acknowledge_click_in_slack_stops_the_chain_and_rewrites_the_message(
    tmp_path: Path, slack: FakeSlack, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    desk = OnCallDesk(tmp_path, slack, receivers, daemons)
    message = desk.page("S2")
    forged = desk.slack.click(
        message["ts"],
        ACK_ACTION,
        url=f"http://127.0.0.1:{desk.port}/slack/interactions",
        signing_secret="not-the-signing-secret",
    )
    assert forged["status"] == 401
    assert desk.click(message, ACK_ACTION) == 200
    (update,) = desk.updated(message["ts"])
    assert "Acknowledged by alice at" in update["text"] and buttons(update) == []
    wait_past = (desk.second_instant() - datetime.now(UTC)).total_seconds() + LATE_LIMIT
    time.sleep(max(0.0, wait_past))
    assert desk.smtp.messages() == [], "an acknowledged chain went on"
    trail = sladaemon(tmp_path, "explain", "--source", "desk", "S2").stdout
    assert "breach: acked by alice via slack" in trail


def test_an_escalate_click_sends_the_next_step_now(
    tmp_path: Path, slack: FakeSlack, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    desk = OnCallDesk(tmp_path, slack, receivers, daemons)
    message = desk.page("S3")
    clicked = datetime.now(UTC)
    assert desk.click(message, ESCALATE_ACTION) == 200
    (mail,) = desk.smtp.wait_for(1, timeout=15)
    received = datetime.fromisoformat(str(mail["received_at"]).replace("Z", "+00:00"))
    assert received < desk.second_instant(), "sent at the click, not at its own instant"
    assert (received - clicked).total_seconds() <= LATE_LIMIT
    (update,) = desk.updated(message["ts"])
    assert "Escalated by alice" in update["text"]
    assert ACK_ACTION in [a for a, _ in buttons(update)]  # it still waits for an owner
