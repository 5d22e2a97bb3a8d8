"""The backtest with prediction: the whole history replayed in time order, every ticket's SLA
clocks as in ``sla.backtest``, and the predictor judging every running metric as time passes.

The predictor sees the history only up to each instant: events are fed in time order, the model
is refreshed (and retrained when due) at each tick of ``STEP_US`` (an hour of history; the
daemon ticks every minute and judges new cycles as they arrive, so an early warning in the
backtest comes at most an hour later than the daemon's would), every last call is judged at its
exact instant (``next_call_us``), and a cycle that started between two ticks is first judged at
the next one, from what is known then. Cutting the history at any instant therefore leaves
every prediction before the cut unchanged.

The 75 % baseline is measured on the same replay: policies without a ``75%`` level get one
(notifying nobody) whose warnings are kept for the quality figures only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sladaemon.calendar import from_us, to_us
from sladaemon.model import Metric, MetricState, SlaEvent, SlaEventKind, TicketEvent
from sladaemon.predict.predictor import BreachPredictor
from sladaemon.predict.quality import BASELINE_LABEL, PredictionQuality, measure
from sladaemon.predict.results import Prediction
from sladaemon.predict.settings import PredictSettings
from sladaemon.sla.backtest import REPORTED, BacktestResult, collect_outcomes, compliance_table
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.policy import LadderLevel, SlaPolicy, ladder_for

STEP_US = 60 * 60 * 1_000_000  # early warnings are looked for once an hour of history
QUEUE_STEP_US = 60 * 60 * 1_000_000  # queue forecasts, when queue alerts are configured
SOURCE = "history"


# One ticket × metric × cycle: (ticket, metric, cycle).
MetricKey = tuple[str, str, int]
# A metric's scores while a warning still left ``lead``, each higher than the ones before it:
# (instant µs, probability of breach, business time left on its clock µs).
Trace = list[tuple[int, float, int]]


@dataclass
class PredictiveBacktest:
    result: BacktestResult
    predictions: list[SlaEvent]
    quality: PredictionQuality
    queue_alerts: int
    seconds: float
    replays: Mapping[str, TicketReplay] = field(default_factory=dict)
    traces: Mapping[MetricKey, Trace] = field(default_factory=dict)
    first_us: int = 0  # the first event of the history
    end_us: int = 0  # ``until``


def with_baseline_level(policies: Sequence[SlaPolicy]) -> tuple[tuple[SlaPolicy, ...], set[str]]:
    """The policies with a ``75%`` ladder level added where they have none (notifying
    nobody), and the names of the policies that got one."""
    out, added = [], set()
    for policy in policies:
        if any(level.label == BASELINE_LABEL for level in policy.ladder):
            out.append(policy)
            continue
        ladder = (*policy.ladder, LadderLevel(BASELINE_LABEL, 0.75))
        ladders = {rule.metric: ladder_for(ladder, rule.metric) for rule in policy.metrics}
        out.append(replace(policy, ladder=ladder, ladders=ladders))
        added.add(policy.name)
    return tuple(out), added


def predictive_backtest(
    tickets: Mapping[str, Sequence[TicketEvent]],
    policies: Sequence[SlaPolicy],
    settings: PredictSettings,
    until: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PredictiveBacktest:
    """Replay every ticket in global time order up to ``until`` (default: the end of the
    history), with predictions; SLA events and compliance as ``sla.backtest.backtest``."""
    started = time.perf_counter()
    if until is None:
        until = max((evs[-1].at for evs in tickets.values() if evs), default=None)
    shadow, added = with_baseline_level(policies)
    result = BacktestResult(until=until)
    if until is None:
        empty = measure(())
        return PredictiveBacktest(result, [], empty, 0, 0.0)
    end = to_us(until)
    stream = _in_time_order(tickets, until)
    first_tick = _grid_after(stream[0][0]) if stream else end
    predictor = BreachPredictor(shadow, settings, traces=True, judge_fresh=False)
    replayer = _Replayer(predictor, shadow, settings, first_tick)
    total = len(stream)
    for done, (t, _, _, event) in enumerate(stream, 1):
        replayer.feed(t, event)
        result.ticket_events += 1
        if progress is not None and (done % 5000 == 0 or done == total):
            progress(done, total)
    replayer.finish(end)
    everything, predictions = _collect(tickets, replayer.replays, until, added, policies, result)
    quality = measure(everything, replayer.queue_alerts)
    return PredictiveBacktest(
        result,
        predictions,
        quality,
        replayer.queue_alerts,
        time.perf_counter() - started,
        replayer.replays,
        replayer.predictor.traces,
        stream[0][0] if stream else end,
        end,
    )


def _in_time_order(
    tickets: Mapping[str, Sequence[TicketEvent]], until: datetime
) -> list[tuple[int, int, int, TicketEvent]]:
    """Every event up to ``until`` as (instant µs, ticket's index, event's index, event), in
    time order; events of one instant in ticket order, then in their ticket's order."""
    return sorted(
        (
            (to_us(e.at), n, k, e)
            for n, evs in enumerate(tickets.values())
            for k, e in enumerate(evs)
            if e.at <= until
        ),
        key=lambda item: item[:3],
    )


class _Replayer:
    """Feeds events to the tickets' replays and the predictor in time order; between events,
    the predictor's ticks (each ``STEP_US``) and last calls (each at its own instant), and
    the predicted breaches go into the tickets' timelines."""

    def __init__(
        self,
        predictor: BreachPredictor,
        policies: Sequence[SlaPolicy],
        settings: PredictSettings,
        first_tick: int,
    ) -> None:
        self.predictor = predictor
        self.policies = policies
        self.queues = bool(settings.queue_alerts)  # configured: forecast each QUEUE_STEP_US
        self.replays: dict[str, TicketReplay] = {}
        self.queue_alerts = 0
        self.next_tick = first_tick
        self.next_queue_tick = first_tick

    def feed(self, t: int, event: TicketEvent) -> None:
        self._until_before(t)
        replay = self.replays.get(event.ticket_id)
        if replay is None:
            replay = self.replays[event.ticket_id] = TicketReplay(event.ticket_id, self.policies)
        replay.feed(event)
        self.predictor.observe((SOURCE, event.ticket_id), replay, t)

    def finish(self, end_us: int) -> None:
        """Ticks and last calls up to ``end_us``, then the cycles seen since the last tick."""
        self._until_before(end_us + 1)
        _record(self.predictor.judge_fresh(), self.replays)

    def _until_before(self, t: int) -> None:
        """Ticks and last calls before ``t`` (events at an instant come before its calls)."""
        predictor = self.predictor
        while True:
            call = predictor.next_call_us
            if call is not None and call < t and call < self.next_tick:
                _record(predictor.last_calls(call), self.replays)
            elif self.next_tick < t:
                self._tick(self.next_tick)
                self.next_tick += STEP_US
            else:
                return

    def _tick(self, at: int) -> None:
        queues = self.queues and at >= self.next_queue_tick
        if queues:
            self.next_queue_tick = at + QUEUE_STEP_US
        outcome = self.predictor.tick(at, queues=queues)
        self.queue_alerts += len(outcome.alerts)
        _record(outcome.predictions, self.replays)


def _collect(
    tickets: Mapping[str, Sequence[TicketEvent]],
    replays: Mapping[str, TicketReplay],
    until: datetime,
    added: set[str],
    policies: Sequence[SlaPolicy],
    result: BacktestResult,
) -> tuple[list[SlaEvent], list[SlaEvent]]:
    """Evaluate every replayed ticket at ``until`` into ``result`` (its SLA events without
    the added 75 % levels, counts, compliance); returns every SLA event, and the predicted
    breaches in time order."""
    outcomes: dict[tuple[str, Metric], list[MetricState]] = {}
    durations: dict[tuple[str, Metric], list[float]] = {}
    everything: list[SlaEvent] = []
    predictions: list[SlaEvent] = []
    for ticket_id in tickets:
        replay = replays.get(ticket_id)
        if replay is None:
            continue
        evaluation = replay.evaluate(until)
        result.tickets += 1
        for e in evaluation.timeline:
            everything.append(e)
            if e.kind is SlaEventKind.PREDICTED_BREACH:
                predictions.append(e)
            elif e.kind in REPORTED and not (e.level == BASELINE_LABEL and e.policy in added):
                result.events.append(e)
        if evaluation.policy is None:
            result.unmatched_tickets += 1
        else:
            collect_outcomes(evaluation.policy.name, evaluation.cycles, outcomes, durations)
    result.events.sort(key=lambda e: (e.at, e.ticket_id, e.metric.value, e.cycle))
    predictions.sort(key=lambda e: (e.at, e.ticket_id, e.metric.value, e.cycle))
    result.compliance = compliance_table(outcomes, durations, {p.name: p.index for p in policies})
    return everything, predictions


def _grid_after(t: int) -> int:
    return (t // STEP_US + 1) * STEP_US


def _record(predictions: list[Prediction], replays: Mapping[str, TicketReplay]) -> None:
    for p in predictions:
        replay = replays.get(p.key[1])
        if replay is not None:
            event = replay.predict_breach(p.metric, p.cycle, p.at_us, p.deadline_us, p.details())
            if event is not None:  # in the ticket's timeline, in time order with the rest
                replay.timeline.append(event)


def prediction_record(e: SlaEvent) -> dict[str, object]:
    """The extra JSON fields of a ``predicted_breach`` line."""
    details = e.details
    met = details.get("expected_met_us")
    return {
        "probability": round(float(details.get("probability", 0.0)), 4),
        "expected_met": _iso(from_us(int(met))) if isinstance(met, int) else None,
        "queue": details.get("queue"),
        "position": details.get("position"),
        "backlog": details.get("backlog"),
        "reason": details.get("reason"),
    }


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")
