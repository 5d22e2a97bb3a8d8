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
        "escalation": [],  # the audit trail: only for tickets from the daemon's state
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


# ---------------------------------------------------------------------------- conventions


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from sladaemon import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"sladaemon {__version__}"


def test_every_option_and_argument_says_what_it_is_for() -> None:
    import argparse

    from sladaemon.cli import _parser

    parser = _parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    undocumented = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, command in commands.choices.items()
        for action in command._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert undocumented == []
    assert {"init", "completion"} <= set(commands.choices)


def test_the_config_is_the_option_else_the_environment_else_the_default(
    files: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sladaemon.cli

    config, _ = files
    monkeypatch.setenv("SLADAEMON_CONFIG", str(config))
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith(f"{config}: ok")
    monkeypatch.delenv("SLADAEMON_CONFIG")
    monkeypatch.setattr(sladaemon.cli, "DEFAULT_CONFIG", tmp_path / "etc" / "config.yaml")
    assert main(["check"]) == 2
    assert capsys.readouterr().err == (
        f"error: the default config {tmp_path / 'etc' / 'config.yaml'} does not exist; "
        "give --config FILE\n"
    )
    monkeypatch.setattr(sladaemon.cli, "DEFAULT_CONFIG", config)
    assert main(["check"]) == 0


def test_a_config_can_come_from_stdin_except_for_the_daemon(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(CONFIG))
    assert main(["check", "--config", "-"]) == 0
    assert capsys.readouterr().out.startswith("<stdin>: ok — 1 calendars, 2 policies")
    monkeypatch.setattr("sys.stdin", io.StringIO(CONFIG))
    assert main(["run", "--config", "-"]) == 2
    assert "run reloads its config on SIGHUP" in capsys.readouterr().err


def test_json_is_the_result_on_stdout_and_nothing_else(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, events = files
    common = ["--config", str(config), "--events", str(events)]
    assert main(["explain", *common, "T1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ticket_id"] == "T1"
    assert main(["backtest", *common, "--json"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["compliance"][0]["policy"] == "email"
    assert "email   first_response" in printed.err, "the table goes to stderr"
    assert main(["report", *common, "--json"]) == 0
    as_json = capsys.readouterr().out
    assert main(["report", *common, "--format", "json"]) == 0
    assert json.loads(as_json) == json.loads(capsys.readouterr().out)
    assert main(["backtest", *common, "--json", "--out", "-"]) == 2
    assert "--out - and --json both write to stdout" in capsys.readouterr().err
    assert main(["report", *common, "--json", "--format", "html"]) == 2


def test_dash_writes_to_stdout(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, events = files
    common = ["--config", str(config), "--events", str(events)]
    assert main(["backtest", *common, "--out", str(tmp_path / "sla.jsonl")]) == 0
    capsys.readouterr()
    assert main(["backtest", *common, "--out", "-"]) == 0
    printed = capsys.readouterr()
    assert printed.out == (tmp_path / "sla.jsonl").read_text()
    assert json.loads(printed.out.splitlines()[0])["ticket_id"] == "T1"
    assert "email   first_response" in printed.err
    assert main(["report", *common, "--until", "2024-01-10T00:00:00Z"]) == 0
    table = capsys.readouterr().out
    assert main(["report", *common, "--until", "2024-01-10T00:00:00Z", "--out", "-"]) == 0
    assert capsys.readouterr().out == table
    assert main(["simulate", "-", "--days", "1"]) == 0
    printed = capsys.readouterr()
    assert printed.out.startswith("ticket_id,timestamp,event,")
    assert printed.err.startswith("wrote ") and "to stdout" in printed.err


def test_a_period_is_written_like_any_duration(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, events = files
    args = ["report", "--config", str(config), "--events", str(events), "--json"]
    until = ["--until", "2024-01-10T00:00:00Z"]
    reports = {}
    for period in ("36h", "1d12h", "2160m"):
        assert main([*args, *until, "--period", period]) == 0, period
        reports[period] = json.loads(capsys.readouterr().out)
    assert reports["36h"]["start"] == "2024-01-08T12:00:00+00:00"
    assert reports["36h"] == reports["1d12h"] == reports["2160m"]
    assert main([*args, "--period", "12h1d"]) == 2
    assert "--period: invalid period '12h1d'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- secrets


SECRET_CONFIG = """
calendars:
  office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}}
receivers:
  team: {urls: ["${TEAM_URL}"]}
  leads: {urls_file: /nonexistent/credentials/leads-url}
policies:
  - {name: all, calendar: office, targets: {first_response: 1h},
     escalation: [{at: breach, notify: [team, leads]}]}
sources:
  zd: {type: zendesk, url: "https://acme.zendesk.com", token: "${ZENDESK_TOKEN}"}
  rt: {type: rt, url: "https://rt.example.com", user: bot, password_file: /nonexistent/pw}
"""


def test_commands_that_only_read_need_no_secrets(
    files: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, events = files
    config = tmp_path / "secret.yaml"
    config.write_text(SECRET_CONFIG)
    for name in ("TEAM_URL", "ZENDESK_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    common = ["--config", str(config), "--events", str(events)]
    assert main(["explain", *common, "T1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["policy"] == "all"
    assert main(["report", *common, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["compliance"]
    assert main(["backtest", *common, "--no-predict"]) == 0
    capsys.readouterr()
    assert main(["check", "--config", str(config)]) == 2, "check needs them all"
    err = capsys.readouterr().err
    for missing in ("TEAM_URL is not set", "ZENDESK_TOKEN is not set", "leads-url", "pw"):
        assert missing in err


def test_check_gives_apprises_reason_for_refusing_a_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text('receivers:\n  chat: {urls: ["slack://T000AAAA/B000BBBB"]}\n')
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}:2 receivers.chat.urls: apprise cannot use URL slack://***: " in err
    assert "An invalid Slack (third) Token (None) was specified" in err
    assert "T000AAAA" not in err and "B000BBBB" not in err


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["simulate", "-", "--days", "nan"], "error: --days must be above 0 and at most 3650"),
        (["simulate", "-", "--days", "1e9"], "error: --days must be above 0 and at most 3650"),
        (["report", "--period", "9999999999999999w"], "(far too long)"),
    ],
)
def test_numbers_out_of_range_are_one_line_errors(
    files: tuple[Path, Path], args: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, events = files
    if args[0] == "report":
        args = [*args, "--config", str(config), "--events", str(events)]
    assert main(args) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.count("\n") == 1 and error in printed.err
