"""The sd_notify client against real datagram sockets, and the unit file under systemd-analyze."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sladaemon.daemon.systemd import SystemdNotifier

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "sladaemon.service"
# Where systemd/README.md tells the admin to install sladaemon.
ENTRY_POINT = "/opt/sladaemon/venv/bin/sladaemon"
MAX_EXPOSURE = 2.0


# ---------------------------------------------------------------------------- notifier


def _receiver(address: str) -> socket.socket:
    """A datagram socket standing in for systemd's notify socket."""
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(2)
    return receiver


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    with _receiver(path) as receiver:
        yield receiver, path


@pytest.fixture
def notifier(socket_path: tuple[socket.socket, str]) -> Iterator[SystemdNotifier]:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": socket_path[1]})
    yield notifier
    notifier.close()


@pytest.fixture
def receiver(socket_path: tuple[socket.socket, str]) -> socket.socket:
    return socket_path[0]


def test_ready_without_and_with_status(notifier: SystemdNotifier, receiver: socket.socket):
    assert notifier.enabled
    notifier.ready()
    notifier.ready("watching 12 tickets")
    assert receiver.recv(4096) == b"READY=1"
    assert receiver.recv(4096) == b"READY=1\nSTATUS=watching 12 tickets"


def test_status_is_kept_on_one_line(notifier: SystemdNotifier, receiver: socket.socket):
    notifier.status("source history failing:\nconnection refused")
    assert receiver.recv(4096) == b"STATUS=source history failing: connection refused"


def test_extend_timeout_asks_for_more_time_in_microseconds_with_a_status(
    notifier: SystemdNotifier, receiver: socket.socket
):
    notifier.extend_timeout(140, "syncing zd: 1,200 tickets")
    notifier.extend_timeout(0.5)
    assert receiver.recv(4096) == b"EXTEND_TIMEOUT_USEC=140000000\nSTATUS=syncing zd: 1,200 tickets"
    assert receiver.recv(4096) == b"EXTEND_TIMEOUT_USEC=500000"


def test_reloading_carries_the_monotonic_clock(notifier: SystemdNotifier, receiver: socket.socket):
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    reloading, monotonic = receiver.recv(4096).decode().split("\n")
    assert reloading == "RELOADING=1"
    key, _, usec = monotonic.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(usec) <= after


def test_stopping(notifier: SystemdNotifier, receiver: socket.socket):
    notifier.stopping()
    assert receiver.recv(4096) == b"STOPPING=1"


def test_watchdog_ping(socket_path: tuple[socket.socket, str]):
    receiver, path = socket_path
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = SystemdNotifier(env)
    try:
        assert notifier.watchdog_interval == 15.0
        notifier.watchdog()
        assert receiver.recv(4096) == b"WATCHDOG=1"
    finally:
        notifier.close()


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "garbage"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], interval: float | None):
    assert SystemdNotifier(env).watchdog_interval == interval


def test_watchdog_meant_for_another_process_sends_nothing(
    socket_path: tuple[socket.socket, str],
):
    receiver, path = socket_path
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    notifier = SystemdNotifier(env)
    try:
        notifier.watchdog()
        notifier.status("after the ping")
        # Datagrams on a local socket arrive in order: no WATCHDOG=1 came first.
        assert receiver.recv(4096) == b"STATUS=after the ping"
    finally:
        notifier.close()


def test_abstract_namespace_socket():
    name = f"sladaemon-test-{uuid.uuid4().hex}"
    with _receiver("\0" + name) as receiver:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        try:
            notifier.ready("up")
            assert receiver.recv(4096) == b"READY=1\nSTATUS=up"
        finally:
            notifier.close()


def test_reads_os_environ_by_default(
    socket_path: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
):
    receiver, path = socket_path
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = SystemdNotifier()
    try:
        assert notifier.watchdog_interval == 2.0
        notifier.stopping()
        assert receiver.recv(4096) == b"STOPPING=1"
    finally:
        notifier.close()


@pytest.mark.parametrize("notify_socket", ["", "vsock:2:1234", "relative/path", "@"])
def test_disabled_notifier_is_a_no_op(notify_socket: str, monkeypatch: pytest.MonkeyPatch):
    def no_socket(*args: object, **kwargs: object) -> socket.socket:
        raise AssertionError("a disabled notifier opened a socket")

    notifier = SystemdNotifier({"NOTIFY_SOCKET": notify_socket, "WATCHDOG_USEC": "1000000"})
    monkeypatch.setattr(socket, "socket", no_socket)
    assert not notifier.enabled
    notifier.ready("up")
    notifier.status("still up")
    notifier.reloading()
    notifier.watchdog()
    notifier.stopping()
    notifier.close()


def test_vanished_socket_is_logged_once_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    path = str(tmp_path / "notify")
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    try:
        with _receiver(path) as receiver:
            notifier.ready()
            assert receiver.recv(4096) == b"READY=1"
        os.unlink(path)
        with caplog.at_level(logging.WARNING, logger="sladaemon.daemon.systemd"):
            notifier.status("nobody listens")
            notifier.stopping()
        warnings = [r for r in caplog.records if r.name == "sladaemon.daemon.systemd"]
        assert len(warnings) == 1
        assert path in warnings[0].getMessage()
    finally:
        notifier.close()


def test_missing_socket_from_the_start_does_not_raise(tmp_path: Path):
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "never-bound")})
    try:
        assert notifier.enabled
        notifier.ready("up")
        notifier.reloading()
    finally:
        notifier.close()


def test_a_receiver_that_stops_reading_never_blocks_the_caller(
    socket_path: tuple[socket.socket, str],
):
    _, path = socket_path  # the receiver never reads: its queue fills up
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})

    def flood() -> None:
        for n in range(2000):
            notifier.status(f"update {n}")

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    sender.join(timeout=10)
    try:
        assert not sender.is_alive(), "sending blocked on a full notify socket"
    finally:
        notifier.close()


def test_reopens_after_close(notifier: SystemdNotifier, receiver: socket.socket):
    notifier.status("one")
    notifier.close()
    notifier.status("two")
    assert receiver.recv(4096) == b"STATUS=one"
    assert receiver.recv(4096) == b"STATUS=two"


# ---------------------------------------------------------------------------- unit file


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed (Debian/Ubuntu package: systemd)")
    return path


def _exec_binaries(unit_text: str) -> list[str]:
    """The program of every Exec*= line, without the special prefixes (-, @, :, +, !)."""
    binaries = []
    for line in unit_text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().startswith("Exec") and value.strip():
            binaries.append(value.split()[0].lstrip("-@:+!"))
    return binaries


def test_unit_starts_the_installed_entry_point():
    exec_start = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("ExecStart=")]
    assert exec_start == [f"ExecStart={ENTRY_POINT} run --config /etc/sladaemon/config.yaml"]


def test_unit_security_exposure():
    result = subprocess.run(
        [_systemd_analyze(), "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    found = re.search(r"Overall exposure level for sladaemon\.service: (\d+(?:\.\d+)?)", output)
    assert found, output
    assert float(found.group(1)) <= MAX_EXPOSURE, output


def test_unit_verifies_cleanly(tmp_path: Path):
    """``systemd-analyze verify`` checks that every Exec*= program exists, and the entry point
    is installed only on a server. So the unit is verified unchanged inside a scratch root
    (``--root``) holding the unit and executable stubs: the entry point, and every other Exec
    program that exists on this machine (a program missing here stays missing there).
    ``--recursive-errors=no`` keeps the check to this unit: the scratch root has no
    sysinit.target and the other units every service depends on by default. Parse problems
    are only warnings (exit status 0), so the output must be empty too.
    """
    analyze = _systemd_analyze()
    unit_text = UNIT.read_text()
    for binary in _exec_binaries(unit_text):
        if binary == ENTRY_POINT or Path(binary).exists():
            stub = tmp_path / binary.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
    unit = tmp_path / "etc" / "systemd" / "system" / UNIT.name
    unit.parent.mkdir(parents=True)
    unit.write_text(unit_text)

    result = subprocess.run(
        [analyze, "verify", f"--root={tmp_path}", "--recursive-errors=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""
