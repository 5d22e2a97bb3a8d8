"""Grouping in the real daemon process: breaches that arrive together reach a real webhook
receiver and a real SMTP server as one digest each, carrying every ticket; a kill -9 while a
group waits sends it exactly once after the restart."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.e2e.conftest import Receivers, free_port, wait_until
from tests.e2e.daemon_process import DaemonProcess, EventFile

GROUP_WAIT = 5  # seconds


def config(directory: Path, hook: str, mail: str, data: str = "console://") -> str:
    return f"""
calendars:
  always: {{timezone: Europe/Berlin, hours: {{mon-sun: "00:00-24:00"}}}}
receivers:
  hook: {{urls: ["{hook}"], timeout: 5s}}
  mail: {{urls: ["{mail}"], timeout: 5s}}
  data: {{urls: ["{data}"], timeout: 5s}}
policies:
  - name: desk
    calendar: always
    targets: {{first_response: 2s}}
    escalation: [{{at: breach}}]
route:
  receiver: hook
  group_by: [queue]
  group_wait: {GROUP_WAIT}s
  group_interval: 1m
  routes:
    - matchers: ['queue="vip"']
      receiver: mail
      continue: true              # and on to the next routes: the hook and the data too
    - matchers: ['queue="vip"']
      receiver: data
      continue: true
    - receiver: hook
sources:
  desk: {{type: csv, path: {directory / "events.csv"}, poll_interval: 1s,
          ticket_url: "https://desk.example.com/t/{{ticket_id}}"}}
daemon:
  state: {directory / "state.sqlite"}
  log_level: debug
  delivery: {{first_retry: 1s, max_retry: 2s, max_attempts: 50}}
  http: {{listen: "127.0.0.1:{free_port()}"}}
"""


def add_vip(events: EventFile, ticket: str) -> None:
    with events.path.open("a") as f:
        f.write(f"{ticket},{datetime.now(UTC).isoformat()},created,new,normal,email,vip\n")


def groups_waiting(state: Path) -> int:
    with contextlib.closing(sqlite3.connect(state)) as db:
        return int(db.execute("SELECT COUNT(*) FROM groups").fetchone()[0])


def test_breaches_arriving_together_go_out_as_one_digest_with_every_ticket(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    hook, smtp, data = receivers.webhook(), receivers.smtp(), receivers.webhook("data")
    events = EventFile(tmp_path / "events.csv")
    structured = f"webhook+http://127.0.0.1:{data.port}/sla"  # sladaemon's own JSON
    daemon = DaemonProcess(tmp_path, config(tmp_path, hook.url, smtp.url, structured))
    daemons.append(daemon)
    daemon.start()
    for n in range(12):
        add_vip(events, f"V{n}")
    (message,) = hook.wait_for(1, timeout=30, accepted_only=True)
    (mail,) = smtp.wait_for(1, timeout=30)
    time.sleep(2)
    assert len(hook.messages()) == 1 and len(smtp.messages()) == 1
    title = message["body"]["title"]
    assert title == "vip / first_response: 12 tickets breached", title
    text = message["body"]["message"]
    for n in range(12):
        assert f"- V{n} https://desk.example.com/t/V{n}: first_response breach" in text
        assert f"- V{n} https://desk.example.com/t/V{n}" in str(mail["body"])
    assert mail["subject"] == title
    (posted,) = data.wait_for(1, timeout=30, accepted_only=True)
    body = posted["body"]
    assert (body["kind"], body["title"]) == ("group", title)
    items = body["data"]["items"]
    assert sorted(i["ticket_id"] for i in items) == sorted(f"V{n}" for n in range(12))
    assert all(i["link"] == f"https://desk.example.com/t/{i['ticket_id']}" for i in items)
    assert body["data"]["group_labels"] == {"queue": "vip"}


def test_kill_9_while_a_group_waits_sends_it_once_after_the_restart(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    hook, smtp = receivers.webhook(), receivers.smtp()
    events = EventFile(tmp_path / "events.csv")
    daemon = DaemonProcess(tmp_path, config(tmp_path, hook.url, smtp.url))
    daemons.append(daemon)
    daemon.start()
    for n in range(8):
        events.add(f"K{n}", "created", "new")  # queue "support": the hook only
    state = tmp_path / "state.sqlite"
    wait_until(lambda: groups_waiting(state) == 1, "the breaches wait in their group")
    assert hook.messages() == []
    daemon.kill()
    daemon.start()
    (message,) = hook.wait_for(1, timeout=30, accepted_only=True)
    time.sleep(GROUP_WAIT + 2)
    assert len(hook.messages()) == 1, "sent once"
    text = message["body"]["message"]
    assert all(f"- K{n} " in text for n in range(8))
    assert json.loads(json.dumps(message["body"]))["title"].startswith("support / first_response")
