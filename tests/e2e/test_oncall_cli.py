"""``sladaemon oncall`` as a real process: who is on call and until when, as text and JSON;
an iCal feed from the daemon's copy, or said to be unknown; one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fakes.process import ROOT, root_environment

FIXTURE = Path(__file__).parents[1] / "fixtures" / "ical" / "rotation.ics"


def oncall(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sladaemon", "oncall", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=root_environment(),
        timeout=120,
        check=False,
    )


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            calendars:
              office: {{timezone: Europe/Berlin, hours: {{mon-fri: "09:00-17:00"}}}}
            people:
              alice: {{email: alice@example.com}}
              bob: {{urls_file: {tmp_path / "missing-secret"}}}
              carol: {{slack: U0CAROL1}}
            schedules:
              l1:
                layers:
                  - name: weekly
                    members: [alice, carol]
                    rotation: 1w
                    start: "2026-01-05T09:00"
              l2:
                ical: {{url: "http://127.0.0.1:9/feed.ics"}}
              l3:
                layers:
                  - {{name: office, members: [carol], rotation: 1d, start: "2026-01-05",
                     restrict: office}}
            daemon: {{state: {tmp_path / "state.sqlite"}}}
            """
        )
    )
    return path


def test_who_is_on_call_as_text_and_json(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = oncall("-c", str(config), "--at", "2026-12-06T12:00:00+01:00", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "l1: carol until 2026-12-07 09:00 CET (layer weekly)"
    assert lines[1].startswith("l2: nobody — its iCal feed cannot be read")
    assert lines[2] == "l3: nobody"
    assert "l2: its iCal feed cannot be read" in done.stderr

    copy = tmp_path / "state.sqlite.ical"
    copy.mkdir()
    (copy / "l2.ics").write_bytes(FIXTURE.read_bytes())
    done = oncall("-c", str(config), "l2", "--at", "2026-01-06T12:00:00+01:00", "--json", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)["schedules"]
    assert answer == [
        {
            "schedule": "l2",
            "person": "alice",
            "since": "2026-01-05T09:00:00+01:00",
            "until": "2026-01-12T09:00:00+01:00",
            "why": "ical",
            "feed_unreadable": False,
        }
    ]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for args, message in [
        (("l9",), "error: no schedule 'l9' in"),
        (("--at", "tomorrow"), "error: --at: unparsable timestamp 'tomorrow'"),
    ]:
        done = oncall("-c", str(config), *args, cwd=ROOT)
        assert done.returncode == 2
        assert done.stderr.startswith(message), done.stderr
        assert len(done.stderr.splitlines()) == 1
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "people:\n  zed: {email: zed@example.com}\nschedules:\n"
        "  l1: {layers: [{name: a, members: [bob], rotation: 1w, start: '2026-01-05T09:00'}]}\n"
    )
    done = oncall("-c", str(broken), cwd=ROOT)
    assert done.returncode == 2
    assert (
        f"{broken}:4 schedules.l1.layers[0].members[0]: unknown person 'bob' (zed)" in done.stderr
    )
