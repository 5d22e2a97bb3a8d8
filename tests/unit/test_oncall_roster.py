"""Who is on call: rotation layers, handoffs at the wall-clock time across DST, overrides and
iCal feeds above the layers, quiet hours; properties checked with hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sladaemon.calendar import BusinessCalendar, CalendarSpec, parse_weekly_hours
from sladaemon.oncall.ical import IcalError, IcalFeed
from sladaemon.oncall.roster import Layer, Override, Person, Roster, Schedule

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ical"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
PEOPLE = ("alice", "bob", "carol", "dave")
US = timedelta(microseconds=1)


def calendar(name: str, zone: str, hours: dict[str, object]) -> BusinessCalendar:
    return BusinessCalendar(CalendarSpec(name, zone, parse_weekly_hours(hours)))


def roster(*layers: Layer, zone: ZoneInfo = BERLIN, overrides: tuple[Override, ...] = ()) -> Roster:
    people = {name: Person(name, email=f"{name}@example.com") for name in PEOPLE}
    return Roster(people, {"l1": Schedule("l1", zone, tuple(layers), overrides, has_ical=False)})


def local(text: str, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


# ---------------------------------------------------------------------------- strategies

zones = st.sampled_from([BERLIN, NEW_YORK])
members = st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=4, unique=True)
# Whole-day rotations, starting at an hour outside the DST changes' 01:00-03:59.
day_rotations = st.sampled_from([timedelta(days=1), timedelta(days=2), timedelta(weeks=1)])
starts = st.builds(
    datetime,
    st.just(2026),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(4, 22),
    st.sampled_from([0, 15, 30]),
)
offsets = st.integers(0, 400 * 24 * 60)  # minutes after the start


@st.composite
def layers(draw: st.DrawFn, rotation: st.SearchStrategy[timedelta] = day_rotations) -> Layer:
    return Layer("rota", tuple(draw(members)), draw(rotation), draw(starts))


# ---------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None)
@given(layer=layers(), zone=zones, minutes=st.integers(-30 * 24 * 60, 400 * 24 * 60))
def test_an_active_layer_has_exactly_one_person_on_call(
    layer: Layer, zone: ZoneInfo, minutes: int
) -> None:
    """From its start on, a layer answers with one of its members, whose turn holds the
    instant: since <= at < until, someone else (or nobody) from until on."""
    at = layer.start.replace(tzinfo=zone).astimezone(UTC) + timedelta(minutes=minutes)
    answer = roster(layer, zone=zone).on_call("l1", at)
    if minutes < 0:
        assert answer is None
        return
    assert answer is not None
    assert answer.person in layer.members
    assert answer.why == "layer rota"
    assert answer.since <= at
    if len(layer.members) == 1:
        return
    assert answer.until is not None
    assert at < answer.until
    before = roster(layer, zone=zone).on_call("l1", answer.until - US)
    after = roster(layer, zone=zone).on_call("l1", answer.until)
    assert before is not None and before.person == answer.person
    assert after is not None and after.person != answer.person


@settings(max_examples=60, deadline=None)
@given(layer=layers(), zone=zones)
def test_handoffs_happen_at_the_start_s_wall_clock_time_across_dst(
    layer: Layer, zone: ZoneInfo
) -> None:
    """Over a year of handoffs, each one is at the local time of day of the layer's start and
    the turns go round the members in order; a turn spanning a DST change is an hour longer or
    shorter than the rotation, every other turn is exactly the rotation."""
    assume(len(layer.members) > 1)
    r = roster(layer, zone=zone)
    answer = r.on_call("l1", layer.start.replace(tzinfo=zone))
    assert answer is not None
    assert answer.person == layer.members[0]
    turn, lengths = 0, set()
    while answer.until is not None and answer.until.year < 2028:
        handoff = answer.until.astimezone(zone)
        assert (handoff.hour, handoff.minute) == (layer.start.hour, layer.start.minute)
        lengths.add(answer.until - answer.since)
        turn += 1
        answer = r.on_call("l1", answer.until)
        assert answer is not None
        assert answer.person == layer.members[turn % len(layer.members)]
        assert answer.since == handoff
    assert turn > 0
    assert lengths <= {
        layer.rotation,
        layer.rotation - timedelta(hours=1),
        layer.rotation + timedelta(hours=1),
    }
    if layer.rotation <= timedelta(weeks=1):  # a year of turns crosses both DST changes
        assert layer.rotation in lengths
        assert layer.rotation - timedelta(hours=1) in lengths
        assert layer.rotation + timedelta(hours=1) in lengths


@settings(max_examples=100, deadline=None)
@given(
    layer=layers(),
    zone=zones,
    who=st.sampled_from(PEOPLE),
    begin=offsets,
    length=st.integers(1, 10 * 24 * 60),
    minutes=offsets,
)
def test_an_override_beats_the_layers_while_it_lasts(
    layer: Layer, zone: ZoneInfo, who: str, begin: int, length: int, minutes: int
) -> None:
    start = layer.start.replace(tzinfo=zone).astimezone(UTC)
    override = Override(
        who, start + timedelta(minutes=begin), start + timedelta(minutes=begin + length)
    )
    at = start + timedelta(minutes=minutes)
    with_override = roster(layer, zone=zone, overrides=(override,)).on_call("l1", at)
    without = roster(layer, zone=zone).on_call("l1", at)
    assert with_override is not None and without is not None
    if override.start <= at < override.until:
        assert (with_override.person, with_override.why) == (who, "override")
        assert with_override.since == override.start
        assert with_override.until is not None and with_override.until <= override.until
    else:
        assert (with_override.person, with_override.why) == (without.person, without.why)


@settings(max_examples=100, deadline=None)
@given(base=layers(), top=layers(), minutes=offsets)
def test_a_later_layer_wins_where_it_is_active(base: Layer, top: Layer, minutes: int) -> None:
    office = calendar("office", "Europe/Berlin", {"mon-fri": "09:00-17:00"})
    top = Layer("top", top.members, top.rotation, base.start, restrict=office)
    at = base.start.replace(tzinfo=BERLIN).astimezone(UTC) + timedelta(minutes=minutes)
    answer = roster(base, top).on_call("l1", at)
    assert answer is not None
    if office.is_open(at):
        assert answer.why == "layer top" and answer.person in top.members
        assert answer.since >= office.open_window(at)[0]  # type: ignore[index]
    else:
        assert answer.why == "layer rota" and answer.person in base.members


# ---------------------------------------------------------------------------- examples


@pytest.mark.parametrize(
    ("zone", "spring", "autumn"),
    [
        (BERLIN, "2026-03-23T09:00", "2026-10-19T09:00"),
        (NEW_YORK, "2026-03-02T09:00", "2026-10-26T09:00"),
    ],
)
def test_a_weekly_turn_over_a_dst_change_is_an_hour_shorter_or_longer(
    zone: ZoneInfo, spring: str, autumn: str
) -> None:
    layer = Layer("weekly", ("alice", "bob"), timedelta(weeks=1), datetime(2026, 1, 5, 9, 0))
    r = roster(layer, zone=zone)
    for week_start, hours in ((spring, 167), (autumn, 169)):
        answer = r.on_call("l1", local(week_start, zone) + timedelta(hours=1))
        assert answer is not None and answer.until is not None
        assert answer.since == local(week_start, zone)
        assert answer.until - answer.since == timedelta(hours=hours)
        assert answer.until.astimezone(zone).hour == 9


def test_nobody_is_on_call_outside_every_layer() -> None:
    office = calendar("office", "Europe/Berlin", {"mon-fri": "09:00-17:00"})
    r = roster(Layer("day", ("alice",), timedelta(days=1), datetime(2026, 1, 5), office))
    assert r.on_call("l1", local("2026-01-10T12:00")) is None  # a Saturday
    answer = r.on_call("l1", local("2026-01-12T16:00"))
    assert answer is not None
    assert (answer.person, answer.since, answer.until) == (
        "alice",
        local("2026-01-12T09:00"),
        local("2026-01-12T17:00"),
    )


def test_quiet_hours_hold_unless_the_person_is_on_call() -> None:
    nights = calendar("nights", "Europe/Berlin", {"mon-sun": ["00:00-07:00", "22:00-24:00"]})
    people = {
        "alice": Person("alice", quiet_hours=nights),
        "bob": Person("bob", quiet_hours=nights),
    }
    layer = Layer("weekly", ("alice",), timedelta(weeks=1), datetime(2026, 1, 5, 9, 0))
    r = Roster(people, {"l1": Schedule("l1", BERLIN, (layer,))})
    assert r.quiet_until("bob", local("2026-01-06T23:00")) == local("2026-01-07T07:00")
    assert r.quiet_until("bob", local("2026-01-06T12:00")) is None
    assert r.quiet_until("alice", local("2026-01-06T23:00")) is None  # on call
    assert r.quiet_until("alice", local("2026-01-04T23:00")) == local("2026-01-05T07:00")
    assert r.quiet_until("nobody", local("2026-01-06T23:00")) is None


def test_people_are_found_by_email_and_slack_id() -> None:
    r = Roster({"alice": Person("alice", email="alice@example.com", slack="U0123ABC")})
    assert r.person_by_email(" Alice@Example.COM ") == r.people["alice"]
    assert r.person_by_slack("U0123ABC") == r.people["alice"]
    assert r.person_by_email("bob@example.com") is None
    assert r.person_by_slack("U999") is None


# ---------------------------------------------------------------------------- iCal


def feed_roster(*layers: Layer) -> Roster:
    people = {
        "alice": Person("alice"),
        "bob": Person("bob", email="bob@example.com"),
        "carol": Person("carol"),
        "dave": Person("dave", email="dave@example.com"),
        "erin": Person("erin"),
    }
    r = Roster(people, {"l1": Schedule("l1", BERLIN, tuple(layers), has_ical=True)})
    r.set_feed("l1", IcalFeed((FIXTURES / "rotation.ics").read_bytes(), BERLIN))
    return r


@pytest.mark.parametrize(
    ("at", "person", "why", "since", "until"),
    [
        # the RRULE's first occurrence, named by SUMMARY (case-insensitive)
        ("2026-01-06T12:00", "alice", "ical", "2026-01-05T09:00", "2026-01-12T09:00"),
        # the other RRULE, named by an email in SUMMARY
        ("2026-01-13T12:00", "bob", "ical", "2026-01-12T09:00", "2026-01-19T09:00"),
        # bob's occurrence of 01-26 moved to 01-27 and given to carol (RECURRENCE-ID):
        # the day it left falls through to the layer
        ("2026-01-26T12:00", "erin", "layer weekly", "2026-01-26T09:00", "2026-01-27T09:00"),
        ("2026-01-28T12:00", "carol", "ical", "2026-01-27T09:00", "2026-02-02T09:00"),
        # alice's occurrence of 02-02 is excluded (EXDATE)
        ("2026-02-03T12:00", "erin", "layer weekly", "2026-02-02T09:00", "2026-02-09T09:00"),
        ("2026-02-17T12:00", "alice", "ical", "2026-02-16T09:00", "2026-02-23T09:00"),
        # an event naming nobody known is ignored; dave is named by ATTENDEE, and his event
        # started last of those running
        ("2026-03-05T12:00", "alice", "ical", "2026-03-02T09:00", "2026-03-07T09:00"),
        ("2026-03-08T12:00", "dave", "ical", "2026-03-07T09:00", "2026-03-09T09:00"),
    ],
)
def test_an_ical_feed_is_a_layer_above_the_rotations(
    at: str, person: str, why: str, since: str, until: str
) -> None:
    layer = Layer("weekly", ("erin",), timedelta(weeks=1), datetime(2026, 1, 5, 9, 0))
    r = feed_roster(layer)
    answer = r.on_call("l1", local(at))
    assert answer is not None
    assert (answer.person, answer.why) == (person, why)
    assert answer.since == local(since)
    assert answer.until == local(until)


def test_ical_events_naming_nobody_are_listed() -> None:
    r = feed_roster()
    unknown = r.unknown_in_feed("l1", local("2026-01-01T00:00"), local("2026-04-01T00:00"))
    assert unknown == {"Team offsite"}
    assert not r.feed_missing("l1")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<html>Service unavailable</html>",
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:notadate\r\n",
        b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:alice\r\nEND:VCARD\r\n",
    ],
)
def test_an_unreadable_feed_is_an_ical_error(data: bytes) -> None:
    def read() -> None:
        feed = IcalFeed(data, BERLIN)
        feed.shifts_between(local("2026-01-01T00:00"), local("2027-01-01T00:00"))

    with pytest.raises(IcalError):
        read()
