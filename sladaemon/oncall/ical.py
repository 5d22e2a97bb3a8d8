"""An iCalendar feed as on-call shifts: bytes in, intervals out (no I/O).

Recurring events (RRULE, RDATE), their exceptions (EXDATE) and moved or changed occurrences
(RECURRENCE-ID) are expanded by ``recurring-ical-events``, a year at a time and only for the
years asked about. Floating times and all-day dates are read in the schedule's zone; cancelled
events are left out. Who a shift belongs to is the roster's business: a shift carries its
SUMMARY and its attendees' mail addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events


class IcalError(ValueError):
    """A feed that cannot be read as an iCalendar."""


@dataclass(frozen=True)
class IcalShift:
    start: datetime  # aware, UTC
    end: datetime
    summary: str
    emails: tuple[str, ...]  # ATTENDEE mailto: addresses, lower case


class IcalFeed:
    """A parsed feed, expanded on demand."""

    def __init__(self, data: bytes, zone: ZoneInfo) -> None:
        self.zone = zone
        try:
            calendar = icalendar.Calendar.from_ical(data)
            if not isinstance(calendar, icalendar.Calendar) or calendar.name != "VCALENDAR":
                raise IcalError("not a VCALENDAR")
            self._query = recurring_ical_events.of(calendar)
            self.events = sum(1 for _ in calendar.walk("VEVENT"))
        except IcalError:
            raise
        except Exception as exc:  # the library raises ValueError, KeyError, IndexError...
            raise IcalError(f"unreadable iCalendar: {exc}") from None
        self._years: dict[int, tuple[IcalShift, ...]] = {}

    def shifts_between(self, start: datetime, end: datetime) -> list[IcalShift]:
        """The shifts overlapping [start, end), by start."""
        found: dict[IcalShift, None] = {}
        for year in range(start.astimezone(UTC).year, end.astimezone(UTC).year + 1):
            for shift in self._year(year):
                if shift.start < end and shift.end > start:
                    found[shift] = None
        return sorted(found, key=lambda s: (s.start, s.end))

    def _year(self, year: int) -> tuple[IcalShift, ...]:
        if year not in self._years:
            lo = datetime(year, 1, 1, tzinfo=UTC)
            hi = datetime(year + 1, 1, 1, tzinfo=UTC)
            try:
                occurrences = self._query.between(lo, hi)
            except Exception as exc:  # a bad RRULE shows only when expanded
                raise IcalError(f"cannot expand the feed's events: {exc}") from None
            shifts = (self._shift(event) for event in occurrences)
            self._years[year] = tuple(s for s in shifts if s is not None)
        return self._years[year]

    def _shift(self, event: Any) -> IcalShift | None:
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            return None
        try:
            start = self._instant(event.start)
            end = self._instant(event.end)
        except (KeyError, ValueError, icalendar.InvalidCalendar):
            return None
        if end <= start:
            return None
        attendees = event.get("ATTENDEE", [])
        if not isinstance(attendees, list):
            attendees = [attendees]
        emails = tuple(
            str(a)[len("mailto:") :].strip().lower()
            for a in attendees
            if str(a).lower().startswith("mailto:")
        )
        return IcalShift(start, end, str(event.get("SUMMARY", "")).strip(), emails)

    def _instant(self, value: date | datetime) -> datetime:
        if not isinstance(value, datetime):
            value = datetime.combine(value, time(0))
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.zone)
        return value.astimezone(UTC)
