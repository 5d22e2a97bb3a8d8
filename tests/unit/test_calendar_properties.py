"""Properties of business-time arithmetic, checked with hypothesis.

The central property compares ``elapsed`` with a brute-force oracle that shares nothing with
the implementation: it steps minute by minute through UTC instants, reads each one's local
wall clock with zoneinfo, and decides from first principles (DESIGN.md section 4) whether the
reading lies in an interval of its local date, or in the overnight part of an interval of the
previous date, minus holidays and dated breaks. A holiday closes its whole local date, or, on a
calendar with ``cancel: shift``, the intervals that belong to it. Calendars are minute-granular
and the zones used have whole-minute offsets in the years drawn, so whole UTC minutes are either
all business time or none of it.

The other properties are algebraic: ``add`` is exact and the latest such instant, ``reach`` is
exact and the earliest, ``elapsed`` is additive and antisymmetric, ``add`` is monotone, pauses
are subtracted in business time, the batch forms agree with the scalar ones, and ``is_open``
agrees with ``elapsed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import get_args
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sladaemon.calendar import BusinessCalendar, CalendarSpec, parse_breaks, parse_weekly_hours
from sladaemon.calendar.business import HolidaysCancel

DAY_MIN = 24 * 60
WEEK_MIN = 7 * DAY_MIN
US = timedelta(microseconds=1)
SECOND = timedelta(seconds=1)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Zones and the years drawn for each (Sao Paulo observed DST until 2019).
ZONES: dict[str, tuple[int, int]] = {
    "Europe/Berlin": (2023, 2025),
    "America/New_York": (2023, 2025),
    "Australia/Lord_Howe": (2023, 2025),
    "America/Sao_Paulo": (2015, 2018),
    "America/Havana": (2023, 2025),
    "Asia/Kolkata": (2023, 2025),
    "UTC": (2023, 2025),
}

# Minutes of the day that make boundaries interesting around DST transitions.
NOTABLE_MINUTES = (0, 30, 60, 90, 120, 150, 180, 540, 1020, 1320, 1380, 1410, 1439)


# ---------------------------------------------------------------------------- the oracle side


@dataclass(frozen=True)
class Span:
    """A business range of local wall-clock minutes belonging to ``day`` (0 = Monday), from
    ``start`` to ``end`` minutes after that day's local midnight; ``end`` > 1440 runs into the
    next day."""

    day: int
    start: int
    end: int


@dataclass(frozen=True)
class Case:
    zone: str
    spans: tuple[Span, ...]
    holidays: frozenset[date]
    breaks: tuple[tuple[date, int, int], ...]  # (date, start, end) like Span, dated
    anchor: datetime  # a transition (or another notable instant) the instants cluster around
    cancel: HolidaysCancel = "day"

    @property
    def weekly_seconds(self) -> int:
        return sum(s.end - s.start for s in self.spans) * 60

    @property
    def calendar(self) -> BusinessCalendar:
        return build(self.zone, self.spans, self.holidays, self.breaks, self.cancel)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _range_text(start: int, end: int, midnight_as_zero: bool = False) -> str:
    """The configuration spelling of a range: overnight ranges end at the next day's time."""
    if end == DAY_MIN and midnight_as_zero and start > 0:
        return f"{_hhmm(start)}-00:00"
    if end <= DAY_MIN:
        return f"{_hhmm(start)}-{_hhmm(end)}"
    return f"{_hhmm(start)}-{_hhmm(end - DAY_MIN)}"


@cache
def build(
    zone: str,
    spans: tuple[Span, ...],
    holidays: frozenset[date],
    breaks: tuple[tuple[date, int, int], ...],
    cancel: HolidaysCancel = "day",
) -> BusinessCalendar:
    hours: dict[str, list[str]] = {}
    for k, s in enumerate(spans):
        hours.setdefault(DAY_NAMES[s.day], []).append(_range_text(s.start, s.end, k % 2 == 1))
    per_date: dict[str, list[str]] = {}
    for day, start, end in breaks:
        per_date.setdefault(day.isoformat(), []).append(_range_text(start, end))
    break_spec: dict[object, object] = dict(per_date.items())
    spec = CalendarSpec(
        name="property",
        timezone=zone,
        weekly=parse_weekly_hours(hours),
        holiday_dates=holidays,
        holidays_cancel=cancel,
        breaks=parse_breaks(break_spec),
    )
    return BusinessCalendar(spec)


def _covers(start: int, end: int, own_day: bool, minute: int) -> bool:
    """Whether a range of one date covers ``minute`` of that date (own_day) or of the next."""
    if own_day:
        return start <= minute < min(end, DAY_MIN)
    return minute < end - DAY_MIN


def oracle_is_business(case: Case, t: datetime) -> bool:
    """Decide one instant from its local wall-clock reading, as DESIGN.md section 4 says."""
    local = t.astimezone(ZoneInfo(case.zone))
    today = local.date()
    yesterday = today - timedelta(days=1)
    minute = local.hour * 60 + local.minute
    if case.cancel == "day" and today in case.holidays:
        return False
    in_hours = any(
        _covers(s.start, s.end, own, minute)
        for day, own in ((today, True), (yesterday, False))
        if case.cancel == "day" or day not in case.holidays
        for s in case.spans
        if s.day == day.weekday()
    )
    if not in_hours:
        return False
    return not any(
        _covers(start, end, own, minute)
        for day, own in ((today, True), (yesterday, False))
        for bday, start, end in case.breaks
        if bday == day
    )


def oracle_minutes(case: Case, a: datetime, b: datetime) -> int:
    """Business minutes in [a, b), both whole UTC minutes, counted one minute at a time."""
    count = 0
    t = a
    while t < b:
        count += oracle_is_business(case, t)
        t += timedelta(minutes=1)
    return count


# ---------------------------------------------------------------------------- strategies


@cache
def anchors(zone: str) -> tuple[datetime, ...]:
    """UTC offset transitions of the zone in its years (to the second), found with zoneinfo by
    a daily scan and bisection; plus each year's local New Year, so zones without DST still
    get anchors."""
    z = ZoneInfo(zone)
    first, last = ZONES[zone]
    out = [datetime(y, 1, 1, tzinfo=z).astimezone(UTC) for y in range(first, last + 1)]
    t = datetime(first, 1, 1, tzinfo=UTC)
    end = datetime(last + 1, 1, 1, tzinfo=UTC)
    while t < end:
        nxt = t + timedelta(days=1)
        if t.astimezone(z).utcoffset() != nxt.astimezone(z).utcoffset():
            lo, hi = t, nxt
            while hi - lo > SECOND:
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid.astimezone(z).utcoffset() == lo.astimezone(z).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t = nxt
    return tuple(sorted(out))


def _minute_of_week() -> st.SearchStrategy[int]:
    minute = st.one_of(st.sampled_from(NOTABLE_MINUTES), st.integers(0, DAY_MIN - 1))
    return st.builds(lambda day, m: day * DAY_MIN + m, st.integers(0, 7), minute)


@st.composite
def random_spans(draw: st.DrawFn) -> tuple[Span, ...]:
    """Non-overlapping weekly ranges: sorted distinct points paired up, each range at most
    24 h long; the last may run past Sunday midnight into Monday, up to the first range."""
    points = sorted(set(draw(st.lists(_minute_of_week(), min_size=2, max_size=10))))
    if len(points) % 2:
        points.pop()
    pairs = [(points[k], min(points[k + 1], points[k] + DAY_MIN)) for k in range(0, len(points), 2)]
    pairs = [(s, e) for s, e in pairs if s < WEEK_MIN]
    if not pairs:
        return (Span(0, 9 * 60, 17 * 60),)
    s, e = pairs[-1]
    pairs[-1] = (s, min(e, WEEK_MIN + pairs[0][0]))
    spans = []
    for s, e in pairs:
        day = s // DAY_MIN
        spans.append(Span(day, s - day * DAY_MIN, e - day * DAY_MIN))
    return tuple(spans)


def _every_day(start: int, end: int) -> tuple[Span, ...]:
    return tuple(Span(d, start, end) for d in range(7))


PRESETS: tuple[tuple[Span, ...], ...] = (
    tuple(Span(d, 9 * 60, 17 * 60) for d in range(5)),  # office hours
    _every_day(0, DAY_MIN),  # 24/7, touching days
    _every_day(22 * 60, 30 * 60),  # nightly 22:00-06:00
    _every_day(60, 180) + _every_day(23 * 60, 24 * 60 + 30),  # around the usual transitions
    tuple(Span(d, 8 * 60, 12 * 60) for d in range(5))
    + tuple(Span(d, 13 * 60, 24 * 60) for d in range(5)),  # split shift ending at 24:00
    (Span(5, 22 * 60, 22 * 60 + DAY_MIN),),  # one 24 h overnight range, Sat 22:00-22:00
    (Span(6, 20 * 60, 26 * 60),),  # Sunday night into Monday
)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    zone = draw(st.sampled_from(sorted(ZONES)))
    spans = draw(st.one_of(st.sampled_from(PRESETS), random_spans()))
    anchor = draw(st.sampled_from(anchors(zone)))
    local_day = anchor.astimezone(ZoneInfo(zone)).date()
    near = st.builds(lambda k: local_day + timedelta(days=k), st.integers(-2, 2))
    holidays = frozenset(draw(st.lists(near, max_size=2)))
    breaks: list[tuple[date, int, int]] = []
    if draw(st.booleans()):
        start = draw(st.one_of(st.sampled_from(NOTABLE_MINUTES), st.integers(0, DAY_MIN - 1)))
        length = draw(st.integers(1, DAY_MIN))
        breaks.append((draw(near), start, start + length))
    cancel = draw(st.sampled_from(get_args(HolidaysCancel)))
    return Case(zone, spans, holidays, tuple(breaks), anchor, cancel)


def instants(
    case: Case, *, micro: bool = True, spread_days: int = 3
) -> st.SearchStrategy[datetime]:
    """Instants within ``spread_days`` of the case's anchor; whole seconds or microseconds."""
    spread = spread_days * 86_400
    seconds = st.integers(-spread, spread)
    if not micro:
        return st.builds(lambda s: case.anchor + timedelta(seconds=s), seconds)
    fraction = st.one_of(st.just(0), st.integers(0, 999_999))
    return st.builds(
        lambda s, f: case.anchor + timedelta(seconds=s, microseconds=f), seconds, fraction
    )


def durations(case: Case) -> st.SearchStrategy[timedelta]:
    """Durations up to three days, or three weeks' worth of the calendar if that is less."""
    top = min(3 * 86_400, 3 * case.weekly_seconds)
    whole = st.one_of(
        st.just(0), st.sampled_from([60, 1800, 3600, 8 * 3600]), st.integers(0, top)
    ).map(lambda s: min(s, top))
    fraction = st.one_of(st.just(0), st.integers(0, 999_999))
    return st.builds(lambda s, f: timedelta(seconds=s, microseconds=f), whole, fraction)


def pauses(case: Case) -> st.SearchStrategy[list[tuple[datetime, datetime]]]:
    pause = st.tuples(instants(case), st.integers(0, 2 * 86_400)).map(
        lambda p: (p[0], p[0] + timedelta(seconds=p[1]))
    )
    return st.lists(pause, max_size=4)


def merged(ranges: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(r for r in ranges if r[1] > r[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _us(t: datetime) -> int:
    delta = t - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _td_us(d: timedelta) -> int:
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


# ---------------------------------------------------------------------------- properties


@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_elapsed_matches_minute_by_minute_oracle(data: st.DataObject) -> None:
    """elapsed(a, b) counts exactly the UTC minutes whose local reading is business time."""
    case = data.draw(cases())
    start = data.draw(st.integers(-2 * DAY_MIN, DAY_MIN))
    length = data.draw(st.integers(0, 2 * DAY_MIN))
    a = case.anchor.replace(second=0) + timedelta(minutes=start)
    b = a + timedelta(minutes=length)
    expected = timedelta(minutes=oracle_minutes(case, a, b))
    c = case.calendar
    assert c.elapsed(a, b) == expected
    assert c.elapsed(b, a) == -expected
    assert c.is_open(a) == oracle_is_business(case, a)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_add_is_exact_and_the_latest_such_instant(data: st.DataObject) -> None:
    """elapsed(a, add(a, d)) == d, and one microsecond later elapsed exceeds d."""
    case = data.draw(cases())
    a, d = data.draw(instants(case)), data.draw(durations(case))
    c = case.calendar
    t = c.add(a, d)
    assert t.utcoffset() == timedelta(0)
    assert t >= a
    assert c.elapsed(a, t) == d
    assert c.elapsed(a, t + US) > d


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_reach_is_exact_and_the_earliest_such_instant(data: st.DataObject) -> None:
    """elapsed(a, reach(a, d)) == d; for d > 0 one microsecond earlier it is still below d;
    reach never comes after add."""
    case = data.draw(cases())
    a, d = data.draw(instants(case)), data.draw(durations(case))
    c = case.calendar
    r = c.reach(a, d)
    assert a <= r <= c.add(a, d)
    assert c.elapsed(a, r) == d
    if d > timedelta(0):
        assert c.elapsed(a, r - US) < d
    else:
        assert r == a


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_elapsed_is_additive_and_antisymmetric(data: st.DataObject) -> None:
    case = data.draw(cases())
    a, b, m = (data.draw(instants(case)) for _ in range(3))
    c = case.calendar
    assert c.elapsed(a, m) + c.elapsed(m, b) == c.elapsed(a, b)
    assert c.elapsed(a, b) == -c.elapsed(b, a)
    assert c.elapsed(a, a) == timedelta(0)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_add_and_reach_are_monotone(data: st.DataObject) -> None:
    """A later start or a longer duration never gives an earlier deadline or ladder instant."""
    case = data.draw(cases())
    a1, a2 = sorted((data.draw(instants(case)), data.draw(instants(case))))
    d1, d2 = sorted((data.draw(durations(case)), data.draw(durations(case))))
    c = case.calendar
    assert c.add(a1, d1) <= c.add(a2, d1)
    assert c.add(a1, d1) <= c.add(a1, d2)
    assert c.reach(a1, d1) <= c.reach(a2, d1)
    assert c.reach(a1, d1) <= c.reach(a1, d2)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_add_and_reach_with_pauses(data: st.DataObject) -> None:
    """With pauses p: elapsed(a, add(a, d, p), p) == d and it is the latest such instant;
    reach(a, d, p) is the earliest."""
    case = data.draw(cases())
    a, d, p = data.draw(instants(case)), data.draw(durations(case)), data.draw(pauses(case))
    c = case.calendar
    t = c.add(a, d, p)
    assert c.elapsed(a, t, p) == d
    assert c.elapsed(a, t + US, p) > d
    r = c.reach(a, d, p)
    assert a <= r <= t
    assert c.elapsed(a, r, p) == d
    if d > timedelta(0):
        assert c.elapsed(a, r - US, p) < d


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_pauses_subtract_business_time_inside_their_union(data: st.DataObject) -> None:
    """elapsed(a, b, p) == elapsed(a, b) minus the business time inside the merged pauses
    (clipped to the span), whatever the order of a and b; overlapping pauses count once."""
    case = data.draw(cases())
    a, b, p = data.draw(instants(case)), data.draw(instants(case)), data.draw(pauses(case))
    c = case.calendar
    lo, hi = min(a, b), max(a, b)
    paused = timedelta(0)
    for pa, pb in merged(p):
        if max(pa, lo) < min(pb, hi):
            paused += c.elapsed(max(pa, lo), min(pb, hi))
    sign = 1 if b >= a else -1
    assert c.elapsed(a, b, p) == c.elapsed(a, b) - sign * paused
    assert c.elapsed(a, b, p + p) == c.elapsed(a, b, p)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_batch_forms_equal_the_scalar_forms(data: st.DataObject) -> None:
    """add_many / reach_many / elapsed_many agree element-wise with add / reach / elapsed,
    for datetime64[us] and for int64 microseconds."""
    case = data.draw(cases())
    n = data.draw(st.integers(1, 12))
    starts = [data.draw(instants(case)) for _ in range(n)]
    ends = [data.draw(instants(case)) for _ in range(n)]
    ds = [data.draw(durations(case)) for _ in range(n)]
    c = case.calendar
    s_us = np.array([_us(t) for t in starts], np.int64)
    e_us = np.array([_us(t) for t in ends], np.int64)
    d_us = np.array([_td_us(d) for d in ds], np.int64)
    s_dt = s_us.view("datetime64[us]")

    added = c.add_many(s_dt, d_us.view("timedelta64[us]"))
    assert added.dtype == np.dtype("datetime64[us]")
    assert added.view(np.int64).tolist() == [
        _us(c.add(t, d)) for t, d in zip(starts, ds, strict=True)
    ]
    assert c.add_many(s_us, d_us).tolist() == added.view(np.int64).tolist()

    reached = c.reach_many(s_dt, d_us)
    assert reached.view(np.int64).tolist() == [
        _us(c.reach(t, d)) for t, d in zip(starts, ds, strict=True)
    ]

    spans = c.elapsed_many(s_dt, e_us.view("datetime64[us]"))
    assert spans.tolist() == [_td_us(c.elapsed(a, b)) for a, b in zip(starts, ends, strict=True)]


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_is_open_iff_the_next_second_is_business_time(data: st.DataObject) -> None:
    """Calendars are second-aligned, so t is open exactly when [t, t + 1 s) is all business."""
    case = data.draw(cases())
    t = data.draw(instants(case, micro=False))
    c = case.calendar
    assert c.is_open(t) == (c.elapsed(t, t + SECOND) == SECOND)


def test_microseconds_stay_exact_far_from_the_epoch() -> None:
    """The module promises exact integer arithmetic. On a 24/7 UTC calendar business time is
    real time, so add(t, 0) is t and one microsecond later exactly 1 µs has elapsed, also for
    t = 2300-01-01 00:00:00.000001Z (a timestamp of about 1.04e10 s, where a double's spacing
    is about 2 µs)."""
    c = build("UTC", PRESETS[1], frozenset(), ())
    t = datetime(2300, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert c.add(t, timedelta(0)) == t
    assert c.elapsed(t, t + US) == US
