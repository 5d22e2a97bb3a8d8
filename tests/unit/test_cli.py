"""The explain, backtest and simulate commands, run through the command-line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sladaemon.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
calendars:
  office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}}
policies:
  - name: email
    match: {channel: email}
    calendar: office
    targets: {first_response: 1h, resolution: 8h}
    escalation:
      - {at: 75%}
      - {at: breach}
      - {at: breach+30m}
  - name: rest
    calendar: office
    targets: {first_response: 4h}
"""
EVENTS = """ticket_id,timestamp,event,status,priority,channel,queue
T1,2024-01-08T08:00:00Z,created,new,normal,email,support
T1,2024-01-08T10:00:00Z,agent_reply,pending,,,
T1,2024-01-09T08:00:00Z,customer_reply,,,,
T1,2024-01-09T09:00:00Z,resolved,solved,,,
T2,2024-01-08T15:30:00Z,created,new,low,phone,support
T2,garbage,agent_reply,,,,
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    config, events = tmp_path / "c.yaml", tmp_path / "e.csv"
    config.write_text(CONFIG)
    events.write_text(EVENTS)
    return config, events


def test_explain_json_has_the_documented_shape(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, events = files
    code = main(["explain", "--config", str(config), "--events", str(events), "T1", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {
        "ticket_id": "T1",
        "policy": "email",
        "metrics": {
            "first_response": {
                "state": "breached",
                "started_at": "2024-01-08T08:00:00Z",
                "deadline": "2024-01-08T09:00:00Z",
                "business_elapsed_s": 7200.0,
                "remaining_s": -3600.0,
            },
            "resolution": {
                # Mon 09:00-11:00 CET running, pending until Tue 09:00, then Tue 09:00-10:00.
                "state": "met",
                "started_at": "2024-01-08T08:00:00Z",
                "deadline": "2024-01-09T14:00:00Z",
                "business_elapsed_s": 10800.0,
                "remaining_s": 18000.0,
            },
        },
    }


def test_explain_text_shows_policy_choice_and_accounting(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, events = files
    args = ["explain", "--config", str(config), "--events", str(events), "T2"]
    assert main([*args, "--at", "2024-01-09T09:00:00Z"]) == 0
    out = capsys.readouterr()
    assert "policy email: skipped, channel is 'phone', policy wants 'email'" in out.out
    assert "policy rest: matches every ticket" in out.out
    assert "deadline  2024-01-09T11:30:00Z (Tue 2024-01-09 12:30 CET)" in out.out
    assert "counted   Mon 2024-01-08 16:30-17:00 CET  30m" in out.out
    assert "line 7" not in out.err and f"{events}:7: skipped: unparsable timestamp" in out.err
    assert main([*args, "--at", "soon"]) == 2
    assert main(["explain", "--config", str(config), "--events", str(events), "T9"]) == 2


def test_backtest_writes_json_lines_and_the_compliance_table(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, events = files
    out = tmp_path / "sla.jsonl"
    code = main(["backtest", "--config", str(config), "--events", str(events), "--out", str(out)])
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(
        set(r) == {"ticket_id", "policy", "metric", "event", "level", "at", "deadline"}
        for r in lines
    )
    t1 = [(r["metric"], r["event"], r["level"], r["at"]) for r in lines if r["ticket_id"] == "T1"]
    assert t1 == [
        ("first_response", "warning", "75%", "2024-01-08T08:45:00Z"),
        ("first_response", "breach", "breach", "2024-01-08T09:00:00Z"),
        ("first_response", "escalation", "breach+30m", "2024-01-08T09:30:00Z"),
        ("resolution", "met", None, "2024-01-09T09:00:00Z"),
    ]
    assert [r["at"] for r in lines] == sorted(r["at"] for r in lines), "time order"
    table = capsys.readouterr().out
    assert "email   first_response        1    0         1        0        0.0%" in table
    assert "email   resolution            1    1         0        0      100.0%" in table
    assert main(["backtest", "--config", str(config), "--events", str(events), "--strict"]) == 2


def test_demo_history_is_reproducible_from_the_simulator(tmp_path: Path) -> None:
    out = tmp_path / "demo.csv"
    assert main(["simulate", str(out)]) == 0
    bundled = ROOT / "sladaemon" / "data" / "demo-events.csv"
    assert out.read_text() == bundled.read_text()


def test_demo_backtest_runs(capsys: pytest.CaptureFixture[str]) -> None:
    bundled = ROOT / "sladaemon" / "data" / "demo-events.csv"
    code = main(
        ["backtest", "--config", str(ROOT / "config" / "demo.yaml"), "--events", str(bundled)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "urgent    first_response" in out and "standard  resolution" in out
