"""Fixtures for end-to-end tests: a webhook and an SMTP server, each in its own process.

The receivers (:mod:`tests.fakes.receivers`) append every message they get to a
JSON-lines file, which the objects here read back. They can be stopped and started again
on the same port, killed, and (the webhook) told to answer 500 or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from tests.e2e.daemon_process import DaemonProcess
from tests.fakes.process import spawn_module
from tests.fakes.receivers import EXIT_ADDRESS_IN_USE

HOST = "127.0.0.1"
MAIL_TO = "oncall@example.com"
MAIL_FROM = "sladaemon@example.com"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.05
DRAIN_TIMEOUT = 60.0  # seconds until an outbox that never drains fails the test
OWED = ("pending", "sending")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Receiver:
    """A receiver process and the messages it has recorded.

    `out` is the JSON-lines file of messages, kept across restarts; `stderr_path` collects
    the processes' stderr; `exit_status` is the return code of the last process ended by
    `stop` or `kill` (negative for a signal), None while one runs.
    """

    kind: ClassVar[str]

    def __init__(self, directory: Path, name: str, port: int = 0) -> None:
        self.name = name
        self.out = directory / f"{name}.jsonl"
        self.stderr_path = directory / f"{name}.stderr"
        self.port = port
        self.exit_status: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The apprise URL that delivers to this receiver."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the process, on the port used before if there was one, and wait until ready.

        A port still held by the previous process or by another socket is retried until
        START_TIMEOUT.
        """
        if self._process is not None:
            raise RuntimeError(f"{self.name} receiver is already running")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            process = self._spawn()
            port = self._wait_until_ready(process, deadline)
            if port is not None:
                self._process, self.port, self.exit_status = process, port, None
                return
            if process.returncode != EXIT_ADDRESS_IN_USE or time.monotonic() >= deadline:
                raise RuntimeError(
                    f"{self.name} receiver exited with status {process.returncode}"
                    f" before it was ready:\n{self.stderr()}"
                )
            time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        """Terminate the process (SIGTERM) and wait for it; the port number is kept."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the process with SIGKILL, as a crash would, and wait for it."""
        self._end(signal.SIGKILL)

    def messages(self) -> list[dict[str, Any]]:
        """Every message recorded so far, across restarts, oldest first."""
        try:
            data = self.out.read_bytes()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1].decode("utf-8")
        return [json.loads(line) for line in complete.splitlines() if line]

    def accepted(self) -> list[dict[str, Any]]:
        """The recorded messages the receiver accepted."""
        return self.messages()

    def wait_for(
        self, count: int, timeout: float = 10.0, *, accepted_only: bool = False
    ) -> list[dict[str, Any]]:
        """Poll until at least `count` messages (or accepted ones) are recorded; return them.

        Raises AssertionError listing what was received when the timeout runs out.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.accepted() if accepted_only else self.messages()
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                what = "accepted messages" if accepted_only else "messages"
                received = json.dumps(self.messages(), indent=2, ensure_ascii=False)
                raise AssertionError(
                    f"{self.name} receiver: expected {count} {what} within {timeout}s,"
                    f" got {len(found)}; all received:\n{received}\nstderr:\n{self.stderr()}"
                )
            time.sleep(POLL_INTERVAL)

    def stderr(self) -> str:
        """What the receiver processes have written to stderr so far."""
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _arguments(self) -> list[str]:
        return ["--port", str(self.port), "--out", str(self.out)]

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.stderr_path.open("ab") as stderr:
            return spawn_module(
                "tests.fakes.receivers",
                self.kind,
                *self._arguments(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )

    def _wait_until_ready(self, process: subprocess.Popen[bytes], deadline: float) -> int | None:
        """The port from the READY line, or None when the process exited first."""
        assert process.stdout is not None
        fd = process.stdout.fileno()
        output = b""
        try:
            while b"\n" not in output:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(
                        f"{self.name} receiver not ready within {START_TIMEOUT}s:\n{self.stderr()}"
                    )
                readable, _, _ = select.select([fd], [], [], remaining)
                if not readable:
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    process.wait(STOP_TIMEOUT)
                    process.stdout.close()
                    return None
                output += chunk
            word, _, port = output.partition(b"\n")[0].decode().partition(" ")
            if word != "READY" or not port.isdigit():
                raise RuntimeError(f"{self.name} receiver printed {output!r}, expected READY")
            return int(port)
        except BaseException:
            self._end_process(process, signal.SIGKILL)
            raise

    def _end(self, signum: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is not None:
            self._end_process(process, signum)
            self.exit_status = process.returncode

    @staticmethod
    def _end_process(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
        try:
            if process.poll() is None:
                process.send_signal(signum)
                try:
                    process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            if process.stdout is not None:
                process.stdout.close()


class WebhookReceiver(Receiver):
    """The JSON webhook: records every POST with the status it answered."""

    kind = "webhook"

    def __init__(self, directory: Path, name: str, port: int = 0, mode: str = "ok") -> None:
        super().__init__(directory, name, port)
        self.start_mode = mode

    @property
    def url(self) -> str:
        return f"json://{HOST}:{self.port}/hook"

    def accepted(self) -> list[dict[str, Any]]:
        return [message for message in self.messages() if message["status"] == 200]

    def set_mode(self, mode: str) -> None:
        """Answer from now on with 200 ("ok"), 200 after a delay ("slow"), 500 ("fail") or not
        at all ("hang")."""
        self._control({"mode": mode})

    def mode(self) -> str:
        return self._control(None)

    def _arguments(self) -> list[str]:
        return [*super()._arguments(), "--mode", self.start_mode]

    def _control(self, payload: dict[str, str] | None) -> str:
        request = urllib.request.Request(
            f"http://{HOST}:{self.port}/_control",
            data=None if payload is None else json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=STOP_TIMEOUT) as response:
            return str(json.load(response)["mode"])


class SmtpReceiver(Receiver):
    """The plain SMTP server: records every message with its envelope."""

    kind = "smtp"

    @property
    def url(self) -> str:
        return f"mailto://{HOST}:{self.port}?to={MAIL_TO}&from={MAIL_FROM}"


AnyReceiver = TypeVar("AnyReceiver", bound=Receiver)


class Receivers:
    """Creates receivers in one directory and stops them all at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._started: list[Receiver] = []

    def webhook(self, name: str = "webhook", mode: str = "ok") -> WebhookReceiver:
        return self._start(WebhookReceiver(self.directory, name, mode=mode))

    def smtp(self, name: str = "smtp") -> SmtpReceiver:
        return self._start(SmtpReceiver(self.directory, name))

    def stop_all(self) -> None:
        for receiver in self._started:
            receiver.stop()

    def _start(self, receiver: AnyReceiver) -> AnyReceiver:
        self._started.append(receiver)
        receiver.start()
        return receiver


@pytest.fixture(autouse=True)
def local_traffic_bypasses_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep HTTP clients that honour proxy variables talking to 127.0.0.1 directly."""
    for variable in ("NO_PROXY", "no_proxy"):
        existing = os.environ.get(variable, "")
        monkeypatch.setenv(variable, ",".join(filter(None, [existing, HOST, "localhost"])))


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    made = Receivers(tmp_path)
    try:
        yield made
    finally:
        made.stop_all()


@pytest.fixture
def webhook_receiver(receivers: Receivers) -> WebhookReceiver:
    return receivers.webhook()


@pytest.fixture
def smtp_receiver(receivers: Receivers) -> SmtpReceiver:
    return receivers.smtp()


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemon processes a test starts; stopped after it."""
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.stop()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds; AssertionError saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        time.sleep(POLL_INTERVAL)


def outbox_states(state: Path) -> dict[str, int]:
    """Outbox rows by state in a daemon's state file, read without writing to it."""
    uri = f"{state.as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
        rows = db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state")
        return {state: int(n) for state, n in rows}


def wait_until_outbox_drained(state: Path, timeout: float = DRAIN_TIMEOUT) -> dict[str, int]:
    """Poll a running daemon's state file until no outbox row is pending or being sent (each
    was delivered or given up, so nothing more goes out for it); return the rows by state.

    This is the positive signal to wait for before asserting that something did not arrive.
    Raises AssertionError with the rows by state when ``timeout`` runs out.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            states: dict[str, int] | str = outbox_states(state)
        except sqlite3.Error as exc:  # not created yet, or busy for a moment
            states = f"unreadable: {exc}"
        if isinstance(states, dict) and not any(states.get(owed) for owed in OWED):
            return states
        if time.monotonic() >= deadline:
            raise AssertionError(f"{state}: the outbox did not drain within {timeout:g}s: {states}")
        time.sleep(POLL_INTERVAL)


def stored_tickets(state: Path, source: str = "desk") -> set[str]:
    """The tickets of ``source`` with events in a daemon's state file. A poll stores its
    events and routes what they set off in one step: once a ticket is here, any escalation
    it caused at once is in the outbox too."""
    uri = f"{state.as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
            rows = db.execute("SELECT DISTINCT ticket_id FROM events WHERE source = ?", (source,))
            return {ticket for (ticket,) in rows}
    except sqlite3.Error:  # not created yet, or busy for a moment
        return set()
