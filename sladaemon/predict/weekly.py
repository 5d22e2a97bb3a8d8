"""Rates by hour of week, exponentially decayed: how many tickets arrive, how many first
responses or resolutions happen, per hour, on a Monday at 09:00 as opposed to a Friday night.

Each series (a queue's arrivals, a queue's first responses, ...) keeps, for each hour of the
local week (168 bins, Monday 00:00 first, in its calendar's time zone), a decayed count of
events; each time zone keeps the decayed count of hours observed in each bin. A bin's rate is
their ratio, shrunk towards the series' weekly mean by a quarter hour of pseudo-observation, so
a bin seen a few times only does not swing to extremes. Every weight halves each
``half_life``.

Counts are stored pre-scaled by ``2**((t - origin) / half_life)`` and scaled back when read, so
an event costs one addition whatever the number of series, and reading every series at once is
one multiplication.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from sladaemon.calendar import CalendarSpec

HOURS_PER_WEEK = 168
US_PER_HOUR = 3_600_000_000
QUARTER_US = 900_000_000
EPOCH_HOUR_OF_WEEK = 72  # 1970-01-01 00:00 UTC was a Thursday, 72 h after Monday 00:00
MAX_CATCH_UP_HOURS = 52 * HOURS_PER_WEEK  # a longer gap keeps only its last year
PRIOR_HOURS = 0.25  # pseudo-observation pulling each bin towards the weekly mean
_REBASE_EXPONENT = 400.0  # rescale stored counts before 2**exponent nears overflow

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def hour_of_week(t_us: int, zone: ZoneInfo) -> int:
    """The local hour of week of an instant (0 = Monday 00:00-01:00), DST-exact."""
    local = datetime.fromtimestamp(t_us / 1e6, zone)
    return local.weekday() * 24 + local.hour


def hours_of_week(t_us: Ints, zone: ZoneInfo) -> Ints:
    """``hour_of_week`` of many instants: the zone's offset is looked up once per quarter hour
    they fall in (offsets change on quarter hours in every zone in use)."""
    quarters = t_us // QUARTER_US
    distinct, inverse = np.unique(quarters, return_inverse=True)
    offsets = np.array([_offset_us(int(q) * QUARTER_US, zone) for q in distinct.tolist()], np.int64)
    local_hours = (t_us + offsets[inverse]) // US_PER_HOUR
    how: Ints = (local_hours + EPOCH_HOUR_OF_WEEK) % HOURS_PER_WEEK
    return how


def _offset_us(t_us: int, zone: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(t_us / 1e6, zone).utcoffset()
    assert offset is not None
    return (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds


def decay(elapsed_us: float, half_life_us: float) -> float:
    """The weight left after ``elapsed_us`` (1.0 for no time or negative time)."""
    return float(2.0 ** (-max(elapsed_us, 0.0) / half_life_us))


def open_hours(spec: CalendarSpec) -> Floats:
    """The share of each local hour of the week that is business time in ``spec`` (holidays
    and dated breaks aside); overnight ranges spill into the next day."""
    minutes = np.zeros(7 * 24 * 60, np.float64)
    for day, ranges in enumerate(spec.weekly.days):
        for r in ranges:
            start, end = r.minute_span()
            span = np.arange(day * 1440 + start, day * 1440 + end) % minutes.size
            minutes[span] = 1.0
    share: Floats = minutes.reshape(HOURS_PER_WEEK, 60).mean(axis=1)
    return share


class WeekExposure:
    """Decayed hours observed in each local hour of the week, for one time zone. Every rate
    in that zone divides by it: a queue that saw nothing for a week has a rate near zero."""

    __slots__ = ("at", "half_life_us", "hours", "zone")

    def __init__(self, zone: ZoneInfo, half_life_us: float) -> None:
        self.zone = zone
        self.half_life_us = half_life_us
        self.hours: Floats = np.zeros(HOURS_PER_WEEK, np.float64)
        self.at: int | None = None

    def advance(self, t_us: int) -> None:
        """Count the wall hours from the last call up to ``t_us`` (time never goes back; a gap
        longer than a year keeps only its last year, the rest has decayed anyway)."""
        if self.at is None:
            self.at = t_us
            return
        if t_us <= self.at:
            return
        a = self.at
        if t_us - a > MAX_CATCH_UP_HOURS * US_PER_HOUR:
            a = t_us - MAX_CATCH_UP_HOURS * US_PER_HOUR
            self.hours *= decay(a - self.at, self.half_life_us)
        while a < t_us:
            b = min((a // US_PER_HOUR + 1) * US_PER_HOUR, t_us)
            self.hours *= decay(b - a, self.half_life_us)
            self.hours[hour_of_week(a, self.zone)] += (b - a) / US_PER_HOUR
            a = b
        self.at = t_us

    def hours_at(self, t_us: int) -> Floats:
        hours: Floats = self.hours * decay(t_us - (self.at or t_us), self.half_life_us)
        return hours


class WeeklyCounts:
    """Decayed event counts by local hour of week for many series (rows)."""

    def __init__(self, half_life_us: float) -> None:
        self.half_life_us = half_life_us
        self.origin: int | None = None
        self._table: Floats = np.zeros((8, HOURS_PER_WEEK), np.float64)
        self._zones: list[ZoneInfo] = []

    def __len__(self) -> int:
        return len(self._zones)

    def add_series(self, zone: ZoneInfo) -> int:
        row = len(self._zones)
        self._zones.append(zone)
        if row >= self._table.shape[0]:
            self._table = np.vstack([self._table, np.zeros_like(self._table)])
        return row

    def observe(self, row: int, t_us: int, weight: float = 1.0) -> None:
        scaled = weight * 2.0 ** self._scale(t_us)  # before the table is read: it may rebase
        self._table[row, hour_of_week(t_us, self._zones[row])] += scaled

    def observe_many(self, row: int, t_us: Ints) -> None:
        """``observe`` for many instants of one series at once."""
        if t_us.size == 0:
            return
        if self.origin is None:
            self.origin = int(t_us.min())
        self._scale(int(t_us.max()))
        weights = 2.0 ** ((t_us - self.origin) / self.half_life_us)
        np.add.at(self._table[row], hours_of_week(t_us, self._zones[row]), weights)

    def _scale(self, t_us: int) -> float:
        """log2 of the pre-scaling of a count at ``t_us``; rebases the stored counts first
        when that nears overflow."""
        if self.origin is None:
            self.origin = t_us
        exponent = (t_us - self.origin) / self.half_life_us
        if exponent > _REBASE_EXPONENT:
            self._table *= 2.0**-exponent
            self.origin, exponent = t_us, 0.0
        return exponent

    def counts_at(self, t_us: int) -> Floats:
        """Every series' decayed counts at ``t_us`` (rows × 168)."""
        n = len(self._zones)
        if self.origin is None:
            return np.zeros((n, HOURS_PER_WEEK), np.float64)
        counts: Floats = self._table[:n] * 2.0 ** (-(t_us - self.origin) / self.half_life_us)
        return counts


def rates(counts: Floats, hours: Floats) -> Floats:
    """Events per hour of each bin (rows × 168), shrunk towards each row's weekly mean; zero
    where nothing was observed yet."""
    observed = hours.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(observed > 0, counts.sum(axis=-1, keepdims=True) / observed, 0.0)
    per_hour: Floats = (counts + PRIOR_HOURS * mean) / (hours + PRIOR_HOURS)
    return per_hour


def week_position(t_us: npt.ArrayLike, offset_s: npt.ArrayLike) -> Floats:
    """Hours since the Monday 00:00 (local, at a fixed UTC offset) of the epoch's week."""
    position: Floats = (
        np.asarray(t_us, np.float64) / US_PER_HOUR
        + np.asarray(offset_s, np.float64) / 3600.0
        + EPOCH_HOUR_OF_WEEK
    )
    return position


def cumulative(per_hour: Floats) -> Floats:
    """Running integral of weekly rate profiles (rows × 168) at each whole hour 0..168."""
    out = np.zeros((per_hour.shape[0], HOURS_PER_WEEK + 1), np.float64)
    np.cumsum(per_hour, axis=-1, out=out[:, 1:])
    return out


def integrate(
    per_hour: Floats, cumulated: Floats, series: Ints, start: Floats, end: Floats
) -> Floats:
    """Expected events of ``series[i]`` between week positions ``start[i]`` and ``end[i]``."""
    return _primitive(per_hour, cumulated, series, end) - _primitive(
        per_hour, cumulated, series, start
    )


def _primitive(per_hour: Floats, cumulated: Floats, series: Ints, position: Floats) -> Floats:
    weeks = np.floor(position / HOURS_PER_WEEK)
    inside = position - weeks * HOURS_PER_WEEK
    hour = np.minimum(inside.astype(np.int64), HOURS_PER_WEEK - 1)
    value: Floats = (
        weeks * cumulated[series, HOURS_PER_WEEK]
        + cumulated[series, hour]
        + per_hour[series, hour] * (inside - hour)
    )
    return value
