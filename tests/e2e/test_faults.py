"""Faults injected into the real daemon process: the state file locked by another process or
on a disk that fills up, slow receivers, a second instance, a damaged or deleted state file,
poison input, over-long lines and log rotation. Alerting must resume on its own, with nothing
lost and no duplicate that is not flagged as possible."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import Receivers, WebhookReceiver, free_port
from tests.e2e.daemon_process import (
    HEADER,
    DaemonProcess,
    EventFile,
    body_fields,
    http_get,
    stamp,
)
from tests.e2e.test_daemon import daemon_config
from tests.fakes.process import FakeHelpdesk
from tests.fakes.zendesk import AGENT_EMAIL, API_TOKEN

LEVELS = ("50%", "breach")


def owed(tickets: list[str], source: str = "desk") -> set[str]:
    return {f"{source}/{t}/first_response/0/{level}" for t in tickets for level in LEVELS}


@dataclass
class Tally:
    """What a fault cost: messages owed, lost, and sent more than once (flagged as possible
    duplicates or not)."""

    owed: int
    lost: int
    flagged: int
    unflagged: int


FIGURES: dict[str, Tally] = {}  # per test, printed at the end of the module


@pytest.fixture(scope="module", autouse=True)
def figures(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    plugins = request.config.pluginmanager
    report, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if report is None or capture is None or not FIGURES:
        return
    with capture.global_and_fixture_disabled():
        report.write_line("")
        report.write_line(f"{'fault (test)':<64} owed lost duplicates (flagged, unflagged)")
        for test, t in FIGURES.items():
            report.write_line(
                f"{test[5:][:64]:<64} {t.owed:>4} {t.lost:>4} {t.flagged:>4}, {t.unflagged}"
            )


def assert_all_delivered_once(
    hook: WebhookReceiver, tickets: list[str], source: str = "desk"
) -> None:
    """Every owed message accepted; a message accepted twice must say it may be a duplicate."""
    expected = owed(tickets, source)
    deadline = time.monotonic() + 90
    while True:
        accepted = hook.accepted()
        counts = Counter(body_fields(m)["id"] for m in accepted)
        if set(counts) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    flagged = unflagged = 0
    for key, n in counts.items():
        if n > 1:
            copies = [m for m in accepted if body_fields(m)["id"] == key]
            said = sum("possible duplicate" in str(m.get("body", "")) for m in copies)
            flagged += min(said, n - 1)
            unflagged += max(0, n - 1 - said)
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0]
    FIGURES[test] = Tally(len(expected), len(expected - set(counts)), flagged, unflagged)
    assert set(counts) >= expected, f"lost: {sorted(expected - set(counts))[:10]}"
    assert unflagged == 0, f"{unflagged} duplicates not flagged: {counts.most_common(5)}"


def start_and_warm_up(
    tmp_path: Path,
    hook: WebhookReceiver,
    daemons: list[DaemonProcess],
    port: int,
    state: Path,
    open_files: int | None = None,
) -> tuple[DaemonProcess, EventFile, list[str]]:
    """The daemon on ``tmp_path/events.csv`` with its state file at ``state``, five tickets
    alerted before any fault."""
    events = EventFile(tmp_path / "events.csv")
    config = daemon_config(tmp_path, {"hook": hook.url}, first_response="4s", http_port=port)
    config = config.replace(str(tmp_path / "state.sqlite"), str(state))
    daemon = DaemonProcess(tmp_path, config, open_files=open_files)
    daemons.append(daemon)
    daemon.start()
    before = [f"B{i}" for i in range(5)]
    for ticket in before:
        events.add(ticket, "created", "new")
    hook.wait_for(2 * len(before), timeout=30, accepted_only=True)
    return daemon, events, before


def test_a_state_file_locked_by_another_process_delays_alerts_and_loses_none(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    hook, port = receivers.webhook(), free_port()
    state = tmp_path / "state.sqlite"
    daemon, events, before = start_and_warm_up(tmp_path, hook, daemons, port, state)

    lock = sqlite3.connect(state, isolation_level=None, timeout=30)
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the write lock for 12 s
    locked_at = time.monotonic()
    during = [f"L{i}" for i in range(10)]
    for ticket in during:
        events.add(ticket, "created", "new")
        time.sleep(0.3)
    (failure,) = daemon.wait_for_log("ingest_failed", timeout=30)[:1]
    assert "locked" in failure["error"]
    status, body = http_get(f"http://127.0.0.1:{port}/healthz")
    assert status == 503 and "failing" in body
    time.sleep(max(0.0, 12 - (time.monotonic() - locked_at)))
    lock.rollback()
    lock.close()

    after = [f"A{i}" for i in range(5)]
    for ticket in after:
        events.add(ticket, "created", "new")
    assert_all_delivered_once(hook, before + during + after)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, _ = http_get(f"http://127.0.0.1:{port}/healthz")
        if status == 200:
            break
        time.sleep(0.5)
    assert status == 200
    assert daemon.process is not None and daemon.process.poll() is None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of its own, so the state file's disk can be filled up and freed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, f"this test mounts a tmpfs (as root): {mounted.stderr}"
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk is full; returns it."""
    ballast = disk / "ballast"
    with ballast.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return ballast


def test_a_full_disk_delays_alerts_and_loses_none_once_space_is_freed(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess], small_disk: Path
) -> None:
    hook, port = receivers.webhook(), free_port()
    state = small_disk / "state.sqlite"
    daemon, events, before = start_and_warm_up(tmp_path, hook, daemons, port, state)

    ballast = fill(small_disk)
    during = [f"F{i}" for i in range(10)]
    for ticket in during:
        events.add(ticket, "created", "new")
        time.sleep(0.3)
    (failure,) = daemon.wait_for_log("ingest_failed", timeout=30)[:1]
    assert "full" in failure["error"]
    time.sleep(3)
    ballast.unlink()

    after = [f"A{i}" for i in range(5)]
    for ticket in after:
        events.add(ticket, "created", "new")
    assert_all_delivered_once(hook, before + during + after)
    assert daemon.process is not None and daemon.process.poll() is None


def test_a_receiver_answering_after_the_timeout_gets_the_re_send_flagged(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    """The receiver takes the message but answers after the daemon stopped waiting: the
    retry goes out with the same id and says it may be a duplicate."""
    hook = receivers.webhook(mode="slow")
    events = EventFile(tmp_path / "events.csv")
    config = daemon_config(tmp_path, {"hook": hook.url}, first_response="2s")
    daemons.append(daemon := DaemonProcess(tmp_path, config))
    daemon.start()
    events.add("S1", "created", "new")
    hook.wait_for(1, timeout=30)
    hook.set_mode("ok")
    deadline = time.monotonic() + 30
    copies: list[dict[str, object]] = []
    while len(copies) < 2 and time.monotonic() < deadline:  # the slow answer and the re-send
        time.sleep(0.2)
        copies = [m for m in hook.accepted() if body_fields(m)["id"].endswith("/50%")]
    assert len(copies) == 2
    assert_all_delivered_once(hook, ["S1"])
    assert "possible duplicate" in str(copies[1]["body"])


def command(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``sladaemon ARGS --config config.yaml`` run in ``directory``."""
    argv = [sys.executable, "-m", "sladaemon", *args, "--config", "config.yaml"]
    return subprocess.run(argv, cwd=directory, capture_output=True, text=True, timeout=60)


def run_once(directory: Path, config: str) -> subprocess.CompletedProcess[str]:
    directory.mkdir(exist_ok=True)
    (directory / "config.yaml").write_text(config)
    return command(directory, "once")


def test_one_daemon_per_state_file_a_second_and_once_are_refused(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    hook = receivers.webhook()
    events = EventFile(tmp_path / "events.csv")
    config = daemon_config(tmp_path, {"hook": hook.url}, first_response="3s")
    daemons.append(first := DaemonProcess(tmp_path, config))
    first.start()
    tickets = [f"D{i}" for i in range(10)]
    for ticket in tickets:
        events.add(ticket, "created", "new")
    (tmp_path / "second").mkdir()
    daemons.append(second := DaemonProcess(tmp_path / "second", config))
    assert second.process is None
    with pytest.raises(AssertionError):
        second.start()  # it never starts
    assert second.wait(timeout=10) == 1
    assert "another sladaemon (pid" in second.log_text()
    once = run_once(tmp_path / "once", config)
    assert once.returncode == 1 and "another sladaemon (pid" in once.stderr
    assert_all_delivered_once(hook, tickets)
    counts = Counter(body_fields(m)["id"] for m in hook.accepted())
    assert max(counts.values()) == 1  # nobody took over what the first daemon was sending


def test_once_makes_one_attempt_per_entry_and_exits_non_zero_when_a_receiver_fails(
    tmp_path: Path, receivers: Receivers
) -> None:
    hook = receivers.webhook(mode="fail")
    events = EventFile(tmp_path / "events.csv")
    created = datetime.now(UTC) - timedelta(minutes=2)
    tickets = ["O1", "O2", "O3"]
    for ticket in tickets:
        events.add(ticket, "created", "new", at=created)
    config = daemon_config(tmp_path, {"hook": hook.url}, first_response="10s")
    started = time.monotonic()
    once = run_once(tmp_path / "once", config)
    assert once.returncode == 1, once.stdout + once.stderr
    (finished,) = [
        e for e in map(json.loads, once.stdout.splitlines()) if e["event"] == "once_finished"
    ]
    assert finished["failed"] == 6, "each owed message failed once and was kept for the next run"
    assert time.monotonic() - started < 45
    counts = Counter(body_fields(m)["id"] for m in hook.messages())
    assert set(counts) == owed(tickets) and set(counts.values()) == {1}
    hook.set_mode("ok")
    again = run_once(tmp_path / "once", config)  # the next run delivers what was kept
    assert again.returncode == 0, again.stdout + again.stderr
    assert_all_delivered_once(hook, tickets)


def test_a_damaged_state_file_says_what_to_do_and_its_backup_restores_it(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    hook = receivers.webhook()
    events = EventFile(tmp_path / "events.csv")
    config = daemon_config(tmp_path, {"hook": hook.url}, first_response="2s")
    daemons.append(daemon := DaemonProcess(tmp_path, config))
    daemon.start()
    first = ["C1", "C2"]
    for ticket in first:
        events.add(ticket, "created", "new")
    hook.wait_for(4, timeout=30, accepted_only=True)
    daemon.stop()  # a last backup as it stops
    state = tmp_path / "state.sqlite"
    with state.open("r+b") as f:  # a disk error garbles the start of the file
        f.write(b"\x13garbage" * 512)
    (tmp_path / "broken").mkdir()
    daemons.append(broken := DaemonProcess(tmp_path / "broken", config))
    with pytest.raises(AssertionError):
        broken.start()
    assert broken.wait(timeout=10) == 1
    assert "is damaged" in broken.log_text() and "sladaemon state restore" in broken.log_text()
    checked = command(tmp_path / "broken", "state", "check")
    assert checked.returncode == 1 and "state.sqlite.backup: ok" in checked.stdout
    restored = command(tmp_path / "broken", "state", "restore")
    assert restored.returncode == 0, restored.stderr
    assert command(tmp_path / "broken", "state", "check").returncode == 0
    (tmp_path / "again").mkdir()
    daemons.append(again := DaemonProcess(tmp_path / "again", config))
    again.start()
    events.add("C3", "created", "new")
    assert_all_delivered_once(hook, [*first, "C3"])
    counts = Counter(body_fields(m)["id"] for m in hook.accepted())
    assert max(counts.values()) == 1  # what the backup knew was sent is not sent again


def test_a_deleted_state_file_is_reported_and_old_alerts_are_not_sent_again(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    hook, ops = receivers.webhook(), receivers.webhook("ops")
    events = EventFile(tmp_path / "events.csv")
    config = daemon_config(
        tmp_path, {"hook": hook.url, "ops": ops.url}, first_response="2s", operator="ops"
    ).replace("catch_up: 10m", "catch_up: 5s")
    daemons.append(daemon := DaemonProcess(tmp_path, config))
    daemon.start()
    first = ["G1", "G2"]
    for ticket in first:
        events.add(ticket, "created", "new")
    hook.wait_for(4, timeout=30, accepted_only=True)
    daemon.stop()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"state.sqlite{suffix}").unlink(missing_ok=True)
    time.sleep(6)  # their levels are now older than catch_up
    (tmp_path / "again").mkdir()
    daemons.append(again := DaemonProcess(tmp_path / "again", config))
    again.start()
    again.wait_for_log("state_recreated")
    told = [str(m["body"]) for m in ops.wait_for(2, timeout=30, accepted_only=True)]
    assert any("was missing and is created afresh" in text for text in told)
    assert any("SLA events older than daemon.catch_up were not sent" in text for text in told)
    events.add("G3", "created", "new")
    assert_all_delivered_once(hook, [*first, "G3"])
    counts = Counter(body_fields(m)["id"] for m in hook.accepted())
    assert max(counts.values()) == 1


def test_poison_rows_over_long_lines_and_a_sparse_hole_are_skipped_and_alerting_goes_on(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    hook, port = receivers.webhook(), free_port()
    state = tmp_path / "state.sqlite"
    daemon, events, before = start_and_warm_up(tmp_path, hook, daemons, port, state)

    good = [f"P{i}" for i in range(8)]
    far = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    hazards: list[tuple[str, bytes]] = [
        ("a row dated 9999-12-31", f"X1,{far:%Y-%m-%dT%H:%M:%SZ},created,new,,,\n".encode()),
        ("a 2 MB line", b"X2," + b"y" * 2_000_000 + b"\n"),
        ("a field over 128 KiB", b'X3,"' + b"z" * 200_000 + b'",created,new,,,\n'),
        ("a stray quote", b'X4,"2024-01-01T00:00:00Z,created,new,,,\n'),
        ("a 10 MB line", b"X5," + b"w" * 10_000_000 + b"\n"),
    ]
    for ticket, (_, line) in zip(good, hazards, strict=False):
        events.add(ticket, "created", "new")
        with events.path.open("ab") as f:
            f.write(line)
    with events.path.open("r+b") as f:  # a sparse hole: 3 MB of NULs without a newline
        f.truncate(f.seek(0, 2) + 3_000_000)
    with events.path.open("ab") as f:
        f.write(b"\n")
    for ticket in good[len(hazards) :]:
        events.add(ticket, "created", "new")

    assert_all_delivered_once(hook, before + good)
    reasons = [e["reason"] for e in daemon.wait_for_log("input_row_skipped", count=4, timeout=30)]
    assert sum("longer than" in r for r in reasons) == 3  # 2 MB, 10 MB, the hole
    assert any("field larger than field limit" in r for r in reasons)
    assert any("unbalanced quote" in r for r in reasons)
    (quarantined,) = daemon.wait_for_log("input_quarantined", timeout=30)[:1]
    assert "X1" in json.dumps(quarantined)
    assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200

    daemon.kill()  # a restart reads the poison row again and neither stops nor re-sends
    (tmp_path / "again").mkdir()
    config = daemon.config.read_text()
    daemons.append(again := DaemonProcess(tmp_path / "again", config))
    again.start()
    events.add("P9", "created", "new")
    assert_all_delivered_once(hook, [*before, *good, "P9"])
    assert max(Counter(body_fields(m)["id"] for m in hook.accepted()).values()) == 1


def test_a_copytruncate_rotation_before_the_next_poll_is_noticed_and_no_row_is_lost(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    hook, port = receivers.webhook(), free_port()
    state = tmp_path / "state.sqlite"
    daemon, events, before = start_and_warm_up(tmp_path, hook, daemons, port, state)

    rotated = [f"R{i}" for i in range(12)]  # more bytes than were read before the rotation
    fresh = HEADER + "".join(f"{t},{stamp()},created,new,normal,email,support\n" for t in rotated)
    assert len(fresh) > events.path.stat().st_size
    shutil.copy(events.path, tmp_path / "events.csv.1")
    with events.path.open("r+") as f:  # copied away, then written again in place at once
        f.write(fresh)
        f.truncate()
    assert_all_delivered_once(hook, before + rotated)
    (restarted,) = daemon.wait_for_log("event_file_restarted", timeout=30)[:1]
    assert restarted["why"] == "truncated and written again"
    assert max(Counter(body_fields(m)["id"] for m in hook.accepted()).values()) == 1


def test_a_ticket_dated_9999_from_a_helpdesk_is_quarantined_and_the_daemon_stays_responsive(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    hook, port = receivers.webhook(), free_port()
    fake = FakeHelpdesk("zendesk")
    try:
        fake.control("limits", {"incremental_per_minute": 1000, "lag": 0})
        source = (
            f"zd: {{type: zendesk, url: '{fake.url}', email: {AGENT_EMAIL}, token: {API_TOKEN},"
            " poll_interval: 1s, timeout: 5s}"
        )
        config = daemon_config(
            tmp_path, {"hook": hook.url}, first_response="4s", http_port=port, source=source
        )
        daemons.append(daemon := DaemonProcess(tmp_path, config))
        daemon.start()
        first = [fake.control("tickets", {"subject": f"before {i}"})["id"] for i in range(3)]
        far = "9999-12-31T23:59:59Z"
        fake.control("inject", {"item": {"id": 777, "created_at": far, "updated_at": far}})
        fake.control("tickets/1/update", {"status": "open"})
        later = [fake.control("tickets", {"subject": f"after {i}"})["id"] for i in range(3)]
        tickets = [str(t) for t in first + later]
        assert_all_delivered_once(hook, tickets, source="zd")
        (quarantined,) = daemon.wait_for_log("input_quarantined", timeout=30)[:1]
        assert "777" in json.dumps(quarantined)
        assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        stopping = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
        assert time.monotonic() - stopping < 10
    finally:
        fake.stop()


def test_a_flood_of_half_sent_requests_leaves_healthz_deliveries_and_the_log_usable(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    hook, port = receivers.webhook(), free_port()
    state = tmp_path / "state.sqlite"
    daemon, events, before = start_and_warm_up(
        tmp_path, hook, daemons, port, state, open_files=1024
    )
    lines_before = len(daemon.log_text().splitlines())

    flood: list[socket.socket] = []
    try:
        for _ in range(1100):  # each sends half a request and waits
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            flood.append(s)
        during = [f"H{i}" for i in range(5)]
        for ticket in during:
            events.add(ticket, "created", "new")
        assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert_all_delivered_once(hook, before + during)
        daemon.wait_for_log("http_connections_dropped")
    finally:
        for s in flood:
            s.close()
    assert http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200
    assert len(daemon.log_text().splitlines()) - lines_before < 500
