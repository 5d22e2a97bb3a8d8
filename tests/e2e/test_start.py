"""Starting the real daemon process: a long first sync says how far it has got (log, systemd's
STATUS= and /healthz) and keeps systemd waiting only while it progresses; a port that cannot be
bound and a source that refuses ``once`` end with a one-line error and a non-zero exit."""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port, wait_until
from tests.e2e.daemon_process import DaemonProcess, http_get
from tests.e2e.test_daemon import daemon_config
from tests.e2e.test_faults import run_once
from tests.fakes.process import FakeHelpdesk
from tests.fakes.zendesk import AGENT_EMAIL, API_TOKEN

UNREACHABLE = "json://127.0.0.1:9/hook"  # a receiver nothing listens on: never sent to here


class NotifySocket:
    """An abstract datagram socket standing in for systemd's ``NOTIFY_SOCKET``."""

    def __init__(self) -> None:
        name = f"sladaemon-test-{uuid.uuid4().hex}"
        self.address = "@" + name
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind("\0" + name)
        self.socket.setblocking(False)
        self.received: list[str] = []

    def messages(self) -> list[str]:
        """Every message so far, oldest first."""
        with contextlib.suppress(BlockingIOError):
            while True:
                self.received.append(self.socket.recv(4096).decode())
        return self.received

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def zendesk() -> Iterator[FakeHelpdesk]:
    fake = FakeHelpdesk("zendesk")
    yield fake
    fake.stop()


def zendesk_source(fake: FakeHelpdesk, token: str = API_TOKEN) -> str:
    return (
        f"zd: {{type: zendesk, url: '{fake.url}', email: {AGENT_EMAIL}, token: {token},"
        " poll_interval: 30s, timeout: 5s}"
    )


def test_a_long_first_sync_reports_its_progress_and_systemd_waits_while_it_moves(
    tmp_path: Path, zendesk: FakeHelpdesk, daemons: list[DaemonProcess]
) -> None:
    # About 290 open tickets, each loaded with its own audits, at 100 requests per 10 s:
    # the first sync needs more than 20 s (two progress reports at least).
    zendesk.control("bulk", {"tickets": 500, "seed": 1, "span": 3 * 86400})
    zendesk.control("limits", {"account_per_minute": 100, "window": 10})
    port, notify = free_port(), NotifySocket()
    try:
        config = daemon_config(
            tmp_path, {"hook": UNREACHABLE}, first_response="1h", http_port=port,
            source=zendesk_source(zendesk),
        )  # fmt: skip
        daemons.append(daemon := DaemonProcess(tmp_path, config, {"NOTIFY_SOCKET": notify.address}))
        daemon.launch()
        daemon.wait_for_log("sync_started", timeout=30)
        healthz = f"http://127.0.0.1:{port}/healthz"
        wait_until(lambda: http_get(healthz)[0] != 0, "/healthz answers")
        code, body = http_get(healthz)
        assert code == 503 and json.loads(body)["status"] == "syncing", body
        assert "tickets_per_s" in json.loads(body)["sources"]["zd"]["sync"]

        daemon.wait_for_log("daemon_started", timeout=180)
        progress = daemon.wait_for_log("sync_progress", count=2, timeout=1)
        assert all(p["source"] == "zd" and p["pages"] > 0 for p in progress)
        assert progress[-1]["tickets"] > 0 and progress[-1]["tickets_per_s"] > 0
        assert any(p.get("eta_s") is not None and p["remaining"] > 0 for p in progress)
        (finished,) = daemon.wait_for_log("sync_finished", timeout=1)
        assert finished["tickets"] > progress[-1]["tickets"] and finished["pages"] > 200

        messages = notify.messages()
        ready = next(i for i, m in enumerate(messages) if m.startswith("READY=1"))
        extended = [m for m in messages[:ready] if m.startswith("EXTEND_TIMEOUT_USEC=")]
        assert len(extended) >= 3  # at the start and at each report, while it moved
        assert all(m.split("\n")[1].startswith("STATUS=syncing zd: ") for m in extended)
        assert any("tickets/s" in m and "ETA" in m for m in extended)
        assert (
            messages[ready] == f"READY=1\nSTATUS={finished['tickets']} open tickets from 1 sources"
        )
        assert http_get(healthz)[0] == 200
    finally:
        notify.close()


def test_a_taken_http_port_stops_the_start_with_one_line_and_exit_1(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    (tmp_path / "events.csv").write_text("ticket_id,timestamp,event,status,priority,channel\n")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = daemon_config(tmp_path, {"hook": UNREACHABLE}, http_port=port)
        daemons.append(daemon := DaemonProcess(tmp_path, config))
        daemon.launch()
        assert daemon.wait(timeout=30) == 1
    output = daemon.log_text()
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot listen on 127.0.0.1:{port} (daemon.http.listen) for /healthz and "
        "/metrics: Address already in use"
    ]
    assert "Traceback" not in output and "daemon_started" not in output


def test_once_exits_non_zero_when_a_source_refuses_it(
    tmp_path: Path, zendesk: FakeHelpdesk
) -> None:
    config = daemon_config(
        tmp_path, {"hook": UNREACHABLE}, source=zendesk_source(zendesk, token="wrong-token")
    )
    once = run_once(tmp_path / "once", config)
    assert once.returncode == 1, once.stdout + once.stderr
    assert (
        "error: source zd: GET /api/v2/incremental/tickets/cursor.json: HTTP 401, check the "
        "source's credentials"
    ) in once.stderr.splitlines()
