"""``BreachPredictor``: ticket replays in, predicted breaches and queue alerts out.

Pure: the owner hands in replays and ``now`` (integer µs) and gets values back (see results);
no clock, no I/O. The modelling is described in the README ("Breach prediction").

* ``observe(key, replay, now)`` after a ticket changed: its open cycles become rows (see
  columns); cycles that start count as arrivals, cycles that end as services and in the life
  tables. ``remember`` counts the cycles of tickets that left memory the same way.
* ``tick(now)`` — every minute in the daemon, every hour of history in the backtest: first the
  cycles seen since the last tick are judged at the instant they were seen, with the model of
  the last tick; then the model is refreshed and every running cycle is judged at ``now``.
* ``last_calls(now)`` at ``next_call_us``: the cycles whose deadline is exactly ``lead`` away.

Each ticket × metric × cycle is warned at most once, and only while its deadline is at least
``lead`` away: as soon as its probability reaches ``early``, else at its last call if it
reaches ``threshold``. Cycles found breached or too close to their deadline rest until their
ticket changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from sladaemon.model import TicketKey
from sladaemon.predict.boosted import BoostedTrees
from sladaemon.predict.calibration import Calibration
from sladaemon.predict.columns import (
    METRICS,
    NOT_SET,
    US,
    CycleColumns,
    Floats,
    OpenCycles,
    Registry,
    fresh_columns,
)
from sladaemon.predict.features import queue_backlogs
from sladaemon.predict.learning import Learning
from sladaemon.predict.learnt import LearntCycle
from sladaemon.predict.operating import Threshold
from sladaemon.predict.queues import QueueAlerts, forecast_queues, places_in_queue
from sladaemon.predict.reasons import top_reasons
from sladaemon.predict.results import (
    Assessment,
    Prediction,
    QueueForecast,
    ReasonCode,
    TickResult,
    finite,
)
from sladaemon.predict.risk import MIN_REACHED, CycleRisk, RiskModel, business_elapsed
from sladaemon.predict.settings import DEFAULT_PRECISION, PredictSettings
from sladaemon.predict.survival import SurvivalModel
from sladaemon.predict.tracking import CycleTracker
from sladaemon.predict.training import TrainingSet, fit
from sladaemon.predict.wording import prediction_reason, unknown_reason
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.policy import SlaPolicy

TABLE_REFRESH_US = 6 * 3600 * US  # life tables are rebuilt every 6 hours when cycles ended,
QUIET_REFRESH_US = 7 * 86_400 * US  # weekly when none did (only the decay moved them)
FACTOR_REFRESH_US = 6 * 3600 * US  # hour-of-week service profiles
NEW_GROUP_REFRESH_US = 3600 * US  # a new queue or priority waits at most this for its tables
LEARN_EVERY_US = 6 * 3600 * US  # outcomes harvested, thresholds chosen, retraining considered


class BreachPredictor:
    """Everything the model knows of one configuration's policies (see the module's contract)."""

    def __init__(
        self,
        policies: Sequence[SlaPolicy],
        settings: PredictSettings,
        *,
        train_inline: bool = True,
        traces: bool = False,
        judge_fresh: bool = True,
    ) -> None:
        """``train_inline``: retrain within ``tick`` (the backtest); else the owner takes
        ``training_job`` and hands back ``adopt`` (the daemon, off its event loop).
        ``traces``: keep every metric's rising scores (the backtest's curves).
        ``judge_fresh``: new cycles wait in ``fresh`` to be judged as they were when seen
        (the daemon judges them right away); else the next tick judges them as they are then
        (the backtest: between a cycle's start and the tick, its queue and ticket move on,
        and the features must not see that ahead of time)."""
        self.settings = settings
        self.train_inline = train_inline
        self._note_fresh = judge_fresh
        self.half_life_us = settings.half_life.total_seconds() * US
        self.survival = SurvivalModel(_targets_s(policies), self.half_life_us)
        self.calibration = Calibration(self.half_life_us)
        self._registry = Registry(self.half_life_us)
        self.learning = Learning(
            OpenCycles(),
            self.half_life_us,
            settings.precision or DEFAULT_PRECISION,
            int(settings.every.total_seconds() * US),
        )
        if traces:
            self.learning.traces = {}
        self._tracker = CycleTracker(
            policies,
            self.survival,
            self.calibration,
            self._registry,
            self.learning,
            self._deadline_set,
            self.learning.rows,
        )
        self.rows = self._tracker.rows
        self._tickets = self._tracker.tickets
        self._risk_model = RiskModel(self.survival, self.calibration, self._registry)
        self._queue_alerts = QueueAlerts()
        self.refreshed_at: int | None = None
        self._factors_at: int | None = None
        self._lead_us = int(settings.lead.total_seconds() * US)
        self.next_call_us: int | None = None  # the next instant a deadline is ``lead`` away
        self._judged_at: int | None = None
        self.forecasts: list[QueueForecast] = []
        self._learned_at: int | None = None

    @property
    def traces(self) -> dict[tuple[str, str, int], list[tuple[int, float, int]]]:
        """(ticket, metric, cycle) -> its rising scores while warnable (with ``traces``)."""
        return self.learning.traces or {}

    # ------------------------------------------------------------------ feeding

    def __len__(self) -> int:
        return self.rows.count

    def observe(self, key: TicketKey, replay: TicketReplay, now_us: int) -> None:
        """Bring the rows of one ticket up to date with its replay (after new events)."""
        if not self.settings.enabled:
            return
        self._tracker.observe(
            key, replay, now_us, note_fresh=self._note_fresh and self.refreshed_at is not None
        )

    def remember(self, source: str, cycles: Iterable[LearntCycle]) -> int:
        """Count the cycles of tickets that left memory before a restart as ``observe`` counted
        them: an arrival each, the met ones in the life tables and service rates. Cycles of a
        policy or metric no longer configured are passed over. Returns how many counted."""
        if not self.settings.enabled:
            return 0
        return self._tracker.remember(source, cycles)

    def forget(self, key: TicketKey) -> None:
        """The ticket left the book: its open rows go without counting as met."""
        self._tracker.forget(key)

    def forget_source(self, source: str) -> None:
        for key in [k for k in self._tickets.numbers if k[0] == source]:
            self.forget(key)

    def reconfigure(self, settings: PredictSettings) -> bool:
        """Take new settings (a reload), keeping what was learnt. False when they change how
        history is weighed (``half_life``): the owner then starts a new predictor."""
        if settings.half_life != self.settings.half_life:
            return False
        self.settings = settings
        self._lead_us = int(settings.lead.total_seconds() * US)
        self.learning.every_us = int(settings.every.total_seconds() * US)
        self.learning.operating.retarget(settings.precision or DEFAULT_PRECISION)
        self.next_call_us = None
        self._judged_at = None
        return True

    def queue_figures(self) -> list[tuple[str, str, str, float, float, float, float, int, bool]]:
        """The latest queue forecasts as plain figures (for the metrics endpoint)."""
        return [
            (
                f.source,
                f.queue,
                f.metric.value,
                float(f.backlog),
                f.arrivals_per_hour,
                f.throughput_per_hour,
                f.forecast[-1][1] if f.forecast else float(f.backlog),
                f.will_miss,
                not f.unknown,
            )
            for f in self.forecasts
        ]

    def _deadline_set(self, deadline_us: int) -> None:
        self._schedule_call(deadline_us - self._lead_us)

    def _schedule_call(self, at_us: int) -> None:
        if self._judged_at is not None and at_us <= self._judged_at:
            return
        if self.next_call_us is None or at_us < self.next_call_us:
            self.next_call_us = at_us

    # ------------------------------------------------------------------ evaluation

    def tick(self, now_us: int, *, queues: bool = True, window_us: int = 0) -> TickResult:
        """Judge the cycles seen since the last tick, refresh the model, judge the running
        cycles due at ``now_us``; with ``queues``, also forecast the queues and raise alerts.

        ``window_us``: the time to the next tick. A cycle whose deadline is less than ``lead``
        plus this away gets its last call now (the next tick would be too late); 0 when the
        owner calls ``last_calls`` at ``next_call_us`` itself (the backtest)."""
        if not self.settings.enabled:
            return TickResult([], [])
        predictions = self.judge_fresh(window_us)
        self.learning.deadlines_passed(now_us)
        tables_at = self.survival.refreshed_at
        self._refresh(now_us)
        sample = self.survival.refreshed_at != tables_at  # new tables: note every probability
        active = self._active(now_us, everything=queues or sample)
        if sample:
            self._keep_score(active, now_us)
        predictions.extend(self._fire(active, None, window_us))
        if queues:
            self.forecasts = forecast_queues(
                now_us, self._registry, self.rows, active, self.settings.horizon
            )
            self.learning.rates.note_backlog(
                queue_backlogs(self.rows, len(self._registry.queues)), now_us
            )
        self._plan_calls(now_us)
        alerts = []
        if queues:
            alerts = self._queue_alerts.raise_alerts(
                now_us, self.forecasts, self._registry, self.settings.horizon
            )
        return TickResult(predictions, alerts)

    def last_calls(self, now_us: int, window_us: int = 0) -> list[Prediction]:
        """Judge the cycles whose deadline is ``lead`` away at ``now_us`` (within
        ``window_us`` after it; or less, not judged yet) with the current model: the last
        instant a warning still leaves ``lead`` to act. Called at ``next_call_us`` (the daemon
        a little before it, with that much window)."""
        if not self.settings.enabled:
            return []
        predictions = self.judge_fresh(window_us)
        rows = self.rows
        deadline = rows.deadline[: rows.capacity]
        called = deadline - self._lead_us <= now_us + window_us
        open_ = rows.running() & ~rows.dormant[: rows.capacity]
        slots = np.flatnonzero(open_ & (deadline != NOT_SET) & called)
        if slots.size:
            risk = self._evaluate(rows.columns(slots, now_us))
            predictions.extend(self._fire(risk, None, window_us, every_one=True))
            rows.dormant[slots] = True  # their last call is over
        self._plan_calls(now_us)
        return predictions

    def _plan_calls(self, now_us: int) -> None:
        """The next instant a waiting cycle's deadline will be ``lead`` away."""
        self._judged_at = now_us
        deadline = self.rows.deadline[: self.rows.capacity]
        calls = deadline[self.rows.waiting() & (deadline != NOT_SET)] - self._lead_us
        calls = calls[calls > now_us]
        self.next_call_us = int(calls.min()) if calls.size else None

    def judge_fresh(self, window_us: int = 0) -> list[Prediction]:
        """Judge the cycles first seen since the last tick at the instant they were seen, with
        the model of the last tick (the daemon calls this right after new events)."""
        fresh = self._tracker.take_fresh()
        if not fresh or self.refreshed_at is None:
            return []
        rows = self.rows
        keep = []
        live = []
        for f in fresh:
            if f.since == NOT_SET:
                continue
            number = self._tickets.numbers.get(f.key, -1)
            same = (
                number >= 0
                and self._tickets.slot[number, f.metric] == f.slot
                and rows.cycle[f.slot] == f.cycle
            )
            if same and rows.warned[f.slot]:
                continue
            keep.append(f)
            live.append(bool(same))
        if not keep:
            return []
        risk = self._evaluate(fresh_columns(keep, live))
        return self._fire(risk, [f.key for f in keep], window_us)

    def assess(self, now_us: int) -> list[Assessment]:
        """The risk of every open metric at ``now_us`` with the current model, or why none."""
        cycles = self.rows.columns(np.flatnonzero(self.rows.used[: self.rows.capacity]), now_us)
        risk = self._evaluate(cycles)
        out = []
        for i, slot in enumerate(cycles.slots):
            probability = float(risk.probability[i])
            code = ReasonCode(int(risk.code[i]))
            known = code is ReasonCode.KNOWN and math.isfinite(probability)
            out.append(
                Assessment(
                    self._tickets.key(int(self.rows.ticket[slot])),
                    METRICS[int(cycles.metric[i])],
                    int(cycles.cycle[i]),
                    probability if known else None,
                    int(risk.deadline[i]) if risk.deadline[i] != NOT_SET else None,
                    self._unknown_reason(code, int(cycles.group[i])),
                )
            )
        return out

    def _unknown_reason(self, code: ReasonCode, group: int) -> str:
        metric = policy = ""
        finished = 0.0
        if code in (ReasonCode.TOO_LITTLE_HISTORY, ReasonCode.TARGET_RARELY_REACHED):
            metric, policy, _, _ = self.survival.leaf_keys[group]
            root_finished = self.survival.root_finished
            finished = float(root_finished[group]) if group < root_finished.size else 0.0
        return unknown_reason(
            code,
            metric,
            policy,
            finished=finished,
            min_history=self.settings.min_history,
            min_reached=MIN_REACHED,
        )

    def _evaluate(self, cycles: CycleColumns) -> CycleRisk:
        return self._risk_model.evaluate(cycles, self.settings.min_history)

    def _active(self, now_us: int, *, everything: bool) -> CycleRisk:
        """The running cycles that may still be warned (``everything``: all running ones, for
        the queue forecasts and calibration; else those due to be scored); cycles found
        breached or too close to their deadline rest until their ticket changes."""
        rows = self.rows
        chosen = rows.running()
        if not everything:
            chosen &= ~rows.dormant[: rows.capacity]
            chosen &= self.learning.due_now(rows.capacity, now_us)
        risk = self._evaluate(rows.columns(np.flatnonzero(chosen), now_us))
        late = (risk.code == ReasonCode.BREACHED.value) | (
            (risk.deadline != NOT_SET) & (risk.deadline - risk.cycles.now < self._lead_us)
        )
        rows.dormant[risk.cycles.slots[late]] = True
        rows.deadline[risk.cycles.slots] = risk.deadline
        return risk

    def _keep_score(self, active: CycleRisk, now_us: int) -> None:
        """Note the probability of every running metric; settle the ones found breached."""
        cycles = active.cycles
        known = active.code == ReasonCode.KNOWN.value
        self.calibration.sample(cycles.slots[known], cycles.policy_metric[known], active.raw[known])
        breached = (active.code == ReasonCode.BREACHED.value) & cycles.live
        for slot in cycles.slots[breached].tolist():
            if self.calibration.waiting(slot):
                self.calibration.resolve(slot, True, now_us)

    def _fire(
        self,
        risk: CycleRisk,
        keys: list[TicketKey] | None,
        window_us: int,
        *,
        every_one: bool = False,
    ) -> list[Prediction]:
        """Score the cycles of ``risk`` that are due (fresh ones, and ``every_one``: all) and
        warn those whose score calls for it; each row is warned once, and only while its
        deadline is at least ``lead`` away. With ``precision``: as soon as the probability
        reaches the threshold in force for its policy × metric. Otherwise as soon as it
        reaches ``early``, or at its last call — the deadline ``lead`` away, within
        ``window_us`` — when it reaches ``threshold``. ``keys``: the tickets of the rows
        (fresh rows), else the rows' own."""
        cycles = risk.cycles
        rows = self.rows
        learning = self.learning
        ahead = risk.deadline - cycles.now
        warnable = (risk.deadline != NOT_SET) & (ahead >= self._lead_us)
        judged = risk.code == ReasonCode.KNOWN.value
        if learning.model is not None:
            judged |= (risk.code == ReasonCode.TOO_LITTLE_HISTORY.value) | (
                risk.code == ReasonCode.TARGET_RARELY_REACHED.value
            )
        if keys is None and not every_one:
            judged &= learning.due(cycles.slots, cycles.now)
        chosen = judged & warnable
        if not chosen.any():
            return []
        probability, featured = learning.score(risk, chosen, learning.context(self._registry))
        learning.record(
            risk, chosen, probability, featured, warnable, self._trace_key(cycles, keys)
        )
        if self.settings.precision is not None:
            thresholds = np.full(cycles.slots.size, np.inf)
            thresholds[chosen] = learning.operating.values(cycles.policy_metric[chosen])
            calls = probability >= thresholds
        else:
            last_call = ahead < self._lead_us + max(window_us, 1)
            calls = (probability >= self.settings.early) | (
                last_call & (probability >= self.settings.threshold)
            )
        fire = chosen & calls & ~(rows.warned[cycles.slots] & cycles.live)
        fired = np.flatnonzero(fire)
        if fired.size == 0:
            return []
        position, backlog = places_in_queue(rows, cycles.queue_metric[fired], cycles.start[fired])
        out = []
        for k, i in enumerate(fired.tolist()):
            slot = int(cycles.slots[i])
            if cycles.live[i]:
                rows.warned[slot] = True
            key = keys[i] if keys is not None else self._tickets.key(int(rows.ticket[slot]))
            row = featured.row(i)
            out.append(
                self._prediction(risk, i, key, float(probability[i]), row, position[k], backlog[k])
            )
        return out

    def _trace_key(
        self, cycles: CycleColumns, keys: list[TicketKey] | None
    ) -> Callable[[int], tuple[str, str, int]] | None:
        """The (ticket, metric, cycle) of entry ``i`` of ``cycles``, for the traces."""
        if self.learning.traces is None:
            return None

        def key_of(i: int) -> tuple[str, str, int]:
            ticket = (
                keys[i]
                if keys is not None
                else self._tickets.key(int(self.rows.ticket[int(cycles.slots[i])]))
            )
            return (ticket[1], METRICS[int(cycles.metric[i])].value, int(cycles.cycle[i]))

        return key_of

    def thresholds(self) -> list[tuple[str, str, Threshold]]:
        """(policy, metric, threshold in force) for each policy × metric seen (with
        ``precision``; empty otherwise)."""
        if self.settings.precision is None:
            return []
        return [
            (policy, metric.value, self.learning.operating.threshold(pm))
            for (policy, metric), pm in self._registry.policy_metric_ids().items()
        ]

    def _prediction(
        self,
        risk: CycleRisk,
        i: int,
        key: TicketKey,
        probability: float,
        features: Floats | None,
        position: int,
        backlog: int,
    ) -> Prediction:
        cycles = risk.cycles
        metric, _, priority, queue = self.survival.leaf_keys[int(cycles.group[i])]
        queue_name = self._registry.queues[int(cycles.queue_metric[i])].name
        history_reason = prediction_reason(
            metric,
            queue,
            priority,
            risk.elapsed[i] / US,
            cycles.target[i] / US,
            float(risk.history[i]),
            float(risk.week_factor[i]),
            position,
            backlog,
        )
        model = self.learning.model
        threshold, threshold_why = None, ""
        if self.settings.precision is not None:
            in_force = self.learning.operating.threshold(int(cycles.policy_metric[i]))
            threshold, threshold_why = in_force.value, in_force.why
        if model is not None and features is not None:
            reason = top_reasons(model, features, queue_name, priority, history_reason)
        else:
            reason = history_reason
        return Prediction(
            key=key,
            metric=METRICS[int(cycles.metric[i])],
            cycle=int(cycles.cycle[i]),
            at_us=int(cycles.now[i]),
            probability=probability,
            deadline_us=int(risk.deadline[i]),
            expected_met_us=(
                self._risk_model.expected_met(risk, i)
                if risk.code[i] == ReasonCode.KNOWN.value
                else None  # a group the life tables do not hold yet
            ),
            queue=queue_name,
            position=position,
            backlog=backlog,
            reason=reason,
            history_probability=finite(risk.history[i]),
            week_factor=finite(risk.week_factor[i]),
            calibration=finite(risk.probability[i] / max(risk.raw[i], 1e-12)),
            business_left_us=int(cycles.target[i] - risk.elapsed[i]),
            threshold=threshold,
            threshold_why=threshold_why,
            model="boosted" if model is not None and features is not None else "life tables",
        )

    # ------------------------------------------------------------------ refresh

    def _refresh(self, now_us: int) -> None:
        """Bring the model up to ``now_us`` where it is due: the hours of the week seen, the
        life tables, the hour-of-week service profiles."""
        self._registry.advance_exposures(now_us, self._tracker.earliest_us)
        rebuilt = self._tables_due(now_us)
        if rebuilt:
            rows = self.rows
            cycles = rows.columns(np.flatnonzero(rows.used[: rows.capacity]), now_us)
            elapsed = business_elapsed(cycles, self._registry.calendars)
            self.survival.refresh(now_us, cycles.group, elapsed / US)
        due = self._factors_at is None or now_us - self._factors_at >= FACTOR_REFRESH_US
        profiled = self._risk_model.profiles.profiled.size
        if rebuilt or due or profiled < len(self._registry.policy_metrics):
            self._risk_model.refresh_profiles(now_us)
            self._factors_at = now_us
        self.refreshed_at = now_us
        if self.train_inline:
            data = self.training_job(now_us)
            if data is not None:
                try:
                    self.learning.adopt(fit(data))
                except (ValueError, RuntimeError):
                    self.learning.adopt(None)

    def training_job(self, now_us: int) -> TrainingSet | None:
        """What to train on, when a retraining is due (checked every ``LEARN_EVERY_US``;
        the thresholds in force are chosen again at the same time); hand the model trained
        from it to ``adopt``."""
        if self._learned_at is not None and now_us - self._learned_at < LEARN_EVERY_US:
            return None
        self._learned_at = now_us
        return self.learning.training_due(now_us)

    def adopt(self, model: BoostedTrees | None) -> None:
        """The model trained from the last ``training_job`` (None: that training failed)."""
        self.learning.adopt(model)

    def _tables_due(self, now_us: int) -> bool:
        """Whether the life tables are stale: rebuilt every 6 hours when cycles ended, weekly
        when none did, within the hour when a new group appeared."""
        survival = self.survival
        age = now_us - (survival.refreshed_at or now_us)
        stale = (
            survival.refreshed_at is None
            or (age >= TABLE_REFRESH_US and survival.news > 0)
            or age >= QUIET_REFRESH_US
        )
        new_groups = survival.cum_hazard.shape[0] < survival.groups and age >= NEW_GROUP_REFRESH_US
        return stale or new_groups


def _targets_s(policies: Sequence[SlaPolicy]) -> set[float]:
    """Every target of every policy in seconds: the life tables get a bin edge at each."""
    targets: set[float] = set()
    for policy in policies:
        for rule in policy.metrics:
            for target in (*rule.targets.values(), rule.default):
                if target is not None:
                    targets.add(target.total_seconds())
    return targets
