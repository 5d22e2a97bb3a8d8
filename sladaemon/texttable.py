"""Aligned plain-text tables and short durations, for the command line and text messages."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def aligned(
    rows: Sequence[Sequence[str]], left: Collection[int], *, rule: bool = True, indent: str = ""
) -> list[str]:
    """``rows`` (the first is the header) in columns: those in ``left`` left-aligned, the rest
    right-aligned; with ``rule`` a dashed line under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for k, row in enumerate(rows):
        cells = [
            cell.ljust(w) if i in left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append(indent + "  ".join(cells).rstrip())
        if k == 0 and rule:
            out.append(indent + "  ".join("-" * w for w in widths))
    return out


def percent(value: float | None, digits: int = 1) -> str:
    """A share as ``88.2%``; ``-`` for none."""
    return "-" if value is None else f"{100.0 * value:.{digits}f}%"


def short_duration(seconds: float | None) -> str:
    """``15m`` below an hour, ``3.2h`` above; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
