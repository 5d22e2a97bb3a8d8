"""The real daemon process predicts a breach from its history and a real webhook receiver on
127.0.0.1 gets the warning once, with the lead still ahead."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import Receivers, free_port, wait_until, wait_until_outbox_drained
from tests.e2e.daemon_process import DaemonProcess, EventFile, body_fields, http_get

TARGET_S = 12
LEAD_S = 4


FIXED_RULE = "threshold: 0.5, early: 0.95"


def config(directory: Path, hook_url: str, port: int, rule: str = FIXED_RULE) -> str:
    return f"""
calendars:
  always: {{timezone: Europe/Berlin, hours: {{mon-sun: "00:00-24:00"}}}}
receivers:
  hook: {{urls: ["{hook_url}"], timeout: 5s}}
policies:
  - name: fast-lane
    calendar: always
    targets: {{first_response: {TARGET_S}s}}
    escalation: [{{at: predicted, notify: [hook]}}]
predict: {{{rule}, lead: {LEAD_S}s, every: 1s, min_history: 10}}
sources:
  desk: {{type: csv, path: {directory / "events.csv"}, poll_interval: 1s}}
daemon:
  state: {directory / "state.sqlite"}
  log_level: debug
  http: {{listen: "127.0.0.1:{port}"}}
"""


def predicted_after(process: DaemonProcess, instant: datetime) -> bool:
    """Whether the daemon logged a prediction pass after ``instant``."""
    return any(
        datetime.fromisoformat(str(e["timestamp"]).replace("Z", "+00:00")) > instant
        for e in process.logs()
        if e.get("event") == "prediction_tick"
    )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.stop()


def history(tmp_path: Path) -> EventFile:
    """40 tickets over the last 40 minutes, answered after 2..22 s (evenly), so half of them
    missed the 12 s target and 5 in 7 of those still waiting after 8 s did."""
    events = EventFile(tmp_path / "events.csv")
    now = datetime.now(UTC).replace(microsecond=0)
    for n in range(40):
        created = now - timedelta(minutes=40 - n)
        events.add(f"H{n}", "created", "new", at=created)
        events.add(f"H{n}", "agent_reply", "open", at=created + timedelta(seconds=2 + n * 20 // 39))
    return events


def test_a_breach_predicted_from_history_reaches_the_webhook_once_before_the_deadline(
    tmp_path: Path, receivers: Receivers, daemon: list[DaemonProcess]
) -> None:
    hook = receivers.webhook()
    events = history(tmp_path)
    port = free_port()
    process = DaemonProcess(tmp_path, config(tmp_path, hook.url, port))
    daemon.append(process)
    process.start()
    created = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    events.add("NEW-1", "created", "new", at=created)
    (message,) = hook.wait_for(1, timeout=30, accepted_only=True)
    received = datetime.fromisoformat(str(message["received_at"]).replace("Z", "+00:00"))
    deadline = created + timedelta(seconds=TARGET_S)
    fields = body_fields(message)
    # Predicted with the lead still ahead (to the second a prediction pass takes); delivered
    # before the deadline, a bound that holds on a loaded machine too.
    predicted_at = datetime.fromisoformat(fields["at"].replace("Z", "+00:00"))
    assert predicted_at <= deadline - timedelta(seconds=LEAD_S - 1), "the lead was still ahead"
    assert received < deadline, "the warning arrived before the breach"
    assert fields["id"] == "desk/NEW-1/first_response/0/predicted"
    assert fields["deadline"].startswith(deadline.isoformat().replace("+00:00", "Z"))
    probability = fields["probability of breach"]
    assert probability.endswith("%") and 50 <= int(probability[:-1]) < 100
    assert "went past 12s" in fields["why"]
    assert "likely to breach at" in str(message["body"])
    # Past the deadline: no second warning for the same cycle. A prediction pass after it and
    # a drained outbox say that any second one would have arrived by now.
    wait_until(
        lambda: predicted_after(process, deadline),
        "a prediction pass after the deadline",
        timeout=TARGET_S + 20,
    )
    wait_until_outbox_drained(tmp_path / "state.sqlite")
    assert len(hook.accepted()) == 1
    status, metrics = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert (
        'sladaemon_predicted_breaches_total{metric="first_response",policy="fast-lane",'
        'source="desk"} 1.0' in metrics
    )
    assert 'sladaemon_queue_backlog{metric="first_response",queue="support",source="desk"}' in (
        metrics
    )


def test_with_a_precision_the_warning_and_explain_say_which_threshold_warned_and_why(
    tmp_path: Path, receivers: Receivers, daemon: list[DaemonProcess]
) -> None:
    hook = receivers.webhook()
    events = history(tmp_path)
    port = free_port()
    process = DaemonProcess(tmp_path, config(tmp_path, hook.url, port, rule="precision: 0.6"))
    daemon.append(process)
    process.start()
    created = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    events.add("NEW-2", "created", "new", at=created)
    (message,) = hook.wait_for(1, timeout=30, accepted_only=True)
    fields = body_fields(message)
    assert fields["id"] == "desk/NEW-2/first_response/0/predicted"
    assert int(fields["probability of breach"][:-1]) >= 60, "at or above the threshold in force"
    # 40 finished tickets are too few to measure a precision: the asked one is the threshold.
    assert fields["warns at"].startswith("probability 60%: too few finished metrics")
    wait_until_outbox_drained(tmp_path / "state.sqlite")
    shown = subprocess.run(
        [sys.executable, "-m", "sladaemon", "explain", "--config", str(tmp_path / "config.yaml"),
         "--source", "desk", "NEW-2"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    predicted = shown.stdout.split("predicted breaches (as the daemon sent them):")[1]
    assert "first_response (cycle 0): " + fields["probability of breach"] + " likely" in predicted
    assert "warns at: probability 60%: too few finished metrics" in predicted
    assert "why: " in predicted
    status, metrics = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert 'sladaemon_prediction_threshold{metric="first_response",policy="fast-lane"} 0.6' in (
        metrics
    )
