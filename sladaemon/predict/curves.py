"""Breach prediction as a curve, measured against every fixed threshold on the same replay.

A *metric* is one cycle of one metric of one ticket. Its outcome at the end of the replay
(``until``) is known when it breached (a positive; its deadline is the instant it breached) or
when it ended in time (a negative); a cycle still running, not breached, is left out.

Two families of rules are measured on those outcomes:

* fixed at fraction f (0.30, 0.31, …, 0.99) — warn when business time elapsed reaches
  f·target: a met metric is warned when its final business time reached it, a breached one
  always. Business lead (1 − f)·target; wall lead: breach − the instant it reached f·target.
* predicted at θ (0.05, 0.06, …, 0.99) — warn at the first score ≥ θ of the predictor's trace
  of the metric. Business lead: business time left then; wall lead: breach − that instant.
  The *operating point* is the predictor's own ``predicted_breach`` events.

Per rule: alerts, breaches, warned breaches (warned at or before the breach), precision (warned
breaches / alerts), recall (warned breaches / breaches), warned breaches with a wall lead of at
least an hour, and the median leads over warned breaches. Everything is measured per part of
the history — *tune*: the first 60 % of the cycles (with a known outcome) in order of start;
*report*: the rest — and per metric ("all" and each one present).

At equal precision, a predictor point faces the fixed rule of the same precision: linear
between the two fixed points (the first adjacent pair in order of f) whose precisions bracket
it; outside the fixed curve's precisions, the fixed point nearest in precision (``clamped``:
``below`` or ``above``). The ratios are the predictor's figure over the fixed rule's.

The instant a breached cycle reached f·target walks its running segments from its start,
skipping its pauses, with the calendar's business arithmetic. A resolution cycle met and
reopened counted nothing between the two; those gaps are rebuilt from the ticket's status
history by the engine's rule. A cycle whose walk still disagrees with its clock keeps the walk
as it stands and is counted in ``approximate``.
"""

from __future__ import annotations

import html
import itertools
import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sladaemon.calendar import BusinessCalendar, from_us, to_us
from sladaemon.model import EventKind, Metric, MetricState, SlaEvent, StatusCategory
from sladaemon.predict.backtest import MetricKey, PredictiveBacktest, Trace
from sladaemon.sla.clocks import ClockCycle, MetricClock
from sladaemon.sla.engine import TicketReplay, next_category
from sladaemon.texttable import aligned, percent, short_duration

FRACTIONS: npt.NDArray[np.float64] = np.arange(30, 100) / 100  # the fixed rules
PROBABILITIES: npt.NDArray[np.float64] = np.arange(5, 100) / 100  # the predictor's thresholds
TUNE_SHARE = 0.6  # the first 60 % of the cycles tune, the rest report
HOUR_S = 3600.0
US = 1_000_000
ALL = "all"
PARTS = ("tune", "report")
SHOWN_FRACTIONS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)
SHOWN_PROBABILITIES = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


# ---------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class Outcome:
    """One metric whose outcome is known at ``until``."""

    key: MetricKey
    metric: str
    policy: str
    started_us: int
    target_us: int
    breached_us: int | None  # None: met in time
    elapsed_us: int  # business time at the end
    reached_us: tuple[int, ...]  # breached: the wall instant of each of FRACTIONS; met: ()


@dataclass(frozen=True)
class Outcomes:
    """Known outcomes as columns; ``reached_us`` has a row per breached metric, in order."""

    keys: tuple[MetricKey, ...]
    metrics: npt.NDArray[np.str_]
    policies: tuple[str, ...]
    started_us: IntArray
    target_us: IntArray
    breached_us: IntArray  # 0 where met
    breached: BoolArray
    elapsed_us: IntArray
    reached_us: IntArray  # (breached metrics, FRACTIONS)
    approximate: int = 0

    def __len__(self) -> int:
        return len(self.keys)

    def outcome(self, key: MetricKey) -> Outcome:
        i = self.keys.index(key)
        positive = bool(self.breached[i])
        row = int(self.breached[:i].sum())
        return Outcome(
            key,
            str(self.metrics[i]),
            self.policies[i],
            int(self.started_us[i]),
            int(self.target_us[i]),
            int(self.breached_us[i]) if positive else None,
            int(self.elapsed_us[i]),
            tuple(int(v) for v in self.reached_us[row]) if positive else (),
        )


@dataclass(slots=True)
class _Walk:
    """A breached cycle's running segments up to its breach, for the instants of FRACTIONS."""

    calendar: BusinessCalendar
    target: int
    breached: int
    starts: list[int]
    cum_before: list[int]  # business time before each segment
    cum_after: list[int]


def collect_outcomes(replays: Mapping[str, TicketReplay], end_us: int) -> Outcomes:
    """Every ticket × metric × cycle of ``replays`` whose outcome is known at ``end_us``."""
    keys: list[MetricKey] = []
    metrics: list[str] = []
    policies: list[str] = []
    started: list[int] = []
    targets: list[int] = []
    breached_at: list[int] = []
    positive: list[bool] = []
    elapsed: list[int] = []
    walks: list[_Walk] = []
    approximate = 0
    for ticket_id, replay in replays.items():
        if replay.policy is None:
            continue
        for clock in replay.clocks:
            for c in clock.cycles:
                if c.start > end_us:
                    continue
                breach = _breach_instant(clock, c, end_us)
                if breach is None and c.outcome is not MetricState.MET:
                    continue  # running, or breached at an instant the clock did not keep
                keys.append((ticket_id, clock.metric.value, c.number))
                metrics.append(clock.metric.value)
                policies.append(replay.policy.name)
                started.append(c.start)
                targets.append(clock.target)
                breached_at.append(breach or 0)
                positive.append(breach is not None)
                elapsed.append(clock.elapsed_at(c, end_us))
                if breach is not None:
                    walk, exact = _walk(replay, clock, c, breach, end_us)
                    walks.append(walk)
                    approximate += not exact
    return Outcomes(
        keys=tuple(keys),
        metrics=np.array(metrics, dtype=np.str_),
        policies=tuple(policies),
        started_us=np.array(started, np.int64),
        target_us=np.array(targets, np.int64),
        breached_us=np.array(breached_at, np.int64),
        breached=np.array(positive, np.bool_),
        elapsed_us=np.array(elapsed, np.int64),
        reached_us=_reached(walks),
        approximate=approximate,
    )


def _breach_instant(clock: MetricClock, c: ClockCycle, end_us: int) -> int | None:
    """When the cycle breached (at or before ``end_us``), or None."""
    if c.breached_at is not None:
        return c.breached_at if c.breached_at <= end_us else None
    if c.ended is None and clock.elapsed_at(c, end_us) > clock.target:
        return clock.deadline_us(c)  # past its deadline, its breach level not fired yet
    return None


def _walk(
    replay: TicketReplay, clock: MetricClock, c: ClockCycle, breach: int, end_us: int
) -> tuple[_Walk, bool]:
    """The running segments of ``c`` up to ``breach``, and whether the walk from its start
    agrees with the clock's business time at the end."""
    stop = c.ended if c.ended is not None else end_us
    calendar = clock.calendar
    held = [(int(a), int(b) if b is not None else stop) for a, b in c.pauses or () if a is not None]
    segments = _running(c.start, stop, held)
    walked = sum(calendar.elapsed_us(a, b) for a, b in segments)
    counted = clock.elapsed_at(c, end_us)
    exact = walked == counted
    if not exact and clock.metric is Metric.RESOLUTION:  # the one metric that reopens
        gaps = _reopen_gaps(replay, c.start, stop)
        if gaps:
            segments = _running(c.start, stop, held + gaps)
            exact = sum(calendar.elapsed_us(a, b) for a, b in segments) == counted
    starts, before, after = [], [], []
    total = 0
    for a, b in segments:
        if a >= breach:
            break
        b = min(b, breach)
        business = calendar.elapsed_us(a, b)
        starts.append(a)
        before.append(total)
        total += business
        after.append(total)
    if not starts:
        starts, before, after = [c.start], [0], [0]
    return _Walk(calendar, clock.target, breach, starts, before, after), exact


def _running(start: int, stop: int, held: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """[start, stop] without the ``held`` intervals."""
    out: list[tuple[int, int]] = []
    at = start
    for a, b in sorted(held):
        if a > at:
            out.append((at, min(a, stop)))
        at = max(at, b)
        if at >= stop:
            break
    if at < stop:
        out.append((at, stop))
    return [(a, b) for a, b in out if b > a]


def _reopen_gaps(replay: TicketReplay, start: int, stop: int) -> list[tuple[int, int]]:
    """The stretches a resolution cycle spent ended before it was reopened (the engine's
    ``resolution_step`` on the ticket's status history)."""
    category: StatusCategory | None = None
    active = started = False
    ended_at = start
    gaps: list[tuple[int, int]] = []
    for event in replay.events:
        before, category = category, next_category(category, event)
        t = to_us(event.at)
        if t > stop:
            break
        if not started:
            started = active = event.kind is EventKind.CREATED
            continue
        done = category is not None and category.is_done
        if active and done:
            active, ended_at = False, t
        elif not active and (
            (before is not None and before.is_done and not done) or event.kind is EventKind.REOPENED
        ):
            active = True
            if t > ended_at:
                gaps.append((ended_at, t))
    return gaps


def _reached(walks: Sequence[_Walk]) -> IntArray:
    """The wall instant each breached cycle's business time reached each of FRACTIONS, with
    one ``reach_many`` per calendar."""
    out = np.zeros((len(walks), len(FRACTIONS)), np.int64)
    by_calendar: dict[int, list[int]] = {}
    for i, walk in enumerate(walks):
        by_calendar.setdefault(id(walk.calendar), []).append(i)
    for rows in by_calendar.values():
        calendar = walks[rows[0]].calendar
        chosen = [walks[i] for i in rows]
        lengths = np.array([len(w.starts) for w in chosen], np.int64)
        first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        last = first + lengths - 1
        totals = np.array([w.cum_after[-1] for w in chosen], np.int64)
        base = np.concatenate(([0], np.cumsum(totals + 1)[:-1]))
        starts = np.array([s for w in chosen for s in w.starts], np.int64)
        before = np.array([v for w in chosen for v in w.cum_before], np.int64)
        after = np.array([v for w in chosen for v in w.cum_after], np.int64)
        after_global = after + np.repeat(base, lengths)  # non-decreasing across cycles
        targets = np.array([w.target for w in chosen], np.int64)
        wanted = np.rint(targets[:, None] * FRACTIONS[None, :]).astype(np.int64)
        segment = np.searchsorted(after_global, (base[:, None] + wanted).ravel(), side="left")
        segment = np.clip(segment.reshape(wanted.shape), first[:, None], last[:, None])
        left = np.maximum(wanted - before[segment], 0)
        instants = calendar.reach_many(starts[segment].ravel(), left.ravel()).reshape(wanted.shape)
        breached = np.array([w.breached for w in chosen], np.int64)
        out[rows] = np.minimum(instants, breached[:, None])
    return out


# ---------------------------------------------------------------------------- points


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One rule measured on one set of outcomes. ``threshold``: f for the fixed rule, θ for the
    predictor, None for its operating point. Leads in seconds."""

    threshold: float | None
    alerts: int
    breaches: int
    warned_breaches: int
    warned_1h: int  # warned breaches with a wall lead of at least an hour
    median_business_lead_s: float | None
    median_wall_lead_s: float | None

    @property
    def precision(self) -> float | None:
        return self.warned_breaches / self.alerts if self.alerts else None

    @property
    def recall(self) -> float | None:
        return self.warned_breaches / self.breaches if self.breaches else None

    @property
    def share_1h_of_warned(self) -> float | None:
        return self.warned_1h / self.warned_breaches if self.warned_breaches else None

    @property
    def share_1h_of_breaches(self) -> float | None:
        return self.warned_1h / self.breaches if self.breaches else None

    def as_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "alerts": self.alerts,
            "breaches": self.breaches,
            "warned_breaches": self.warned_breaches,
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "warned_1h": self.warned_1h,
            "warned_1h_of_warned": _round(self.share_1h_of_warned),
            "warned_1h_of_breaches": _round(self.share_1h_of_breaches),
            "median_business_lead_s": _round(self.median_business_lead_s, 1),
            "median_wall_lead_s": _round(self.median_wall_lead_s, 1),
        }


@dataclass(frozen=True, slots=True)
class EqualPrecision:
    """The fixed rule at a predictor point's precision, and the predictor's figures over its."""

    precision: float  # the predictor point's
    fraction: float  # of the fixed rule (interpolated)
    fixed_precision: float  # equal to ``precision`` unless clamped
    recall: float | None
    share_1h_of_breaches: float | None
    median_business_lead_s: float | None
    median_wall_lead_s: float | None
    clamped: str | None  # None: interpolated; "below"/"above": outside the fixed precisions
    lead_ratio: float | None
    recall_ratio: float | None
    wall_lead_ratio: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "precision": _round(self.precision),
            "fraction": _round(self.fraction),
            "fixed_precision": _round(self.fixed_precision),
            "recall": _round(self.recall),
            "warned_1h_of_breaches": _round(self.share_1h_of_breaches),
            "median_business_lead_s": _round(self.median_business_lead_s, 1),
            "median_wall_lead_s": _round(self.median_wall_lead_s, 1),
            "clamped": self.clamped,
            "lead_ratio": _round(self.lead_ratio),
            "recall_ratio": _round(self.recall_ratio),
            "wall_lead_ratio": _round(self.wall_lead_ratio),
        }


@dataclass(frozen=True, slots=True)
class CurveGroup:
    part: str  # "tune" or "report"
    metric: str  # "all" or a metric
    outcomes: int
    breaches: int
    fixed: tuple[CurvePoint, ...]  # one per FRACTIONS
    predicted: tuple[CurvePoint, ...]  # one per PROBABILITIES
    operating: CurvePoint
    operating_vs_fixed: EqualPrecision | None
    predicted_vs_fixed: tuple[EqualPrecision | None, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "metric": self.metric,
            "outcomes": self.outcomes,
            "breaches": self.breaches,
            "operating": self.operating.as_json(),
            "operating_vs_fixed": _json_or_none(self.operating_vs_fixed),
            "fixed": [p.as_json() for p in self.fixed],
            "predicted": [
                {**p.as_json(), "vs_fixed": _json_or_none(c)}
                for p, c in zip(self.predicted, self.predicted_vs_fixed, strict=True)
            ],
        }


@dataclass(frozen=True, slots=True)
class CurveReport:
    first_us: int
    end_us: int
    split_us: int
    groups: tuple[CurveGroup, ...]
    approximate: int = 0  # breached metrics whose instants at fractions are approximate

    def group(self, part: str, metric: str = ALL) -> CurveGroup | None:
        return next((g for g in self.groups if g.part == part and g.metric == metric), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "first": _iso(self.first_us),
            "until": _iso(self.end_us),
            "split": _iso(self.split_us),
            "tune_share": TUNE_SHARE,
            "approximate_instants": self.approximate,
            "groups": [g.as_json() for g in self.groups],
        }


def prediction_curves(backtest: PredictiveBacktest, split_us: int | None = None) -> CurveReport:
    """The curves of a predictive backtest."""
    outcomes = collect_outcomes(backtest.replays, backtest.end_us)
    return measure_curves(
        outcomes,
        backtest.traces,
        backtest.predictions,
        backtest.first_us,
        backtest.end_us,
        split_us,
    )


def measure_curves(
    outcomes: Outcomes,
    traces: Mapping[MetricKey, Trace],
    predictions: Iterable[SlaEvent],
    first_us: int,
    end_us: int,
    split_us: int | None = None,
) -> CurveReport:
    """Every rule on ``outcomes``, per part of the history and per metric; the parts split at
    ``split_us`` (default: the start of the cycle TUNE_SHARE of the way through the cycles in
    time order — a log's span in time can be stretched by a few stray early or late tickets,
    its cycles are not)."""
    split = split_us if split_us is not None else default_split(outcomes, first_us, end_us)
    table = _RuleTable.build(outcomes, traces, predictions)
    groups = []
    tune = outcomes.started_us < split
    for part, in_part in zip(PARTS, (tune, ~tune), strict=True):
        present = sorted(set(outcomes.metrics[in_part].tolist()))
        for metric in (ALL, *present):
            mask = in_part if metric == ALL else in_part & (outcomes.metrics == metric)
            groups.append(table.group(part, metric, mask))
    return CurveReport(first_us, end_us, split, tuple(groups), outcomes.approximate)


def default_split(outcomes: Outcomes, first_us: int, end_us: int) -> int:
    """The first instant of the reported part: the start of the cycle TUNE_SHARE of the way
    through the cycles with a known outcome, in time order."""
    if len(outcomes) == 0:
        return first_us + round(TUNE_SHARE * (end_us - first_us))
    starts = np.sort(outcomes.started_us)
    return int(starts[min(len(starts) - 1, int(TUNE_SHARE * len(starts)))])


@dataclass(frozen=True)
class _RuleTable:
    """Every rule's verdict on every outcome, as arrays; rows of the breached ones alone are
    indexed by ``positive_rows``. Leads in seconds, NaN where the rule did not warn."""

    breached: BoolArray
    positive_rows: IntArray
    fixed_alert: BoolArray  # (outcomes, FRACTIONS)
    fixed_business: FloatArray  # (breached, FRACTIONS)
    fixed_wall: FloatArray
    predicted_top: FloatArray  # the highest score of each outcome (-inf: none)
    predicted_business: FloatArray  # (breached, PROBABILITIES)
    predicted_wall: FloatArray
    operating_alert: BoolArray  # (outcomes,)
    operating_business: FloatArray
    operating_wall: FloatArray

    @classmethod
    def build(
        cls,
        outcomes: Outcomes,
        traces: Mapping[MetricKey, Trace],
        predictions: Iterable[SlaEvent],
    ) -> _RuleTable:
        n = len(outcomes)
        positive_rows = np.flatnonzero(outcomes.breached)
        targets = outcomes.target_us
        threshold = np.rint(targets[:, None] * FRACTIONS[None, :]).astype(np.int64)
        fixed_alert = outcomes.breached[:, None] | (outcomes.elapsed_us[:, None] >= threshold)
        breach = outcomes.breached_us[positive_rows]
        fixed_business = (targets[positive_rows, None] - threshold[positive_rows]) / US
        fixed_wall = (breach[:, None] - outcomes.reached_us) / US

        top, predicted_business, predicted_wall = _first_crossings(outcomes, traces)

        operating_alert = np.zeros(n, np.bool_)
        operating_business = np.full(n, np.nan)
        operating_wall = np.full(n, np.nan)
        row_of = {key: i for i, key in enumerate(outcomes.keys)}
        for e in predictions:
            i = row_of.get((e.ticket_id, e.metric.value, e.cycle))
            if i is None or operating_alert[i]:
                continue
            operating_alert[i] = True
            if outcomes.breached[i]:
                at = to_us(e.at)
                operating_business[i] = _business_left(e) / US
                operating_wall[i] = (int(outcomes.breached_us[i]) - at) / US
        return cls(
            outcomes.breached,
            positive_rows,
            fixed_alert,
            fixed_business.astype(np.float64),
            fixed_wall.astype(np.float64),
            top,
            predicted_business,
            predicted_wall,
            operating_alert,
            operating_business[positive_rows],
            operating_wall[positive_rows],
        )

    def group(self, part: str, metric: str, mask: BoolArray) -> CurveGroup:
        positive = mask[self.positive_rows]
        breaches = int(positive.sum())
        fixed = _points(
            FRACTIONS,
            self.fixed_alert[mask].sum(axis=0),
            breaches,
            self.fixed_business[positive],
            self.fixed_wall[positive],
        )
        top = np.sort(self.predicted_top[mask])
        alerts = len(top) - np.searchsorted(top, PROBABILITIES, side="left")
        predicted = _points(
            PROBABILITIES,
            alerts,
            breaches,
            self.predicted_business[positive],
            self.predicted_wall[positive],
        )
        operating = _points(
            np.array([np.nan]),
            np.array([self.operating_alert[mask].sum()]),
            breaches,
            self.operating_business[positive, None],
            self.operating_wall[positive, None],
        )[0]
        return CurveGroup(
            part=part,
            metric=metric,
            outcomes=int(mask.sum()),
            breaches=breaches,
            fixed=fixed,
            predicted=predicted,
            operating=operating,
            operating_vs_fixed=equal_precision(operating, fixed),
            predicted_vs_fixed=tuple(equal_precision(p, fixed) for p in predicted),
        )


def _business_left(e: SlaEvent) -> int:
    left = e.details.get("business_left_us")
    if isinstance(left, int):
        return left
    return int(e.details.get("target_us", 0)) - int(e.details.get("elapsed_us", 0))


def _first_crossings(
    outcomes: Outcomes, traces: Mapping[MetricKey, Trace]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per outcome the highest score of its trace; per breached outcome and θ, the business
    and wall leads of the first score ≥ θ (NaN where none)."""
    n = len(outcomes)
    top = np.full(n, -np.inf)
    positive_slot = np.full(n, -1, np.int64)
    positive_rows = np.flatnonzero(outcomes.breached)
    positive_slot[positive_rows] = np.arange(len(positive_rows))
    slot: list[int] = []
    at: list[int] = []
    score: list[float] = []
    previous: list[float] = []
    left: list[int] = []
    for i, key in enumerate(outcomes.keys):
        trace = traces.get(key)
        if not trace:
            continue
        top[i] = trace[-1][1]
        k = int(positive_slot[i])
        if k < 0:
            continue
        before = -np.inf
        for t, p, business_left in trace:
            slot.append(k)
            at.append(t)
            score.append(p)
            previous.append(before)
            left.append(business_left)
            before = p
    business = np.full((len(positive_rows), len(PROBABILITIES)), np.nan)
    wall = np.full_like(business, np.nan)
    if slot:
        # Entry k is the first crossing of the thresholds in (previous score, its score].
        lo = np.searchsorted(PROBABILITIES, np.array(previous), side="right")
        hi = np.searchsorted(PROBABILITIES, np.array(score), side="right")
        counts = np.maximum(hi - lo, 0)
        entry = np.repeat(np.arange(len(slot)), counts)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        column = np.repeat(lo, counts) + offsets
        slots = np.array(slot, np.int64)[entry]
        breach = outcomes.breached_us[positive_rows][slots]
        business[slots, column] = np.array(left, np.int64)[entry] / US
        wall[slots, column] = (breach - np.array(at, np.int64)[entry]) / US
    return top, business, wall


def _points(
    thresholds: FloatArray,
    alerts: npt.NDArray[np.integer[Any]],
    breaches: int,
    business: FloatArray,
    wall: FloatArray,
) -> tuple[CurvePoint, ...]:
    """One point per column: ``business`` and ``wall`` leads per breached outcome (NaN where
    the rule did not warn it); a breach is warned when warned at or before it."""
    warned = ~np.isnan(wall) & (wall >= 0)
    counts = warned.sum(axis=0)
    early = (warned & (wall >= HOUR_S)).sum(axis=0)
    business_medians = _column_medians(np.where(warned, business, np.nan))
    wall_medians = _column_medians(np.where(warned, wall, np.nan))
    return tuple(
        CurvePoint(
            threshold=None if math.isnan(t) else round(float(t), 2),
            alerts=int(alerts[j]),
            breaches=breaches,
            warned_breaches=int(counts[j]),
            warned_1h=int(early[j]),
            median_business_lead_s=business_medians[j],
            median_wall_lead_s=wall_medians[j],
        )
        for j, t in enumerate(thresholds)
    )


def _column_medians(values: FloatArray) -> list[float | None]:
    """The median of each column without its NaNs (None for a column of NaNs)."""
    columns = values.shape[1]
    if values.shape[0] == 0:
        return [None] * columns
    ordered = np.sort(values, axis=0)  # NaNs last
    counts = (~np.isnan(values)).sum(axis=0)
    index = np.arange(columns)
    low = ordered[np.maximum(counts - 1, 0) // 2, index]
    high = ordered[np.maximum(counts // 2, 0).clip(max=values.shape[0] - 1), index]
    return [
        None if c == 0 else float((a + b) / 2) for a, b, c in zip(low, high, counts, strict=True)
    ]


# ---------------------------------------------------------------------------- equal precision


def equal_precision(point: CurvePoint, fixed: Sequence[CurvePoint]) -> EqualPrecision | None:
    """The fixed rule of ``point``'s precision (see the module's docstring); None when either
    side has no precision or no warned breach."""
    precision = point.precision
    usable = [
        p
        for p in fixed
        if p.precision is not None
        and p.median_business_lead_s is not None
        and p.threshold is not None
    ]
    if precision is None or not usable:
        return None
    for a, b in itertools.pairwise(usable):
        pa, pb = a.precision, b.precision
        assert pa is not None and pb is not None
        if min(pa, pb) <= precision <= max(pa, pb):
            w = 0.0 if pa == pb else (precision - pa) / (pb - pa)
            return _compared(point, a, b, w, precision, None)
    precisions = [p.precision for p in usable]
    nearest = min(usable, key=lambda p: abs((p.precision or 0.0) - precision))
    clamped = "below" if precision < min(v for v in precisions if v is not None) else "above"
    return _compared(point, nearest, nearest, 0.0, nearest.precision or 0.0, clamped)


def _compared(
    point: CurvePoint,
    a: CurvePoint,
    b: CurvePoint,
    w: float,
    fixed_precision: float,
    clamped: str | None,
) -> EqualPrecision:
    def between(x: float | None, y: float | None) -> float | None:
        if x is None or y is None:
            return x if w == 0.0 else None
        return x + w * (y - x)

    assert a.threshold is not None and b.threshold is not None
    recall = between(a.recall, b.recall)
    business = between(a.median_business_lead_s, b.median_business_lead_s)
    wall = between(a.median_wall_lead_s, b.median_wall_lead_s)
    return EqualPrecision(
        precision=point.precision or 0.0,
        fraction=a.threshold + w * (b.threshold - a.threshold),
        fixed_precision=fixed_precision,
        recall=recall,
        share_1h_of_breaches=between(a.share_1h_of_breaches, b.share_1h_of_breaches),
        median_business_lead_s=business,
        median_wall_lead_s=wall,
        clamped=clamped,
        lead_ratio=_ratio(point.median_business_lead_s, business),
        recall_ratio=_ratio(point.recall, recall),
        wall_lead_ratio=_ratio(point.median_wall_lead_s, wall),
    )


def _ratio(mine: float | None, theirs: float | None) -> float | None:
    if mine is None or theirs is None or theirs <= 0:
        return None
    return mine / theirs


# ---------------------------------------------------------------------------- text


EXPLAINED = (
    "breach prediction against every fixed threshold, at equal precision (a metric = ticket × "
    "metric × cycle with a known outcome; tune = cycles started before {split}, report = the "
    "rest; business lead = target − elapsed at the warning, wall lead = breach − warning, "
    "medians over warned breaches; >=1h = breaches warned at least 1 h ahead, of all breaches)"
)


def format_curves(report: CurveReport, *, metrics: bool = True) -> str:
    """The operating point against the fixed rule of equal precision, per part and metric,
    then both curves in brief per part."""
    lines = [*textwrap.wrap(EXPLAINED.format(split=_iso(report.split_us)), 100), ""]
    header = ("part", "metric", "breaches", "rule", "alerts", "precision", "recall", ">=1h",
              "business lead", "wall lead")  # fmt: skip
    rows: list[Sequence[str]] = [header]
    for g in report.groups:
        if g.metric != ALL and not metrics:
            continue
        op, eq = g.operating, g.operating_vs_fixed
        rows.append((g.part, g.metric, str(g.breaches), "predicted (operating point)", *_cells(op)))
        if eq is None:
            rows.append(("", "", "", "fixed at equal precision: -", "", "", "", "", "", ""))
            continue
        rows.append(
            (
                "",
                "",
                "",
                _fixed_label(eq),
                "",
                percent(eq.fixed_precision),
                percent(eq.recall),
                percent(eq.share_1h_of_breaches),
                short_duration(eq.median_business_lead_s),
                short_duration(eq.median_wall_lead_s),
            )
        )
        rows.append(
            ("", "", "", "predicted / fixed", "", "", _times(eq.recall_ratio), "",
             _times(eq.lead_ratio), _times(eq.wall_lead_ratio))
        )  # fmt: skip
    lines += aligned(rows, left=(0, 1, 3))
    for part in PARTS:
        whole = report.group(part)
        if whole is not None:
            lines += ["", f"{part}: both curves (all metrics; {whole.breaches} breaches)"]
            lines += aligned(_curve_rows(whole), left=(0,))
    if report.approximate:
        lines += [
            "",
            f"{report.approximate} breached metrics: instants at fractions approximate "
            "(reopen gaps not rebuilt)",
        ]
    return "\n".join(lines)


def _curve_rows(g: CurveGroup) -> list[Sequence[str]]:
    rows: list[Sequence[str]] = [
        ("rule", "alerts", "precision", "recall", ">=1h", "business lead", "wall lead")
    ]
    rows += [(f"fixed {percent(p.threshold, 0)}", *_cells(p)) for p in _shown(g.fixed, True)]
    rows += [(f"predicted >= {p.threshold:.2f}", *_cells(p)) for p in _shown(g.predicted, False)]
    return rows


def _shown(points: Sequence[CurvePoint], fixed: bool) -> list[CurvePoint]:
    wanted = SHOWN_FRACTIONS if fixed else SHOWN_PROBABILITIES
    return [p for p in points if p.threshold is not None and p.threshold in wanted]


def _cells(p: CurvePoint) -> tuple[str, ...]:
    return (
        str(p.alerts),
        percent(p.precision),
        percent(p.recall),
        percent(p.share_1h_of_breaches),
        short_duration(p.median_business_lead_s),
        short_duration(p.median_wall_lead_s),
    )


def _fixed_label(eq: EqualPrecision) -> str:
    where = {
        None: "same precision",
        "below": "nearest: precision below its range",
        "above": "nearest: precision above its range",
    }[eq.clamped]
    return f"fixed {percent(eq.fraction)} ({where})"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


# ---------------------------------------------------------------------------- HTML

_W, _H = 640, 380
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 20, 56, 52
_FIXED_COLOUR = "#1f5fa8"
_PREDICTED_COLOUR = "#c2410c"
_STYLE = """
body{margin:0;padding:16px;font-family:Arial,Helvetica,sans-serif;font-size:14px;\
line-height:1.4;color:#1a1a1a;background:#fff}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:24px 0 6px}
p{max-width:60em}
table{border-collapse:collapse;margin:6px 0 12px}
caption{text-align:left;font-weight:bold;padding:4px 0}
th,td{border-bottom:1px solid #d0d0d0;padding:3px 8px;text-align:right}
th{background:#f2f2f2}
th:first-child,td:first-child,.text{text-align:left}
svg{display:block;max-width:100%;height:auto}
"""


def curve_html(title: str, report: CurveReport) -> str:
    """A self-contained page: per metric of the report part, the median business lead against
    precision for both families (inline SVG), then the tables."""
    e = html.escape
    charts = []
    for g in report.groups:
        if g.part != "report":
            continue
        charts.append(
            f"<section><h2>{e(_metric_title(g))}</h2>\n{_chart(g)}\n{_curve_table(g)}</section>"
        )
    intro = (
        f"History from {_iso(report.first_us)} to {_iso(report.end_us)}; the curves are "
        f"measured on the report part, the metrics whose cycle started after "
        f"{_iso(report.split_us)} (the last {100 - round(100 * TUNE_SHARE)} % of the cycles). "
        "A metric is one cycle of one ticket's metric with a known outcome. The fixed rule "
        "warns when business time reaches a fraction of the target (30 % to 99 %); the "
        "predictor warns at the first breach probability at or above a threshold (0.05 to "
        "0.99). Leads are medians over the breaches warned; the business lead is the business "
        "time left at the warning."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{e(title)}</h1>
<p>{e(intro)}</p>
{"".join(charts) or "<p>No metric with a known outcome in the report part.</p>"}
<h2>At equal precision</h2>
{_comparison_table(report)}
</body></html>
"""


def _metric_title(g: CurveGroup) -> str:
    name = "All metrics" if g.metric == ALL else g.metric.replace("_", " ")
    return f"{name}: {g.breaches} breached of {g.outcomes}"


def _chart(g: CurveGroup) -> str:
    e = html.escape
    ident = f"chart-{g.part}-{g.metric}"
    series = {
        "fixed": _xy(g.fixed),
        "predicted": _xy(g.predicted),
    }
    operating = _xy([g.operating])
    eq = g.operating_vs_fixed
    matched = (
        [(eq.fixed_precision, eq.median_business_lead_s / HOUR_S)]
        if eq is not None and eq.median_business_lead_s is not None
        else []
    )
    every = [xy for values in (*series.values(), operating, matched) for xy in values]
    desc = _chart_description(g)
    if not every:
        return (
            f'<svg role="img" aria-labelledby="{ident}-t {ident}-d" viewBox="0 0 {_W} 60" '
            f'width="{_W}" height="60" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{ident}-t">{e(_metric_title(g))}</title>'
            f'<desc id="{ident}-d">{e(desc)}</desc>'
            '<text x="10" y="30" font-size="13">No warned breach to draw.</text></svg>'
        )
    x_lo, x_hi, x_step = _x_range([x for x, _ in every])
    y_hi, y_step = _y_range(1.08 * max(y for _, y in every))
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y: float) -> float:
        return _TOP + plot_h - y / y_hi * plot_h

    parts = [
        f'<svg role="img" aria-labelledby="{ident}-t {ident}-d" viewBox="0 0 {_W} {_H}" '
        f'width="{_W}" height="{_H}" xmlns="http://www.w3.org/2000/svg" '
        'font-family="Arial,Helvetica,sans-serif" font-size="12">',
        f'<title id="{ident}-t">{e(_metric_title(g))}: median business lead against '
        "precision</title>",
        f'<desc id="{ident}-d">{e(desc)}</desc>',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#999"/>',
    ]
    ticks = np.arange(x_lo, x_hi + x_step / 2, x_step)
    for x in ticks:
        px = sx(float(x))
        parts.append(
            f'<line x1="{px:.1f}" y1="{_TOP}" x2="{px:.1f}" y2="{_TOP + plot_h}" '
            'stroke="#e3e3e3"/>'
            f'<text x="{px:.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle">'
            f"{100 * x:.0f}%</text>"
        )
    y = 0.0
    while y <= y_hi + y_step / 2:
        py = sy(y)
        parts.append(
            f'<line x1="{_LEFT}" y1="{py:.1f}" x2="{_LEFT + plot_w}" y2="{py:.1f}" '
            'stroke="#e3e3e3"/>'
            f'<text x="{_LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{y:g}h</text>'
        )
        y += y_step
    parts.append(
        f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_H - 12}" text-anchor="middle">'
        "precision (warned breaches / alerts)</text>"
        f'<text transform="translate(16 {_TOP + plot_h / 2:.1f}) rotate(-90)" '
        'text-anchor="middle">median business lead (hours)</text>'
    )
    styles = {
        "fixed": (_FIXED_COLOUR, "", "fixed fraction of target (30-99 %)"),
        "predicted": (_PREDICTED_COLOUR, ' stroke-dasharray="7 4"', "predictor (θ 0.05-0.99)"),
    }
    for name, values in series.items():
        colour, dash, _ = styles[name]
        if len(values) > 1:
            points = " ".join(f"{sx(x):.1f},{sy(v):.1f}" for x, v in values)
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" '
                f'stroke-width="2"{dash}/>'
            )
        for x, v in values if len(values) == 1 else ():
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(v):.1f}" r="3" fill="{colour}"/>')
    for x, v in matched:
        parts.append(
            f'<rect x="{sx(x) - 5:.1f}" y="{sy(v) - 5:.1f}" width="10" height="10" '
            f'fill="#fff" stroke="{_FIXED_COLOUR}" stroke-width="2"/>'
        )
    for x, v in operating:
        px, py = sx(x), sy(v)
        label = (
            f'<text x="{px - 9:.1f}" y="{py - 8:.1f}" text-anchor="end">'
            if px > _LEFT + 0.7 * plot_w
            else f'<text x="{px + 9:.1f}" y="{py - 8:.1f}">'
        )
        parts.append(
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="6" fill="#111" stroke="#fff" '
            f'stroke-width="1.5"/>{label}operating point</text>'
        )
    column = _LEFT + plot_w // 2
    parts.append(
        f'<line x1="{_LEFT}" y1="16" x2="{_LEFT + 28}" y2="16" stroke="{_FIXED_COLOUR}" '
        f'stroke-width="2"/><text x="{_LEFT + 34}" y="20">{e(styles["fixed"][2])}</text>'
        f'<line x1="{column}" y1="16" x2="{column + 28}" y2="16" stroke="{_PREDICTED_COLOUR}" '
        f'stroke-width="2" stroke-dasharray="7 4"/>'
        f'<text x="{column + 34}" y="20">{e(styles["predicted"][2])}</text>'
        f'<circle cx="{_LEFT + 14}" cy="36" r="6" fill="#111"/>'
        f'<text x="{_LEFT + 34}" y="40">operating point (the predictor\'s warnings)</text>'
        f'<rect x="{column + 9}" y="31" width="10" height="10" fill="#fff" '
        f'stroke="{_FIXED_COLOUR}" stroke-width="2"/>'
        f'<text x="{column + 34}" y="40">fixed rule at its precision</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _xy(points: Sequence[CurvePoint]) -> list[tuple[float, float]]:
    return [
        (p.precision, p.median_business_lead_s / HOUR_S)
        for p in points
        if p.precision is not None and p.median_business_lead_s is not None
    ]


def _chart_description(g: CurveGroup) -> str:
    op, eq = g.operating, g.operating_vs_fixed
    text = (
        f"{g.breaches} breaches among {g.outcomes} metrics. The operating point warns "
        f"{op.alerts} metrics at precision {percent(op.precision)} with a median business lead "
        f"of {short_duration(op.median_business_lead_s)}."
    )
    if eq is not None:
        text += (
            f" The fixed rule of equal precision ({percent(eq.fraction)} of the target) has a "
            f"median business lead of {short_duration(eq.median_business_lead_s)}: lead ratio "
            f"{_times(eq.lead_ratio)}, recall ratio {_times(eq.recall_ratio)}."
        )
    return text


def _x_range(xs: Sequence[float]) -> tuple[float, float, float]:
    lo = math.floor(min(xs) * 10) / 10
    hi = math.ceil(max(xs) * 10) / 10
    if hi - lo < 0.1:
        hi = min(1.0, lo + 0.1)
        lo = hi - 0.1
    step = 0.05 if hi - lo <= 0.3 else 0.1
    return lo, hi, step


def _y_range(top: float) -> tuple[float, float]:
    for step in (0.25, 0.5, 1, 2, 4, 8, 12, 24, 48, 96, 168, 336, 720):
        if top <= 6 * step:
            return max(step, math.ceil(top / step) * step), float(step)
    step = 10 ** math.ceil(math.log10(top / 6))
    return math.ceil(top / step) * step, float(step)


def _curve_table(g: CurveGroup) -> str:
    rows = _curve_rows(g)
    caption = f"{_metric_title(g)}: both curves at a few thresholds"
    return _html_table(caption, rows)


def _comparison_table(report: CurveReport) -> str:
    header = ("part", "metric", "breaches", "rule", "alerts", "precision", "recall", ">=1h",
              "business lead", "wall lead", "lead ratio", "recall ratio",
              "wall-lead ratio")  # fmt: skip
    rows: list[Sequence[str]] = [header]
    for g in report.groups:
        eq = g.operating_vs_fixed
        rows.append(
            (g.part, g.metric, str(g.breaches), "predicted (operating point)",
             *_cells(g.operating), "", "", "")
        )  # fmt: skip
        if eq is not None:
            rows.append(
                ("", "", "", _fixed_label(eq), "", percent(eq.fixed_precision), percent(eq.recall),
                 percent(eq.share_1h_of_breaches), short_duration(eq.median_business_lead_s),
                 short_duration(eq.median_wall_lead_s), _times(eq.lead_ratio),
                 _times(eq.recall_ratio), _times(eq.wall_lead_ratio))
            )  # fmt: skip
    caption = (
        "The predictor's operating point and the fixed rule of equal precision, per part and "
        "metric (ratios: predictor over fixed)"
    )
    return _html_table(caption, rows, text_columns=(0, 1, 3))


def _html_table(
    caption: str, rows: Sequence[Sequence[str]], text_columns: Iterable[int] = (0,)
) -> str:
    e = html.escape
    text = set(text_columns)
    head = "".join(
        f'<th scope="col" class="text">{e(cell)}</th>'
        if i in text
        else f'<th scope="col">{e(cell)}</th>'
        for i, cell in enumerate(rows[0])
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="text">{e(cell)}</td>' if i in text else f"<td>{e(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows[1:]
    )
    return (
        f"<table><caption>{e(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


# ---------------------------------------------------------------------------- helpers


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _json_or_none(value: EqualPrecision | None) -> dict[str, Any] | None:
    return None if value is None else value.as_json()


def _iso(us: int) -> str:
    return from_us(us).isoformat().replace("+00:00", "Z")
