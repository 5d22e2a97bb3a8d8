"""KPI reports as a text table, JSON, or one self-contained HTML page that mail clients show
as it is (tables and inline styles: no SVG, scripts or style sheets)."""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from sladaemon.report.kpi import COMPLIANCE_TARGET, KpiReport, Rate, TimeStats
from sladaemon.texttable import aligned, short_duration


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _rate(rate: Rate) -> str:
    target = f" (target < {rate.target:g}%)" if rate.target is not None else ""
    return f"{_pct(rate.percent)} of {rate.denominator}{target}"


def _times(stats: TimeStats) -> str:
    return (
        f"mean {short_duration(stats.mean_s)}, median {short_duration(stats.median_s)}, "
        f"p90 {short_duration(stats.p90_s)} ({stats.count})"
    )


def as_table(r: KpiReport) -> str:
    lines = [
        f"Support KPIs {r.start:%Y-%m-%d %H:%M} .. {r.end:%Y-%m-%d %H:%M} UTC "
        f"(days in {r.timezone})",
        "",
        f"tickets created         {r.created} ({r.daily_volume:.1f} a day)",
        f"open backlog            {r.backlog} (10% of daily volume: {r.backlog_limit:.1f}"
        f"{', over' if r.backlog > r.backlog_limit else ', within'})",
        f"first response, business  {_times(r.first_response_business)}",
        f"first response, calendar  {_times(r.first_response_calendar)}",
        f"resolution, business      {_times(r.resolution_business)}",
        f"resolution, calendar      {_times(r.resolution_calendar)}",
        f"reopen rate             {_rate(r.reopen)}",
        f"escalation rate         {_rate(r.escalation)}",
        f"first-contact resolution {_rate(r.first_contact_resolution)}",
        "",
        f"SLA compliance (target >= {COMPLIANCE_TARGET:g}%)",
    ]
    rows = [("policy", "metric", "channel", "met", "breached", "compliance")]
    for c in r.compliance:
        mark = "" if (c.percent or 0) >= COMPLIANCE_TARGET else " !"
        rows.append(
            (c.policy, c.metric, c.channel, str(c.met), str(c.breached), _pct(c.percent) + mark)
        )
    lines += aligned(rows, left=(0, 1, 2), rule=False, indent="  ")
    lines += ["", "volume per day and channel (* = spike over the same-weekday baseline)"]
    by_day: dict[date, list[str]] = defaultdict(list)
    for v in r.volume:
        by_day[v.day].append(f"{v.channel} {v.tickets}{'*' if v.spike else ''}")
    for day, cells in sorted(by_day.items()):
        lines.append(f"  {day:%a %Y-%m-%d}  " + ", ".join(cells))
    return "\n".join(lines)


def as_json(r: KpiReport) -> dict[str, Any]:
    data = asdict(r)
    del data["previous"]
    data["start"], data["end"] = r.start.isoformat(), r.end.isoformat()
    data["backlog_limit"] = r.backlog_limit
    data["compliance"] = [dict(asdict(c), percent=c.percent) for c in r.compliance]
    data["volume"] = [dict(asdict(v), day=v.day.isoformat()) for v in r.volume]
    for name in ("reopen", "escalation", "first_contact_resolution"):
        data[name]["percent"] = getattr(r, name).percent
    return data


# ---------------------------------------------------------------------------- HTML
#
# The page is also the body of scheduled report emails, and mail clients (Gmail, Outlook) drop
# SVG, scripts, style sheets and most CSS outside ``style`` attributes: it is made of tables
# with inline styles only, and a bar is a row of table cells of given widths.

_TEXT, _MUTED, _RULE, _TRACK = "#222", "#555", "#ddd", "#eee"
_GOOD, _BAD, _SPIKE_BACKGROUND = "#1b5e20", "#b00020", "#fde7e9"
_COLOURS = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477")
_TABLE = "border-collapse:collapse;margin:4px 0 16px"
_CELL = f"padding:4px 8px;border-bottom:1px solid {_RULE};text-align:left"
_NUMBER = f"padding:4px 8px;border-bottom:1px solid {_RULE};text-align:right"
_HEADER = f"{_CELL};color:{_MUTED};font-weight:normal"
_HEADER_NUMBER = f"{_NUMBER};color:{_MUTED};font-weight:normal"
_BAR_PX = 200  # a full bar
_UP, _DOWN = "\u25b2", "\u25bc"  # ▲ ▼
SPIKE_MARK = _UP


@dataclass(frozen=True)
class _Figure:
    """A headline figure this period and the one before; ``better``: +1 when higher is better,
    -1 when lower is, 0 when neither; ``relative``: its change is also given in percent."""

    label: str
    now: float | None
    before: float | None
    value: Callable[[float], str]
    difference: Callable[[float], str]  # the size of a change
    better: int
    relative: bool = False


def _headline(r: KpiReport) -> list[_Figure]:
    p = r.previous
    return [
        _Figure(
            "SLA compliance",
            r.compliance_percent,
            p.compliance_percent if p else None,
            lambda v: f"{v:.1f}%",
            lambda d: f"{d:.1f} pts",
            +1,
        ),
        _Figure(
            "First response, median (business time)",
            r.first_response_business.median_s,
            p.first_response_business.median_s if p else None,
            short_duration,
            short_duration,
            -1,
        ),
        _Figure(
            "Resolution, median (business time)",
            r.resolution_business.median_s,
            p.resolution_business.median_s if p else None,
            short_duration,
            short_duration,
            -1,
        ),
        _Figure("Open backlog", r.backlog, p.backlog if p else None, _count, _count, -1, True),
        _Figure("Tickets created", r.created, p.created if p else None, _count, _count, 0, True),
    ]


def _count(value: float) -> str:
    return f"{value:.0f}"


def _change(f: _Figure) -> tuple[str, str]:
    """The change against the previous period as text (arrow, signed difference, and for
    counts the percentage) and its colour."""
    if f.now is None or f.before is None:
        return "no figure to compare", _MUTED
    delta = f.now - f.before
    if f.difference(abs(delta)) == f.difference(0.0):
        return "= no change", _MUTED
    arrow, sign = (_UP, "+") if delta > 0 else (_DOWN, "\u2212")
    text = f"{arrow} {sign}{f.difference(abs(delta))}"
    if f.relative and f.before:
        text += f" ({sign}{abs(delta) / f.before * 100:.0f}%)"
    colour = _MUTED if f.better == 0 else (_GOOD if delta * f.better > 0 else _BAD)
    return text, colour


def as_html(r: KpiReport) -> str:
    """One self-contained page, safe to mail: the headline figures and their change against
    the period before (``r.previous``), SLA compliance per policy, metric and channel, tickets
    per day and channel with the spikes marked, then every figure."""
    e = html.escape
    title = f"Support KPIs {r.start:%Y-%m-%d} to {r.end:%Y-%m-%d}"
    previous = (
        f" Compared with {r.previous.start:%Y-%m-%d %H:%M} to {r.previous.end:%Y-%m-%d %H:%M}."
        if r.previous is not None
        else " No previous period to compare with."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e(title)}</title>
</head><body style="margin:0;padding:16px;background:#ffffff;color:{_TEXT};\
font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:1.4">
<h1 style="font-size:22px;margin:0 0 4px">{e(title)}</h1>
<p style="margin:0 0 12px;color:{_MUTED}">{r.start:%Y-%m-%d %H:%M} to {r.end:%Y-%m-%d %H:%M} UTC;\
 days in {e(r.timezone)}.{previous}</p>
{_headline_table(r)}
{_h2(f"SLA compliance (target &ge; {COMPLIANCE_TARGET:g}%)")}
{_compliance_table(r)}
{_h2("Tickets per day and channel")}
{_volume_table(r)}
{_h2("All figures")}
{_details_table(r)}
</body></html>
"""


def _h2(text: str) -> str:
    return f'<h2 style="font-size:16px;margin:20px 0 4px">{text}</h2>'


def _table(rows: str, name: str) -> str:
    return (
        f'<table id="{name}" role="presentation" cellpadding="0" cellspacing="0" border="0" '
        f'style="{_TABLE}">{rows}</table>'
    )


def _headline_table(r: KpiReport) -> str:
    e = html.escape
    rows = [
        f'<tr><th style="{_HEADER}"></th><th style="{_HEADER_NUMBER}">This period</th>'
        f'<th style="{_HEADER_NUMBER}">Previous period</th>'
        f'<th style="{_HEADER}">Change</th></tr>'
    ]
    for f in _headline(r):
        now = "-" if f.now is None else f.value(f.now)
        before = "-" if f.before is None else f.value(f.before)
        change, colour = _change(f)
        rows.append(
            f'<tr><td style="{_CELL};font-weight:bold">{e(f.label)}</td>'
            f'<td style="{_NUMBER};font-size:20px;font-weight:bold">{e(now)}</td>'
            f'<td style="{_NUMBER};color:{_MUTED}">{e(before)}</td>'
            f'<td style="{_CELL};color:{colour};font-weight:bold">{e(change)}</td></tr>'
        )
    return _table("".join(rows), "headline")


def _bar(pixels: list[str]) -> str:
    """A bar of one colour per pixel, as cells of runs of one colour."""
    runs: list[tuple[str, int]] = []
    for colour in pixels:
        if runs and runs[-1][0] == colour:
            runs[-1] = (colour, runs[-1][1] + 1)
        else:
            runs.append((colour, 1))
    cells = "".join(
        f'<td width="{n}" height="12" style="width:{n}px;height:12px;background:{colour};'
        f'font-size:1px;line-height:1px">&nbsp;</td>'
        for colour, n in runs
    )
    return (
        f'<table role="presentation" cellpadding="0" cellspacing="0" border="0" '
        f'width="{len(pixels)}" style="border-collapse:collapse"><tr>{cells}</tr></table>'
    )


def _compliance_table(r: KpiReport) -> str:
    e = html.escape
    if not r.compliance:
        return "<p>No SLA cycles were decided in the period.</p>"
    target_px = round(_BAR_PX * COMPLIANCE_TARGET / 100)
    rows = [
        "<tr>"
        + "".join(
            f'<th style="{_HEADER if k < 3 else _HEADER_NUMBER}">{name}</th>'
            for k, name in enumerate(("Policy", "Metric", "Channel", "Met", "Breached"))
        )
        + f'<th style="{_HEADER_NUMBER}">Compliance</th>'
        f'<th style="{_HEADER}">against the target</th></tr>'
    ]
    for c in r.compliance:
        ok = c.percent is not None and c.percent >= COMPLIANCE_TARGET
        colour = _GOOD if ok else _BAD
        filled = round(_BAR_PX * (c.percent or 0.0) / 100)
        pixels = [colour if x < filled else _TRACK for x in range(_BAR_PX)]
        pixels[target_px - 1 : target_px + 1] = [_TEXT, _TEXT]  # the target
        rows.append(
            f'<tr><td style="{_CELL}">{e(c.policy)}</td>'
            f'<td style="{_CELL}">{e(c.metric.replace("_", " "))}</td>'
            f'<td style="{_CELL}">{e(c.channel)}</td>'
            f'<td style="{_NUMBER}">{c.met}</td><td style="{_NUMBER}">{c.breached}</td>'
            f'<td style="{_NUMBER};color:{colour};font-weight:bold">{_pct(c.percent)}</td>'
            f'<td style="{_CELL}">{_bar(pixels) if c.percent is not None else ""}</td></tr>'
        )
    return _table("".join(rows), "compliance")


def _volume_table(r: KpiReport) -> str:
    e = html.escape
    days = sorted({v.day for v in r.volume})
    channels = sorted({v.channel for v in r.volume})
    if not days:
        return "<p>No tickets were created in the period.</p>"
    counts = {(v.day, v.channel): v for v in r.volume}
    totals = {d: sum(counts[(d, c)].tickets for c in channels if (d, c) in counts) for d in days}
    top = max(max(totals.values()), 1)
    colour = {c: _COLOURS[k % len(_COLOURS)] for k, c in enumerate(channels)}
    header = "".join(
        f'<th style="{_HEADER_NUMBER};border-bottom:3px solid {colour[c]}">{e(c)}</th>'
        for c in channels
    )
    rows = [
        f'<tr><th style="{_HEADER}">Day</th>{header}'
        f'<th style="{_HEADER_NUMBER}">Total</th><th style="{_HEADER}"></th></tr>'
    ]
    for day in days:
        cells, pixels = [], []
        for channel in channels:
            v = counts.get((day, channel))
            n = v.tickets if v is not None else 0
            pixels += [colour[channel]] * round(_BAR_PX * n / top)
            if v is not None and v.spike:
                baseline = f"{v.baseline:.1f}" if v.baseline is not None else "-"
                cells.append(
                    f'<td style="{_NUMBER};background:{_SPIKE_BACKGROUND};color:{_BAD};'
                    f'font-weight:bold" title="spike: {n} against a baseline of {baseline}">'
                    f"{n} {SPIKE_MARK}</td>"
                )
            else:
                cells.append(f'<td style="{_NUMBER}">{n}</td>')
        bar = _bar(pixels[:_BAR_PX]) if pixels else ""
        rows.append(
            f'<tr><td style="{_CELL};white-space:nowrap">{day:%a %Y-%m-%d}</td>{"".join(cells)}'
            f'<td style="{_NUMBER};font-weight:bold">{totals[day]}</td>'
            f'<td style="{_CELL}">{bar}</td></tr>'
        )
    note = (
        f'<p style="margin:0;color:{_MUTED}">{SPIKE_MARK} marks a spike: more tickets in a channel '
        "than the average of the same weekday in the four weeks before, by over 20&nbsp;%.</p>"
    )
    return _table("".join(rows), "volume") + note


def _details_table(r: KpiReport) -> str:
    e = html.escape
    rows = [
        ("Tickets created", f"{r.created} ({r.daily_volume:.1f} a day)", None),
        (
            "Open backlog",
            f"{r.backlog} (10% of the daily volume: {r.backlog_limit:.1f})",
            r.backlog <= r.backlog_limit,
        ),
        ("First response, business time", _times(r.first_response_business), None),
        ("First response, calendar time", _times(r.first_response_calendar), None),
        ("Resolution, business time", _times(r.resolution_business), None),
        ("Resolution, calendar time", _times(r.resolution_calendar), None),
        ("Reopen rate", _rate(r.reopen), _under(r.reopen)),
        ("Escalation rate", _rate(r.escalation), _under(r.escalation)),
        ("First-contact resolution", _rate(r.first_contact_resolution), None),
    ]
    return _table(
        "".join(
            f'<tr><td style="{_CELL};font-weight:bold">{e(name)}</td>'
            f'<td style="{_CELL};color:{_colour(ok)}">{e(value)}</td></tr>'
            for name, value, ok in rows
        ),
        "details",
    )


def _under(rate: Rate) -> bool | None:
    if rate.percent is None or rate.target is None:
        return None
    return rate.percent < rate.target


def _colour(ok: bool | None) -> str:
    return _TEXT if ok is None else (_GOOD if ok else _BAD)
