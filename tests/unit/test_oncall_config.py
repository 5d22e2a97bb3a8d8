"""``people:`` and ``schedules:`` in the config: errors by file, line and path, the roster
built from them, person URLs kept out of the log and out of read-only loads."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.config import load_config
from sladaemon.errors import ConfigError

CALENDARS = """
calendars:
  office: {timezone: America/New_York, hours: {mon-fri: "09:00-17:00"}}
  nights: {timezone: America/New_York, hours: {mon-sun: ["00:00-07:00", "22:00-24:00"]}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CALENDARS.lstrip("\n") + textwrap.dedent(text).lstrip("\n"))
    return path


def errors_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    return "\n".join(str(i) for i in info.value.issues)


def test_people_and_schedules_build_the_roster(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        people:
          alice: {email: Alice@Example.com, quiet_hours: nights}
          bob: {slack: U0123ABC}
          carol: {urls: ["json://127.0.0.1:9/hook?token=S3CRETtoken"]}
        schedules:
          l1:
            layers:
              - {name: weekly, members: [alice, bob], rotation: 1w, start: "2026-01-05T09:00"}
            overrides:
              - {who: carol, from: "2026-01-07T00:00", until: "2026-01-08T00:00"}
        """,
    )
    cfg = load_config(path, environ={})
    roster = cfg.roster
    assert set(roster.people) == {"alice", "bob", "carol"}
    assert roster.person_by_email("alice@example.com") == roster.people["alice"]
    assert roster.person_by_slack("U0123ABC") == roster.people["bob"]
    # the schedule's zone is the first calendar's: handoffs at 09:00 New York time
    answer = roster.on_call("l1", datetime(2026, 1, 12, 14, 0, tzinfo=UTC))
    assert answer is not None
    assert (answer.person, answer.since) == ("bob", datetime(2026, 1, 12, 14, 0, tzinfo=UTC))
    override = roster.on_call("l1", datetime(2026, 1, 7, 12, 0, tzinfo=UTC))
    assert override is not None and (override.person, override.why) == ("carol", "override")
    assert override.until == datetime(2026, 1, 8, 5, 0, tzinfo=UTC)
    assert "S3CRETtoken" in cfg.secrets()
    read_only = load_config(path, environ={}, secrets=False)
    assert "S3CRETtoken" not in repr(read_only.settings.people["carol"].urls[0].get_secret_value())
    assert read_only.roster.on_call("l1", datetime(2026, 1, 12, 14, 0, tzinfo=UTC)) == answer


def test_schedule_errors_name_file_line_and_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        people:
          alice: {email: alice@example.com, quiet_hours: weekends}
          bob: {}
          carol: {slack: "not a slack id", email: nope}
        schedules:
          l1:
            timezone: Mars/Olympus
            layers:
              - {name: weekly, members: [alice, zed], rotation: 30m, start: "2026-01-05T09:00"}
              - {name: day, members: [alice], rotation: 1d, start: "2026-01-05T09:00+01:00"}
              - {name: office, members: [alice], rotation: 1d, start: "2026-01-05", restrict: shop}
            overrides:
              - {who: mallory, from: "2026-01-07T00:00", until: "2026-01-06T00:00"}
            ical: {url: "ftp://example.com/x.ics", refresh: 10s}
          l2: {}
        """,
    )
    text = errors_of(path)
    file = str(path)
    for expected in [
        f"{file}:5 people.alice.quiet_hours: unknown calendar 'weekends' (nights, office)",
        f"{file}:6 people.bob: no way to reach this person: give urls, slack or email",
        f"{file}:7 people.carol.slack: invalid Slack user id 'not a slack id'",
        f"{file}:7 people.carol.email: invalid email address 'nope'",
        f"{file}:10 schedules.l1.timezone: unknown time zone 'Mars/Olympus'",
        f"{file}:12 schedules.l1.layers[0].members[1]: unknown person 'zed' (alice, bob, carol)",
        f"{file}:12 schedules.l1.layers[0].rotation: must be at least 1h (got 30m)",
        f"{file}:13 schedules.l1.layers[1].start: start is a wall-clock time in the schedule's "
        "zone: drop the offset",
        f"{file}:14 schedules.l1.layers[2].restrict: unknown calendar 'shop' (nights, office)",
        f"{file}:16 schedules.l1.overrides[0].who: unknown person 'mallory' (alice, bob, carol)",
        f"{file}:16 schedules.l1.overrides[0]: until must be after from",
        f"{file}:17 schedules.l1.ical.url: the feed URL must be http:// or https://",
        f"{file}:17 schedules.l1.ical.refresh: must be at least 1m (got 10s)",
        f"{file}:18 schedules.l2: the schedule has no layers, ical feed nor overrides",
    ]:
        assert expected in text, f"missing {expected!r} in\n{text}"


def test_an_ical_feed_is_a_url_or_a_file_and_refreshes_every_15m(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        people: {alice: {email: alice@example.com}}
        schedules:
          a: {ical: {file: /srv/oncall.ics}}
          b: {ical: {url: "https://cal.example.com/feed.ics?key=PRIVATEkey123", refresh: 1h}}
        """,
    )
    cfg = load_config(path, environ={})
    a, b = cfg.settings.schedules["a"].ical, cfg.settings.schedules["b"].ical
    assert a is not None and b is not None
    assert (a.file, a.refresh) == (Path("/srv/oncall.ics"), timedelta(minutes=15))
    assert b.refresh == timedelta(hours=1)
    assert cfg.roster.feed_missing("a") and cfg.roster.on_call("a", datetime.now(UTC)) is None
    assert any("PRIVATEkey123" in s for s in cfg.secrets())
    bad = write(tmp_path, "schedules: {a: {ical: {url: 'https://x.example/a', file: /a.ics}}}\n")
    assert "schedules.a.ical: give either url or file" in errors_of(bad)
