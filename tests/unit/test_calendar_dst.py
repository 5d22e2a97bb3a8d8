"""Business time across DST transitions, with expected values derived by hand.

Every expected instant is written in UTC (``...Z``) or with an explicit offset, and each test's
docstring shows the derivation under the wall-clock-set model of DESIGN.md section 4: business
time is the set of instants whose local reading falls in an interval of its local date. The
transitions the derivations rely on are asserted first with zoneinfo (``_transition``), so a
tzdata change shows up as a failed premise rather than as a wrong expectation.

Transitions used (2024):

* Europe/Berlin: +01:00 -> +02:00 at 2024-03-31T01:00Z (02:00 -> 03:00 local);
  +02:00 -> +01:00 at 2024-10-27T01:00Z (03:00 -> 02:00 local, 02:00-03:00 twice).
* America/New_York: -05:00 -> -04:00 at 2024-03-10T07:00Z (02:00 -> 03:00);
  -04:00 -> -05:00 at 2024-11-03T06:00Z (02:00 -> 01:00, 01:00-02:00 twice).
* America/Havana (DST starts at midnight): -05:00 -> -04:00 at 2024-03-10T05:00Z
  (00:00 -> 01:00, so 2024-03-10 has no 00:00-01:00); -04:00 -> -05:00 at 2024-11-03T05:00Z
  (01:00 -> 00:00, 00:00-01:00 twice).
* America/Santiago (DST ends at midnight): -03:00 -> -04:00 at 2024-04-07T03:00Z
  (24:00 of 04-06 -> 23:00 of 04-06, so 23:00-24:00 of Sat 04-06 occurs twice).
* Australia/Lord_Howe (30-minute shift): +11:00 -> +10:30 at 2024-04-06T15:00Z
  (02:00 -> 01:30 on 04-07, 01:30-02:00 twice); +10:30 -> +11:00 at 2024-10-05T15:30Z
  (02:00 -> 02:30 on 10-06, 02:00-02:30 missing).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from sladaemon.calendar import BusinessCalendar, CalendarSpec, parse_breaks, parse_weekly_hours
from sladaemon.calendar.business import HolidaysCancel
from sladaemon.errors import CalendarError, NoBusinessTimeError

H = timedelta(hours=1)
MIN = timedelta(minutes=1)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
HAVANA = "America/Havana"
SANTIAGO = "America/Santiago"
LORD_HOWE = "Australia/Lord_Howe"

NINE_TO_FIVE = {"mon-fri": ["09:00-17:00"]}
ALWAYS = {"mon-sun": ["00:00-24:00"]}
NIGHTS = {"mon-sun": ["22:00-06:00"]}


def at(text: str) -> datetime:
    """An aware instant from ISO text that carries ``Z`` or an explicit offset."""
    t = datetime.fromisoformat(text)
    assert t.tzinfo is not None, text
    return t


def cal(
    zone: str,
    hours: dict[str, list[str]],
    *,
    holidays: frozenset[date] = frozenset(),
    breaks: dict[object, object] | None = None,
    country: str | None = None,
    subdivision: str | None = None,
    cancel: HolidaysCancel = "day",
) -> BusinessCalendar:
    return BusinessCalendar(
        CalendarSpec(
            name="dst-test",
            timezone=zone,
            weekly=parse_weekly_hours(hours),
            holiday_country=country,
            holiday_subdivision=subdivision,
            holiday_dates=holidays,
            holidays_cancel=cancel,
            breaks=parse_breaks(breaks or {}),
        )
    )


def _transition(zone: str, instant: str, before: str, after: str) -> None:
    """Premise check: the zone's UTC offset changes from ``before`` to ``after`` at ``instant``."""
    t = at(instant)
    z = ZoneInfo(zone)
    assert (t - timedelta(seconds=1)).astimezone(z).strftime("%z") == before.replace(":", "")
    assert t.astimezone(z).strftime("%z") == after.replace(":", "")


@pytest.fixture(autouse=True, scope="module")
def _premises() -> None:
    _transition(BERLIN, "2024-03-31T01:00Z", "+01:00", "+02:00")
    _transition(BERLIN, "2024-10-27T01:00Z", "+02:00", "+01:00")
    _transition(NEW_YORK, "2024-03-10T07:00Z", "-05:00", "-04:00")
    _transition(NEW_YORK, "2024-11-03T06:00Z", "-04:00", "-05:00")
    _transition(HAVANA, "2024-03-10T05:00Z", "-05:00", "-04:00")
    _transition(HAVANA, "2024-11-03T05:00Z", "-04:00", "-05:00")
    _transition(SANTIAGO, "2024-04-07T03:00Z", "-03:00", "-04:00")
    _transition(SANTIAGO, "2024-09-08T04:00Z", "-04:00", "-03:00")
    _transition(LORD_HOWE, "2024-04-06T15:00Z", "+11:00", "+10:30")
    _transition(LORD_HOWE, "2024-10-05T15:30Z", "+10:30", "+11:00")


# ---------------------------------------------------------------------------- Europe/Berlin


def test_berlin_spring_add_9_17_over_the_weekend() -> None:
    """Fri 2024-03-29 15:00 CET (14:00Z) + 4 h on Mon-Fri 09-17 (no holidays configured).

    Friday gives 15:00-17:00 CET = 2 h. The next opening is Mon 04-01 09:00, now CEST
    (+02:00) = 07:00Z; 2 more hours end at 11:00 CEST = 09:00Z. A fixed CET offset would
    wrongly give 10:00Z.
    """
    c = cal(BERLIN, NINE_TO_FIVE)
    result = c.add(at("2024-03-29T14:00Z"), 4 * H)
    assert result == at("2024-04-01T09:00Z")
    assert result.utcoffset() == timedelta(0)


def test_berlin_spring_elapsed_9_17_is_not_wall_time() -> None:
    """Fri 2024-03-29 14:00 CET (13:00Z) to Mon 04-01 10:00 CEST (08:00Z).

    Friday 14:00-17:00 = 3 h, Monday 09:00-10:00 = 1 h, total 4 h, although 67 h of real time
    pass (one hour fewer than the wall clocks suggest).
    """
    c = cal(BERLIN, NINE_TO_FIVE)
    assert c.elapsed(at("2024-03-29T13:00Z"), at("2024-04-01T08:00Z")) == 4 * H


def test_berlin_fall_add_and_elapsed_9_17() -> None:
    """Fri 2024-10-25 16:00 CEST (14:00Z) + 3 h.

    Friday 16:00-17:00 = 1 h; Mon 10-28 opens at 09:00 CET = 08:00Z; 2 more hours end at
    11:00 CET = 10:00Z. Conversely the elapsed time between them is 3 h, and the elapsed time
    back is -3 h.
    """
    c = cal(BERLIN, NINE_TO_FIVE)
    start, deadline = at("2024-10-25T14:00Z"), at("2024-10-28T10:00Z")
    assert c.add(start, 3 * H) == deadline
    assert c.elapsed(start, deadline) == 3 * H
    assert c.elapsed(deadline, start) == -3 * H


def test_berlin_24_7_spring_day_is_23_hours() -> None:
    """24/7 calendar: business time is real time, so local days are 23 h long in spring.

    Sat 2024-03-30 12:00 CET (11:00Z) to Sun 03-31 12:00 CEST (10:00Z) = 23 h. Adding 24 h to
    Sun 00:00 CET (03-30T23:00Z) gives 03-31T23:00Z, which reads Mon 01:00 CEST, not midnight.
    """
    c = cal(BERLIN, ALWAYS)
    assert c.elapsed(at("2024-03-30T11:00Z"), at("2024-03-31T10:00Z")) == 23 * H
    assert c.add(at("2024-03-30T23:00Z"), 24 * H) == at("2024-04-01T01:00+02:00")


def test_berlin_24_7_fall_day_is_25_hours() -> None:
    """Sun 2024-10-27 00:00 CEST (10-26T22:00Z) to Mon 00:00 CET (10-27T23:00Z) = 25 h.

    Adding 24 h to Sat 12:00 CEST (10:00Z) gives 10-27T10:00Z = Sun 11:00 CET.
    """
    c = cal(BERLIN, ALWAYS)
    assert c.elapsed(at("2024-10-26T22:00Z"), at("2024-10-27T23:00Z")) == 25 * H
    assert c.add(at("2024-10-26T10:00Z"), 24 * H) == at("2024-10-27T11:00+01:00")


def test_berlin_spring_night_shift_is_7_hours() -> None:
    """Nightly 22:00-06:00 shift starting Sat 2024-03-30 22:00 CET (21:00Z).

    Readings 22:00-02:00 CET are 21:00Z-01:00Z (4 h); 02:00-03:00 does not exist; 03:00-06:00
    CEST are 01:00Z-04:00Z (3 h): the shift is [21:00Z, 04:00Z) = 7 h.
    * add 6 h: 4 h to 01:00Z, then 2 h more -> 03:00Z (05:00 CEST).
    * add 7 h: elapsed stays 7 h until the next shift opens Sun 22:00 CEST = 20:00Z, so the
      deadline (latest instant) is 20:00Z, while ``reach`` (earliest) is 04:00Z.
    """
    c = cal(BERLIN, NIGHTS)
    start = at("2024-03-30T21:00Z")
    assert c.add(start, 6 * H) == at("2024-03-31T03:00Z")
    assert c.add(start, 7 * H) == at("2024-03-31T20:00Z")
    assert c.reach(start, 7 * H) == at("2024-03-31T04:00Z")
    assert c.elapsed(at("2024-03-30T20:00Z"), at("2024-03-31T06:00Z")) == 7 * H


def test_berlin_fall_night_shift_is_9_hours() -> None:
    """Nightly 22:00-06:00 shift starting Sat 2024-10-26 22:00 CEST (20:00Z).

    Readings 22:00-03:00 CEST are 20:00Z-01:00Z (5 h); 02:00-06:00 CET are 01:00Z-05:00Z
    (4 h, the 02:00-03:00 readings for the second time): the shift is [20:00Z, 05:00Z) = 9 h.
    * add 8 h 30 min -> 04:30Z (05:30 CET).
    * elapsed from Sat 21:00 CEST (19:00Z) to Sun 07:00 CET (06:00Z) = the whole shift = 9 h.
    """
    c = cal(BERLIN, NIGHTS)
    assert c.add(at("2024-10-26T20:00Z"), 8 * H + 30 * MIN) == at("2024-10-27T04:30Z")
    assert c.elapsed(at("2024-10-26T19:00Z"), at("2024-10-27T06:00Z")) == 9 * H


def test_berlin_fold_explicit_offsets_pick_each_side() -> None:
    """Sunday-only hours 02:00-03:00; on 2024-10-27 those readings occur twice.

    First as CEST (00:00Z-01:00Z), then as CET (01:00Z-02:00Z): 2 h of business time.
    * 02:30+02:00 is 00:30Z; + 1 h -> 01:30Z = 02:30+01:00 (the same reading, second pass).
    * 02:30+01:00 is 01:30Z; + 1 h: 30 min to 02:00Z, then next Sunday 11-03 02:00 CET
      (01:00Z) + 30 min -> 2024-11-03T01:30Z.
    * Between the two 02:30 readings lies exactly 1 h of business time.
    """
    c = cal(BERLIN, {"sun": ["02:00-03:00"]})
    first, second = at("2024-10-27T02:30+02:00"), at("2024-10-27T02:30+01:00")
    assert c.add(first, H) == second
    assert c.add(second, H) == at("2024-11-03T01:30Z")
    assert c.elapsed(first, second) == H
    assert c.is_open(first)
    assert c.is_open(second)
    assert c.elapsed(at("2024-10-26T12:00Z"), at("2024-10-27T12:00Z")) == 2 * H


def test_berlin_fold_attribute_selects_the_side() -> None:
    """The same ambiguous reading via zoneinfo: fold=0 is the first pass (CEST, 00:30Z),
    fold=1 the second (CET, 01:30Z), exactly like the explicit offsets above."""
    c = cal(BERLIN, {"sun": ["02:00-03:00"]})
    zone = ZoneInfo(BERLIN)
    first = datetime(2024, 10, 27, 2, 30, tzinfo=zone, fold=0)
    second = datetime(2024, 10, 27, 2, 30, tzinfo=zone, fold=1)
    assert c.add(first, H) == at("2024-10-27T01:30Z")
    assert c.add(second, H) == at("2024-11-03T01:30Z")


def test_berlin_readings_in_the_spring_gap_count_nothing() -> None:
    """Sunday hours 02:00-03:00: on 2024-03-31 no instant reads 02:xx, so that Sunday has no
    business time. From Sat 03-30 12:00Z, + 30 min is the next Sunday 04-07 02:30 CEST
    (00:30Z)."""
    c = cal(BERLIN, {"sun": ["02:00-03:00"]})
    assert c.elapsed(at("2024-03-30T12:00Z"), at("2024-04-01T00:00Z")) == timedelta(0)
    assert c.add(at("2024-03-30T12:00Z"), 30 * MIN) == at("2024-04-07T00:30Z")
    assert not c.is_open(at("2024-03-31T01:00Z"))


def test_berlin_range_around_the_gap_is_contiguous_in_utc() -> None:
    """Sunday hours 01:30-03:30 on 2024-03-31: readings 01:30-02:00 CET (00:30Z-01:00Z), then
    03:00-03:30 CEST (01:00Z-01:30Z) = 1 h, contiguous in UTC. From 00:00Z, + 45 min lands at
    01:15Z, which reads 03:15 CEST."""
    c = cal(BERLIN, {"sun": ["01:30-03:30"]})
    assert c.elapsed(at("2024-03-30T12:00Z"), at("2024-03-31T12:00Z")) == H
    assert c.add(at("2024-03-31T00:00Z"), 45 * MIN) == at("2024-03-31T03:15+02:00")


def test_berlin_nonexistent_reading_follows_pep_495() -> None:
    """A zoneinfo datetime reading 02:30 on 2024-03-31 does not exist. Python (PEP 495) maps
    fold=0 with the offset before the gap (+01:00 -> 01:30Z, which reads 03:30 CEST) and
    fold=1 with the offset after it (+02:00 -> 00:30Z, which reads 01:30 CET). On a 24/7
    calendar add(t, 0) is t itself, and the fold=0 instant lies 1 h after the fold=1 one."""
    c = cal(BERLIN, ALWAYS)
    zone = ZoneInfo(BERLIN)
    gap0 = datetime(2024, 3, 31, 2, 30, tzinfo=zone, fold=0)
    gap1 = datetime(2024, 3, 31, 2, 30, tzinfo=zone, fold=1)
    assert c.add(gap0, timedelta(0)) == at("2024-03-31T01:30Z")
    assert c.add(gap1, timedelta(0)) == at("2024-03-31T00:30Z")
    assert c.elapsed(gap1, gap0) == H


# ---------------------------------------------------------------------------- America/New_York


def test_new_york_spring_add_and_elapsed_9_17() -> None:
    """Fri 2024-03-08 15:00 EST (20:00Z) + 4 h: 2 h on Friday, then Mon 03-11 opens at
    09:00 EDT = 13:00Z; 2 h more -> 15:00Z (11:00 EDT)."""
    c = cal(NEW_YORK, NINE_TO_FIVE)
    start, deadline = at("2024-03-08T20:00Z"), at("2024-03-11T15:00Z")
    assert c.add(start, 4 * H) == deadline
    assert c.elapsed(start, deadline) == 4 * H


def test_new_york_fall_add_and_elapsed_9_17() -> None:
    """Fri 2024-11-01 16:00 EDT (20:00Z) + 3 h: 1 h on Friday, then Mon 11-04 opens at
    09:00 EST = 14:00Z; 2 h more -> 16:00Z (11:00 EST)."""
    c = cal(NEW_YORK, NINE_TO_FIVE)
    start, deadline = at("2024-11-01T20:00Z"), at("2024-11-04T16:00Z")
    assert c.add(start, 3 * H) == deadline
    assert c.elapsed(start, deadline) == 3 * H


def test_new_york_24_7_days_are_23_and_25_hours() -> None:
    """Sun 2024-03-10 00:00 EST (05:00Z) to Mon 00:00 EDT (03-11T04:00Z) = 23 h;
    Sun 2024-11-03 00:00 EDT (04:00Z) to Mon 00:00 EST (11-04T05:00Z) = 25 h.
    One second after 01:59:59 EDT (05:59:59Z) is 06:00Z, which reads 01:00:00 EST."""
    c = cal(NEW_YORK, ALWAYS)
    assert c.elapsed(at("2024-03-10T05:00Z"), at("2024-03-11T04:00Z")) == 23 * H
    assert c.elapsed(at("2024-11-03T04:00Z"), at("2024-11-04T05:00Z")) == 25 * H
    step = c.add(at("2024-11-03T01:59:59-04:00"), timedelta(seconds=1))
    assert step == at("2024-11-03T01:00:00-05:00")


def test_new_york_night_shifts_across_both_transitions() -> None:
    """Nightly 22:00-06:00.

    Spring: Sat 2024-03-09 22:00 EST (03-10T03:00Z) to Sun 06:00 EDT (10:00Z) = 7 h; elapsed
    from Sat 20:00 EST (01:00Z) to Sun 08:00 EDT (12:00Z) sees only that shift.
    Fall: Sat 2024-11-02 22:00 EDT (11-03T02:00Z) to Sun 06:00 EST (11:00Z) = 9 h; elapsed
    from Sat 20:00 EDT (00:00Z) to Sun 08:00 EST (13:00Z) = 9 h. Adding 8 h to the fall shift
    start lands at 10:00Z (05:00 EST).
    """
    c = cal(NEW_YORK, NIGHTS)
    assert c.elapsed(at("2024-03-10T01:00Z"), at("2024-03-10T12:00Z")) == 7 * H
    assert c.elapsed(at("2024-11-03T00:00Z"), at("2024-11-03T13:00Z")) == 9 * H
    assert c.add(at("2024-11-03T02:00Z"), 8 * H) == at("2024-11-03T05:00-05:00")


def test_new_york_fold_explicit_offsets_pick_each_side() -> None:
    """Sunday hours 01:00-02:00; on 2024-11-03 those readings occur as EDT (05:00Z-06:00Z)
    and again as EST (06:00Z-07:00Z).
    * 01:15-04:00 (05:15Z) + 1 h -> 06:15Z = 01:15-05:00.
    * 01:15-05:00 (06:15Z) + 1 h: 45 min to 07:00Z, then Sun 11-10 01:00 EST (06:00Z)
      + 15 min -> 2024-11-10T06:15Z."""
    c = cal(NEW_YORK, {"sun": ["01:00-02:00"]})
    first, second = at("2024-11-03T01:15-04:00"), at("2024-11-03T01:15-05:00")
    assert c.add(first, H) == second
    assert c.add(second, H) == at("2024-11-10T06:15Z")
    assert c.elapsed(at("2024-11-03T00:00-04:00"), at("2024-11-03T12:00-05:00")) == 2 * H


def test_new_york_gap_hours_are_empty() -> None:
    """Sunday hours 02:00-03:00: 2024-03-10 has no 02:xx reading, so no business time that
    day; the next opening after Sat 03-09 is Sun 03-17 02:00 EDT = 06:00Z."""
    c = cal(NEW_YORK, {"sun": ["02:00-03:00"]})
    assert c.elapsed(at("2024-03-09T12:00Z"), at("2024-03-11T12:00Z")) == timedelta(0)
    assert c.add(at("2024-03-09T12:00Z"), timedelta(0)) == at("2024-03-17T06:00Z")


# ---------------------------------------------------------------------------- DST at midnight


def test_havana_spring_midnight_does_not_exist() -> None:
    """Havana springs from 00:00 to 01:00 on Sun 2024-03-10 (05:00Z).

    * Sunday hours 00:00-02:00: readings 00:00-01:00 do not exist; 01:00-02:00 CDT is
      05:00Z-06:00Z -> 1 h.
    * The local day 03-10 is 23 h: it starts at 01:00 CDT (05:00Z) and ends at 03-11 00:00 CDT
      (04:00Z).
    """
    assert (
        cal(HAVANA, {"sun": ["00:00-02:00"]}).elapsed(
            at("2024-03-09T12:00Z"), at("2024-03-11T12:00Z")
        )
        == H
    )
    c = cal(HAVANA, {"sun": ["00:00-24:00"]})
    assert c.elapsed(at("2024-03-09T12:00Z"), at("2024-03-11T12:00Z")) == 23 * H
    assert c.add(at("2024-03-09T12:00Z"), timedelta(0)) == at("2024-03-10T05:00Z")


def test_havana_holiday_on_the_short_day() -> None:
    """24/7 with a holiday on Sun 2024-03-10. From Sat 00:00 CST (03-09T05:00Z) to Tue 00:00
    CDT (03-12T04:00Z) pass 71 h; the holiday removes its whole 23-h local day
    (03-10T05:00Z-03-11T04:00Z): 48 h remain."""
    c = cal(HAVANA, ALWAYS, holidays=frozenset({date(2024, 3, 10)}))
    assert c.elapsed(at("2024-03-09T05:00Z"), at("2024-03-12T04:00Z")) == 48 * H
    assert not c.is_open(at("2024-03-10T12:00Z"))


def test_havana_night_shift_into_the_missing_midnight() -> None:
    """Saturday-night shift 22:00-06:00 starting 2024-03-09: readings 22:00-24:00 CST are
    03:00Z-05:00Z (2 h); 00:00-01:00 is skipped; 01:00-06:00 CDT are 05:00Z-10:00Z (5 h):
    7 h in all, contiguous in UTC. Adding 2 h 30 min to the start lands at 05:30Z (01:30 CDT)."""
    c = cal(HAVANA, {"sat": ["22:00-06:00"]})
    assert c.elapsed(at("2024-03-10T01:00Z"), at("2024-03-10T12:00Z")) == 7 * H
    assert c.add(at("2024-03-10T03:00Z"), 2 * H + 30 * MIN) == at("2024-03-10T01:30-04:00")


def test_havana_fall_repeats_the_first_hour() -> None:
    """Havana falls back from 01:00 CDT to 00:00 CST on Sun 2024-11-03 (05:00Z).

    Sunday hours 00:00-02:00: readings 00:00-01:00 CDT (04:00Z-05:00Z), 00:00-01:00 CST
    (05:00Z-06:00Z) and 01:00-02:00 CST (06:00Z-07:00Z) -> 3 h. The 9-17 week around it is
    unaffected: Fri 11-01 16:00 CDT (20:00Z) + 2 h -> Mon 11-04 10:00 CST = 15:00Z.
    """
    c = cal(HAVANA, {"sun": ["00:00-02:00"]})
    assert c.elapsed(at("2024-11-02T12:00Z"), at("2024-11-04T12:00Z")) == 3 * H
    assert cal(HAVANA, NINE_TO_FIVE).add(at("2024-11-01T20:00Z"), 2 * H) == at("2024-11-04T15:00Z")


def test_santiago_fall_back_at_midnight_lengthens_saturday() -> None:
    """Santiago falls back at 24:00 of Sat 2024-04-06 (04-07T03:00Z) to 23:00 (-04:00).

    * 24/7: Sat 00:00 -03 (04-06T03:00Z) to Sun 00:00 -04 (04-07T04:00Z) = 25 h, and a
      holiday on Sat 04-06 removes all 25 h: Fri 00:00 -03 (04-05T03:00Z) to Mon 00:00 -04
      (04-08T04:00Z) is 73 h, minus 25 h = 48 h.
    * Saturday night 22:00-02:00: 22:00-24:00 -03 (01:00Z-03:00Z), 23:00-24:00 -04
      (03:00Z-04:00Z), 00:00-02:00 -04 (04:00Z-06:00Z) = 5 h.
    """
    assert cal(SANTIAGO, ALWAYS).elapsed(at("2024-04-06T03:00Z"), at("2024-04-07T04:00Z")) == (
        25 * H
    )
    holiday = cal(SANTIAGO, ALWAYS, holidays=frozenset({date(2024, 4, 6)}))
    assert holiday.elapsed(at("2024-04-05T03:00Z"), at("2024-04-08T04:00Z")) == 48 * H
    night = cal(SANTIAGO, {"sat": ["22:00-02:00"]})
    assert night.elapsed(at("2024-04-06T12:00Z"), at("2024-04-07T12:00Z")) == 5 * H


def test_santiago_spring_forward_at_midnight() -> None:
    """Santiago springs from 00:00 to 01:00 on Sun 2024-09-08 (04:00Z). Sunday hours
    00:00-02:00 keep only 01:00-02:00 -03 = 04:00Z-05:00Z: 1 h, and the first business
    instant of that Sunday is 04:00Z."""
    c = cal(SANTIAGO, {"sun": ["00:00-02:00"]})
    assert c.elapsed(at("2024-09-07T12:00Z"), at("2024-09-08T12:00Z")) == H
    assert c.add(at("2024-09-07T12:00Z"), timedelta(0)) == at("2024-09-08T04:00Z")


# ---------------------------------------------------------------------------- 30-minute DST


def test_lord_howe_days_are_24_and_a_half_and_23_and_a_half_hours() -> None:
    """24/7 in Australia/Lord_Howe.

    Sun 2024-04-07 00:00 +11:00 (04-06T13:00Z) to Mon 00:00 +10:30 (04-07T13:30Z) = 24.5 h.
    Sun 2024-10-06 00:00 +10:30 (10-05T13:30Z) to Mon 00:00 +11:00 (10-06T13:00Z) = 23.5 h.
    """
    c = cal(LORD_HOWE, ALWAYS)
    assert c.elapsed(at("2024-04-06T13:00Z"), at("2024-04-07T13:30Z")) == 24 * H + 30 * MIN
    assert c.elapsed(at("2024-10-05T13:30Z"), at("2024-10-06T13:00Z")) == 23 * H + 30 * MIN


def test_lord_howe_half_hour_fold_and_gap() -> None:
    """Sunday hours 01:00-03:00.

    2024-04-07: 01:00-02:00 +11:00 (14:00Z-15:00Z), then 01:30-03:00 +10:30 (15:00Z-16:30Z)
    = 2.5 h. 01:45+11:00 (14:45Z) + 30 min -> 15:15Z = 01:45+10:30 (same reading, second
    pass).
    2024-10-06: 01:00-02:00 +10:30 (14:30Z-15:30Z), then 02:30-03:00 +11:00 (15:30Z-16:00Z)
    = 1.5 h; 01:45+10:30 (15:15Z) + 30 min -> 15:45Z = 02:45+11:00.
    """
    c = cal(LORD_HOWE, {"sun": ["01:00-03:00"]})
    assert c.elapsed(at("2024-04-06T12:00Z"), at("2024-04-07T00:00Z")) == 2 * H + 30 * MIN
    assert c.add(at("2024-04-07T01:45+11:00"), 30 * MIN) == at("2024-04-07T01:45+10:30")
    assert c.elapsed(at("2024-10-05T12:00Z"), at("2024-10-06T00:00Z")) == H + 30 * MIN
    assert c.add(at("2024-10-06T01:45+10:30"), 30 * MIN) == at("2024-10-06T02:45+11:00")


def test_lord_howe_9_17_across_the_fall_back() -> None:
    """Fri 2024-04-05 16:00 +11:00 (05:00Z) + 2 h: 1 h on Friday, then Mon 04-08 09:00
    +10:30 = 04-07T22:30Z; 1 h more -> 23:30Z."""
    c = cal(LORD_HOWE, NINE_TO_FIVE)
    assert c.add(at("2024-04-05T05:00Z"), 2 * H) == at("2024-04-07T23:30Z")


# ---------------------------------------------------------------------------- holidays and breaks


def test_holiday_on_the_fall_back_day_removes_25_hours() -> None:
    """Berlin 24/7, holiday Sun 2024-10-27. Sat 00:00 CEST (10-25T22:00Z) to Tue 00:00 CET
    (10-28T23:00Z) is 73 h; the holiday's local day is 25 h long: 48 h remain."""
    c = cal(BERLIN, ALWAYS, holidays=frozenset({date(2024, 10, 27)}))
    assert c.elapsed(at("2024-10-25T22:00Z"), at("2024-10-28T23:00Z")) == 48 * H


def test_holiday_closes_its_whole_local_day_on_a_night_desk() -> None:
    """Berlin nightly 22:00-06:00 around the fall-back night (Saturday's shift is 9 h,
    10-26T20:00Z to 10-27T05:00Z; Sunday's starts at 22:00 CET = 21:00Z), measured from
    10-26T12:00Z to 10-28T00:00Z (Mon 01:00 CET).
    * Holiday Sun 10-27, a 25-h local day (10-26T22:00Z to 10-27T23:00Z): Saturday's shift
      keeps 22:00-24:00 CEST (2 h), Sunday's shift keeps Mon 00:00-01:00 CET (1 h): 3 h.
    * Holiday Sat 10-26 (10-25T22:00Z to 10-26T22:00Z): Saturday's shift keeps its Sunday
      part, 00:00 CEST to 06:00 CET with the repeated hour (7 h), and Sunday's shift its
      3 h up to the end of the span: 10 h."""
    sunday = cal(BERLIN, NIGHTS, holidays=frozenset({date(2024, 10, 27)}))
    saturday = cal(BERLIN, NIGHTS, holidays=frozenset({date(2024, 10, 26)}))
    a, b = at("2024-10-26T12:00Z"), at("2024-10-28T00:00Z")
    assert sunday.elapsed(a, b) == 3 * H
    assert saturday.elapsed(a, b) == 10 * H
    assert not sunday.is_open(at("2024-10-27T02:30+01:00"))
    assert saturday.is_open(at("2024-10-27T02:30+02:00"))
    # Saturday 23:00 CEST + 1 h on the Sunday holiday: Saturday's shift stops at midnight, so
    # the hour ends there and the deadline is the next opening, Mon 00:00 CET.
    assert sunday.add(at("2024-10-26T21:00Z"), H) == at("2024-10-27T23:00Z")


def test_shift_rule_cancels_the_shifts_that_start_on_the_holiday() -> None:
    """The same night desk with ``cancel: shift``.
    * Holiday Sun 10-27: the Saturday shift belongs to Saturday and stays (9 h); Sunday's own
      shift (from 22:00 CET = 21:00Z) is cancelled.
    * Holiday Sat 10-26: the whole Saturday shift goes, including its Sunday-morning part;
      what remains is Sunday's own shift from 22:00 CET (21:00Z) up to the end of the
      measured span (10-28T00:00Z): 3 h."""
    sunday = cal(BERLIN, NIGHTS, holidays=frozenset({date(2024, 10, 27)}), cancel="shift")
    saturday = cal(BERLIN, NIGHTS, holidays=frozenset({date(2024, 10, 26)}), cancel="shift")
    a, b = at("2024-10-26T12:00Z"), at("2024-10-28T00:00Z")
    assert sunday.elapsed(a, b) == 9 * H
    assert saturday.elapsed(a, b) == 3 * H
    assert sunday.is_open(at("2024-10-27T02:30+01:00"))
    assert not saturday.is_open(at("2024-10-27T02:30+02:00"))
    assert sunday.add(at("2024-10-26T21:00Z"), H) == at("2024-10-26T22:00Z")


def test_holidays_on_consecutive_days_close_the_nights_between_them() -> None:
    """New York nightly 22:00-06:00, holidays Wed 2024-12-25 and Thu 12-26, measured from
    Tue 12-24 20:00 EST (12-25T01:00Z) to Sat 12-28 12:00 EST (17:00Z).
    * Day rule: Tue 22-24 (2 h), nothing on Wed or Thu, Thursday's shift after midnight
      Fri 00-06 (6 h), Fri 22-24 and Sat 00-06 (8 h): 16 h. Tue 23:00 + 3 h is Fri 02:00.
    * Shift rule: Tuesday's whole shift (8 h), Fri 22:00-Sat 06:00 (8 h): 16 h as well, but
      laid out differently: Tue 23:00 + 3 h is Wed 02:00, and Fri 03:00 is closed."""
    closed = frozenset({date(2024, 12, 25), date(2024, 12, 26)})
    day = cal(NEW_YORK, NIGHTS, holidays=closed)
    shift = cal(NEW_YORK, NIGHTS, holidays=closed, cancel="shift")
    a, b = at("2024-12-24T20:00-05:00"), at("2024-12-28T12:00-05:00")
    assert day.elapsed(a, b) == 16 * H
    assert shift.elapsed(a, b) == 16 * H
    assert day.add(at("2024-12-24T23:00-05:00"), 3 * H) == at("2024-12-27T02:00-05:00")
    assert shift.add(at("2024-12-24T23:00-05:00"), 3 * H) == at("2024-12-25T02:00-05:00")
    assert day.is_open(at("2024-12-27T03:00-05:00"))
    assert not shift.is_open(at("2024-12-27T03:00-05:00"))


def test_holiday_on_the_spring_forward_night_desk() -> None:
    """New York nightly 22:00-06:00 with a holiday on Sun 2024-03-10, the 23-h spring-forward
    day (03-10T05:00Z to 03-11T04:00Z). Saturday's shift keeps 22:00-24:00 EST (03:00Z-05:00Z,
    2 h); Sunday's shift keeps Mon 00:00-06:00 EDT (04:00Z-10:00Z, 6 h). The shift rule keeps
    Saturday's whole shift instead, 22:00 EST to 06:00 EDT (03:00Z-10:00Z, 7 h)."""
    holiday = frozenset({date(2024, 3, 10)})
    a, b = at("2024-03-09T12:00Z"), at("2024-03-11T12:00Z")
    assert cal(NEW_YORK, NIGHTS, holidays=holiday).elapsed(a, b) == 8 * H
    assert cal(NEW_YORK, NIGHTS, holidays=holiday, cancel="shift").elapsed(a, b) == 7 * H


def test_account_names_the_holiday_behind_a_closed_night() -> None:
    """New York nightly 22:00-06:00, holiday Wed 2024-12-25, accounted from Thu 12-26 00:00
    to 05:00 EST. Day rule: Wednesday's shift runs after midnight, 5 h are counted and no
    closed day lies in the span. Shift rule: Wednesday's shift is cancelled, nothing is
    counted, and the holiday of the day before is named as the reason (but not on an office
    calendar, whose holiday ends at midnight)."""
    holiday = frozenset({date(2024, 12, 25)})
    a, b = at("2024-12-26T00:00-05:00"), at("2024-12-26T05:00-05:00")
    day = cal(NEW_YORK, NIGHTS, holidays=holiday).account(a, b)
    assert (day.business, day.closed_days) == (5 * H, ())
    shift = cal(NEW_YORK, NIGHTS, holidays=holiday, cancel="shift").account(a, b)
    assert shift.business == timedelta(0)
    assert shift.closed_days == ((date(2024, 12, 25), "holiday: holiday"),)
    office = cal(NEW_YORK, NINE_TO_FIVE, holidays=holiday, cancel="shift")
    assert office.account(a, b).closed_days == (), "no overnight shift, nothing to name"


def test_unknown_holiday_rule_is_refused() -> None:
    with pytest.raises(CalendarError, match=r"'days' \(use 'day' or 'shift'\)"):
        cal(BERLIN, NIGHTS, cancel="days")  # type: ignore[arg-type]


def test_library_holiday_on_the_spring_day() -> None:
    """Brandenburg (DE-BB) keeps Easter Sunday, which in 2024 is the spring-forward day
    03-31, and Easter Monday 04-01. 24/7 from Sat 03-30 00:00 CET (03-29T23:00Z) to
    Wed 04-03 00:00 CEST (04-02T22:00Z) is 95 h; Sunday (23 h) and Monday (24 h) are closed:
    48 h remain."""
    c = cal(BERLIN, ALWAYS, country="DE", subdivision="BB")
    assert c.elapsed(at("2024-03-29T23:00Z"), at("2024-04-02T22:00Z")) == 48 * H


def test_break_across_the_fall_back() -> None:
    """Berlin 24/7, break 01:00-04:00 on 2024-10-27: readings 01:00-03:00 CEST
    (10-26T23:00Z-01:00Z) and 02:00-04:00 CET (01:00Z-03:00Z) = 4 h of break, so the 25-h
    day keeps 21 h. The calendar is closed at 02:30 on both passes."""
    c = cal(BERLIN, ALWAYS, breaks={"2024-10-27": ["01:00-04:00"]})
    assert c.elapsed(at("2024-10-26T22:00Z"), at("2024-10-27T23:00Z")) == 21 * H
    assert not c.is_open(at("2024-10-27T02:30+02:00"))
    assert not c.is_open(at("2024-10-27T02:30+01:00"))
    assert c.add(at("2024-10-26T22:00Z"), H) == at("2024-10-27T03:00Z")


def test_break_across_the_spring_gap() -> None:
    """Berlin 24/7, break 01:00-04:00 on 2024-03-31: readings 01:00-02:00 CET (00:00Z-01:00Z)
    and 03:00-04:00 CEST (01:00Z-02:00Z) = 2 h of break, so the 23-h day keeps 21 h."""
    c = cal(BERLIN, ALWAYS, breaks={"2024-03-31": ["01:00-04:00"]})
    assert c.elapsed(at("2024-03-30T23:00Z"), at("2024-03-31T22:00Z")) == 21 * H


def test_overnight_break_across_the_fall_back() -> None:
    """Berlin 24/7, overnight break 23:00-03:00 dated Sat 2024-10-26: readings 23:00-03:00
    CEST (21:00Z-01:00Z) and 02:00-03:00 CET (01:00Z-02:00Z) = 5 h. Sat + Sun are 24 + 25 h,
    minus 5 h = 44 h."""
    c = cal(BERLIN, ALWAYS, breaks={"2024-10-26": ["23:00-03:00"]})
    assert c.elapsed(at("2024-10-25T22:00Z"), at("2024-10-27T23:00Z")) == 44 * H


# ---------------------------------------------------------------------------- input validation


NAIVE = datetime(2024, 1, 8, 10, 0)
AWARE = datetime(2024, 1, 8, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.add(NAIVE, H), id="add"),
        pytest.param(lambda c: c.reach(NAIVE, H), id="reach"),
        pytest.param(lambda c: c.elapsed(NAIVE, AWARE), id="elapsed-start"),
        pytest.param(lambda c: c.elapsed(AWARE, NAIVE), id="elapsed-end"),
        pytest.param(lambda c: c.is_open(NAIVE), id="is_open"),
        pytest.param(lambda c: c.add(AWARE, H, [(NAIVE, AWARE)]), id="add-pause"),
        pytest.param(lambda c: c.reach(AWARE, H, [(AWARE, NAIVE)]), id="reach-pause"),
        pytest.param(lambda c: c.elapsed(AWARE, AWARE + H, [(NAIVE, NAIVE)]), id="elapsed-pause"),
    ],
)
def test_naive_datetimes_are_rejected(call) -> None:
    """Naive datetimes have no instant; every boundary raises ValueError naming the value."""
    with pytest.raises(ValueError, match="naive"):
        call(cal(BERLIN, NINE_TO_FIVE))


class _NoOffset(tzinfo):
    """A tzinfo that gives no UTC offset: by Python's definition such a datetime is naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


NAIVE_WITH_TZINFO = datetime(2024, 1, 8, 10, 0, tzinfo=_NoOffset())


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.add(NAIVE_WITH_TZINFO, H), id="add"),
        pytest.param(lambda c: c.reach(NAIVE_WITH_TZINFO, H), id="reach"),
        pytest.param(lambda c: c.elapsed(NAIVE_WITH_TZINFO, AWARE), id="elapsed"),
        pytest.param(lambda c: c.is_open(NAIVE_WITH_TZINFO), id="is_open"),
    ],
)
def test_tzinfo_without_offset_counts_as_naive(call) -> None:
    """A datetime whose tzinfo returns no offset is naive (datetime docs): ValueError too."""
    with pytest.raises(ValueError, match="naive"):
        call(cal(BERLIN, NINE_TO_FIVE))


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.add(AWARE, -H), id="add"),
        pytest.param(lambda c: c.add(AWARE, timedelta(microseconds=-1)), id="add-1us"),
        pytest.param(lambda c: c.reach(AWARE, -H), id="reach"),
        pytest.param(
            lambda c: c.add_many(
                np.array(["2024-01-08T10:00"], dtype="datetime64[us]"), np.timedelta64(-1, "h")
            ),
            id="add_many",
        ),
    ],
)
def test_negative_durations_are_rejected(call) -> None:
    with pytest.raises(ValueError, match="negative"):
        call(cal(BERLIN, NINE_TO_FIVE))


def test_pause_ending_before_it_starts_is_rejected() -> None:
    with pytest.raises(ValueError, match="pause"):
        cal(BERLIN, NINE_TO_FIVE).elapsed(AWARE, AWARE + H, [(AWARE + H, AWARE)])


# ---------------------------------------------------------------------------- no business time


def _every_day(first: date, last: date) -> frozenset[date]:
    return frozenset(first + timedelta(days=k) for k in range((last - first).days + 1))


CLOSED_FOR_DECADES = _every_day(date(2020, 1, 1), date(2049, 12, 31))


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.add(AWARE, H), id="add"),
        pytest.param(lambda c: c.add(AWARE, timedelta(0)), id="add-zero"),
        pytest.param(lambda c: c.reach(AWARE, H), id="reach"),
        pytest.param(lambda c: c.next_open(AWARE), id="next_open"),
        pytest.param(lambda c: c.add(AWARE, H, [(AWARE, AWARE + H)]), id="add-paused"),
        pytest.param(
            lambda c: c.add_many(
                np.array(["2024-01-08T10:00"], dtype="datetime64[us]"), np.timedelta64(1, "h")
            ),
            id="add_many",
        ),
    ],
)
def test_calendar_closed_for_decades_raises_no_business_time(call) -> None:
    """Every day from 2020 to 2049 is a holiday: searching forward must stop with a clear
    NoBusinessTimeError (a CalendarError, a ValueError) naming the calendar, never loop."""
    c = cal(BERLIN, NINE_TO_FIVE, holidays=CLOSED_FOR_DECADES)
    with pytest.raises(NoBusinessTimeError, match="dst-test") as info:
        call(c)
    assert isinstance(info.value, CalendarError)
    assert isinstance(info.value, ValueError)


def test_closed_calendar_still_measures_zero_elapsed() -> None:
    """Measuring needs no search: a closed calendar has zero business time between instants."""
    c = cal(BERLIN, NINE_TO_FIVE, holidays=CLOSED_FOR_DECADES)
    assert c.elapsed(AWARE, AWARE + 400 * 24 * H) == timedelta(0)
    assert not c.is_open(AWARE)


@pytest.mark.parametrize(
    ("last_closed", "expected"),
    [
        # 2027-01-01 is a Friday, 2032-01-01 a Thursday, 2035-01-01 a Monday.
        pytest.param(date(2026, 12, 31), "2027-01-01T09:00Z", id="3-years"),
        pytest.param(date(2031, 12, 31), "2032-01-01T09:00Z", id="8-years"),
        pytest.param(date(2034, 12, 31), "2035-01-01T09:00Z", id="11-years"),
    ],
)
def test_long_closure_within_the_horizon_is_searched_through(
    last_closed: date, expected: str
) -> None:
    """Every day from 2024-01-01 to ``last_closed`` is a holiday. The first opening after
    that is New Year's Day 09:00 CET = 08:00Z (no country holidays configured), so + 1 h is
    09:00Z. All of these lie inside the 12-year search horizon, so none may raise."""
    c = cal(BERLIN, NINE_TO_FIVE, holidays=_every_day(date(2024, 1, 1), last_closed))
    assert c.add(at("2024-01-01T00:00Z"), H) == at(expected)


def test_old_queries_do_not_shrink_the_search_horizon() -> None:
    """Mon-Fri 09-17 Berlin. Wed 2027-12-29 12:00Z (13:00 CET) + 24 h: 4 h on Wednesday,
    8 h Thu 12-30, 8 h Fri 12-31, then Mon 2028-01-03 09:00 CET + 4 h = 13:00 CET = 12:00Z.
    A calendar that has first measured a week back in 2000 (Mon 01-03 to Mon 01-10: 40 h)
    must give the same answer as a fresh one, not claim there is no business time."""
    c = cal(BERLIN, NINE_TO_FIVE)
    assert c.elapsed(at("2000-01-03T00:00Z"), at("2000-01-10T00:00Z")) == 40 * H
    assert c.add(at("2027-12-29T12:00Z"), 24 * H) == at("2028-01-03T12:00Z")
    assert c.reach(at("2027-12-29T12:00Z"), 24 * H) == at("2028-01-03T12:00Z")


def test_batches_pass_nat_through() -> None:
    """A missing start (NaT) has no deadline: add_many and reach_many return NaT for it (not
    an arbitrary instant) and compute the others normally; elapsed_many marks it with the
    int64 NaT value. Mon 2024-01-08 10:00Z is 11:00 CET; + 1 h is 11:00Z."""
    c = cal(BERLIN, NINE_TO_FIVE)
    starts = np.array(["NaT", "2024-01-08T10:00"], dtype="datetime64[us]")
    for out in (
        c.add_many(starts, np.timedelta64(1, "h")),
        c.reach_many(starts, np.timedelta64(1, "h")),
    ):
        assert np.isnat(out[0])
        assert out[1] == np.datetime64("2024-01-08T11:00", "us")
    ends = np.array(["2024-01-08T12:00", "2024-01-08T12:00"], dtype="datetime64[us]")
    spans = c.elapsed_many(starts, ends)
    assert spans[0] == np.iinfo(np.int64).min
    assert spans[1] == 2 * 3600 * 1_000_000
