"""Durations as people write and read them: ``90s``, ``15m``, ``8h``, ``2h30m``.

One grammar for both: numbers with units, largest unit first, each unit at most once
(``90s``, ``2h30m``, ``1d12h``, ``2w``). ``parse_duration`` reads the config's durations, in
hours, minutes and seconds (no days: the length of a business day depends on the calendar);
``format_duration`` writes the same form, so its output parses back. Exact, it keeps every
second (config values, ``explain``'s accounting); rounded, it keeps the second below an hour
and the minute above (messages and prediction reasons). ``parse_period`` reads wall-clock
periods, where weeks and days are fine too (``14d``, ``2w``, ``1d12h``).
"""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*([wdhms])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[wdhms]\s*)+$")
_UNIT = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
HINT = "use e.g. 90s, 15m, 8h"
PERIOD_HINT = "use e.g. 14d, 2w, 12h"


def _seconds(value: str) -> int | None:
    """The seconds ``value`` spells (units in order, each once), or None."""
    if not _WHOLE.match(value):
        return None
    parts = _PART.findall(value)
    units = [u for _, u in parts]
    if len(units) != len(set(units)) or units != sorted(units, key="wdhms".index):
        return None
    return sum(int(n) * _UNIT[u] for n, u in parts)


def parse_duration(value: object) -> timedelta:
    """Parse a duration; raises ValueError with a message fit for a config error."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and (seconds := _seconds(value)) is not None:
        if re.search(r"[wd]", value):
            raise ValueError(
                f"invalid duration {value!r} (use hours, e.g. 24h: the length of a business "
                "day depends on the calendar)"
            )
        return timedelta(seconds=seconds)
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
    """Wall-clock periods: the duration grammar with weeks and days too ('14d', '2w', '1d12h',
    '90m'); longer than 0s."""
    if isinstance(value, timedelta):
        return value
    seconds = _seconds(value) if isinstance(value, str) else None
    if not seconds:
        shown = repr(value) if isinstance(value, str) else str(value)
        raise ValueError(f"invalid period {shown} ({PERIOD_HINT})")
    return timedelta(seconds=seconds)
