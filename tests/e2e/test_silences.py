"""Silences with the real daemon process: ``sladaemon silence`` goes through the running daemon's
API (the daemon holds the state file), the silence is listed and counted, expires when told,
and is still there, expired, in the state file after the daemon stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.conftest import free_port
from tests.e2e.daemon_process import DaemonProcess, EventFile, http_get

API_TOKEN = "silence-api-token-0123456789abcdef"


def desk_config(directory: Path, port: int) -> str:
    return f"""
calendars:
  always: {{timezone: Europe/Berlin, hours: {{mon-sun: "00:00-24:00"}}}}
policies:
  - name: all
    calendar: always
    targets: {{first_response: 1h}}
sources:
  desk: {{type: csv, path: {directory / "events.csv"}, poll_interval: 1s}}
ack:
  public_url: "http://127.0.0.1:{port}"
  secret: a-long-enough-ack-secret-for-tests
  api_tokens: [{API_TOKEN}]
daemon:
  state: {directory / "state.sqlite"}
  http: {{listen: "127.0.0.1:{port}"}}
"""


def silence(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sladaemon", "silence", args[0], "--config"]
    command += [str(directory / "config.yaml"), *args[1:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=directory)


def listed(directory: Path, *flags: str) -> list[dict[str, Any]]:
    shown = silence(directory, "list", "--json", *flags)
    assert shown.returncode == 0, shown.stderr
    found: list[dict[str, Any]] = json.loads(shown.stdout)["silences"]
    return found


def gauge(port: int, state: str) -> float:
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    line = f'sladaemon_silences{{state="{state}"}} '
    (value,) = [row.removeprefix(line) for row in text.splitlines() if row.startswith(line)]
    return float(value)


def test_a_silence_added_by_the_cli_goes_through_the_daemon_is_listed_and_expires(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    port = free_port()
    EventFile(tmp_path / "events.csv")
    daemon = DaemonProcess(tmp_path, desk_config(tmp_path, port))
    daemons.append(daemon)
    daemon.start()

    added = silence(
        tmp_path, "add", "queue=support", 'priority=~"low|normal"', "--for", "2h",
        "--comment", "mail server migration", "--by", "alice",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    (logged,) = daemon.wait_for_log("silence_added")
    assert (logged["id"], logged["by"]) == (silence_id, "alice")

    (shown,) = listed(tmp_path)
    assert (shown["id"], shown["state"], shown["comment"]) == (
        silence_id, "active", "mail server migration",
    )  # fmt: skip
    assert shown["matchers"] == ['queue="support"', 'priority=~"low|normal"']
    assert gauge(port, "active") == 1

    refused = silence(tmp_path, "add", "queue=support", "--for", "31d", "--comment", "x")
    assert refused.returncode == 2
    assert "30d" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1

    expired = silence(tmp_path, "expire", silence_id, "--by", "bob")
    assert expired.returncode == 0, expired.stderr
    daemon.wait_for_log("silence_expired")
    assert listed(tmp_path) == []
    assert (gauge(port, "active"), gauge(port, "expired")) == (0, 1)
    unknown = silence(tmp_path, "expire", "no-such-silence")
    assert unknown.returncode == 2 and "no silence" in unknown.stderr

    daemon.stop()
    (kept,) = listed(tmp_path, "--all")  # now straight from the state file
    assert (kept["id"], kept["state"], kept["expired_by"]) == (silence_id, "expired", "bob")
