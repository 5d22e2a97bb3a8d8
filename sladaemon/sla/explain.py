"""``explain``: why a ticket got the policy and deadlines it has, with the business-time
accounting behind every figure, and each breach predicted in its timeline: when, how likely,
against which threshold, by which model and why (JSON: ``predictions``, present when there are
any)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sladaemon.calendar import BusinessCalendar
from sladaemon.durations import format_duration
from sladaemon.model import Metric, SlaEvent, SlaEventKind
from sladaemon.sla.engine import MetricStatus, TicketEvaluation
from sladaemon.sla.native import native_deadlines


def iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def helpdesk_deadlines(ev: TicketEvaluation) -> dict[Metric, str]:
    """The helpdesk's own deadlines the ticket shows, by the metric each stands for."""
    ours = {m: st.deadline for m, st in ev.metrics.items() if st.deadline is not None}
    return native_deadlines(ev.fields, ours)


def explain_json(ev: TicketEvaluation) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    helpdesk = helpdesk_deadlines(ev)
    for metric, st in ev.metrics.items():
        entry: dict[str, Any] = {
            "state": st.state.value,
            "started_at": iso(st.started_at),
            "deadline": iso(st.deadline),
            "business_elapsed_s": st.business_elapsed.total_seconds(),
            "remaining_s": st.remaining.total_seconds() if st.remaining is not None else None,
        }
        native = helpdesk.get(metric)
        if native:  # the helpdesk's own deadline, where the source reports one
            entry["helpdesk_deadline"] = native
        metrics[metric.value] = entry
    out: dict[str, Any] = {
        "ticket_id": ev.ticket_id,
        "policy": ev.policy.name if ev.policy else None,
        "metrics": metrics,
    }
    predictions = [_prediction_json(e) for e in predicted_breaches(ev)]
    if predictions:
        out["predictions"] = predictions
    return out


def predicted_breaches(ev: TicketEvaluation) -> list[SlaEvent]:
    """The ``predicted_breach`` events of the evaluation's timeline, in time order."""
    found = [e for e in ev.timeline if e.kind is SlaEventKind.PREDICTED_BREACH]
    return sorted(found, key=lambda e: e.at)


def _prediction_json(e: SlaEvent) -> dict[str, Any]:
    details = e.details
    left = details.get("business_left_us")
    return {
        "metric": e.metric.value,
        "cycle": e.cycle,
        "at": iso(e.at),
        "deadline": iso(e.deadline),
        "probability": _number(details.get("probability")),
        "threshold": _number(details.get("threshold")),
        "model": details.get("model"),
        "business_left_s": left / 1e6 if isinstance(left, int) else None,
        "reason": str(details.get("reason") or ""),
    }


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def explain_text(ev: TicketEvaluation, calendars: Mapping[str, BusinessCalendar]) -> str:
    out: list[str] = []
    shown = ", ".join(f"{k} {v}" for k, v in ev.fields.items() if v)
    category = ev.category.value if ev.category else "unknown"
    out.append(f"ticket {ev.ticket_id} at {iso(ev.at)}: {category} ({shown or 'no fields'})")
    for name, why in ev.skipped_policies:
        out.append(f"  policy {name}: skipped, {why}")
    if ev.policy is None:
        out.append("  no policy matches: no SLA applies")
        return "\n".join(out)
    reason = "matches" if ev.policy.match else "matches every ticket"
    if ev.policy.match:
        reason += " (" + "; ".join(m.describe() for m in ev.policy.match) + ")"
    out.append(f"  policy {ev.policy.name}: {reason}")
    helpdesk = helpdesk_deadlines(ev)
    for status in ev.metrics.values():
        lines = _metric_lines(status, ev.at, calendars.get(status.calendar))
        native = helpdesk.get(status.metric)
        if native:
            lines.insert(min(len(lines), 5), _native_line(native, status.deadline))
        out.extend(lines)
    for event in predicted_breaches(ev):
        out.extend(_prediction_lines(event, _zone_of(ev, event.metric, calendars)))
    return "\n".join(out)


def _zone_of(
    ev: TicketEvaluation, metric: Metric, calendars: Mapping[str, BusinessCalendar]
) -> tzinfo:
    status = ev.metrics.get(metric)
    calendar = calendars.get(status.calendar) if status is not None else None
    return calendar.zone if calendar is not None else UTC


def _metric_lines(st: MetricStatus, now: datetime, calendar: BusinessCalendar | None) -> list[str]:
    target = format_duration(st.target) if st.target else "-"
    lines = [f"\n{st.metric.value}: {st.state.value}, target {target} on calendar {st.calendar}"]
    if st.reason:
        lines.append(f"  {st.reason}")
    if st.started_at is None:
        return lines
    zone = calendar.zone if calendar else UTC
    lines.extend(_cycle_lines(st, zone))
    if calendar is not None:
        lines.extend(_accounting_lines(st, st.started_at, now, calendar))
    lines.extend(_level_lines(st, zone))
    return lines


def _when(t: datetime | None, zone: tzinfo) -> str:
    """An instant in UTC and in the calendar's local time."""
    if t is None:
        return "-"
    return f"{iso(t)} ({t.astimezone(zone):%a %Y-%m-%d %H:%M %Z})"


def _cycle_lines(st: MetricStatus, zone: tzinfo) -> list[str]:
    """The cycle's number, start, deadline, end, business time used and left."""
    lines = [f"  cycle     {st.cycle}", f"  started   {_when(st.started_at, zone)}"]
    if st.deadline is not None:
        lines.append(f"  deadline  {_when(st.deadline, zone)}")
    elif st.paused_since is not None:
        lines.append(f"  deadline  - (paused since {_when(st.paused_since, zone)})")
    if st.ended_at is not None:
        lines.append(f"  ended     {_when(st.ended_at, zone)}")
    pct = f" ({st.fraction:.0%} of target)" if st.fraction is not None else ""
    lines.append(f"  business  {format_duration(st.business_elapsed)}{pct}")
    if st.remaining is not None:
        word = "remaining" if st.remaining >= timedelta(0) else "overdue  "
        lines.append(f"  {word} {format_duration(abs(st.remaining))}")
    return lines


def _accounting_lines(
    st: MetricStatus, started_at: datetime, now: datetime, calendar: BusinessCalendar
) -> list[str]:
    """The business intervals counted (the first 40), the pauses and the days skipped."""
    zone = calendar.zone
    end = st.ended_at or now
    pauses = [(a, b or end) for a, b in st.pauses if a < end]
    acct = calendar.account(started_at, end, pauses)
    lines = []
    for a, b in acct.intervals[:40]:
        local_a, local_b = a.astimezone(zone), b.astimezone(zone)
        span = f"{local_a:%a %Y-%m-%d %H:%M}-{local_b:%H:%M} {local_a:%Z}"
        lines.append(f"  counted   {span}  {format_duration(b - a)}")
    if len(acct.intervals) > 40:
        lines.append(f"  counted   ... {len(acct.intervals) - 40} more intervals")
    for a, b in acct.paused:
        lines.append(f"  paused    {_when(a, zone)} .. {_when(b, zone)}  -{format_duration(b - a)}")
    for day, why in acct.closed_days:
        lines.append(f"  skipped   {day:%a %Y-%m-%d} {why}")
    return lines


def _level_lines(st: MetricStatus, zone: tzinfo) -> list[str]:
    """Each escalation level: reached, due (when), waiting or not reached, and who hears."""
    lines = []
    for level in st.levels:
        if level.reached:
            state = "reached"
        elif st.ended_at is not None:
            state = "not reached"
        else:
            state = "due" if level.at else "waiting (paused)"
        at = f" at {_when(level.at, zone)}" if level.at and not level.reached else ""
        notify = f" -> {', '.join(level.notify)}" if level.notify else ""
        lines.append(f"  level     {level.label}: {state}{at}{notify}")
    return lines


def _prediction_lines(e: SlaEvent, zone: tzinfo) -> list[str]:
    """A predicted breach: when, how likely against which threshold, the model, why."""
    entry = _prediction_json(e)
    probability, threshold = entry["probability"], entry["threshold"]
    # as the notifications say it: 1 % to 99 %, a prediction is never certain
    likely = (
        f"{min(99, max(1, round(100 * probability)))}%" if probability is not None else "unknown"
    )
    rule = (
        f"threshold in force {threshold:.0%}"
        if threshold is not None
        else "fixed rule: predict.threshold and early"
    )
    lines = [
        f"\npredicted breach of {e.metric.value} (cycle {e.cycle})",
        f"  at        {_when(e.at, zone)}",
        f"  deadline  {_when(e.deadline, zone)}",
        f"  likely    {likely} ({rule})",
        f"  model     {entry['model'] or 'unknown'}",
    ]
    if entry["business_left_s"] is not None:
        left = format_duration(entry["business_left_s"], exact=False)
        lines.append(f"  left      {left} of business time")
    if entry["reason"]:
        lines.append(f"  why       {entry['reason']}")
    return lines


def _native_line(native: str, ours: datetime | None) -> str:
    text = f"  helpdesk  {native}"
    try:
        theirs = datetime.fromisoformat(native.replace("Z", "+00:00"))
    except ValueError:
        return text + " (unparsable)"
    if ours is not None:
        diff = (theirs - ours).total_seconds()
        text += (
            " (same)"
            if abs(diff) < 1
            else f" ({'+' if diff > 0 else '-'}{format_duration(abs(diff))} vs ours)"
        )
    return text
