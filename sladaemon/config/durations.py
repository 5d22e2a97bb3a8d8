"""The pydantic field types of durations and periods (parsing and formatting live in
``sladaemon.durations``): config errors carry the parser's message.

Every duration field of the config is bounded (``within``): a value outside its range is a
config error naming the range, so nothing can spin (``poll_interval: 0s``), hammer a receiver
(zero retry delays) or overflow a date (``catch_up: 9999999999999s``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

from sladaemon.durations import format_duration, parse_duration, parse_period

MAX_TEXT = 40  # characters of a duration; "2h30m" needs five
ABOVE_ZERO = timedelta.resolution  # a lower bound meaning "longer than 0s"
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
YEAR = timedelta(days=365)
TEN_YEARS = timedelta(days=3650)


def _error(kind: str, reason: str) -> PydanticCustomError:
    return PydanticCustomError(kind, "{reason}", {"reason": reason})


def _parsed(kind: str, parse: Callable[[object], timedelta], value: object) -> timedelta:
    """``parse(value)``, with a config error for text that is not one or is far too long."""
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise _error(kind, f"invalid {kind} {value[:MAX_TEXT]!r}... (too long)")
    try:
        return parse(value)
    except ValueError as exc:
        raise _error(kind, str(exc)) from None
    except OverflowError:
        raise _error(kind, f"invalid {kind} {value!r} (far too long)") from None


def _validate(value: object) -> timedelta:
    return _parsed("duration", parse_duration, value)


def _validate_period(value: object) -> timedelta:
    return _parsed("period", parse_period, value)


def format_period(value: timedelta) -> str:
    """A period as written in the config: whole days as ``14d``, else as a duration."""
    if value >= DAY and value % DAY == timedelta(0):
        return f"{value.days}d"
    return format_duration(value)


def within(low: timedelta, high: timedelta, *, days: bool = False) -> AfterValidator:
    """A bound on a duration (``days``: a period, shown in days) field: ``low`` to ``high``
    inclusive; ``ABOVE_ZERO`` as ``low`` means longer than 0s."""
    shown = format_period if days else format_duration

    def check(value: timedelta) -> timedelta:
        if value < low and low == ABOVE_ZERO:
            raise _error("duration_range", "must be longer than 0s")
        if value < low:
            raise _error("duration_range", f"must be at least {shown(low)} (got {shown(value)})")
        if value > high:
            raise _error("duration_range", f"must be at most {shown(high)} (got {shown(value)})")
        return value

    return AfterValidator(check)


Duration = Annotated[
    timedelta,
    BeforeValidator(_validate),
    PlainSerializer(format_duration, return_type=str),
]
Period = Annotated[timedelta, BeforeValidator(_validate_period)]
