"""The predictor's English: why a metric is likely to breach, why it has no probability, what
a queue forecast says.

Plain values in, one line of text out; no figure is ever printed as NaN (``percent`` says
"?"). Durations are rounded as ``format_duration(..., exact=False)`` does: to the second below
an hour, to the minute above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta

from sladaemon.durations import format_duration
from sladaemon.model import Metric
from sladaemon.predict.results import QueueForecast, ReasonCode

_SERVICES = {
    Metric.FIRST_RESPONSE: "first responses",
    Metric.NEXT_RESPONSE: "next responses",
    Metric.PERIODIC_UPDATE: "updates",
    Metric.RESOLUTION: "resolutions",
}


def prediction_reason(
    metric: str,
    queue: str,
    priority: str,
    elapsed_s: float,
    target_s: float,
    history_probability: float,
    week_factor: float,
    position: int,
    backlog: int,
) -> str:
    """'76% of similar first response cycles (queue support, priority high) still open after
    1h went past 2h; place 3 of 11 waiting in support; 40% of the usual service expected
    before the deadline' (the last part only where ``week_factor`` is off 1 by over 0.2)."""
    elapsed = format_duration(elapsed_s, exact=False)
    target = format_duration(target_s, exact=False)
    parts = [
        f"{percent(history_probability)} of similar {metric.replace('_', ' ')} cycles (queue "
        f"{queue}, priority {priority}) still open after {elapsed} went past {target}",
        f"place {position} of {backlog} waiting in {queue}",
    ]
    if abs(week_factor - 1.0) > 0.2:
        parts.append(f"{percent(week_factor)} of the usual service expected before the deadline")
    return "; ".join(parts)


def unknown_reason(
    code: ReasonCode,
    metric: str,
    policy: str,
    *,
    finished: float,
    min_history: int,
    min_reached: float,
) -> str:
    """Why a metric of ``policy`` has no probability; empty for ``KNOWN``. ``finished``: the
    decayed finished cycles of its policy × metric."""
    if code is ReasonCode.PAUSED:
        return "the clock is paused"
    if code is ReasonCode.BREACHED:
        return "already breached"
    if code is ReasonCode.TARGET_RARELY_REACHED:
        return (
            f"unknown: fewer than {min_reached:.0f} {metric} cycles of policy {policy} "
            "have run as long as the target so far"
        )
    if code is ReasonCode.TOO_LITTLE_HISTORY:
        return (
            f"unknown: {finished:.0f} finished {metric} cycles of policy {policy} in the "
            f"history, predictions need {min_history}"
        )
    return ""


def unknown_forecast(metric: Metric, queue: str, seen: float, needed: float) -> str:
    """Why a queue × metric that saw ``seen`` decayed services has no forecast yet."""
    if seen <= 0.0:
        return f"no {_SERVICES[metric]} seen yet in queue {queue}"
    return (
        f"only {seen:.0f} {_SERVICES[metric]} seen in queue {queue}, a forecast needs {needed:.0f}"
    )


def queue_summary(queue: str, forecasts: Sequence[QueueForecast], horizon: timedelta) -> str:
    """'Support: backlog 42 and rising (arrivals 12/h, throughput 8/h); 9 tickets will miss
    first response within the next 4 business hours unless throughput rises by 4/h'."""
    lead = forecasts[0]
    text = (
        f"{queue}: backlog {lead.backlog} and {lead.trend} (arrivals "
        f"{per_hour(lead.arrivals_per_hour)}, throughput {per_hour(lead.throughput_per_hour)})"
    )
    within = f"within the next {format_duration(horizon)} of business time"
    at_risk = [f for f in forecasts if f.will_miss]
    if not at_risk:
        return f"{text}; no waiting ticket is forecast to miss its target {within}"
    first = at_risk[0]
    text += (
        f"; {first.will_miss} ticket{'s' if first.will_miss != 1 else ''} will miss "
        f"{first.metric.value.replace('_', ' ')} {within}"
    )
    if first.needed_rise_per_hour > 0:
        text += f" unless throughput rises by {per_hour(rounded_up(first.needed_rise_per_hour))}"
    for other in at_risk[1:]:
        text += f"; {other.will_miss} will miss {other.metric.value.replace('_', ' ')}"
    return text


def per_hour(value: float) -> str:
    if value >= 10:
        return f"{value:.0f}/h"
    return f"{value:.1f}/h"


def rounded_up(value: float) -> float:
    """A positive ``value`` rounded up to the precision ``per_hour`` shows, so a rise that is
    needed never reads as 0.0/h (a float just above a step, 0.30000000000000004, stays 0.3)."""
    step = 1.0 if value >= 10 else 0.1
    return max(1, math.ceil(value / step - 1e-9)) * step


def percent(value: float) -> str:
    if not math.isfinite(value):
        return "?"
    return f"{100.0 * value:.0f}%"
