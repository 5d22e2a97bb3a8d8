"""Config loading: every error named by file, line and path; env overrides; secrets."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.cli import main
from sladaemon.config import load_config
from sladaemon.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = {
    "SLACK_SUPPORT_URL": "slack://a/b/c/#support",
    "LEADS_MAIL_URL": "mailto://user:pass@example.com?to=leads@example.com",
}


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def errors_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    return [str(i) for i in info.value.issues]


def test_example_config_is_valid() -> None:
    cfg = load_config(ROOT / "config" / "example.yaml", environ=EXAMPLE_ENV)
    assert [p.name for p in cfg.policies] == ["vip-urgent", "email-and-web", "everything-else"]
    assert set(cfg.calendars) == {"berlin-office", "new-york-night-desk", "around-the-clock"}
    secret = cfg.receivers["support-team"].urls[0]
    assert secret.get_secret_value() == "slack://a/b/c/#support"
    assert "slack://" not in repr(cfg.receivers["support-team"]), "secrets never print"
    (weekly,) = cfg.reports
    assert (weekly.key, weekly.receiver, weekly.period) == (
        "weekly-leads",
        ["support-leads"],
        timedelta(days=7),
    )
    assert cfg.report_timezone(weekly.calendar) == "Europe/Berlin"


def test_demo_config_is_valid() -> None:
    cfg = load_config(ROOT / "config" / "demo.yaml", environ={})
    assert [p.name for p in cfg.policies] == ["urgent", "standard"]


def test_calendar_library_api_from_issue_shape(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        calendars:
          berlin-office:
            timezone: Europe/Berlin
            hours:
              mon-fri: ["09:00-12:30", "13:30-17:00"]
              sat: ["10:00-14:00"]
            holidays:
              country: DE
              subdivision: BE
              dates: ["2026-12-24", "2026-12-31"]
            breaks:
              "2026-12-31": ["12:00-24:00"]
        """,
    )
    cal = load_config(path, environ={}).calendars["berlin-office"]
    start = datetime(2026, 12, 30, 10, 0, tzinfo=UTC)  # Wed 11:00 CET
    # Wed 11:00-12:30 and 13:30-17:00 = 5h; Thu 31st company holiday; Fri 1st New Year;
    # Sat 2nd 10:00-13:00 = 3h -> Sat 13:00 CET = 12:00Z.
    assert cal.add(start, timedelta(hours=8)) == datetime(2027, 1, 2, 12, 0, tzinfo=UTC)
    assert cal.elapsed(start, datetime(2027, 1, 2, 12, 0, tzinfo=UTC)) == timedelta(hours=8)
    assert cal.is_open(datetime(2026, 12, 30, 11, 0, tzinfo=UTC))  # 12:00 CET
    assert not cal.is_open(datetime(2026, 12, 30, 12, 0, tzinfo=UTC))  # lunch
    with pytest.raises(ValueError, match="naive"):
        cal.add(datetime(2026, 12, 30, 10, 0), timedelta(hours=1))


def test_every_error_is_listed_with_file_line_and_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        calendars:
          office:
            timezone: Mars/Olympus
            hours:
              mon-fri: ["09:00-17:00", "16:00-18:00"]
          empty:
            timezone: UTC
            hours: {}
        receivers:
          team: {urls: ["json://localhost/x"]}
        policies:
          - name: p1
            calendar: office
            targets: {first_response: 1h}
          - name: p2
            calendar: office
            targets:
              first_response: soon
        """,
    )
    errors = errors_of(path)
    file = str(path)
    assert f"{file}:3 calendars.office.timezone: unknown time zone 'Mars/Olympus'" in errors[0]
    assert any(
        e.startswith(f"{file}:8 calendars.empty.hours: the calendar has no business hours")
        for e in errors
    )
    assert (
        f"{file}:18 policies[1].targets.first_response: invalid duration 'soon' "
        "(use e.g. 90s, 15m, 8h)"
    ) in errors


def test_overlapping_hours_are_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        calendars:
          office:
            timezone: UTC
            hours:
              mon-fri: ["09:00-17:00", "16:00-18:00"]
          nights:
            timezone: UTC
            hours:
              sun: ["22:00-06:00"]
              mon: ["05:00-09:00"]
        """,
    )
    errors = errors_of(path)
    assert any("calendars.office.hours: overlapping hours: mon 09:00-17:00" in e for e in errors)
    assert any("calendars.nights.hours: overlapping hours: sun 22:00-06:00" in e for e in errors)


def test_unknown_keys_missing_references_and_bad_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        calendars:
          office: {timezone: UTC, hours: {mon: "09:00-17:00"}}
        policies:
          - name: a
            calender: office
            calendar: nowhere
            targets: {resolution: 3d}
            escalation:
              - {at: 75%, notify: [slack]}
              - {at: "soonish", notify: []}
          - name: a
            calendar: office
            pause_on: [waiting]
            targets: {first_response: 1h}
        sources:
          s1: {type: zendeskx}
        daemon:
          operator: ops
          http: {listen: "nope"}
          colour: blue
        """,
    )
    text = "\n".join(errors_of(path))
    for expected in [
        ":5 policies[0].calender: unknown key 'calender' (did you mean 'calendar'?)",
        ":6 policies[0].calendar: unknown calendar 'nowhere' (office)",
        ":7 policies[0].targets.resolution: invalid duration '3d' (use hours, e.g. 24h",
        ":9 policies[0].escalation[0].notify[0]: unknown receiver 'slack'",
        ":10 policies[0].escalation[1].at: invalid ladder level 'soonish'",
        ":11 policies[1].name: duplicate policy name 'a' (also policies[0])",
        ":13 policies[1].pause_on[0]: Input should be 'new', 'open', 'pending' or 'on_hold'",
        ":16 sources.s1: unknown type 'zendeskx'",
        ":18 daemon.operator: unknown receiver 'ops'",
        ":19 daemon.http.listen: invalid listen address 'nope' (use host:port)",
        ":20 daemon.colour: unknown key 'colour'",
    ]:
        assert expected in text, f"missing {expected!r} in\n{text}"


def test_every_section_is_optional(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "{}\n"), environ={}).policies == ()
    assert load_config(write(tmp_path, ""), environ={}).calendars == {}
    only_calendars = write(
        tmp_path, "calendars:\n  c: {timezone: UTC, hours: {mon-fri: '09:00-17:00'}}\n"
    )
    assert set(load_config(only_calendars, environ={}).calendars) == {"c"}


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "calendars:\n  c: {timezone: UTC\n  d: 1\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:3: YAML syntax error")


def test_duplicate_keys_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "daemon:\n  log_level: info\n  log_level: debug\n")
    assert errors_of(path) == [f"{path}:3 daemon.log_level: duplicate key 'log_level'"]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "daemon:\n  state: /from/file.sqlite\n  log_level: info\n")
    cfg = load_config(path, environ={"SLADAEMON_DAEMON__STATE": "/from/env.sqlite"})
    assert cfg.daemon.state == Path("/from/env.sqlite")
    assert cfg.daemon.log_level == "info"


def test_secrets_from_env_references_and_files(tmp_path: Path) -> None:
    (tmp_path / "urls").write_text("mailto://user:hunter2@smtp.example.com\n\njson://h/x\n")
    path = write(
        tmp_path,
        f"""
        receivers:
          a: {{urls: ["slack://${{TOKEN}}/#ops", "json://host/hook?price=$$5"]}}
          b: {{urls_file: {tmp_path / "urls"}}}
        """,
    )
    token = "xoxb-1234-1234-4ddbc191d40ee098cbaae6f3523ada2d"
    cfg = load_config(path, environ={"TOKEN": token})
    assert [u.get_secret_value() for u in cfg.receivers["a"].urls] == [
        f"slack://{token}/#ops",
        "json://host/hook?price=$5",
    ]
    assert [u.get_secret_value() for u in cfg.receivers["b"].urls] == [
        "mailto://user:hunter2@smtp.example.com",
        "json://h/x",
    ]
    assert "hunter2" not in str(cfg.settings)
    assert token not in repr(cfg.settings)


def test_unusable_receiver_url_and_template(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        receivers:
          a: {urls: ["nosuchscheme://user:hunter2@host/x"]}
          b: {urls: ["console://"], template: "{ticket_id} {colour}"}
        """,
    )
    errors = errors_of(path)
    assert f"{path}:2 receivers.a.urls: apprise cannot use URL nosuchscheme://host" in errors
    assert any(
        e.startswith(f"{path}:3 receivers.b.template: unknown template field(s) colour")
        for e in errors
    )
    assert not any("hunter2" in e for e in errors), "credentials never appear in errors"


def test_missing_env_var_and_unreadable_secret_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        receivers:
          a: {urls: ["slack://${NOT_SET}"]}
          b: {urls_file: /nonexistent/urls}
        """,
    )
    errors = errors_of(path)
    assert f"{path}:2 receivers.a.urls[0]: environment variable NOT_SET is not set" in errors
    assert any(
        e.startswith(f"{path}:3 receivers.b: urls_file: cannot read /nonexistent/urls")
        for e in errors
    )


def test_per_priority_targets_and_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        calendars:
          office: {timezone: UTC, hours: {mon-fri: "09:00-17:00"}}
          always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
        policies:
          - name: p
            match: {channel: [email, "web*"], priority: 1}
            calendar: office
            targets:
              first_response: {P1: 30m, default: 2h}
              resolution: 2h30m
            overrides:
              first_response: {calendar: always, pause_on: []}
        """,
    )
    (policy,) = load_config(path, environ={}).policies
    first, resolution = policy.metrics
    assert first.target_for("p1") == timedelta(minutes=30)
    assert first.target_for("P3") == timedelta(hours=2)
    assert first.calendar.name == "always" and first.pause_on == frozenset()
    assert resolution.target_for(None) == timedelta(hours=2, minutes=30)
    assert resolution.calendar.name == "office"
    assert policy.matches({"channel": "Web-Form", "priority": "1"})
    assert not policy.matches({"channel": "phone", "priority": "1"})


def test_check_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "calendars: {}\n", "good.yaml")
    bad = write(tmp_path, "policies:\n  - name: x\n", "bad.yaml")
    assert main(["check", "--config", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2 policies[0].calendar: missing required key 'calendar'" in err
    assert f"{bad}:2 policies[0].targets: missing required key 'targets'" in err
    assert main(["check", "--config", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
