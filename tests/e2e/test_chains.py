"""Escalation chains in the real daemon process: the second step is sent at its instant unless
someone acknowledges first — by the CLI, the API or the signed link — and a kill -9 between
steps or right after an ack neither repeats a step nor forgets the ack."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.support.wait import WebDriverWait

from tests.e2e.conftest import Receivers, WebhookReceiver, free_port, outbox_states, wait_until
from tests.e2e.daemon_process import DaemonProcess, EventFile, body_fields, http_get

SECRET = "a-long-enough-ack-secret-for-tests"
API_TOKEN = "api-token-0123456789abcdef"
WAIT = 6  # seconds between the chain's two steps
LATE_LIMIT = 5.0  # seconds: generous on a loaded machine
CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian's chromium-driver


def chain_config(directory: Path, first: str, second: str, port: int) -> str:
    return f"""
calendars:
  always: {{timezone: Europe/Berlin, hours: {{mon-sun: "00:00-24:00"}}}}
receivers:
  first: {{urls: ["{first}"], timeout: 5s}}
  second: {{urls: ["{second}"], timeout: 5s}}
chains:
  page:
    steps:
      - notify: [receiver:first]
      - wait: {WAIT}s
      - notify: [second]
policies:
  - name: fast-lane
    calendar: always
    targets: {{first_response: 2s}}
    escalation: [{{at: breach, chain: page}}]
sources:
  desk: {{type: csv, path: {directory / "events.csv"}, poll_interval: 1s}}
ack:
  public_url: "http://127.0.0.1:{port}"
  secret: {SECRET}
  api_tokens: [{API_TOKEN}]
daemon:
  state: {directory / "state.sqlite"}
  log_level: debug
  delivery: {{first_retry: 1s, max_retry: 2s, max_attempts: 50}}
  http: {{listen: "127.0.0.1:{port}"}}
"""


class Desk:
    """A daemon with a chain: ``first`` is paged at the breach, ``second`` WAIT s later."""

    def __init__(
        self,
        tmp_path: Path,
        receivers: Receivers,
        daemons: list[DaemonProcess],
        first_url: str | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.first = receivers.webhook("first")
        self.second = receivers.webhook("second")
        self.port = free_port()
        self.events = EventFile(tmp_path / "events.csv")
        first = first_url or self.first.url
        config = chain_config(tmp_path, first, self.second.url, self.port)
        self.daemon = DaemonProcess(tmp_path, config)
        daemons.append(self.daemon)
        self.daemon.start()

    def page_one(self, ticket: str) -> dict[str, str]:
        """Create ``ticket`` and wait for the chain's first page."""
        self.created = datetime.now(UTC)
        before = len(self.first.accepted())
        self.events.add(ticket, "created", "new", at=self.created)
        *_, message = self.first.wait_for(before + 1, timeout=30, accepted_only=True)
        return body_fields(message)

    def second_instant(self) -> datetime:
        return self.created + timedelta(seconds=2 + WAIT)

    def assert_second_never_sent(self, ticket: str) -> None:
        wait_past = (self.second_instant() - datetime.now(UTC)).total_seconds() + LATE_LIMIT
        time.sleep(max(0.0, wait_past))
        sent = [body_fields(m)["id"] for m in self.second.messages()]
        assert not [s for s in sent if s.startswith(f"desk/{ticket}/")], "an acked chain went on"

    def explain(self, ticket: str) -> str:
        shown = sladaemon(self.tmp_path, "explain", "--source", "desk", ticket)
        assert shown.returncode == 0, shown.stderr
        return shown.stdout


def sladaemon(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sladaemon", args[0], "--config"]
    command += [str(directory / "config.yaml"), *args[1:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=directory)


def post(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def api(port: int, path: str, body: dict[str, str], token: str = API_TOKEN) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return post(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), headers)


def lateness(hook: WebhookReceiver, instant: datetime) -> float:
    (message,) = hook.accepted()
    received = datetime.fromisoformat(str(message["received_at"]).replace("Z", "+00:00"))
    return (received - instant).total_seconds()


def test_without_an_ack_the_second_step_is_sent_at_its_instant_once(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    desk = Desk(tmp_path, receivers, daemons)
    first = desk.page_one("C1")
    assert first["id"] == "desk/C1/first_response/0/breach/page1"
    assert first["acknowledge"].startswith(f"http://127.0.0.1:{desk.port}/ack/")
    (second,) = desk.second.wait_for(1, timeout=30, accepted_only=True)
    assert body_fields(second)["id"] == "desk/C1/first_response/0/breach/page2"
    assert -0.01 <= lateness(desk.second, desk.second_instant()) <= LATE_LIMIT
    time.sleep(2)
    assert len(desk.first.messages()) == 1 and len(desk.second.messages()) == 1
    trail = desk.explain("C1")
    assert "breach: paged first via first (receiver:first)" in trail
    assert "breach: paged second via second (second)" in trail


def test_an_ack_from_the_cli_stops_the_chain_and_explain_shows_who(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    desk = Desk(tmp_path, receivers, daemons)
    desk.page_one("C2")
    acked = sladaemon(tmp_path, "ack", "C2", "--by", "alice", "--note", "on it")
    assert acked.returncode == 0, acked.stderr
    assert acked.stdout.strip() == "acknowledged by alice"
    again = sladaemon(tmp_path, "ack", "C2", "--by", "bob")
    assert again.returncode == 0 and "already acknowledged by alice via cli" in again.stdout
    desk.assert_second_never_sent("C2")
    assert "breach: acked by alice via cli (on it)" in desk.explain("C2")


def test_an_ack_through_the_api_stops_the_chain_and_a_wrong_token_is_refused(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    desk = Desk(tmp_path, receivers, daemons)
    desk.page_one("C3")
    body = {"ticket": "C3", "by": "carol"}
    assert api(desk.port, "/api/v1/acks", body, token="wrong-token-0123456789")[0] == 401
    status, answer = api(desk.port, "/api/v1/acks", body)
    assert status == 200, answer
    assert json.loads(answer) == {
        "ok": True,
        "message": "acknowledged by carol",
        "chains": ["desk/C3/first_response/0/breach"],
    }
    desk.assert_second_never_sent("C3")
    _, metrics = http_get(f"http://127.0.0.1:{desk.port}/metrics")
    assert 'sladaemon_ack_refused_total{reason="unauthorized"} 1.0' in metrics
    assert 'sladaemon_chain_acks_total{action="ack",via="api"} 1.0' in metrics


def test_the_signed_link_acks_on_post_only_and_refuses_forged_and_replayed_links(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    desk = Desk(tmp_path, receivers, daemons)
    link = desk.page_one("C4")["acknowledge"]
    status, page = http_get(link)  # what a mail scanner does: nothing is acknowledged
    assert status == 200 and "Acknowledge this escalation?" in page and "C4" in page
    body, signature = link.rsplit(".", 1)
    forged = body + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert post(forged, b"", {})[0] == 403
    status, page = post(link, b"note=mine", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and "acknowledged by first" in page, page
    assert post(link, b"", {})[0] == 409  # the same link again
    desk.assert_second_never_sent("C4")
    assert "breach: acked by first via link (mine)" in desk.explain("C4")
    _, metrics = http_get(f"http://127.0.0.1:{desk.port}/metrics")
    assert 'sladaemon_ack_refused_total{reason="forged"} 1.0' in metrics
    assert 'sladaemon_ack_refused_total{reason="replayed"} 1.0' in metrics


def test_kill_9_between_steps_sends_the_next_step_once_and_an_ack_survives_it(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    desk = Desk(tmp_path, receivers, daemons)
    desk.page_one("K1")
    state = tmp_path / "state.sqlite"  # the first page's delivery recorded: between the steps
    wait_until(lambda: outbox_states(state) == {"delivered": 1}, "page 1 is recorded delivered")
    desk.daemon.kill()  # SIGKILL between the two steps
    desk.daemon.start()
    (second,) = desk.second.wait_for(1, timeout=30, accepted_only=True)
    assert body_fields(second)["id"] == "desk/K1/first_response/0/breach/page2"
    assert lateness(desk.second, desk.second_instant()) <= LATE_LIMIT
    time.sleep(2)
    assert len(desk.first.messages()) == 1 and len(desk.second.messages()) == 1

    desk.page_one("K2")
    status, _ = api(desk.port, "/api/v1/acks", {"ticket": "K2", "by": "dave"})
    assert status == 200
    desk.daemon.kill()  # right after the ack was answered
    desk.daemon.start()
    wait_until(lambda: bool(desk.daemon.logs()), "the daemon logs")
    desk.assert_second_never_sent("K2")
    assert [body_fields(m)["id"] for m in desk.second.messages()] == [
        "desk/K1/first_response/0/breach/page2"
    ]


def test_kill_9_while_an_ack_waits_for_a_locked_state_file_loses_no_step(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    """The ack has arrived but cannot be recorded (another process holds the state file's
    write lock), so it is not answered; the daemon is killed then. The ack was never
    confirmed, so the chain goes on: its next step is sent once, at its instant."""
    desk = Desk(tmp_path, receivers, daemons)
    desk.page_one("L1")
    answers: list[object] = []
    locker = sqlite3.connect(tmp_path / "state.sqlite", timeout=10, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        sender = threading.Thread(
            target=lambda: answers.append(_api_or_error(desk.port, {"ticket": "L1"}))
        )
        sender.start()
        time.sleep(1.0)  # the request has arrived and waits for the lock
        assert answers == [], "answered before it was recorded"
        desk.daemon.kill()
        sender.join(timeout=15)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert answers and isinstance(answers[0], OSError), answers  # no answer came
    desk.daemon.start()
    (second,) = desk.second.wait_for(1, timeout=30, accepted_only=True)
    assert body_fields(second)["id"] == "desk/L1/first_response/0/breach/page2"
    time.sleep(2)
    assert len(desk.second.messages()) == 1
    assert "acked by" not in desk.explain("L1")


def _api_or_error(port: int, body: dict[str, str]) -> tuple[int, str] | OSError:
    try:
        return api(port, "/api/v1/acks", body)
    except OSError as exc:  # the connection was cut: no answer
        return exc


def test_the_emailed_link_opened_in_a_real_browser_acks_and_stops_the_chain(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    if not Path(CHROMEDRIVER).exists():
        if os.environ.get("SLADAEMON_REQUIRE_TOOLS"):
            pytest.fail(f"{CHROMEDRIVER} is missing (Debian: chromium-driver)")
        pytest.skip("chromium-driver is not installed")
    smtp = receivers.smtp()
    desk = Desk(tmp_path, receivers, daemons, first_url=smtp.url)
    desk.created = datetime.now(UTC)
    desk.events.add("B1", "created", "new", at=desk.created)
    (mail,) = smtp.wait_for(1, timeout=30)
    link = body_fields(mail)["acknowledge"]
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    browser = webdriver.Chrome(options=options, service=service)
    try:
        browser.set_page_load_timeout(30)
        browser.get(link)
        assert browser.title == "Acknowledge this escalation?"
        assert "ticket B1" in browser.page_source
        browser.find_element("id", "note").send_keys("looking into it")
        browser.find_element("css selector", "button[type=submit]").click()
        WebDriverWait(browser, 15).until(lambda b: b.title != "Acknowledge this escalation?")
        assert browser.title == "Acknowledged"
        assert "acknowledged by first" in browser.find_element("tag name", "p").text
    finally:
        browser.quit()
    desk.assert_second_never_sent("B1")
    assert "breach: acked by first via link (looking into it)" in desk.explain("B1")
