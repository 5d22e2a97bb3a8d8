"""Business-hours calendars: weekly hours, holidays, breaks, DST-exact business time."""

from sladaemon.calendar.business import (
    Accounting,
    BusinessCalendar,
    CalendarSpec,
    from_us,
    span_us,
    to_us,
)
from sladaemon.calendar.hours import TimeRange, WeeklyHours, parse_breaks, parse_weekly_hours

__all__ = [
    "Accounting",
    "BusinessCalendar",
    "CalendarSpec",
    "TimeRange",
    "WeeklyHours",
    "from_us",
    "parse_breaks",
    "parse_weekly_hours",
    "span_us",
    "to_us",
]
