"""Durations as people write and read them: ``90s``, ``15m``, ``8h``, ``2h30m``.

``parse_duration`` reads the config's form (no days: the length of a business day depends on
the calendar); ``format_duration`` writes the same form, so its output parses back. Exact, it
keeps every second (config values, ``explain``'s accounting); rounded, it keeps the second
below an hour and the minute above (messages and prediction reasons). ``parse_period`` reads
wall-clock periods, where days and weeks are fine (``14d``, ``2w``).
"""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*([hms])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[hms]\s*)+$")
_UNIT = {"h": 3600, "m": 60, "s": 1}
_PERIOD = re.compile(r"^\s*(\d+)\s*([wdhm])\s*$")
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


def format_duration(value: timedelta | float, *, exact: bool = True) -> str:
    """``value`` (a timedelta or seconds) as ``2h30m``, ``45s``, ``-5m``. ``exact=False``
    rounds to the second below an hour and to the minute above."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    step = 1 if exact or abs(seconds) < 3600 else 60
    total = int(seconds) if exact else round(seconds / step) * step
    sign = "-" if total < 0 else ""
    h, rest = divmod(abs(total), 3600)
    m, s = divmod(rest, 60)
    text = "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (s, "s")) if n)
    return sign + (text or "0s")


def parse_period(value: object) -> timedelta:
    """Calendar periods: '14d', '2w', '12h', '90m' (days are fine here: wall-clock time)."""
    if isinstance(value, timedelta):
        return value
    m = _PERIOD.match(value) if isinstance(value, str) else None
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"invalid period {value!r} (use e.g. 14d, 2w, 12h)")
    unit = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}[m.group(2)]
    return timedelta(**{unit: int(m.group(1))})
