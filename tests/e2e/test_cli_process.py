"""The command line as a real process: stdout under journald, one-line errors, the starter
config, shell completion and the wheel."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.process import ROOT, root_environment

TIMEOUT = 120.0  # seconds for one command: generous, it takes about one


def sladaemon(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m sladaemon args...`` with stdout and stderr piped (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "sladaemon", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**root_environment(), **(env or {})},
        timeout=TIMEOUT,
        check=False,
    )


def breached_desk(directory: Path, state: str = "state.sqlite") -> Path:
    """A config whose one ticket breached ten minutes ago, told to a console receiver."""
    created = (datetime.now(UTC) - timedelta(minutes=70)).isoformat()
    (directory / "events.csv").write_text(
        "ticket_id,timestamp,event,status,priority,channel,queue\n"
        f"T1,{created},created,new,high,email,support\n"
    )
    config = directory / "config.yaml"
    config.write_text(
        f"""
calendars: {{always: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}}}
receivers:
  console: {{urls: ["console://"]}}
  hook: {{urls: ["json://127.0.0.1:9/sladaemon/T0K3Nabcdef12?cto=1&rto=1"]}}
policies:
  - {{name: p, calendar: always, targets: {{first_response: 1h}},
      escalation: [{{at: breach, notify: [console]}}]}}
sources:
  desk:
    type: csv
    path: {directory / "events.csv"}
    ticket_url: "https://helpdesk.example.com/sladaemon/tickets/{{ticket_id}}"
daemon: {{state: {directory / state}, http: {{enabled: false}}}}
"""
    )
    return config


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every line of ``stdout`` as JSON: fails on the first line that is not."""
    return [json.loads(line) for line in stdout.splitlines()]


def assert_journald_lines(lines: list[dict[str, Any]]) -> None:
    """The breach told on the console as a log line; the SLA event's ladder level apart from
    the line's level; nothing but credentials redacted."""
    (told,) = [line for line in lines if line["event"] == "console_message"]
    assert told["title"] == "SLA breached: ticket T1 first_response breached"
    assert "ticket: T1 https://helpdesk.example.com/sladaemon/tickets/T1" in told["body"]
    (breach,) = [line for line in lines if line["event"] == "sla_breach"]
    assert (breach["level"], breach["ladder_level"]) == ("info", "breach")
    assert all(str(line["logger"]).startswith("sladaemon") for line in lines)
    assert "***" not in json.dumps(lines), "no word of a receiver URL but its token is hidden"


def test_once_under_journald_writes_json_lines_only(tmp_path: Path) -> None:
    done = sladaemon("once", "--config", str(breached_desk(tmp_path)), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = json_lines(done.stdout)
    assert_journald_lines(lines)
    (finished,) = [line for line in lines if line["event"] == "once_finished"]
    assert (finished["tickets"], finished["sent"], finished["failed"]) == (1, 1, 0)


def test_the_daemon_under_journald_writes_json_lines_only(tmp_path: Path) -> None:
    out = tmp_path / "stdout.log"
    config = breached_desk(tmp_path)
    with out.open("w") as stdout:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "sladaemon", "run", "--config", str(config)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env=root_environment(),
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while "console_message" not in out.read_text() and time.monotonic() < deadline:
            assert daemon.poll() is None, "the daemon stopped"
            time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=TIMEOUT)
    assert daemon.returncode == 0, stderr
    lines = json_lines(out.read_text())
    assert_journald_lines(lines)
    assert {"daemon_started", "daemon_stopped"} <= {line["event"] for line in lines}


def assert_one_line_error(done: subprocess.CompletedProcess[str], pattern: str) -> None:
    """Exit 2, nothing on stdout, and the problem in one line (after a heading, if any)."""
    assert done.returncode == 2 and done.stdout == "", done
    assert "Traceback" not in done.stderr
    problem = [line for line in done.stderr.splitlines() if line != "config error:"]
    assert len(problem) == 1 and re.fullmatch(pattern, problem[0]), done.stderr


@pytest.mark.parametrize("command", ["run", "once"])
def test_a_state_directory_that_cannot_be_made_is_one_line_and_exit_2(
    tmp_path: Path, command: str
) -> None:
    (tmp_path / "taken").write_text("a file where the state directory should be\n")
    config = breached_desk(tmp_path, state="taken/state.sqlite")
    done = sladaemon(command, "--config", str(config), cwd=tmp_path)
    assert_one_line_error(
        done,
        re.escape(f"{config}:")
        + r"\d+ daemon\.state: cannot write the state file here: .*taken.*: Not a directory",
    )


def test_a_report_into_a_missing_directory_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = breached_desk(tmp_path)
    out = tmp_path / "missing" / "report.html"
    done = sladaemon(
        "report",
        *("--config", str(config), "--events", str(tmp_path / "events.csv")),
        *("--format", "html", "--out", str(out)),
        cwd=tmp_path,
    )
    assert_one_line_error(
        done, re.escape(f"error: --out {out}: cannot write: No such file or directory")
    )


HELPDESK_LOG = """Case ID,Activity,Resource,Complete Timestamp,Variant,Variant index,Variant,\
seriousness,customer,product,responsible_section,seriousness_2,service_level,service_type,\
support_section,workgroup
Case 1,Assign seriousness,Value 9,2012/10/09 14:50:17.000,Variant 3,3,Variant 99,Value 1,C1,\
P1,R1,Value 1,SL1,ST1,Section 1,WG1
Case 1,Resolve ticket,Value 9,2012/10/12 09:00:00.000,Variant 3,3,Variant 99,Value 1,C1,P1,R1,\
Value 1,SL1,ST1,Section 1,WG1
"""


def test_import_reads_stdin_and_writes_stdout(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text(HELPDESK_LOG)
    args = ("import", "--format", "helpdesk-italian")
    from_files = sladaemon(*args, "log.csv", "events.csv", cwd=tmp_path)
    assert from_files.returncode == 0, from_files.stderr
    piped = sladaemon(*args, "-", "-", stdin=HELPDESK_LOG, cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == (tmp_path / "events.csv").read_text()
    assert piped.stdout.count("Case 1,") == 2
    assert piped.stderr.startswith("wrote 2 events of 1 tickets to stdout")


# ---------------------------------------------------------------------------- starting out

HELPDESK_ENV = {
    "ZENDESK_TOKEN": "zd-token-1",
    "ZAMMAD_TOKEN": "zm-token-1",
    "FRESHDESK_API_KEY": "fd-key-1",
    "RT_TOKEN": "rt-token-1",
    "JIRA_API_TOKEN": "jira-token-1",
}


def with_block(starter: str, name: str) -> str:
    """The starter config with the commented-out source block ``name`` taken in; the
    simulator replaces the csv source (it must be the only one)."""
    out, inside = [], False
    for line in starter.splitlines():
        if re.fullmatch(r"  # (\w+):.*", line):
            inside = line.startswith(f"  # {name}:")
        elif not line.startswith("  #   "):
            inside = False
        out.append("  " + line[4:] if inside else line)
    text = "\n".join(out) + "\n"
    if name == "simulator":
        text = re.sub(r"\n  events:.*?\n\n", "\n", text, flags=re.DOTALL)
    return text


@pytest.mark.parametrize(
    ("block", "sources"),
    [
        (None, 1),
        ("zendesk", 2),
        ("zammad", 2),
        ("freshdesk", 2),
        ("rt", 2),
        ("jira", 2),
        ("simulator", 1),
    ],
)
def test_init_writes_a_starter_config_that_check_accepts(
    tmp_path: Path, block: str | None, sources: int
) -> None:
    written = sladaemon("init", "config.yaml", cwd=tmp_path)
    assert written.returncode == 0 and written.stdout == "", written.stderr
    starter = (tmp_path / "config.yaml").read_text()
    assert sladaemon("init", cwd=tmp_path).stdout == starter, "no PATH: stdout"
    if block is not None:
        assert f"  # {block}:" in starter
        (tmp_path / "config.yaml").write_text(with_block(starter, block))
        assert f"\n  {block}:\n    type: {block}" in (tmp_path / "config.yaml").read_text()
    checked = sladaemon("check", "--config", "config.yaml", cwd=tmp_path, env=HELPDESK_ENV)
    assert checked.returncode == 0, checked.stderr
    assert f"{sources} sources" in checked.stdout
    again = sladaemon("init", "config.yaml", cwd=tmp_path)
    assert again.returncode == 2 and "config.yaml exists; give --force" in again.stderr


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o"), ("zsh", "#compdef")])
def test_completion_prints_a_script_naming_every_command(
    tmp_path: Path, shell: str, marker: str
) -> None:
    done = sladaemon("completion", shell, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout
    for command in ("run", "once", "check", "explain", "backtest", "report", "init"):
        assert command in done.stdout
    assert "--config" in done.stdout and "--period" in done.stdout


def test_the_wheel_carries_the_configs_and_builds_without_deprecations(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT / "sladaemon", source / "sladaemon")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Deprecat" not in built.stdout + built.stderr
    (wheel,) = tmp_path.glob("sladaemon-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n) for n in names if n.endswith(".dist-info/METADATA"))
    for config in ("example.yaml", "demo.yaml", "starter.yaml", "demo-events.csv"):
        assert f"sladaemon/data/{config}" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    text = metadata.decode()
    assert "License-Expression: Apache-2.0" in text and "Project-URL: " in text
    assert "Requires-Dist: shtab" in text
