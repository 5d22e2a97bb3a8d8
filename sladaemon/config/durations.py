"""Durations as users write them: ``90s``, ``15m``, ``8h``, ``2h30m``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

_PART = re.compile(r"(\d+)\s*([hms])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[hms]\s*)+$")
_UNIT = {"h": 3600, "m": 60, "s": 1}
HINT = "use e.g. 90s, 15m, 8h"


def parse_duration(value: object) -> timedelta:
    """Parse a duration; raises ValueError with a message fit for a config error."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and _WHOLE.match(value):
        units = [u for _, u in _PART.findall(value)]
        if len(units) == len(set(units)) and units == sorted(units, key="hms".index):
            return timedelta(seconds=sum(int(n) * _UNIT[u] for n, u in _PART.findall(value)))
    if isinstance(value, str) and re.match(r"^\s*\d+\s*[dw]\s*$", value):
        raise ValueError(
            f"invalid duration {value!r} (use hours, e.g. 24h: the length of a business day "
            "depends on the calendar)"
        )
    shown = repr(value) if isinstance(value, str) else str(value)
    raise ValueError(f"invalid duration {shown} ({HINT})")


def format_duration(d: timedelta) -> str:
    """Inverse of parse_duration for whole seconds: 9000s -> '2h30m'."""
    total = int(d.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    text = "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (s, "s")) if n)
    return sign + (text or "0s")


def _validate(value: object) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None


Duration = Annotated[
    timedelta,
    BeforeValidator(_validate),
    PlainSerializer(format_duration, return_type=str),
]


_PERIOD = re.compile(r"^\s*(\d+)\s*([wdhm])\s*$")


def parse_period(value: object) -> timedelta:
    """Calendar periods: '14d', '2w', '12h', '90m' (days are fine here: wall-clock time)."""
    if isinstance(value, timedelta):
        return value
    m = _PERIOD.match(value) if isinstance(value, str) else None
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"invalid period {value!r} (use e.g. 14d, 2w, 12h)")
    unit = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}[m.group(2)]
    return timedelta(**{unit: int(m.group(1))})


def _validate_period(value: object) -> timedelta:
    try:
        return parse_period(value)
    except ValueError as exc:
        raise PydanticCustomError("period", "{reason}", {"reason": str(exc)}) from None


Period = Annotated[timedelta, BeforeValidator(_validate_period)]
