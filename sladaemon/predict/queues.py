"""Queue forecasts and queue alerts.

In: the registry (each queue × metric's decayed arrivals and services per hour of its local
week), the open cycles (backlog, place in queue), the latest risk of every running cycle (its
deadline), ``now`` and the horizon in business time. Out: one ``QueueForecast`` per queue ×
metric — backlog, rates per wall-clock hour, the expected backlog at each step of the horizon,
and the waiting cycles that, served in deadline order at the forecast throughput, reach their
deadline first — and a ``QueueAlert`` whenever a queue's misses change bucket. Only
``QueueAlerts`` keeps state (the last bucket of each queue).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from sladaemon.predict.columns import (
    METRICS,
    US,
    Floats,
    Ints,
    OpenCycles,
    Registry,
    calendar_groups,
    places,
    queue_order,
)
from sladaemon.predict.results import QueueAlert, QueueForecast, ReasonCode, finite
from sladaemon.predict.risk import CycleRisk
from sladaemon.predict.weekly import US_PER_HOUR, cumulative, integrate, rates, week_position
from sladaemon.predict.wording import queue_summary, unknown_forecast

MIN_QUEUE_SERVICES = 5.0  # decayed services before a queue gets a forecast
MISS_BUCKETS = (1, 3, 6, 11, 21, 51, 101)  # a queue alert when the forecast changes bucket
MAX_FORECAST_STEPS = 24
WAITING = (
    ReasonCode.KNOWN.value,
    ReasonCode.TOO_LITTLE_HISTORY.value,
    ReasonCode.TARGET_RARELY_REACHED.value,
)


def places_in_queue(
    cycles: OpenCycles, queue_metrics: Ints, starts: Ints
) -> tuple[list[int], list[int]]:
    """Place in queue (by start, among open cycles of the same queue and metric; 1 = longest
    waiting) and the queue's backlog, for each (queue × metric, start)."""
    positions, backlogs = places(queue_order(cycles), queue_metrics, starts)
    return positions.tolist(), backlogs.tolist()


def forecast_queues(
    now_us: int,
    registry: Registry,
    cycles: OpenCycles,
    active: CycleRisk,
    horizon: timedelta,
) -> list[QueueForecast]:
    """Every queue × metric of ``registry`` over the next ``horizon`` of business time."""
    queues = registry.queues
    if not queues:
        return []
    count = len(queues)
    zones = np.array([queue.zone for queue in queues], np.int64)
    hours = registry.exposure_hours(now_us, zones)
    arrival_counts = registry.arrivals.counts_at(now_us)[[queue.arrivals for queue in queues]]
    service_counts = registry.services.counts_at(now_us)[[queue.services for queue in queues]]
    horizon_us = int(horizon.total_seconds() * US)
    steps = min(MAX_FORECAST_STEPS, max(1, math.ceil(horizon_us / US_PER_HOUR)))
    points = _step_instants(now_us, registry, horizon_us, steps)
    backlog = _backlogs(cycles, count)[:count].astype(np.float64)
    path, total_in, total_out = _flow(
        rates(arrival_counts, hours),
        rates(service_counts, hours),
        points,
        registry.utc_offsets_s(now_us, zones),
        backlog,
    )
    window_h = np.maximum((points[:, -1] - now_us) / US_PER_HOUR, 1e-9)
    arrivals_per_hour = total_in / window_h
    throughput = total_out / window_h
    will_miss, needed = _misses(active, points[:, -1], throughput, now_us, count)
    seen_services = service_counts.sum(axis=1)
    return [
        QueueForecast(
            source=queue.source,
            queue=queue.name,
            metric=queue.metric,
            at_us=now_us,
            backlog=int(backlog[i]),
            arrivals_per_hour=finite(arrivals_per_hour[i]),
            throughput_per_hour=finite(throughput[i]),
            forecast=tuple((int(points[i, k + 1]), finite(path[k][i])) for k in range(steps)),
            will_miss=int(will_miss[i]),
            needed_rise_per_hour=finite(needed[i]),
            unknown=(
                unknown_forecast(queue.metric, queue.name, seen_services[i], MIN_QUEUE_SERVICES)
                if seen_services[i] < MIN_QUEUE_SERVICES
                else ""
            ),
        )
        for i, queue in enumerate(queues)
    ]


def _backlogs(cycles: OpenCycles, queues: int) -> Ints:
    """Open cycles per queue × metric id."""
    used = cycles.used[: cycles.capacity]
    counts: Ints = np.bincount(
        cycles.queue_metric[: cycles.capacity][used], minlength=queues
    ).astype(np.int64)
    return counts


def _step_instants(now_us: int, registry: Registry, horizon_us: int, steps: int) -> Ints:
    """Per queue, ``now_us`` and the instant of each step of the horizon (business time on the
    queue's calendar)."""
    queues = registry.queues
    points = np.zeros((len(queues), steps + 1), np.int64)
    points[:, 0] = now_us
    calendars = np.array([queue.calendar for queue in queues], np.int64)
    for calendar_id, same in calendar_groups(calendars):
        calendar = registry.calendars[calendar_id]
        for k in range(1, steps + 1):
            points[same, k] = calendar.add_many(
                np.full(same.size, now_us, np.int64),
                np.full(same.size, horizon_us * k // steps, np.int64),
            )
    return points


def _flow(
    arrive: Floats, serve: Floats, points: Ints, offsets_s: Floats, backlog: Floats
) -> tuple[list[Floats], Floats, Floats]:
    """The backlog at the end of each step when arrivals and services come at their rates of
    the hour of the week; and the arrivals and the service capacity over the whole horizon."""
    count, steps = points.shape[0], points.shape[1] - 1
    arrive_cumulated, serve_cumulated = cumulative(arrive), cumulative(serve)
    series = np.arange(count)
    level = backlog.copy()
    path = []
    total_in = np.zeros(count)
    total_out = np.zeros(count)
    for k in range(steps):
        a = week_position(points[:, k], offsets_s)
        b = week_position(points[:, k + 1], offsets_s)
        inflow = integrate(arrive, arrive_cumulated, series, a, b)
        capacity = integrate(serve, serve_cumulated, series, a, b)
        outflow = np.minimum(capacity, level + inflow)
        total_in += inflow
        total_out += capacity
        level = np.maximum(level + inflow - outflow, 0.0)
        path.append(level.copy())
    return path, total_in, total_out


def _misses(
    active: CycleRisk, window_end: Ints, throughput: Floats, now_us: int, count: int
) -> tuple[Ints, Floats]:
    """Waiting cycles, served in deadline order at the forecast throughput, whose deadline
    (within the horizon) comes before their turn; and the extra throughput that would serve
    each of them in time."""
    cycles = active.cycles
    queue_metric = np.minimum(cycles.queue_metric, count - 1)
    waiting = np.isin(active.code, WAITING)
    due = waiting & (active.deadline > now_us) & (cycles.queue_metric < count)
    due &= active.deadline <= window_end[queue_metric]
    idx = np.flatnonzero(due)
    will_miss = np.zeros(count, np.int64)
    needed = np.zeros(count)
    if idx.size == 0:
        return will_miss, needed
    order = idx[np.lexsort((active.deadline[idx], queue_metric[idx]))]
    groups = queue_metric[order]
    first = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    rank = np.arange(order.size) - np.repeat(first, np.diff(np.r_[first, order.size])) + 1
    hours_left = (active.deadline[order] - now_us) / US_PER_HOUR
    rate = throughput[groups]
    with np.errstate(divide="ignore", invalid="ignore"):
        turn = np.where(rate > 0, rank / rate, np.inf)
        need = rank / np.maximum(hours_left, 1.0 / 60.0)
    np.add.at(will_miss, groups, (turn > hours_left).astype(np.int64))
    np.maximum.at(needed, groups, need)
    rise = np.maximum(needed - throughput, 0.0)
    rise[will_miss == 0] = 0.0
    return will_miss, rise


class QueueAlerts:
    """One alert per queue (all its metrics together) each time its forecast misses move to
    another bucket: up, or back to none."""

    def __init__(self) -> None:
        self._last_bucket: dict[tuple[str, str], int] = {}

    def raise_alerts(
        self,
        now_us: int,
        forecasts: Sequence[QueueForecast],
        registry: Registry,
        horizon: timedelta,
    ) -> list[QueueAlert]:
        by_queue: dict[tuple[str, str], list[QueueForecast]] = {}
        for f in forecasts:
            if not f.unknown:
                by_queue.setdefault((f.source, f.queue), []).append(f)
        alerts = []
        for (source, queue), mine in by_queue.items():
            misses = sum(f.will_miss for f in mine)
            bucket = sum(misses >= b for b in MISS_BUCKETS)
            last = self._last_bucket.get((source, queue), 0)
            self._last_bucket[(source, queue)] = bucket
            if bucket == last or (bucket < last and bucket > 0):
                continue
            mine.sort(key=lambda f: (-f.will_miss, METRICS.index(f.metric)))
            zone = registry.zones[registry.queue(source, queue, mine[0].metric).zone]
            day = datetime.fromtimestamp(now_us / US, zone).date().isoformat()
            alerts.append(
                QueueAlert(
                    key=f"queue/{source}/{queue}/{day}/{bucket}",
                    source=source,
                    queue=queue,
                    at_us=now_us,
                    summary=queue_summary(queue, mine, horizon),
                    will_miss=misses,
                )
            )
        return alerts
