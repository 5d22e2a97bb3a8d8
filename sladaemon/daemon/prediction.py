"""The prediction loop: keeps the breach predictor up to date and asks it when to warn.

* ``observe`` after every change of the book: touched tickets are (re)registered, closed ones
  forgotten, and cycles seen for the first time are judged at once.
* ``run`` ticks every ``predict.every`` (every running metric judged, queue forecasts made)
  and makes each last call a little before its instant (the deadline ``predict.lead`` away).
* Predicted breaches become ``predicted_breach`` SLA events of their ticket (each ticket ×
  metric × cycle once) for ``on_predicted``; queue alerts go to ``on_queue_alerts``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sladaemon.calendar import from_us, to_us
from sladaemon.clock import Clock
from sladaemon.config import Config
from sladaemon.escalate.book import Fired
from sladaemon.logs import get_logger
from sladaemon.model import TicketKey
from sladaemon.predict.learnt import LearntCycle
from sladaemon.predict.predictor import BreachPredictor
from sladaemon.predict.results import Prediction, QueueAlert
from sladaemon.sla.engine import TicketReplay

LAST_CALL_MARGIN_S = 5.0  # clock seconds a last call is judged before its instant
MARGIN_US = int(LAST_CALL_MARGIN_S * 1_000_000)


@dataclass(eq=False)
class PredictionLoop:
    config: Config
    replays: Mapping[TicketKey, TicketReplay]
    clock: Clock
    on_predicted: Callable[[list[Fired]], None]
    on_queue_alerts: Callable[[list[QueueAlert]], None]
    predictor: BreachPredictor = field(init=False)
    wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        self.predictor = BreachPredictor(self.config.policies, self.config.predict)
        self.log = get_logger("sladaemon.prediction")

    def reconfigure(self, config: Config) -> bool:
        """Take a reloaded config. False when the predictor had to start over (history weighs
        differently): the caller hands it the learnt cycles again."""
        self.config = config
        if self.predictor.reconfigure(config.predict):
            return True
        self.predictor = BreachPredictor(config.policies, config.predict)
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

    def forget(self, keys: Iterable[TicketKey]) -> None:
        for key in keys:
            self.predictor.forget(key)

    def forget_source(self, source: str) -> None:
        self.predictor.forget_source(source)

    async def run(self) -> None:
        """A tick each ``predict.every`` and the last calls, until cancelled (the first tick
        ran before)."""
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
                last_tick = now

    def tick(self, now: datetime) -> None:
        """Judge every running metric and forecast every queue."""
        started = time.monotonic()
        result = self.predictor.tick(to_us(now), queues=True, window_us=MARGIN_US)
        self._predicted(result.predictions)
        self.on_queue_alerts(result.alerts)
        self.log.debug(
            "prediction_tick",
            rows=len(self.predictor),
            predictions=len(result.predictions),
            seconds=round(time.monotonic() - started, 3),
        )

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
