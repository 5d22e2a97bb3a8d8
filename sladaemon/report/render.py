"""KPI reports as a text table, JSON, or one self-contained HTML page with inline SVG charts."""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import asdict
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
    data["start"], data["end"] = r.start.isoformat(), r.end.isoformat()
    data["backlog_limit"] = r.backlog_limit
    data["compliance"] = [dict(asdict(c), percent=c.percent) for c in r.compliance]
    data["volume"] = [dict(asdict(v), day=v.day.isoformat()) for v in r.volume]
    for name in ("reopen", "escalation", "first_contact_resolution"):
        data[name]["percent"] = getattr(r, name).percent
    return data


# ---------------------------------------------------------------------------- HTML

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:60em}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;
text-align:right}td:first-child,th:first-child,td:nth-child(2),td:nth-child(3){text-align:left}
.bad{color:#b00020;font-weight:600}.good{color:#1b5e20}.kpi td:first-child{font-weight:600}
svg text{font-size:11px;fill:#333}
"""
_COLOURS = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477")


def as_html(r: KpiReport) -> str:
    e = html.escape
    title = f"Support KPIs {r.start:%Y-%m-%d} to {r.end:%Y-%m-%d}"
    rows = [
        ("Tickets created", f"{r.created} ({r.daily_volume:.1f} a day)", None),
        (
            "Open backlog",
            f"{r.backlog} (limit {r.backlog_limit:.1f})",
            r.backlog <= r.backlog_limit,
        ),
        ("First response, business", _times(r.first_response_business), None),
        ("First response, calendar", _times(r.first_response_calendar), None),
        ("Resolution, business", _times(r.resolution_business), None),
        ("Resolution, calendar", _times(r.resolution_calendar), None),
        ("Reopen rate", _rate(r.reopen), _under(r.reopen)),
        ("Escalation rate", _rate(r.escalation), _under(r.escalation)),
        ("First-contact resolution", _rate(r.first_contact_resolution), None),
    ]
    kpis = "".join(
        f"<tr><td>{e(name)}</td><td class='{_cls(ok)}'>{e(value)}</td></tr>"
        for name, value, ok in rows
    )
    compliance = "".join(
        f"<tr><td>{e(c.policy)}</td><td>{e(c.metric)}</td><td>{e(c.channel)}</td>"
        f"<td>{c.met}</td><td>{c.breached}</td>"
        f"<td class='{_cls((c.percent or 0) >= COMPLIANCE_TARGET)}'>{_pct(c.percent)}</td></tr>"
        for c in r.compliance
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{e(title)}</h1>
<p>{r.start:%Y-%m-%d %H:%M} to {r.end:%Y-%m-%d %H:%M} UTC; days in {e(r.timezone)}.</p>
<table class="kpi">{kpis}</table>
<h2>SLA compliance (target &ge; {COMPLIANCE_TARGET:g}%)</h2>
{_compliance_chart(r)}
<table><tr><th>Policy</th><th>Metric</th><th>Channel</th><th>Met</th><th>Breached</th>
<th>Compliance</th></tr>{compliance}</table>
<h2>Tickets per day and channel</h2>
{_volume_chart(r)}
<p>Days marked with a red dot exceed the average of the same weekday in the four weeks before
by more than 20&nbsp;%.</p>
</body></html>
"""


def _under(rate: Rate) -> bool | None:
    if rate.percent is None or rate.target is None:
        return None
    return rate.percent < rate.target


def _cls(ok: bool | None) -> str:
    return "" if ok is None else ("good" if ok else "bad")


def _compliance_chart(r: KpiReport) -> str:
    cells = [c for c in r.compliance if c.percent is not None]
    if not cells:
        return "<p>No SLA cycles finished in the period.</p>"
    bar, gap, label_w, width = 16, 6, 260, 300
    height = len(cells) * (bar + gap) + 30
    x_target = label_w + width * COMPLIANCE_TARGET / 100
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + width + 60}" '
        f'height="{height}" role="img" aria-label="SLA compliance">'
    ]
    for k, c in enumerate(cells):
        y = 10 + k * (bar + gap)
        pct = c.percent or 0.0
        colour = "#1b5e20" if pct >= COMPLIANCE_TARGET else "#b00020"
        label = html.escape(f"{c.policy} / {c.metric} / {c.channel}")
        parts.append(f'<text x="0" y="{y + bar - 4}">{label}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{width * pct / 100:.1f}" '
            f'height="{bar}" fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{label_w + width * pct / 100 + 4:.1f}" y="{y + bar - 4}">{pct:.1f}%</text>'
        )
    parts.append(
        f'<line x1="{x_target:.1f}" y1="5" x2="{x_target:.1f}" y2="{height - 15}" '
        'stroke="#555" stroke-dasharray="4 3"/>'
    )
    parts.append(f'<text x="{x_target - 20:.1f}" y="{height - 3}">target</text></svg>')
    return "".join(parts)


def _volume_chart(r: KpiReport) -> str:
    days = sorted({v.day for v in r.volume})
    channels = sorted({v.channel for v in r.volume})
    if not days:
        return "<p>No tickets.</p>"
    counts = {(v.day, v.channel): v for v in r.volume}
    totals = [sum(counts[(d, c)].tickets for c in channels if (d, c) in counts) for d in days]
    top = max(max(totals), 1)
    col, chart_h, left = max(12, min(40, 700 // len(days))), 180, 30
    width = left + col * len(days) + 140
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{chart_h + 50}" '
        'role="img" aria-label="tickets per day">'
    ]
    for i, day in enumerate(days):
        x = left + i * col
        y = float(chart_h + 10)
        for k, channel in enumerate(channels):
            v = counts.get((day, channel))
            if v is None or not v.tickets:
                continue
            h = chart_h * v.tickets / top
            y -= h
            parts.append(
                f'<rect x="{x}" y="{y:.1f}" width="{col - 2}" height="{h:.1f}" '
                f'fill="{_COLOURS[k % len(_COLOURS)]}"><title>'
                f"{html.escape(f'{day} {channel}: {v.tickets}')}</title></rect>"
            )
            if v.spike:
                parts.append(
                    f'<circle cx="{x + (col - 2) / 2:.1f}" cy="{y - 5:.1f}" r="3" fill="#b00020"/>'
                )
        if len(days) <= 31 or i % 7 == 0:
            parts.append(f'<text x="{x}" y="{chart_h + 25}">{day:%d}</text>')
    parts.append(f'<text x="0" y="12">{top}</text>')
    for k, channel in enumerate(channels):
        y = 20 + 16 * k
        x = left + col * len(days) + 20
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" '
            f'fill="{_COLOURS[k % len(_COLOURS)]}"/>'
        )
        parts.append(f'<text x="{x + 14}" y="{y}">{html.escape(channel)}</text>')
    parts.append("</svg>")
    return "".join(parts)
