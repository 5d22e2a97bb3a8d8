"""When scheduled reports are due. Pure: instants in, instants out.

``every`` is ``<days> <HH:MM>``, a wall-clock time in a time zone on the days given:

* ``daily 08:00`` — every day;
* ``mon 09:00``, ``monday 09:00`` — one weekday;
* ``mon-fri 07:30``, ``sat,sun 10:00``, ``fri-mon 18:00`` — days as in calendar hours.

The time is read on the local wall clock, so a report stays at 09:00 across DST changes. A
time skipped by a spring-forward night is due at the same instant an hour later by the clock
(02:30 becomes 03:30); a time repeated by a fall-back night is due once, at its first
occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sladaemon.calendar.hours import parse_day_key

_EVERY = re.compile(r"^\s*(.+?)\s+(\d{1,2}):(\d{2})\s*$")
HINT = "use e.g. 'mon 09:00', 'daily 08:00' or 'mon-fri 07:30'"


@dataclass(frozen=True, slots=True)
class Every:
    weekdays: frozenset[int]  # Monday is 0
    at: time

    @classmethod
    def parse(cls, text: object) -> Every:
        """Parse ``every``; raises ValueError with a message fit for a config error."""
        m = _EVERY.match(text) if isinstance(text, str) else None
        if not m:
            raise ValueError(f"invalid schedule {text!r} ({HINT})")
        days_text, hour, minute = m.group(1).strip().lower(), int(m.group(2)), int(m.group(3))
        if hour > 23 or minute > 59:
            raise ValueError(f"invalid time in schedule {text!r} (00:00 to 23:59)")
        if days_text in ("daily", "every day"):
            days = frozenset(range(7))
        else:
            try:
                days = frozenset(parse_day_key(days_text))
            except ValueError:
                raise ValueError(f"invalid days in schedule {text!r} ({HINT})") from None
        return cls(days, time(hour, minute))

    def instant_on(self, day: date, zone: ZoneInfo) -> datetime:
        """The due instant on a local date, in UTC (fold 0: a reading in a DST gap moves
        forward by the gap, a repeated one is its first occurrence)."""
        return datetime.combine(day, self.at, tzinfo=zone).astimezone(UTC)

    def latest(self, now: datetime, zone: ZoneInfo) -> datetime:
        """The last due instant at or before ``now``."""
        day = now.astimezone(zone).date() + timedelta(days=1)
        for _ in range(9):
            if day.weekday() in self.weekdays:
                at = self.instant_on(day, zone)
                if at <= now:
                    return at
            day -= timedelta(days=1)
        raise AssertionError("a weekly schedule is due at least once in eight days")

    def following(self, after: datetime, zone: ZoneInfo) -> datetime:
        """The first due instant strictly after ``after``."""
        day = after.astimezone(zone).date() - timedelta(days=1)
        for _ in range(9):
            if day.weekday() in self.weekdays:
                at = self.instant_on(day, zone)
                if at > after:
                    return at
            day += timedelta(days=1)
        raise AssertionError("a weekly schedule is due at least once in eight days")
