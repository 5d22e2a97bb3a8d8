"""A fake helpdesk (or receiver) as its own process on 127.0.0.1, for tests and benchmarks.

The fakes live in the test tree, not in the installed package: :func:`spawn_module` starts
``python -m tests.fakes...`` in the repository root, with the root first on ``PYTHONPATH``, so
it works from any working directory (pytest, ``python -m bench``) and from an editable install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import IO, Any

Stream = int | IO[Any] | None
"""What ``subprocess.Popen`` takes for a standard stream: a file, a descriptor, ``PIPE``..."""

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: the directory holding ``tests/`` (and ``sladaemon/``, ``bench/``)."""


def root_environment() -> dict[str, str]:
    """This process's environment with the repository root first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def spawn_module(
    module: str,
    *args: str,
    stdin: Stream = None,
    stdout: Stream = None,
    stderr: Stream = None,
) -> subprocess.Popen[bytes]:
    """``python -m module args...`` with this interpreter, run in the repository root."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=ROOT,
        env=root_environment(),
    )


class FakeHelpdesk:
    """A running fake helpdesk process: ``url`` for the connector, ``control`` for the test."""

    def __init__(self, helpdesk: str) -> None:
        self.helpdesk = helpdesk
        self.process = spawn_module(
            "tests.fakes", helpdesk, "--port", "0", stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if not line.startswith("READY"):
            self.stop()
            raise RuntimeError(f"fake {helpdesk} did not start: {line!r} {self.stderr()}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def control(self, path: str, body: Any = None, method: str | None = None) -> Any:
        """Call a ``/_fake/...`` endpoint; returns its JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_fake/{path.lstrip('/')}",
            data=data,
            method=method or ("GET" if body is None else "POST"),
            headers={"Content-Type": "application/json"},
        )
        with self._opener.open(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def faults(self, *faults: dict[str, Any]) -> None:
        self.control("faults", list(faults))

    def requests(self) -> int:
        return int(self.control("stats")["requests"])

    def reset_stats(self) -> None:
        self.control("stats/reset", {})

    def stderr(self) -> str:
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
