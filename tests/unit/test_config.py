"""Config loading: every error named by file, line and path; env overrides; secrets."""

from __future__ import annotations

import contextlib
import io
import os
import re
import resource
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from sladaemon.cli import main
from sladaemon.clock import FakeClock
from sladaemon.config import Config, load_config
from sladaemon.daemon.app import App
from sladaemon.daemon.systemd import SystemdNotifier
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


def test_holidays_close_the_whole_day_unless_a_calendar_asks_for_shifts(tmp_path: Path) -> None:
    """A night desk 22:00-06:00 with a holiday on Wed 2024-12-25. By default Tue 23:00 EST
    + 1 h ends at the holiday's midnight, a closing boundary, so the deadline is the next
    opening, Thu 00:00 EST (12-26T05:00Z). With ``cancel: shift`` Tuesday's shift runs on to
    06:00 and the deadline is Wed 00:00 EST (12-25T05:00Z). An unknown rule is refused at
    its line."""
    path = write(
        tmp_path,
        """
        calendars:
          night:
            timezone: America/New_York
            hours: {mon-fri: ["22:00-06:00"]}
            holidays: {dates: ["2024-12-25"]}
          night-shifts:
            timezone: America/New_York
            hours: {mon-fri: ["22:00-06:00"]}
            holidays:
              dates: ["2024-12-25"]
              cancel: shift
        """,
    )
    calendars = load_config(path, environ={}).calendars
    tuesday_late = datetime(2024, 12, 25, 4, 0, tzinfo=UTC)
    assert calendars["night"].add(tuesday_late, timedelta(hours=1)) == datetime(
        2024, 12, 26, 5, 0, tzinfo=UTC
    )
    assert calendars["night-shifts"].add(tuesday_late, timedelta(hours=1)) == datetime(
        2024, 12, 25, 5, 0, tzinfo=UTC
    )
    bad = write(
        tmp_path,
        """
        calendars:
          night:
            timezone: America/New_York
            hours: {mon-fri: ["22:00-06:00"]}
            holidays:
              dates: ["2024-12-25"]
              cancel: shifts
        """,
        name="bad.yaml",
    )
    (error,) = errors_of(bad)
    assert error.startswith(f"{bad}:7 calendars.night.holidays.cancel: ")
    assert "'day' or 'shift'" in error


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
          poll_interval: 1m
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
        ":21 daemon.poll_interval: unknown key 'poll_interval' (not a setting of this block)",
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
    refused = f"{path}:2 receivers.a.urls: apprise cannot use URL nosuchscheme://host: "
    assert any(e.startswith(refused + "Unparseable URL") for e in errors), errors
    assert any(
        e.startswith(f"{path}:3 receivers.b.template: unknown template field(s) colour")
        for e in errors
    )
    assert not any("hunter2" in e for e in errors), "credentials never appear in errors"


def test_a_word_yaml_11_reads_as_another_type_gets_a_quoting_hint(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        calendars:
          oslo:
            timezone: Europe/Oslo
            hours: {mon-fri: [12:30-17:00], sat: [10:30]}
            holidays: {country: NO}
        """,
    )
    assert errors_of(path) == [
        f"{path}:4 calendars.oslo.hours.sat[0]: invalid time range 630 (use e.g. '09:00-17:00') "
        "(10:30 was read as the number 630 by YAML 1.1; quote it: '10:30')",
        f"{path}:5 calendars.oslo.holidays.country: Input should be a valid string "
        "(NO was read as a boolean by YAML 1.1; quote it: 'NO')",
    ]
    quoted = write(tmp_path, path.read_text().replace("NO}", "'NO'}").replace("[10:30]", "[]"))
    assert load_config(quoted, environ={}).calendars["oslo"].spec.holiday_country == "NO"


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


# ---------------------------------------------------------------------------- hostile input

BASE = """
calendars:
  office: {timezone: UTC, hours: {mon-fri: "09:00-17:00"}}
receivers:
  desk: {urls: ["console://"]}
policies:
  - name: p
    calendar: office
    targets: {first_response: 1h}
    escalation: [{at: breach, notify: [desk]}]
daemon:
  state: STATE
  http: {enabled: false}
"""


def base_config(tmp_path: Path, extra: str = "", name: str = "config.yaml") -> Path:
    text = textwrap.dedent(BASE).lstrip("\n").replace("STATE", str(tmp_path / "state.sqlite"))
    path = tmp_path / name
    path.write_text(text + extra)
    return path


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("  catch_up: 9999999999999s\n", ":13 daemon.catch_up: must be at most 8760h (got "),
        ("  retention: 99999999999d\n", ":13 daemon.retention: invalid period '99999999999d' "),
        ("  kpi_window: 99999999999w\n", ":13 daemon.kpi_window: invalid period '99999999999w' "),
        (
            "  catch_up: 99999999999999h\n",
            ":13 daemon.catch_up: invalid duration '99999999999999h'",
        ),
        ("  delivery: {first_retry: 0s}\n", ":13 daemon.delivery.first_retry: must be at least 1s"),
        ("  delivery: {max_retry: 0s}\n", ":13 daemon.delivery.max_retry: must be at least 1s"),
        (
            "  delivery: {first_retry: 1h, max_retry: 1m}\n",
            ":13 daemon.delivery: max_retry (1m) must not be below first_retry (1h)",
        ),
        (
            "sources:\n  s: {type: csv, path: x.csv, poll_interval: 0s}\n",
            ":14 sources.s.poll_interval: must be at least 1s (got 0s)",
        ),
        (
            "sources:\n  s: {type: zammad, url: 'https://h', timeout: 2h}\n",
            ":14 sources.s.timeout: must be at most 1h (got 2h)",
        ),
        (
            "predict: {half_life: 36500d}\n",
            ":13 predict.half_life: must be at most 3650d (got 36500d)",
        ),
        (
            "reports: [{every: daily 08:00, receiver: desk, period: 99999999999w}]\n",
            ":13 reports[0].period: invalid period '99999999999w' (far too long)",
        ),
    ],
)
def test_every_duration_is_bounded(tmp_path: Path, extra: str, expected: str) -> None:
    path = base_config(tmp_path, extra)
    errors = errors_of(path)
    assert any(e.startswith(str(path) + expected) for e in errors), errors


def test_overflowing_targets_and_ladder_offsets_are_config_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        calendars:
          office: {timezone: UTC, hours: {mon-fri: "09:00-17:00"}}
        policies:
          - name: p
            calendar: office
            targets: {first_response: 99999999999999h, resolution: {high: 9000h}}
            escalation: [{at: breach+99999999999999h}, {at: breach+9000h}]
        """,
    )
    text = "\n".join(errors_of(path))
    for expected in [
        ":6 policies[0].targets.first_response: invalid duration '99999999999999h' (far too long)",
        ":6 policies[0].targets.resolution.high: must be at most 8760h (got 9000h)",
        ":7 policies[0].escalation[0].at: invalid ladder level 'breach+99999999999999h': the "
        "offset is far too long",
        ":7 policies[0].escalation[1].at: invalid ladder level 'breach+9000h': the offset must "
        "be at most 8760h",
    ]:
        assert expected in text, f"missing {expected!r} in\n{text}"


def test_a_null_or_empty_match_value_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        calendars:
          office: {timezone: UTC, hours: {mon-fri: "09:00-17:00"}}
        policies:
          - name: p
            match: {priority: ~, channel: [email, ~], queue: [], group: {a: 1}}
            calendar: office
            targets: {first_response: 1h}
        """,
    )
    text = "\n".join(errors_of(path))
    assert ":5 policies[0].match.priority: null is not a value to match" in text
    assert ":5 policies[0].match.channel: null is not a value to match" in text
    assert ":5 policies[0].match.queue: an empty list matches no ticket" in text
    assert ":5 policies[0].match.group: give a value, a list of values or a glob" in text


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{ticket_id:>999999999}", "format spec '>999999999': width above 1000"),
        ("{summary:.99999}", "format spec '.99999': precision above 1000"),
        ("{ticket_id:>{cycle}}", "a format spec cannot hold fields"),
        ("{ticket_id.__class__}", "template fields are plain names: {ticket_id.__class__}"),
        ("{link[0]}", "template fields are plain names: {link[0]}"),
        ("{cycle:d}", "template cannot be rendered: Unknown format code 'd'"),
    ],
)
def test_templates_that_would_blow_up_or_fail_are_refused(
    tmp_path: Path, template: str, expected: str
) -> None:
    path = write(tmp_path, f'receivers:\n  a: {{urls: ["console://"], template: "{template}"}}\n')
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:2 receivers.a.template: {expected}"), error


def test_a_templated_message_is_capped() -> None:
    from sladaemon.notify.message import MAX_TEMPLATED_BODY, render

    payload = {"kind": "operator", "id": "k", "summary": "s" * 200_000, "at": "now"}
    body = render(payload, "{summary}").body
    assert len(body) < MAX_TEMPLATED_BODY + 100 and body.endswith("too long)")


def test_recursive_aliases_deep_nesting_nul_bytes_and_bad_scalars_name_their_line(
    tmp_path: Path,
) -> None:
    cases = {
        "a: &a [1, *a]\n": ":1 a[1]: recursive alias: the value contains itself",
        "daemon: &d\n  http: *d\n": ":2 daemon.http: recursive alias",
        "a: " + "[" * 60 + "]" * 60 + "\n": ":1 a[0][0]",
        "a: " + "[" * 3000 + "]" * 3000 + "\n": ":1: nested deeper than 50 levels",
        "daemon:\n  log_level: in\0fo\n": ":2: NUL byte: the file is not YAML text",
        "daemon:\n  log_level: in\x07fo\n": ":2: control character U+0007 not allowed",
        "reports:\n  - every: 2026-13-45\n": ":2 reports[0].every: invalid value (month must be",
        "predict:\n  min_history: " + "9" * 5000 + "\n": ":2 predict.min_history: invalid value",
        "? [a, b]\n: 1\n": ":1: a key must be plain text",
    }
    for text, expected in cases.items():
        path = tmp_path / "config.yaml"
        path.write_text(text)
        errors = errors_of(path)
        assert any(e.startswith(f"{path}{expected}") for e in errors), (text[:40], errors)


HOSTILE = {
    "alias bomb": "\n".join(
        [
            'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
            *(
                f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
        ]
    )
    + "\n",
    "merge bomb": "m0: &m0 {a: 1, b: 2}\n"
    + "".join(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}\n" for i in range(1, 60)),
}


def run_check(config: Path, timeout: float = 20) -> tuple[int, str]:
    """``sladaemon check`` as a process, with its memory bounded and a time limit."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    done = subprocess.run(
        [sys.executable, "-m", "sladaemon", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit_memory,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_documents_that_expand_beyond_bounds_are_refused_quickly(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, HOSTILE[name])
    code, out = run_check(path)
    assert code == 2 and "Traceback" not in out, out
    assert re.search(rf"{re.escape(str(path))}:\d+ \S+: aliases expand this value to", out), out


def test_only_small_regular_files_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    big.write_text("json://h/x\n" * 200_000)
    path = write(
        tmp_path,
        f"""
        receivers:
          zero: {{urls_file: /dev/zero}}
          pipe: {{urls_file: {fifo}}}
          dir: {{urls_file: {tmp_path}}}
          big: {{urls_file: {big}}}
        """,
    )
    code, out = run_check(path)
    assert code == 2 and "Traceback" not in out, out
    for line, name, why in [
        (2, "zero", "/dev/zero: not a regular file (a device)"),
        (3, "pipe", f"{fifo}: not a regular file (a pipe)"),
        (4, "dir", f"{tmp_path}: not a regular file (a directory)"),
        (5, "big", f"{big}: larger than 1024 KiB"),
    ]:
        assert f"{path}:{line} receivers.{name}: urls_file: cannot read {why}" in out, out
    code, out = run_check(Path("/dev/zero"))
    assert code == 2 and "/dev/zero: cannot read: not a regular file (a device)" in out, out


def test_check_builds_what_run_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source the daemon could not build fails ``check`` too, at its line."""
    from sladaemon.daemon import staging

    def refuse(name: str, *args: object) -> object:
        raise ValueError("no such helpdesk")

    monkeypatch.setattr(staging, "build_source", refuse)
    path = base_config(tmp_path, "sources:\n  desk: {type: csv, path: e.csv}\n")
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:14 sources.desk: cannot build the source: no such helpdesk" in err
    path = write(
        tmp_path, "sources:\n  sim: {type: simulator, timezone: Mars/Olympus}\n", "sim.yaml"
    )
    assert main(["check", "--config", str(path)]) == 2
    assert "sim.yaml:2 sources.sim.timezone: unknown time zone 'Mars/Olympus'" in (
        capsys.readouterr().err
    )
    replay = f"sources:\n  old:\n    type: csv\n    speed: 60\n    path: {tmp_path / 'gone.csv'}\n"
    path = write(tmp_path, replay, "replay.yaml")
    assert main(["check", "--config", str(path)]) == 2
    assert f"replay.yaml:5 sources.old.path: cannot read the replayed file {tmp_path}" in (
        capsys.readouterr().err
    )


# ---------------------------------------------------------------------------- reload


class NotifySocket:
    """A datagram socket standing in for systemd's, and a notifier speaking to it."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "notify")
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.path)
        self.socket.setblocking(False)
        self.notifier = SystemdNotifier({"NOTIFY_SOCKET": self.path})

    def messages(self) -> list[str]:
        out = []
        with contextlib.suppress(BlockingIOError):
            while True:
                out.append(self.socket.recv(4096).decode().split("\n")[0])
        return out

    def close(self) -> None:
        self.notifier.close()
        self.socket.close()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[App, NotifySocket, Path]]:
    (tmp_path / "e.csv").write_text("ticket_id,timestamp,event,status,priority,channel,queue\n")
    path = base_config(tmp_path, f"sources:\n  desk: {{type: csv, path: {tmp_path / 'e.csv'}}}\n")
    notify = NotifySocket(tmp_path)
    app = App(
        load_config(path, environ={}),
        clock=FakeClock(datetime(2026, 1, 5, 9, tzinfo=UTC)),
        console=io.StringIO(),
        systemd=notify.notifier,
        serve_http=False,
    )
    await app.start()
    notify.messages()
    yield app, notify, path
    await app.shutdown()
    notify.close()


def reloaded_text(tmp_path: Path) -> str:
    """The running config with another target and a second source."""
    other = tmp_path / "other.csv"
    other.write_text("ticket_id,timestamp,event,status,priority,channel,queue\n")
    return (
        textwrap.dedent(BASE).lstrip("\n").replace("STATE", str(tmp_path / "state.sqlite"))
        + f"sources:\n  desk: {{type: csv, path: {tmp_path / 'e.csv'}}}\n"
        + f"  other: {{type: csv, path: {other}}}\n"
    ).replace("first_response: 1h", "first_response: 2h")


def assert_old_config_runs(app: App, old: Config) -> None:
    assert app.config is old and app.router.config is old
    assert set(app.pollers) == {"desk"}
    assert app.tickets.book.policies == old.policies
    assert app.prediction.config is old and app.reports.config is old


async def test_a_reload_that_fails_while_building_keeps_the_old_config_and_says_ready(
    running: tuple[App, NotifySocket, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sladaemon.daemon import staging
    from sladaemon.sources.registry import build_source

    app, notify, path = running
    old = app.config
    path.write_text(reloaded_text(tmp_path))

    def refuse_other(name: str, *args: Any) -> Any:
        if name == "other":
            raise RuntimeError("cannot reach the helpdesk")
        return build_source(name, *args)

    monkeypatch.setattr(staging, "build_source", refuse_other)
    with capture_logs() as logs:
        assert await app.reload() is False
    assert notify.messages() == ["RELOADING=1", "READY=1"]
    assert_old_config_runs(app, old)
    (failed,) = [e for e in logs if e["event"] == "config_reload_failed"]
    assert failed["errors"] == [
        f"{path}:15 sources.other: cannot build the source: cannot reach the helpdesk"
    ]


async def test_a_reload_that_fails_while_taken_goes_back_to_the_old_config(
    running: tuple[App, NotifySocket, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app, notify, path = running
    old = app.config
    path.write_text(reloaded_text(tmp_path))
    real = app.kpis.reconfigure

    def fail_on_new(config: Config) -> None:
        if config is not old:
            raise RuntimeError("half-way")
        real(config)

    monkeypatch.setattr(app.kpis, "reconfigure", fail_on_new)
    with capture_logs() as logs:
        assert await app.reload() is False
    assert notify.messages() == ["RELOADING=1", "READY=1"]
    assert_old_config_runs(app, old)
    (failed,) = [e for e in logs if e["event"] == "config_reload_failed"]
    assert failed["errors"] == [f"{path}: RuntimeError('half-way')"]
    monkeypatch.setattr(app.kpis, "reconfigure", real)
    assert await app.reload() is True, "the same file is taken once it can be"
    assert notify.messages() == ["RELOADING=1", "READY=1"]
    assert set(app.pollers) == {"desk", "other"}
    assert app.config.policies[0].metrics[0].default == timedelta(hours=2)


async def test_a_reload_of_a_bad_file_says_ready_with_the_errors(
    running: tuple[App, NotifySocket, Path],
) -> None:
    app, notify, path = running
    old = app.config
    path.write_text(path.read_text().replace("daemon:", "daemon:\n  retention: 99999999999d"))
    with capture_logs() as logs:
        assert await app.reload() is False
    assert notify.messages() == ["RELOADING=1", "READY=1"]
    assert_old_config_runs(app, old)
    (failed,) = [e for e in logs if e["event"] == "config_reload_failed"]
    assert failed["errors"] == [
        f"{path}:11 daemon.retention: invalid period '99999999999d' (far too long)"
    ]
