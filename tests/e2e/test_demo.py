"""The demo (`make demo`: config/demo.yaml on the built-in simulator) as a person runs it:
started, stopped with Ctrl-C, then the commands its summary suggests."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def demo_config(directory: Path) -> Path:
    """config/demo.yaml as shipped, on a free HTTP port (its state path is relative: the
    process runs in ``directory``)."""
    text = DEMO.read_text()
    assert "listen: 127.0.0.1:9464" in text
    config = directory / "demo.yaml"
    config.write_text(text.replace("127.0.0.1:9464", f"127.0.0.1:{free_port()}"))
    return config


def wait_for_output(path: Path, needle: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while needle not in path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {needle!r} in the demo's output:\n{path.read_text()[-3000:]}")
        time.sleep(0.1)


def sladaemon(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command line the summary printed, run as printed (``sladaemon`` from this Python)."""
    words = shlex.split(command)
    assert words[0] == "sladaemon"
    return subprocess.run(
        [sys.executable, "-m", "sladaemon", *words[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ctrl_c_ends_the_demo_with_a_summary_whose_commands_show_what_it_ran(
    tmp_path: Path,
) -> None:
    config = demo_config(tmp_path)
    output = tmp_path / "demo.out"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sladaemon", "run", "--config", str(config)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_output(output, "breached", process)  # the weekend's backlog
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=STOP_TIMEOUT) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = output.read_text()
    summary = text[text.index("\nStopped at ") :]
    stopped = re.search(
        r"Stopped at \w{3} (2026-01-\d\d) (\d\d:\d\d) UTC \(simulated clock\)", summary
    )
    assert stopped, summary
    figures = {
        name: int(n)
        for name, n in re.findall(
            r"^  (tickets seen|SLA breaches|messages sent) +(\d+)", summary, re.M
        )
    }
    assert set(figures) == {"tickets seen", "SLA breaches", "messages sent"}, summary
    assert all(n > 0 for n in figures.values()), summary
    digests = [json.loads(line) for line in text.splitlines() if '"kind": "group"' in line]
    assert digests, "the demo groups what it sends"
    assert len(digests) < figures["SLA breaches"], "fewer messages than breaches: digests"
    assert re.search(r"^  state +\.demo/state\.sqlite$", summary, re.M), summary

    commands = summary.split("Try next:\n", 1)[1].strip().splitlines()
    explain = [c for c in commands if " explain " in c]
    reports = [c for c in commands if " report " in c]
    assert len(explain) == 1 and reports, summary
    ticket = shlex.split(explain[0])[-1]
    shown = sladaemon(explain[0], tmp_path)
    assert shown.returncode == 0, shown.stderr
    at = f"{stopped.group(1)}T{stopped.group(2)}"  # where the simulated clock stopped
    assert shown.stdout.startswith(f"ticket {ticket} at {at}"), shown.stdout
    assert ": breached, target" in shown.stdout, "the example is a breached ticket"
    for command in reports:
        report = sladaemon(command, tmp_path)
        assert report.returncode == 0, report.stderr
        words = shlex.split(command)
        written = tmp_path / words[words.index("--out") + 1] if "--out" in words else None
        assert (written.read_text() if written else report.stdout).strip(), command
    table = sladaemon(reports[0], tmp_path).stdout
    created = re.search(r"^tickets created +(\d+)", table, re.M)
    assert created and int(created.group(1)) == figures["tickets seen"], table
    assert re.search(r"^  \w+ +first_response +\w+ +\d+ +[1-9]\d*", table, re.M), (
        "the demo's breaches are in the report"
    )
    page = (tmp_path / "report.html").read_text()
    assert "SLA compliance" in page
