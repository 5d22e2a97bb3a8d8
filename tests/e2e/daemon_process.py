"""Running the real daemon as a separate process, and feeding it a live event file."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

HEADER = "ticket_id,timestamp,event,status,priority,channel,queue\n"


def stamp(t: datetime | None = None) -> str:
    return (t or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


class EventFile:
    """The normalized CSV a ``csv`` source follows; rows are appended as things happen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text(HEADER)

    def add(self, ticket: str, event: str, status: str = "", at: datetime | None = None) -> None:
        with self.path.open("a") as f:
            f.write(f"{ticket},{stamp(at)},{event},{status},normal,email,support\n")


class DaemonProcess:
    def __init__(
        self,
        directory: Path,
        config: str,
        env: dict[str, str] | None = None,
        open_files: int | None = None,
    ) -> None:
        """``open_files``: the soft limit on open files (systemd's default is 1024)."""
        self.directory = directory
        self.open_files = open_files
        self.config = directory / "config.yaml"
        self.config.write_text(config)
        self.log_path = directory / "daemon.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        """Start the process and wait ``timeout`` seconds for ``daemon_started``."""
        self.launch()
        self.wait_for_log("daemon_started", timeout=timeout)

    def launch(self) -> None:
        """Start the process, without waiting for anything."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sladaemon", "run", "--config", str(self.config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.directory,
            preexec_fn=self._limit if self.open_files else None,
        )

    def _limit(self) -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files or hard, hard))

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"event": "unparsed_line", "line": line})
        return out

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, event: str, timeout: float = 20, count: int = 1) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.logs() if e.get("event") == event]
            if len(found) >= count:
                return found
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {count}x {event!r} in daemon log:\n{self.log_text()[-4000:]}")

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        code = self.process.wait(timeout=timeout)
        self._close_log()
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._close_log()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def http_get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode()
        exc.close()
        return exc.code, body


def body_fields(message: dict[str, Any]) -> dict[str, str]:
    """``key: value`` lines of a notification body (webhook JSON or email)."""
    body = message["body"]
    text = body.get("message", "") if isinstance(body, dict) else str(body)
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            fields[key.strip()] = value.strip()
    return fields
