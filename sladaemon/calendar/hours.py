"""Parsing of weekly hours, time ranges and dated breaks into plain values.

A ``TimeRange`` is a span of local wall-clock time on one local date. ``end <= start`` means the
range runs overnight into the next local date and still belongs to the date it starts on;
``24:00`` is a valid end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, slots=True, order=True)
class TimeRange:
    start_minute: int  # 0 .. 1439 after local midnight
    end_minute: int  # 1 .. 1440; <= start_minute runs overnight

    @property
    def overnight(self) -> bool:
        return self.end_minute <= self.start_minute

    @property
    def minutes(self) -> int:
        end = self.end_minute + (MINUTES_PER_DAY if self.overnight else 0)
        return end - self.start_minute

    def minute_span(self) -> tuple[int, int]:
        """(start, end) in minutes after the local midnight of the date it belongs to."""
        return self.start_minute, self.start_minute + self.minutes

    def __str__(self) -> str:
        return f"{_hhmm(self.start_minute)}-{_hhmm(self.end_minute)}"

    @classmethod
    def parse(cls, text: object) -> TimeRange:
        if not isinstance(text, str):
            raise ValueError(f"invalid time range {text!r} (use e.g. '09:00-17:00')")
        m = _RANGE.match(text)
        if not m:
            raise ValueError(f"invalid time range {text!r} (use e.g. '09:00-17:00')")
        sh, sm, eh, em = (int(g) for g in m.groups())
        if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em != 0):
            raise ValueError(f"invalid time in range {text!r} (hours 00-23, end may be 24:00)")
        start, end = sh * 60 + sm, eh * 60 + em
        if start == 0 and end == 0:
            # '00:00-00:00' would be a whole day; say so explicitly with 00:00-24:00.
            raise ValueError(f"empty time range {text!r} (use '00:00-24:00' for a whole day)")
        return cls(start, end)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Business ranges for each weekday, Monday first."""

    days: tuple[tuple[TimeRange, ...], ...]

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError("weekly hours need 7 days")

    @property
    def empty(self) -> bool:
        return not any(self.days)

    def weekly_minutes(self) -> int:
        return sum(r.minutes for day in self.days for r in day)


def parse_day_key(key: str) -> list[int]:
    """'mon' -> [0]; 'mon-fri' -> [0..4]; 'fri-mon' wraps; 'sat,sun' lists."""
    days: list[int] = []
    for part in str(key).lower().replace(" ", "").split(","):
        if "-" in part:
            first, _, last = part.partition("-")
            a, b = _day_index(first, key), _day_index(last, key)
            span = (b - a) % 7
            days.extend((a + k) % 7 for k in range(span + 1))
        else:
            days.append(_day_index(part, key))
    return days


def _day_index(name: str, key: str) -> int:
    short = name[:3]
    if short in DAY_NAMES and (name == short or name in _LONG):
        return DAY_NAMES.index(short)
    raise ValueError(f"unknown day {key!r} (use mon..sun or a range like mon-fri)")


_LONG = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}


def parse_ranges(value: object) -> tuple[TimeRange, ...]:
    items: Iterable[object]
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, Sequence):
        items = value
    else:
        raise ValueError(f"expected a list of time ranges like ['09:00-17:00'], got {value!r}")
    return tuple(sorted(TimeRange.parse(v) for v in items))


def parse_weekly_hours(spec: Mapping[str, object]) -> WeeklyHours:
    """Parse the ``hours`` mapping of a calendar. Raises ValueError naming the offending key."""
    per_day: list[list[TimeRange]] = [[] for _ in range(7)]
    assigned: dict[int, str] = {}
    for key, value in spec.items():
        try:
            days = parse_day_key(key)
            ranges = parse_ranges(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        for d in days:
            if d in assigned:
                raise ValueError(f"{key}: {DAY_NAMES[d]} is already given by {assigned[d]!r}")
            assigned[d] = key
            per_day[d].extend(ranges)
    weekly = WeeklyHours(tuple(tuple(sorted(d)) for d in per_day))
    check_no_overlap(weekly)
    return weekly


def check_no_overlap(weekly: WeeklyHours) -> None:
    """Ranges may not overlap, including an overnight range spilling into the next day."""
    week = 7 * MINUTES_PER_DAY
    spans: list[tuple[int, int, int, TimeRange]] = []
    for d, ranges in enumerate(weekly.days):
        for r in ranges:
            s, e = r.minute_span()
            spans.append((d * MINUTES_PER_DAY + s, d * MINUTES_PER_DAY + e, d, r))
    spans.sort()
    # Sorted by start, a range can only overlap its successor; the week is circular, so
    # Sunday's overnight range is compared with Monday's first one.
    for k, (_, end, day, rng) in enumerate(spans):
        next_start, _, next_day, next_rng = spans[(k + 1) % len(spans)]
        if k + 1 == len(spans):
            next_start += week
        if next_start < end:
            raise ValueError(
                f"overlapping hours: {DAY_NAMES[day]} {rng} and {DAY_NAMES[next_day]} {next_rng}"
            )


def parse_breaks(spec: Mapping[object, object]) -> dict[date, tuple[TimeRange, ...]]:
    out: dict[date, tuple[TimeRange, ...]] = {}
    for key, value in spec.items():
        day = parse_date(key)
        out[day] = parse_ranges(value)
    return out


def parse_date(value: object) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"invalid date {value!r} (use YYYY-MM-DD)") from None
