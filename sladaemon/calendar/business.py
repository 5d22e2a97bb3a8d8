"""Business-time arithmetic on a compiled calendar.

A calendar is compiled, a few years at a time and only when needed, into sorted disjoint UTC
intervals (integer microseconds since the epoch) with the cumulative business time before each
one. On that index:

* ``position(t)`` — business microseconds from a fixed origin up to ``t`` (non-decreasing);
* ``elapsed(a, b) = position(b) - position(a)`` minus paused business time (signed);
* ``add(t, d)`` — the *latest* instant whose elapsed business time since ``t`` is ``<= d``; at a
  closing boundary that is the next opening (Mon 09:00 + 8 h on 09-17 is Tue 09:00);
* ``reach(t, d)`` — the *earliest* such instant where elapsed reaches ``d``, used for ladder
  levels below 100 %.

Each scalar operation is two binary searches on plain lists; the ``*_many`` forms do the same
with ``numpy.searchsorted`` over arrays. Arithmetic is exact (integers), so boundaries never
depend on float rounding.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

import holidays as holidays_lib
import numpy as np
import numpy.typing as npt

from sladaemon.calendar.hours import TimeRange, WeeklyHours
from sladaemon.calendar.zone import OffsetPeriods, local_midnight, merge, subtract
from sladaemon.errors import CalendarError, NoBusinessTimeError

US = 1_000_000
DAY_US = 86_400 * US
MAX_SEARCH_YEARS = 12  # beyond this without business time, the calendar is unusable
_FAR = 2**62  # sentinel instant after every real one
NAT = np.iinfo(np.int64).min  # numpy's NaT as int64 µs

Pause = tuple[datetime, datetime]
IntArray = npt.NDArray[np.int64]

# What a holiday closes: its whole local day (the default, as helpdesks count it), or the
# shifts that start on it, overnight parts included.
HolidaysCancel = Literal["day", "shift"]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# Below 2**32 s (year 2106) a double's spacing is under 0.5 µs, so float seconds round-trip to
# the exact microsecond; further out the slower integer path is used.
_FLOAT_EXACT = 2**32 * US


def to_us(t: datetime) -> int:
    """Aware datetime -> integer microseconds since the epoch. Naive datetimes are rejected."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t.isoformat()} (business time needs an aware one)")
    us = round(t.timestamp() * US)
    if -_FLOAT_EXACT < us < _FLOAT_EXACT:
        return us
    return (t - _EPOCH) // _ONE_US  # far from the epoch: exact, slower


def span_us(d: timedelta) -> int:
    """A duration in integer microseconds, exactly."""
    return (d.days * 86_400 + d.seconds) * US + d.microseconds


def from_us(us: int) -> datetime:
    if -_FLOAT_EXACT < us < _FLOAT_EXACT:
        return datetime.fromtimestamp(us / US, UTC)
    return _EPOCH + timedelta(microseconds=us)


def duration_us(d: timedelta) -> int:
    return (d.days * 86_400 + d.seconds) * US + d.microseconds


@dataclass(frozen=True)
class CalendarSpec:
    """Everything that defines a business calendar; plain values, already validated."""

    name: str
    timezone: str
    weekly: WeeklyHours
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    holiday_dates: frozenset[date] = frozenset()
    holidays_cancel: HolidaysCancel = "day"
    breaks: Mapping[date, tuple[TimeRange, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Accounting:
    """How business time between two instants was counted (for ``explain``)."""

    intervals: tuple[tuple[datetime, datetime], ...]  # business intervals counted, clipped
    paused: tuple[tuple[datetime, datetime], ...]  # business time removed by pauses
    closed_days: tuple[tuple[date, str], ...]  # holidays and breaks met on the way
    business: timedelta


class BusinessCalendar:
    """A compiled business-hours calendar. Build it once, query it many times."""

    def __init__(self, spec: CalendarSpec) -> None:
        if spec.weekly.empty:
            raise CalendarError(f"calendar {spec.name!r} has no business hours")
        try:
            self.zone = ZoneInfo(spec.timezone)
        except Exception:
            raise CalendarError(f"unknown time zone {spec.timezone!r}") from None
        if spec.holidays_cancel not in get_args(HolidaysCancel):
            raise CalendarError(
                f"calendar {spec.name!r}: holidays cancel {spec.holidays_cancel!r} "
                "(use 'day' or 'shift')"
            )
        self.spec = spec
        self.name = spec.name
        self._holiday_cache: dict[int, dict[date, str]] = {}
        self._year_lo = 0
        self._year_hi = 0
        self._lo = 0  # trusted UTC range [lo, hi) of the compiled index
        self._hi = 0
        self._origin: int | None = None  # instant whose position is 0, fixed once chosen
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._cum: list[int] = []  # business µs before interval i (stable across extensions)
        self._cum_end: list[int] = []
        # The same index in float seconds, for the whole-second fast path of ``add``.
        self._starts_s: list[float] = []
        self._ends_s: list[float] = []
        self._cum_s: list[float] = []
        self._lo_s = 0.0
        self._hi_s = 0.0
        self._np_starts: IntArray = np.zeros(0, np.int64)
        self._np_ends: IntArray = np.zeros(0, np.int64)
        self._np_cum: IntArray = np.zeros(0, np.int64)
        self._np_cum_end: IntArray = np.zeros(0, np.int64)

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.name!r}, {self.spec.timezone})"

    # ------------------------------------------------------------------ public, datetimes

    def add(self, start: datetime, duration: timedelta, pauses: Iterable[Pause] = ()) -> datetime:
        """Deadline: the latest instant with elapsed business time since ``start`` <= duration."""
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"naive datetime {start.isoformat()}")
        if not pauses and start.microsecond == 0 and duration.microseconds == 0:
            # Fast path, whole seconds: every value below is an integer-valued float (< 2**53),
            # so this float arithmetic is exact and agrees with the integer path.
            ts_s = start.timestamp()
            if self._lo_s <= ts_s < self._hi_s and duration.days >= 0:
                cum_s = self._cum_s
                i = bisect_right(self._ends_s, ts_s)
                s = self._starts_s[i]
                target = cum_s[i] + (ts_s - s if ts_s > s else 0.0) + duration.total_seconds()
                j = bisect_right(cum_s, target) - 1
                out = self._starts_s[j] + target - cum_s[j]
                if out < self._hi_s:
                    return datetime.fromtimestamp(out, UTC)
        ts = to_us(start)
        n = (duration.days * 86_400 + duration.seconds) * US + duration.microseconds
        if n < 0:
            raise ValueError(f"negative duration {duration}")
        if pauses:
            return from_us(self.add_us(ts, n, _pause_list(pauses)))
        return from_us(self.add_us(ts, n))

    def reach(self, start: datetime, duration: timedelta, pauses: Iterable[Pause] = ()) -> datetime:
        """The earliest instant at which elapsed business time since ``start`` reaches it."""
        n = duration_us(duration)
        if n < 0:
            raise ValueError(f"negative duration {duration}")
        return from_us(self.reach_us(to_us(start), n, _pause_list(pauses)))

    def elapsed(self, start: datetime, end: datetime, pauses: Iterable[Pause] = ()) -> timedelta:
        """Business time from ``start`` to ``end`` minus pauses; negative when end < start."""
        us = self.elapsed_us(to_us(start), to_us(end), _pause_list(pauses))
        return timedelta(microseconds=us)

    def is_open(self, t: datetime) -> bool:
        ts = to_us(t)
        self._cover(ts, ts)
        i = bisect_right(self._starts, ts) - 1
        return i >= 0 and ts < self._ends[i]

    def next_open(self, t: datetime) -> datetime:
        """``t`` itself when open, else the next opening."""
        return self.add(t, timedelta(0))

    def open_window(self, t: datetime) -> tuple[datetime, datetime] | None:
        """The opening and closing of the business hours ``t`` falls in; None when closed.
        A window that does not close within the compiled years raises NoBusinessTimeError
        like a calendar that never opens."""
        ts = to_us(t)
        while True:
            self._cover(ts, ts)
            i = bisect_right(self._starts, ts) - 1
            if i < 0 or ts >= self._ends[i]:
                return None
            if self._ends[i] < self._hi:
                return from_us(self._starts[i]), from_us(self._ends[i])
            self._extend_forward(ts)

    def next_change(self, t: datetime) -> datetime:
        """The first instant after ``t`` at which the calendar opens or closes."""
        window = self.open_window(t)
        return window[1] if window is not None else self.next_open(t)

    # ------------------------------------------------------------------ public, microseconds

    def position(self, ts: int) -> int:
        """Business µs from the calendar's origin to ``ts``."""
        self._cover(ts, ts)
        return self._position(ts)

    def add_us(self, ts: int, n: int, pauses: Sequence[tuple[int, int]] = ()) -> int:
        """``add`` on integer microseconds."""
        return self._from_position(ts, n, pauses, latest=True)

    def reach_us(self, ts: int, n: int, pauses: Sequence[tuple[int, int]] = ()) -> int:
        """``reach`` on integer microseconds."""
        return max(ts, self._from_position(ts, n, pauses, latest=False))

    def elapsed_us(self, a: int, b: int, pauses: Sequence[tuple[int, int]] = ()) -> int:
        if b < a:
            return -self.elapsed_us(b, a, pauses)
        self._cover(a, b)
        total = self._position(b) - self._position(a)
        for pa, pb in pauses:
            lo, hi = max(pa, a), min(pb, b)
            if lo < hi:
                total -= self._position(hi) - self._position(lo)
        return total

    # ------------------------------------------------------------------ public, numpy batches

    def add_many(self, starts: npt.NDArray[Any], durations: npt.ArrayLike) -> npt.NDArray[Any]:
        """Vectorised ``add``: datetime64 (or int64 µs) starts, durations as timedelta64 or
        int64 µs. Returns the same kind as ``starts``."""
        return self._many(starts, durations, latest=True)

    def reach_many(self, starts: npt.NDArray[Any], durations: npt.ArrayLike) -> npt.NDArray[Any]:
        return self._many(starts, durations, latest=False)

    def elapsed_many(self, starts: npt.NDArray[Any], ends: npt.NDArray[Any]) -> IntArray:
        """Signed business µs from each start to each end (NAT where either is NaT)."""
        a, b = np.broadcast_arrays(_as_us(starts), _as_us(ends))
        missing = (a == NAT) | (b == NAT)
        out = np.full(a.shape, NAT, np.int64)
        a, b = a[~missing], b[~missing]
        if a.size:
            self._cover(int(min(a.min(), b.min())), int(max(a.max(), b.max())))
            out[~missing] = self._positions(b) - self._positions(a)
        return out

    # ------------------------------------------------------------------ explain support

    def account(self, start: datetime, end: datetime, pauses: Iterable[Pause] = ()) -> Accounting:
        """The intervals, pauses and closed days behind ``elapsed(start, end, pauses)``."""
        a, b = to_us(start), to_us(end)
        if b < a:
            a, b = b, a
        self._cover(a, b)
        pause_list = _pause_list(pauses)
        i = bisect_right(self._ends, a)
        counted: list[tuple[int, int]] = []
        while i < len(self._starts) and self._starts[i] < b:
            counted.append((max(self._starts[i], a), min(self._ends[i], b)))
            i += 1
        removed = _intersect(counted, [(max(p, a), min(q, b)) for p, q in pause_list if p < b])
        local_a = datetime.fromtimestamp(a / US, self.zone).date()
        local_b = datetime.fromtimestamp(b / US, self.zone).date()
        closed: list[tuple[date, str]] = []
        eve = local_a - timedelta(days=1)
        day = eve if self._closes_after_midnight(eve) else local_a
        while day <= local_b and len(closed) < 1000:
            reason = self._closed_reason(day)
            if reason:
                closed.append((day, reason))
            day += timedelta(days=1)
        return Accounting(
            intervals=tuple((from_us(p), from_us(q)) for p, q in counted),
            paused=tuple((from_us(p), from_us(q)) for p, q in removed),
            closed_days=tuple(closed),
            business=timedelta(microseconds=self.elapsed_us(a, b, pause_list)),
        )

    def holidays_in(self, year: int) -> dict[date, str]:
        """The holidays of one year, with their names."""
        if year not in self._holiday_cache:
            found: dict[date, str] = {}
            if self.spec.holiday_country:
                table = holidays_lib.country_holidays(
                    self.spec.holiday_country,
                    subdiv=self.spec.holiday_subdivision,
                    years=year,
                )
                found.update({d: str(name) for d, name in table.items()})
            for d in self.spec.holiday_dates:
                if d.year == year:
                    found[d] = "holiday"
            self._holiday_cache[year] = found
        return self._holiday_cache[year]

    def _closes_after_midnight(self, day: date) -> bool:
        """Whether a closure of ``day`` reaches into the next day: a holiday cancelling an
        overnight shift under the shift rule, or an overnight break."""
        if self.spec.holidays_cancel == "shift" and day in self.holidays_in(day.year):
            return any(r.overnight for r in self.spec.weekly.days[day.weekday()])
        return any(r.overnight for r in self.spec.breaks.get(day, ()))

    def _closed_reason(self, day: date) -> str:
        holiday = self.holidays_in(day.year).get(day)
        if holiday:
            return f"holiday: {holiday}"
        if day in self.spec.breaks:
            return "break " + ", ".join(str(r) for r in self.spec.breaks[day])
        return ""

    # ------------------------------------------------------------------ internals

    def _position(self, ts: int) -> int:
        i = bisect_right(self._ends, ts)
        s = self._starts[i]
        return self._cum[i] + (ts - s if ts > s else 0)

    def _positions(self, ts: IntArray) -> IntArray:
        i = np.searchsorted(self._np_ends, ts, side="right")
        offset = np.maximum(ts - self._np_starts[i], 0)
        result: IntArray = self._np_cum[i] + offset
        return result

    def _from_position(
        self, ts: int, n: int, pauses: Sequence[tuple[int, int]], *, latest: bool
    ) -> int:
        """Walk ``n`` business µs forward from ``ts``, skipping paused business time.

        In position space each pause is a range; every paused range that begins before the
        target (or exactly at it, for a latest deadline) pushes the target by its length.
        """
        horizon = max([ts] + [pb for _, pb in pauses])
        while True:
            self._cover(ts, horizon)
            target = self._position(ts) + n
            for pa, pb in pauses:
                if pb <= ts:
                    continue
                paused_from = self._position(max(pa, ts))
                if paused_from > target or (paused_from == target and not latest):
                    break
                target += self._position(pb) - paused_from
            out = self._instant_at(target, latest)
            if out < self._hi:
                return out
            horizon = self._extend_forward(ts)

    def _instant_at(self, position: int, latest: bool) -> int:
        if latest:
            j = bisect_right(self._cum, position) - 1
            return self._starts[j] + position - self._cum[j]
        j = bisect_left(self._cum_end, position)
        return self._starts[j] + position - self._cum[j]

    def _many(
        self, starts: npt.NDArray[Any], durations: npt.ArrayLike, *, latest: bool
    ) -> npt.NDArray[Any]:
        is_datetime = np.issubdtype(np.asarray(starts).dtype, np.datetime64)
        ts = _as_us(starts)
        n = np.broadcast_to(_as_duration_us(durations), ts.shape)
        missing = (ts == NAT) | (n == NAT)
        if missing.any():  # NaT in, NaT out
            filled = np.full(ts.shape, NAT, np.int64)
            filled[~missing] = _as_us(self._many(ts[~missing], n[~missing], latest=latest))
            return filled.view("datetime64[us]") if is_datetime else filled
        if ts.size == 0:
            return np.asarray(starts).copy()
        if (n < 0).any():
            raise ValueError("negative duration in batch")
        lo, hi = int(ts.min()), int(ts.max())
        while True:
            self._cover(lo, hi)
            target = self._positions(ts) + n
            if latest:
                j = np.searchsorted(self._np_cum, target, side="right") - 1
            else:
                j = np.searchsorted(self._np_cum_end, target, side="left")
            out: IntArray = self._np_starts[j] + (target - self._np_cum[j])
            if not latest:
                out = np.maximum(out, ts)
            if int(out.max()) < self._hi:
                break
            hi = self._extend_forward(lo)
        return out.view("datetime64[us]") if is_datetime else out

    def _cover(self, lo: int, hi: int) -> None:
        if self._lo <= lo and hi < self._hi:
            return
        y_lo = _year_of(lo - 2 * DAY_US)
        y_hi = _year_of(hi + 2 * DAY_US) + 1
        if self._year_hi:
            y_lo, y_hi = min(y_lo, self._year_lo), max(y_hi, self._year_hi)
        else:
            y_lo, y_hi = y_lo - 1, y_hi + 1  # a little room around the first query
        self._compile(y_lo, y_hi)

    def _extend_forward(self, since: int) -> int:
        """Compile more years ahead of ``since`` (doubling the distance searched); give up when
        nothing opens within MAX_SEARCH_YEARS of it."""
        since_year = _year_of(since)
        limit = since_year + MAX_SEARCH_YEARS + 1
        if self._year_hi >= limit:
            raise NoBusinessTimeError(
                f"calendar {self.name!r} has no business time within {MAX_SEARCH_YEARS} years "
                f"after {from_us(since).isoformat()}"
            )
        searched = max(1, self._year_hi - since_year)
        self._compile(self._year_lo, min(limit, self._year_hi + searched))
        return self._hi - 1

    def _compile(self, year_lo: int, year_hi: int) -> None:
        first_day = date(year_lo, 1, 1) - timedelta(days=1)  # its overnight hours spill over
        last_day = date(year_hi, 1, 1) - timedelta(days=1)
        periods = OffsetPeriods(
            self.zone, local_midnight(first_day) - 86_400, local_midnight(last_day) + 2 * 86_400
        )
        closed: set[date] = set()
        for year in range(year_lo - 1, year_hi):
            closed.update(self.holidays_in(year))
        # The day rule keeps a holiday's shifts here and cuts its whole local day out below;
        # the shift rule drops the holiday's shifts, overnight parts included.
        day_rule = self.spec.holidays_cancel == "day"
        dropped: set[date] = set() if day_rule else closed
        weekly = self.spec.weekly.days
        pieces: list[tuple[float, float]] = []
        day = first_day
        one_day = timedelta(days=1)
        while day <= last_day:
            if day not in dropped:
                base = local_midnight(day)
                for r in weekly[day.weekday()]:
                    s, e = r.minute_span()
                    pieces.extend(periods.to_utc(base + s * 60, base + e * 60))
            day += one_day
        holes = self._holes(periods, first_day, last_day, closed if day_rule else set())
        intervals = subtract(merge(pieces), merge(holes))

        starts = [int(a) * US for a, _ in intervals] + [_FAR]
        ends = [int(b) * US for _, b in intervals] + [_FAR]
        cum = [0]
        for a, b in zip(starts[:-1], ends[:-1], strict=True):
            cum.append(cum[-1] + b - a)
        # Keep positions stable: the origin instant has position 0 in every compilation.
        self._starts, self._ends, self._cum = starts, ends, cum
        if self._origin is None:
            self._origin = starts[0] if len(starts) > 1 else 0
        shift = self._position(self._origin)
        self._cum = [c - shift for c in cum]
        self._cum_end = [c + e - s for c, s, e in zip(self._cum, starts, ends, strict=True)]
        self._cum_end[-1] = _FAR
        self._np_starts = np.array(starts, np.int64)
        self._np_ends = np.array(ends, np.int64)
        self._np_cum = np.array(self._cum, np.int64)
        self._np_cum_end = np.array(self._cum_end, np.int64)
        self._year_lo, self._year_hi = year_lo, year_hi
        # Trusted range: instants whose local date lies inside the compiled years.
        self._lo = (local_midnight(date(year_lo, 1, 1)) + 86_400) * US
        self._hi = (local_midnight(date(year_hi, 1, 1)) - 86_400) * US
        self._starts_s = [v / US for v in starts]
        self._ends_s = [v / US for v in ends]
        self._cum_s = [v / US for v in self._cum]
        self._lo_s, self._hi_s = self._lo / US, self._hi / US

    def _holes(
        self, periods: OffsetPeriods, first_day: date, last_day: date, whole_days: set[date]
    ) -> list[tuple[float, float]]:
        """UTC pieces of the dated breaks and of the days closed whole, in [first_day,
        last_day]."""
        holes: list[tuple[float, float]] = []
        for bday, ranges in self.spec.breaks.items():
            if first_day <= bday <= last_day:
                base = local_midnight(bday)
                for r in ranges:
                    s, e = r.minute_span()
                    holes.extend(periods.to_utc(base + s * 60, base + e * 60))
        for day in whole_days:
            if first_day <= day <= last_day:
                base = local_midnight(day)
                holes.extend(periods.to_utc(base, base + 86_400))
        return holes


def _year_of(us: int) -> int:
    us = min(max(us, -(2**61)), 2**61)
    try:
        return datetime.fromtimestamp(us / US, UTC).year
    except (OverflowError, ValueError, OSError):
        return 1971 if us < 0 else 9000


def _pause_list(pauses: Iterable[Pause]) -> list[tuple[int, int]]:
    """Pauses as sorted, merged µs intervals; each must be aware and end >= start."""
    raw: list[tuple[float, float]] = []
    for start, end in pauses:
        a, b = to_us(start), to_us(end)
        if b < a:
            raise ValueError(f"pause ends before it starts: {start.isoformat()}..{end.isoformat()}")
        if b > a:
            raw.append((a, b))
    return [(int(a), int(b)) for a, b in merge(raw)]


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for p, q in a:
        for r, s in b:
            lo, hi = max(p, r), min(q, s)
            if lo < hi:
                out.append((lo, hi))
    return sorted(out)


def _as_us(values: npt.NDArray[Any]) -> IntArray:
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[us]").view(np.int64)
    return arr.astype(np.int64, copy=False)


def _as_duration_us(values: npt.ArrayLike) -> IntArray:
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.timedelta64):
        return arr.astype("timedelta64[us]").view(np.int64)
    return arr.astype(np.int64, copy=False)
