"""The prediction loop: keeps the breach predictor up to date and asks it when to warn.

* ``observe`` after every change of the book: touched tickets are (re)registered, closed ones
  forgotten, and cycles seen for the first time are judged at once.
* ``run`` ticks every ``predict.every`` (every running metric judged, queue forecasts made)
  and makes each last call a little before its instant (the deadline ``predict.lead`` away).
* Predicted breaches become ``predicted_breach`` SLA events of their ticket (each ticket ×
  metric × cycle once) for ``on_predicted``; queue alerts go to ``on_queue_alerts``.
* Training the boosted model never runs on the event loop: after a tick of ``run``, a
  retraining the predictor says is due (``training_job``) goes to one worker process (spawned
  when first needed, killed by ``stop``; it ignores SIGINT and SIGTERM, which reach the whole
  process group), one at a time, and the model that comes back is adopted — by the predictor
  that asked for it only, never by one a reload put in its place. A training that fails (an
  error, a worker that died, one still running after ``training_timeout_s``) is logged
  (``prediction_training_failed``) and counted; the model in force stays (the life tables
  while there is none) and the next training gets a new worker.
* ``figures`` holds what /metrics shows of the model, as of the last tick or adoption (the
  collector reads it from another thread).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.process import BaseProcess

from sladaemon.calendar import from_us, to_us
from sladaemon.clock import Clock
from sladaemon.config import Config
from sladaemon.escalate.book import Fired
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics, PredictionFigures
from sladaemon.model import TicketKey
from sladaemon.predict.boosted import BoostedTrees
from sladaemon.predict.learnt import LearntCycle
from sladaemon.predict.predictor import BreachPredictor
from sladaemon.predict.results import Prediction, QueueAlert
from sladaemon.predict.training import TrainingSet, fit
from sladaemon.sla.engine import TicketReplay

LAST_CALL_MARGIN_S = 5.0  # clock seconds a last call is judged before its instant
MARGIN_US = int(LAST_CALL_MARGIN_S * 1_000_000)
TRAINING_TIMEOUT_S = 3600.0  # real seconds; a training still running then is stopped, failed
STOP_WAIT_S = 5.0  # real seconds ``stop`` waits for the killed worker to be gone

Trainer = Callable[[TrainingSet], BoostedTrees]


@dataclass(eq=False)
class PredictionLoop:
    config: Config
    replays: Mapping[TicketKey, TicketReplay]
    clock: Clock
    on_predicted: Callable[[list[Fired]], None]
    on_queue_alerts: Callable[[list[QueueAlert]], None]
    metrics: DaemonMetrics
    # Runs in the worker process: a function of its module, so that it can be sent there.
    train: Trainer = fit
    training_timeout_s: float = TRAINING_TIMEOUT_S
    predictor: BreachPredictor = field(init=False)
    figures: PredictionFigures = field(default_factory=PredictionFigures, init=False)
    wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _pool: ProcessPoolExecutor | None = field(default=None, init=False)
    _workers: list[BaseProcess] = field(default_factory=list, init=False)
    _training: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.predictor = _new_predictor(self.config)
        self.log = get_logger("sladaemon.prediction")

    def reconfigure(self, config: Config) -> bool:
        """Take a reloaded config. False when the predictor had to start over (history weighs
        differently): the caller hands it the learnt cycles again."""
        self.config = config
        if self.predictor.reconfigure(config.predict):
            return True
        self.predictor = _new_predictor(config)
        self._note_figures()
        return False

    def remember(self, source: str, cycles: Iterable[LearntCycle]) -> None:
        counted = self.predictor.remember(source, cycles)
        if counted:
            self.log.info("learnt_cycles_loaded", source=source, cycles=counted)

    def observe(
        self, touched: Mapping[TicketKey, TicketReplay], closed: Iterable[TicketKey]
    ) -> None:
        """Tell the predictor what changed; judge the new cycles at once."""
        now_us = to_us(self.clock.now())
        for key, replay in touched.items():
            self.predictor.observe(key, replay, now_us)
        self.forget(closed)
        if touched:
            self._predicted(self.predictor.judge_fresh(MARGIN_US))
            self.wake.set()  # a new deadline may come before the next tick

    def queue_figures(self) -> list[tuple[str, str, str, float, float, float, float, int, bool]]:
        """For the metrics collector: the current predictor's queue gauges."""
        return self.predictor.queue_figures()

    def model_figures(self) -> PredictionFigures:
        """For the metrics collector: the thresholds in force and the model, as last noted."""
        return self.figures

    def forget(self, keys: Iterable[TicketKey]) -> None:
        for key in keys:
            self.predictor.forget(key)

    def forget_source(self, source: str) -> None:
        self.predictor.forget_source(source)

    async def run(self) -> None:
        """A tick each ``predict.every`` and the last calls, until cancelled (the first tick
        ran before); after each tick, a retraining that is due."""
        last_tick = self.clock.now()
        margin = timedelta(seconds=LAST_CALL_MARGIN_S)
        while True:
            until = last_tick + self.config.predict.every
            call = self.predictor.next_call_us
            if call is not None:
                until = min(until, from_us(call) - margin)
            await self.clock.wait(self.wake, until)
            self.wake.clear()
            now = self.clock.now()
            call = self.predictor.next_call_us
            if call is not None and call <= to_us(now + margin):
                self._predicted(self.predictor.last_calls(to_us(now), 2 * MARGIN_US))
            if now - last_tick >= self.config.predict.every:
                self.tick(now)
                self.train_if_due(now)
                last_tick = now

    def tick(self, now: datetime) -> None:
        """Judge every running metric and forecast every queue."""
        started = time.monotonic()
        result = self.predictor.tick(to_us(now), queues=True, window_us=MARGIN_US)
        self._predicted(result.predictions)
        self.on_queue_alerts(result.alerts)
        self._note_figures()
        self.log.debug(
            "prediction_tick",
            rows=len(self.predictor),
            predictions=len(result.predictions),
            seconds=round(time.monotonic() - started, 3),
        )

    # ------------------------------------------------------------------ training

    @property
    def training(self) -> bool:
        """Whether a training is under way."""
        return self._training is not None and not self._training.done()

    def train_if_due(self, now: datetime) -> bool:
        """Send a retraining the predictor says is due to the worker process (none while one
        runs). Returns whether one started."""
        if self.training:
            return False
        predictor = self.predictor
        data = predictor.training_job(to_us(now))
        if data is None:
            return False
        self._training = asyncio.create_task(
            self._train(predictor, data), name="prediction-training"
        )
        return True

    async def _train(self, predictor: BreachPredictor, data: TrainingSet) -> None:
        """Fit ``data`` in the worker; ``predictor`` (the one that asked) adopts the outcome."""
        started = time.monotonic()
        try:
            pool = self._worker()
            future = asyncio.get_running_loop().run_in_executor(pool, self.train, data)
            # Known now (the pool starts its worker on submit), whatever the pool does later.
            self._workers = list((pool._processes or {}).values())
            model = await asyncio.wait_for(future, self.training_timeout_s)
        except Exception as exc:  # the fit raised, its worker died or hung: never silent
            seconds = time.monotonic() - started
            self._end_worker()
            predictor.adopt(None)
            self.metrics.prediction_trainings.labels("failed").inc()
            where = {"worker_traceback": str(exc.__cause__)} if exc.__cause__ else {}
            self.log.error(
                "prediction_training_failed",
                error=_failure(exc, self.training_timeout_s),
                snapshots=int(data.breached.size),
                seconds=round(seconds, 1),
                in_force="boosted" if predictor.learning.model is not None else "life tables",
                **where,
            )
            return
        seconds = time.monotonic() - started
        await self._release_worker()
        self.metrics.prediction_trainings.labels("ok").inc()
        self.metrics.prediction_training_seconds.observe(seconds)
        if predictor is not self.predictor:  # a reload started over meanwhile
            self.log.info(
                "prediction_model_discarded",
                reason="the predictor it was trained for was replaced by a reload",
                snapshots=model.snapshots,
            )
            return
        predictor.adopt(model)
        self._note_figures()
        self.log.info(
            "prediction_model_trained",
            snapshots=model.snapshots,
            breached=model.breached,
            seconds=round(seconds, 1),
        )

    def _worker(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_deaf_to_stop_signals,
            )
        return self._pool

    async def _release_worker(self) -> None:
        """The training is over: the worker exits (a retraining is hours away, and the
        trainer's libraries should not sit in memory until then)."""
        pool, self._pool = self._pool, None
        self._workers = []
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True)

    def _end_worker(self) -> list[BaseProcess]:
        """Shut the worker process down, ending a training it may still be running. Returns
        the processes told to end."""
        pool, self._pool = self._pool, None
        if pool is None:
            return []
        current = list((pool._processes or {}).values())  # gone once shut down
        processes = [*self._workers, *(p for p in current if p not in self._workers)]
        self._workers = []
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.kill()
        return processes

    async def stop(self) -> None:
        """The daemon stops: a training under way is abandoned and the worker ended."""
        task, self._training = self._training, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for process in self._end_worker():
            await asyncio.to_thread(process.join, STOP_WAIT_S)

    def _note_figures(self) -> None:
        model = self.predictor.learning.model
        self.figures = PredictionFigures(
            thresholds=tuple(
                (policy, metric, t.value, t.measured_precision)
                for policy, metric, t in self.predictor.thresholds()
            ),
            model_trained_at_s=model.trained_at / 1_000_000 if model is not None else None,
            model_snapshots=model.snapshots if model is not None else None,
        )

    # ------------------------------------------------------------------ warnings

    def _predicted(self, predictions: list[Prediction]) -> None:
        fired = []
        for p in predictions:
            replay = self.replays.get(p.key)
            if replay is None:
                continue
            event = replay.predict_breach(p.metric, p.cycle, p.at_us, p.deadline_us, p.details())
            if event is not None:
                fired.append(Fired(p.key[0], event))
        self.on_predicted(fired)


def _deaf_to_stop_signals() -> None:
    """In the worker: a Ctrl-C or systemd's SIGTERM reaches the whole process group, but the
    daemon ends its worker itself, once it has stopped waiting for it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _new_predictor(config: Config) -> BreachPredictor:
    return BreachPredictor(config.policies, config.predict, train_inline=False)


def _failure(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"still running after {timeout_s:g}s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
