"""The features of running metrics at an instant: what the boosted model judges from.

In: the cycles judged (``CycleRisk``: their columns, business elapsed, deadline and the life
table's figures) and ``FeatureContext`` (the rows, ticket activity, recent queue rates and the
registry). Out: a float matrix, one row per cycle and one column per name in ``FEATURES``;
NaN where a value is not known (the model treats it as missing).

Everything is known at the cycle's instant: nothing here looks at how the cycle ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sladaemon.predict.activity import RecentRates, TicketActivity
from sladaemon.predict.columns import (
    NOT_SET,
    US,
    Floats,
    Int32s,
    Ints,
    OpenCycles,
    Registry,
    places,
    queue_order,
)
from sladaemon.predict.risk import CycleRisk
from sladaemon.predict.weekly import HOURS_PER_WEEK, week_position

HOUR_US = 3600 * US

FEATURES = (
    "elapsed_share",  # business time used / target
    "target_h",
    "business_left_h",
    "wall_left_h",  # wall clock to the deadline: nights and weekends
    "metric",
    "policy_metric",
    "priority",
    "channel",
    "hour_of_week",  # local, of the metric's calendar
    "cycle",  # 0 for the first cycle; next responses and reopens count up
    "history_probability",  # the life table's share of similar cycles that went past
    "week_factor",  # service expected before the deadline against usual
    "life_table_probability",
    "position",  # 1 = longest waiting of its queue and metric
    "backlog",
    "backlog_trend",  # backlog now minus its day average
    "arrivals_day",
    "services_day",
    "reassignments",
    "agent_replies",
    "customer_replies",
    "waits",  # pending or on-hold periods so far
    "since_agent_action_h",
)
COLUMN = {name: i for i, name in enumerate(FEATURES)}


@dataclass(frozen=True)
class FeatureContext:
    rows: OpenCycles
    activity: TicketActivity
    rates: RecentRates
    registry: Registry
    priority: Int32s  # per ticket number: priority id (-1: none)
    channel: Int32s  # per ticket number: channel id (-1: none)

    @cached_property
    def queue_order(self) -> tuple[Ints, Ints]:
        return queue_order(self.rows)


def queue_backlogs(rows: OpenCycles, queues: int) -> Floats:
    """Open cycles per queue × metric id."""
    used = np.flatnonzero(rows.used[: rows.capacity])
    counts: Floats = np.bincount(rows.queue_metric[used], minlength=queues).astype(np.float64)
    return counts


def feature_matrix(risk: CycleRisk, context: FeatureContext, backlogs: Floats) -> Floats:
    """One row per cycle of ``risk`` (see the module)."""
    cycles = risk.cycles
    n = cycles.slots.size
    out = np.full((n, len(FEATURES)), np.nan)
    if n == 0:
        return out
    now = cycles.now
    target = cycles.target.astype(np.float64)
    elapsed = risk.elapsed.astype(np.float64)
    column = COLUMN
    out[:, column["elapsed_share"]] = elapsed / np.maximum(target, 1.0)
    out[:, column["target_h"]] = target / HOUR_US
    out[:, column["business_left_h"]] = (target - elapsed) / HOUR_US
    known_deadline = risk.deadline != NOT_SET
    out[known_deadline, column["wall_left_h"]] = (
        risk.deadline[known_deadline] - now[known_deadline]
    ) / HOUR_US
    out[:, column["metric"]] = cycles.metric
    out[:, column["policy_metric"]] = cycles.policy_metric
    out[:, column["cycle"]] = cycles.cycle
    registry = context.registry
    zones = np.array([registry.zone_id(int(c)) for c in range(len(registry.calendars))], np.int64)
    if zones.size:
        offsets = registry.utc_offsets_s(int(now.max()), zones)[cycles.calendar]
        out[:, column["hour_of_week"]] = week_position(now, offsets) % HOURS_PER_WEEK
    out[:, column["history_probability"]] = risk.history
    out[:, column["week_factor"]] = risk.week_factor
    out[:, column["life_table_probability"]] = risk.probability
    queue = cycles.queue_metric
    backlog = backlogs[queue] if backlogs.size else np.zeros(n)
    out[:, column["backlog"]] = backlog
    rates = context.rates
    if rates.backlog_average.size > int(queue.max(initial=0)):
        out[:, column["backlog_trend"]] = backlog - rates.backlog_average[queue]
    arrivals, services = rates.per_day(queue, int(now.max()))
    out[:, column["arrivals_day"]] = arrivals
    out[:, column["services_day"]] = services
    out[:, column["position"]] = places(context.queue_order, queue, cycles.start)[0]
    ticket = context.rows.ticket[cycles.slots].astype(np.int64)
    activity = context.activity
    if activity.seen.size:
        ticket_known = ticket < activity.seen.size
        t = ticket[ticket_known]
        for name in ("reassignments", "agent_replies", "customer_replies", "waits"):
            out[ticket_known, column[name]] = getattr(activity, name)[t]
        last = activity.last_action[t].astype(np.int64) * US
        has_last = last != 0
        chosen = np.flatnonzero(ticket_known)[has_last]
        out[chosen, column["since_agent_action_h"]] = (now[chosen] - last[has_last]) / HOUR_US
    for name, ids in (("priority", context.priority), ("channel", context.channel)):
        inside = ticket < ids.size
        values = np.full(n, -1, np.int64)
        values[inside] = ids[ticket[inside]]
        column_values = values.astype(np.float64)
        column_values[values < 0] = np.nan
        out[:, column[name]] = column_values
    return out
