"""Report schedules: the grammar of ``every``, its instants on the local wall clock, and the
``reports:`` config section."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sladaemon.config import load_config
from sladaemon.errors import ConfigError
from sladaemon.report.schedule import Every

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "days", "at"),
    [
        ("daily 08:00", set(range(7)), time(8, 0)),
        ("mon 09:00", {0}, time(9, 0)),
        ("Monday 9:05", {0}, time(9, 5)),
        ("mon-fri 07:30", {0, 1, 2, 3, 4}, time(7, 30)),
        ("sat,sun 10:00", {5, 6}, time(10, 0)),
        ("fri-mon 18:00", {4, 5, 6, 0}, time(18, 0)),
    ],
)
def test_every_names_days_as_calendar_hours_do(text: str, days: set[int], at: time) -> None:
    every = Every.parse(text)
    assert every.weekdays == days and every.at == at


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("mon", "invalid schedule"),
        ("09:00", "invalid schedule"),
        ("someday 09:00", "invalid days"),
        ("mon 24:00", "invalid time"),
        ("mon 09:60", "invalid time"),
        (9, "invalid schedule"),
    ],
)
def test_a_bad_schedule_says_what_to_write(text: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        Every.parse(text)
    assert "mon 09:00" in str(info.value) or "00:00 to 23:59" in str(info.value)


def test_weekly_instants_before_and_after_an_instant() -> None:
    every = Every.parse("mon 09:00")
    wed = datetime(2026, 1, 7, 12, 0, tzinfo=UTC)
    assert every.latest(wed, BERLIN) == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert every.following(wed, BERLIN) == datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
    due = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
    assert every.latest(due, BERLIN) == due, "an instant is due at itself"
    assert every.following(due, BERLIN) == due + timedelta(weeks=1), "strictly after"


def test_the_wall_clock_time_holds_across_dst() -> None:
    every = Every.parse("mon 09:00")
    # 2026-03-29 Berlin springs forward: 09:00 is 08:00 UTC before and 07:00 UTC after.
    before = every.following(datetime(2026, 3, 20, tzinfo=UTC), BERLIN)
    after = every.following(before, BERLIN)
    assert before == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)
    assert after == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert after.astimezone(BERLIN).hour == 9


def test_a_time_skipped_by_spring_forward_moves_by_the_gap_and_a_repeated_one_is_sent_once() -> (
    None
):
    every = Every.parse("sun 02:30")
    gap = every.following(datetime(2026, 3, 28, tzinfo=UTC), BERLIN)
    assert gap == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST, by the clock
    assert gap.astimezone(BERLIN).strftime("%H:%M %Z") == "03:30 CEST"
    fold = every.following(datetime(2026, 10, 24, tzinfo=UTC), BERLIN)
    assert fold == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30 (CEST)
    assert every.following(fold, BERLIN) == datetime(2026, 11, 1, 1, 30, tzinfo=UTC)


def test_daily_instants_step_one_local_day_across_a_25_hour_day() -> None:
    every = Every.parse("daily 08:00")
    t = datetime(2026, 10, 24, 6, 0, tzinfo=UTC)  # Saturday 08:00 CEST
    instants = []
    for _ in range(3):
        instants.append(t)
        t = every.following(t, BERLIN)
    assert [i.astimezone(BERLIN).strftime("%a %H:%M") for i in instants] == [
        "Sat 08:00",
        "Sun 08:00",
        "Mon 08:00",
    ]
    assert instants[1] - instants[0] == timedelta(hours=25)  # the night Berlin falls back
    assert instants[2] - instants[1] == timedelta(hours=24)


def test_report_config_errors_name_file_line_and_path(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            calendars:
              office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}}
            receivers:
              leads: {urls: ["console://"]}
            reports:
              - {every: "mon 09:00", calendar: office, period: 7d, receiver: leads}
              - {every: "someday 9", receiver: leads}
              - every: "daily 25:00"
                receiver: [leads, nobody]
                calendar: nowhere
                period: 3x
                format: pdf
              - {every: "mon 09:00", receiver: leads}
              - {every: "mon-fri 07:30"}
            """
        )
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    issues = sorted(str(i) for i in info.value.issues)
    f = str(path)
    assert issues == [
        f"{f}:10 reports[2].calendar: unknown calendar 'nowhere' (office)",
        f"{f}:11 reports[2].period: invalid period '3x' (use e.g. 14d, 2w, 12h)",
        f"{f}:12 reports[2].format: Input should be 'auto', 'text' or 'html', got 'pdf'",
        f"{f}:13 reports[3].every: two reports named 'mon 09:00' (also reports[0]); "
        "give each a distinct name",
        f"{f}:14 reports[4].receiver: missing required key 'receiver'",
        f"{f}:7 reports[1].every: invalid schedule 'someday 9' (use e.g. 'mon 09:00', "
        "'daily 08:00' or 'mon-fri 07:30')",
        f"{f}:8 reports[2].every: invalid time in schedule 'daily 25:00' (00:00 to 23:59)",
        f"{f}:9 reports[2].receiver[1]: unknown receiver 'nobody' (leads)",
    ]


def test_a_report_names_its_zone_through_a_calendar(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            calendars:
              ny: {timezone: America/New_York, hours: {mon-fri: "09:00-17:00"}}
              berlin: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}}
            receivers:
              leads: {urls: ["console://"]}
            reports:
              - {name: a, every: "daily 08:00", calendar: berlin, receiver: leads}
              - {name: b, every: "daily 08:00", receiver: [leads], format: html, period: 2w}
            """
        )
    )
    cfg = load_config(path, environ={})
    a, b = cfg.reports
    assert cfg.report_timezone(a.calendar) == "Europe/Berlin"
    assert cfg.report_timezone(b.calendar) == "America/New_York", "the first calendar's"
    assert (a.period, b.period, b.format) == (timedelta(days=7), timedelta(weeks=2), "html")
