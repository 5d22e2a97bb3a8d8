"""Why the boosted model judged a metric likely to breach, in words.

Each group of features (the queue, the ticket's handling, the time, the history of similar
cycles, the ticket itself) is set in turn to its usual value (its median in training) and the
model asked again: the groups whose usual values lower the score most are the reasons, the
strongest first, each said from the metric's own figures — "queue Support backlog 42 and
rising; 3 reassignments; Friday 17:40 with 1h of business time left".

Pure: a model and one feature row in, a line of text out.
"""

from __future__ import annotations

import math

import numpy as np

from sladaemon.durations import format_duration
from sladaemon.predict.boosted import BoostedTrees
from sladaemon.predict.columns import Floats
from sladaemon.predict.features import COLUMN

GROUPS = {
    "queue": ("backlog", "backlog_trend", "position", "arrivals_day", "services_day"),
    "handling": (
        "reassignments", "agent_replies", "customer_replies", "waits", "since_agent_action_h",
    ),
    "time": ("hour_of_week", "wall_left_h", "business_left_h", "elapsed_share"),
    "history": ("history_probability", "week_factor", "life_table_probability"),
    "ticket": ("priority", "channel", "metric", "policy_metric", "cycle", "target_h"),
}  # fmt: skip
MIN_EFFECT = 0.05  # log-odds a group must add to be named
MOST = 3
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def group_effects(model: BoostedTrees, row: Floats) -> list[tuple[str, float]]:
    """Each group with what it adds to the score (log-odds) against its usual values, the
    largest first."""
    names = list(GROUPS)
    trials = np.repeat(row[None, :], len(names) + 1, axis=0)
    for k, name in enumerate(names, 1):
        columns = [COLUMN[feature] for feature in GROUPS[name]]
        trials[k, columns] = model.reference[columns]
    scores = model.raw_score(trials)
    effects = [(name, float(scores[0] - scores[k])) for k, name in enumerate(names, 1)]
    return sorted(effects, key=lambda pair: -pair[1])


def top_reasons(
    model: BoostedTrees, row: Floats, queue: str, priority: str, history_reason: str
) -> str:
    """The strongest reasons as one line; the history's reason when no group stands out."""
    parts: list[str] = []
    for name, effect in group_effects(model, row):
        if effect < MIN_EFFECT or len(parts) == MOST:
            break
        text = _say(name, row, queue, priority, history_reason)
        if text:
            parts.append(text)
    return "; ".join(parts) or history_reason


def _say(name: str, row: Floats, queue: str, priority: str, history_reason: str) -> str:
    if name == "queue":
        return _queue_phrase(row, queue)
    if name == "handling":
        return _handling_phrase(row)
    if name == "time":
        return _time_phrase(row)
    if name == "history":
        return history_reason
    return f"priority {priority}" if priority else ""


def _value(row: Floats, feature: str) -> float:
    return float(row[COLUMN[feature]])


def _queue_phrase(row: Floats, queue: str) -> str:
    backlog, trend = _value(row, "backlog"), _value(row, "backlog_trend")
    if not math.isfinite(backlog):
        return f"queue {queue}"
    direction = "steady"
    if math.isfinite(trend) and abs(trend) >= max(1.0, 0.1 * backlog):
        direction = "rising" if trend > 0 else "falling"
    text = f"queue {queue} backlog {backlog:.0f} and {direction}"
    position = _value(row, "position")
    if math.isfinite(position):
        text += f" (place {position:.0f})"
    return text


def _handling_phrase(row: Floats) -> str:
    said = []
    for feature, one, many in (
        ("reassignments", "1 reassignment", "{n} reassignments"),
        ("waits", "1 wait for the customer", "{n} waits for the customer"),
        ("customer_replies", "1 customer reply", "{n} customer replies"),
    ):
        n = _value(row, feature)
        if math.isfinite(n) and n >= 1:
            said.append(one if n == 1 else many.format(n=f"{n:.0f}"))
    idle = _value(row, "since_agent_action_h")
    if math.isfinite(idle) and idle >= 1:
        said.append(f"no agent action for {format_duration(idle * 3600, exact=False)}")
    return "; ".join(said[:2]) or "no reply from an agent yet"


def _time_phrase(row: Floats) -> str:
    hour = _value(row, "hour_of_week")
    left = _value(row, "business_left_h")
    if not (math.isfinite(hour) and math.isfinite(left)):
        return ""
    day, minutes = divmod(round(hour * 60), 24 * 60)
    return (
        f"{DAYS[day % 7]} {minutes // 60:02d}:{minutes % 60:02d} with "
        f"{format_duration(max(left, 0.0) * 3600, exact=False)} of business time left"
    )
