"""Mapping local wall-clock ranges to UTC instants, exactly, across DST gaps and folds.

A zone is a sequence of UTC offset periods. The instants whose local reading lies in the
wall-clock range ``[L1, L2)`` are, for every period ``[T_k, T_k+1)`` with offset ``o_k``, the
instants ``[L1 - o_k, L2 - o_k) ∩ [T_k, T_k+1)``. A range that crosses a spring-forward gap loses
the missing hour; one that crosses a fall-back fold gains the repeated hour. That is the
wall-clock-set model of DESIGN.md section 4.

Local wall-clock readings are represented as "local epoch seconds": seconds since
1970-01-01 00:00 of the local calendar, as if the zone were UTC.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
DAY = 86_400
_SAMPLE = 6 * 3600  # offsets are sampled every 6 h, then transitions bisected to the second
_MARGIN = 16 * 3600  # no zone's offset exceeds this


def local_midnight(day: date) -> int:
    """Local epoch seconds of the start of ``day``."""
    return (day.toordinal() - EPOCH_ORDINAL) * DAY


class OffsetPeriods:
    """The UTC offsets of one zone over a span of time, with exact transition instants."""

    def __init__(self, zone: ZoneInfo, lo: int, hi: int) -> None:
        lo -= _MARGIN + DAY
        hi += _MARGIN + DAY
        offset = _offset_at(zone, lo)
        starts: list[float] = [float("-inf")]
        offsets: list[int] = [offset]
        t = lo
        while t < hi:
            nxt = t + _SAMPLE
            o = _offset_at(zone, nxt)
            if o != offset:
                a, b = t, nxt  # offset(a) == offset, offset(b) == o
                while b - a > 1:
                    mid = (a + b) // 2
                    if _offset_at(zone, mid) == offset:
                        a = mid
                    else:
                        b = mid
                starts.append(float(b))
                offsets.append(o)
                offset = o
            t = nxt
        self.starts = starts
        self.offsets = offsets

    def to_utc(self, local_start: int, local_end: int) -> list[tuple[float, float]]:
        """UTC pieces ``[a, b)`` of every instant whose local reading is in the range."""
        pieces: list[tuple[float, float]] = []
        first = max(bisect_right(self.starts, local_start - _MARGIN) - 1, 0)
        last = bisect_right(self.starts, local_end + _MARGIN)
        for k in range(first, last):
            o = self.offsets[k]
            a = max(float(local_start - o), self.starts[k])
            b = float(local_end - o)
            if k + 1 < len(self.starts):
                b = min(b, self.starts[k + 1])
            if a < b:
                pieces.append((a, b))
        return pieces


def _offset_at(zone: ZoneInfo, t: int) -> int:
    offset = datetime.fromtimestamp(t, UTC).astimezone(zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def merge(pieces: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Union of intervals; touching intervals are joined."""
    pieces.sort()
    out: list[tuple[float, float]] = []
    for a, b in pieces:
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def subtract(
    base: list[tuple[float, float]], holes: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """``base`` minus ``holes``; both sorted and disjoint."""
    if not holes:
        return base
    out: list[tuple[float, float]] = []
    k = 0
    for a, b in base:
        while k < len(holes) and holes[k][1] <= a:
            k += 1
        j = k
        cur = a
        while j < len(holes) and holes[j][0] < b:
            ha, hb = holes[j]
            if ha > cur:
                out.append((cur, ha))
            cur = max(cur, hb)
            j += 1
        if cur < b:
            out.append((cur, b))
    return out
