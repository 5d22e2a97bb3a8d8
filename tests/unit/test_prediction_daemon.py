"""The daemon's side of the boosted breach model: trainings run in a worker process while the
event loop goes on, failures are logged and counted and never stop prediction, a reload never
adopts a model trained for the predictor it replaced; /metrics shows the operating point and
the model; ``explain`` shows each predicted breach; the example config documents the rule."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from sladaemon.calendar import to_us
from sladaemon.clock import FakeClock
from sladaemon.config import Config, load_config
from sladaemon.daemon.prediction import TRAINING_TIMEOUT_S, PredictionLoop
from sladaemon.errors import ConfigError
from sladaemon.escalate.book import Fired
from sladaemon.metrics import DaemonMetrics, PredictionCollector, PredictionFigures
from sladaemon.model import EventKind, Metric, StatusCategory, TicketEvent
from sladaemon.predict.boosted import BoostedTrees
from sladaemon.predict.features import FEATURES
from sladaemon.predict.results import Prediction, QueueAlert
from sladaemon.predict.training import TrainingSet, fit
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.explain import explain_json, explain_text
from tests.scenario.harness import DaemonHarness

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 3, 11, 9, 0, tzinfo=UTC)  # a Monday
STARTED_MARK = "SLADAEMON_TEST_TRAINING_STARTED"  # a file the hanging training touches
WAIT_LIMIT = 120.0  # real seconds a training may take here (spawn, import, fit) on a busy box
CONFIG = """
calendars:
  always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
receivers:
  oncall: {urls: ["console://"]}
policies:
  - name: support
    calendar: always
    targets: {first_response: 1h}
    escalation: [{at: predicted, notify: [oncall]}]
predict: {PREDICT}
sources:
  desk: {type: csv, path: EVENTS, poll_interval: 1h}
daemon:
  state: STATE
  http: {enabled: false}
"""


# ---------------------------------------------------------------------------- trainers
# Run in the worker process, so functions of this module (sent there by name).


def fit_away_from_the_event_loop(data: TrainingSet) -> BoostedTrees:
    """``fit``, refusing to run in the daemon's own process."""
    if multiprocessing.parent_process() is None:
        raise RuntimeError("the training ran in the daemon's process")
    time.sleep(0.5)  # long enough that a blocked event loop would show
    return fit(data)


def fit_that_raises(data: TrainingSet) -> BoostedTrees:
    raise ValueError("training needs snapshots of both outcomes")


def fit_that_kills_its_worker(data: TrainingSet) -> BoostedTrees:
    os._exit(9)


def fit_that_hangs(data: TrainingSet) -> BoostedTrees:
    started = os.environ.get(STARTED_MARK)
    if started:
        Path(started).touch()
    time.sleep(600)
    return fit(data)


# ---------------------------------------------------------------------------- helpers


def config_text(tmp_path: Path, predict: str = "{}") -> str:
    return (
        textwrap.dedent(CONFIG)
        .replace("{PREDICT}", predict)
        .replace("EVENTS", str(tmp_path / "events.csv"))
        .replace("STATE", str(tmp_path / "state.sqlite"))
    )


def load(tmp_path: Path, predict: str = "{}") -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(tmp_path, predict))
    return load_config(path, environ={})


def training_set(n: int = 1200, seed: int = 7) -> TrainingSet:
    """Random snapshots of both outcomes: the more of the first feature, the likelier a
    breach."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, len(FEATURES)))
    breached = features[:, 0] + rng.normal(scale=0.5, size=n) > 0.3
    return TrainingSet(
        features=features,
        breached=breached,
        weight=np.ones(n),
        at=np.arange(n, dtype=np.int64) * 60_000_000,
        trained_at=to_us(NOW),
    )


@dataclass
class Jobs:
    """Stands in for the predictor's ``training_job``: hands out ``sets`` in turn, marking
    a training as under way the way the predictor does, then nothing."""

    loop: PredictionLoop
    sets: list[TrainingSet]
    calls: int = 0

    def __call__(self, now_us: int) -> TrainingSet | None:
        self.calls += 1
        if not self.sets:
            return None
        self.loop.predictor.learning.training = True
        return self.sets.pop(0)


@dataclass
class Running:
    """A prediction loop running on a fake clock, its ticks counted."""

    loop: PredictionLoop
    clock: FakeClock
    metrics: DaemonMetrics
    ticks: list[datetime] = field(default_factory=list)

    def offer(self, *sets: TrainingSet) -> Jobs:
        jobs = Jobs(self.loop, list(sets))
        self.loop.predictor.training_job = jobs  # type: ignore[method-assign]
        return jobs

    async def minutes(self, n: int = 1) -> None:
        await self.clock.advance(timedelta(minutes=n), timedelta(minutes=1))

    async def until_trained(self) -> float:
        """Let the clock run a minute at a time until the training under way is over; the
        longest real pause the event loop took meanwhile (a heartbeat every 10 ms)."""
        beats = [time.monotonic()]

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(0.01)
                beats.append(time.monotonic())

        beating = asyncio.create_task(heartbeat())
        deadline = time.monotonic() + WAIT_LIMIT
        try:
            while self.loop.training:
                assert time.monotonic() < deadline, "the training did not end"
                await self.minutes()
                await asyncio.sleep(0.05)
        finally:
            beating.cancel()
        return max(np.diff(beats), default=0.0)

    def counted(self, outcome: str) -> float:
        value: float = self.metrics.prediction_trainings.labels(outcome)._value.get()
        return value


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    clock = FakeClock(NOW)
    metrics = DaemonMetrics()
    fired: list[list[Fired]] = []
    alerts: list[list[QueueAlert]] = []
    loop = PredictionLoop(load(tmp_path), {}, clock, fired.append, alerts.append, metrics)
    state = Running(loop, clock, metrics)
    real_tick = loop.tick

    def counted_tick(now: datetime) -> None:
        state.ticks.append(now)
        real_tick(now)

    loop.tick = counted_tick  # type: ignore[method-assign]
    runner = asyncio.create_task(loop.run())
    await asyncio.sleep(0)
    yield state
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await loop.stop()
    assert multiprocessing.active_children() == [], "stop ends the worker process"


@pytest.fixture(scope="module")
def previous_model() -> BoostedTrees:
    return fit(training_set(seed=3))


def events_of(logs: Sequence[MutableMapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


def in_force(loop: PredictionLoop) -> BoostedTrees | None:
    """The model the loop's predictor judges with (None: the life tables)."""
    return loop.predictor.learning.model


# ---------------------------------------------------------------------------- training


async def test_a_training_runs_in_a_worker_process_and_its_model_is_adopted(
    running: Running,
) -> None:
    r = running
    r.loop.train = fit_away_from_the_event_loop
    data = training_set()
    jobs = r.offer(data)
    with capture_logs() as logs:
        await r.minutes()  # a tick: the retraining due goes to the worker
        assert r.loop.training and in_force(r.loop) is None
        ticks_before = len(r.ticks)
        longest_pause = await r.until_trained()
    assert len(r.ticks) - ticks_before >= 3, "the loop kept ticking while the model trained"
    assert longest_pause < 0.4, f"the event loop stood still {longest_pause:.2f}s"
    assert jobs.calls == 1, "no other job is asked for while one trains"
    model = in_force(r.loop)
    assert model is not None and not r.loop.predictor.learning.training
    assert (model.snapshots, model.breached) == (data.breached.size, int(data.breached.sum()))
    low, high = np.zeros((1, len(FEATURES))), np.zeros((1, len(FEATURES)))
    low[0, 0], high[0, 0] = -2.0, 2.0
    assert model.probability(high)[0] > 0.5 > model.probability(low)[0], "it learnt the data"
    (trained,) = events_of(logs, "prediction_model_trained")
    assert trained["snapshots"] == data.breached.size
    assert trained["breached"] == int(data.breached.sum()) and trained["seconds"] > 0
    assert (r.counted("ok"), r.counted("failed")) == (1, 0)
    seconds = r.metrics.registry.get_sample_value("sladaemon_prediction_training_seconds_count")
    assert seconds == 1
    figures = r.loop.model_figures()
    assert figures.model_trained_at_s == data.trained_at / 1e6
    assert figures.model_snapshots == data.breached.size
    await r.minutes()
    assert jobs.calls == 2, "after the adoption, retrainings are considered again"


@pytest.mark.parametrize(
    ("trainer", "error"),
    [
        (fit_that_raises, "ValueError: training needs snapshots of both outcomes"),
        (fit_that_kills_its_worker, "BrokenProcessPool"),
        (fit_that_hangs, "still running after 1s"),
    ],
)
async def test_a_failed_training_is_logged_and_counted_and_prediction_goes_on(
    running: Running,
    previous_model: BoostedTrees,
    trainer: Callable[[TrainingSet], BoostedTrees],
    error: str,
) -> None:
    r = running
    r.loop.predictor.adopt(previous_model)
    r.loop.train = trainer
    r.loop.training_timeout_s = 1.0 if trainer is fit_that_hangs else TRAINING_TIMEOUT_S
    r.offer(training_set())
    with capture_logs() as logs:
        await r.minutes()
        assert r.loop.training
        await r.until_trained()
    (failed,) = events_of(logs, "prediction_training_failed")
    assert failed["error"].startswith(error) and failed["log_level"] == "error"
    assert failed["in_force"] == "boosted"
    assert (r.counted("ok"), r.counted("failed")) == (0, 1)
    assert r.loop.predictor.learning.model is previous_model, "the model in force stays"
    assert not r.loop.predictor.learning.training, "the predictor heard the training failed"
    ticks = len(r.ticks)
    await r.minutes(3)
    assert len(r.ticks) == ticks + 3, "prediction goes on"

    r.loop.train = fit  # the next training gets a worker of its own, and succeeds
    r.loop.training_timeout_s = TRAINING_TIMEOUT_S
    data = training_set(seed=11)
    r.offer(data)
    with capture_logs() as logs:
        await r.minutes()
        await r.until_trained()
    model = in_force(r.loop)
    assert model is not None and model is not previous_model
    assert model.breached == int(data.breached.sum())
    assert len(events_of(logs, "prediction_model_trained")) == 1
    assert events_of(logs, "prediction_training_failed") == []
    assert (r.counted("ok"), r.counted("failed")) == (1, 1)


async def test_a_model_trained_for_a_predictor_a_reload_replaced_is_not_adopted(
    running: Running, tmp_path: Path
) -> None:
    r = running
    r.loop.train = fit_away_from_the_event_loop
    r.offer(training_set())
    asked = r.loop.predictor
    with capture_logs() as logs:
        await r.minutes()
        assert r.loop.training
        assert r.loop.reconfigure(load(tmp_path, "{half_life: 14d}")) is False, "started over"
        await r.until_trained()
    assert r.loop.predictor is not asked
    assert r.loop.predictor.learning.model is None, "the new predictor keeps the life tables"
    assert r.loop.model_figures().model_trained_at_s is None
    (discarded,) = events_of(logs, "prediction_model_discarded")
    assert "reload" in discarded["reason"]
    assert events_of(logs, "prediction_model_trained") == []


async def test_the_worker_outlives_stop_signals_and_stop_ends_it_without_a_failure(
    running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C or systemd's SIGTERM reach the whole process group: the worker stays until the
    daemon, stopping, ends it."""
    r = running
    started_mark = tmp_path / "training-started"
    monkeypatch.setenv(STARTED_MARK, str(started_mark))
    r.loop.train = fit_that_hangs
    r.offer(training_set())
    await r.minutes()
    deadline = time.monotonic() + WAIT_LIMIT
    while not started_mark.exists():
        assert time.monotonic() < deadline, "the training did not start"
        await asyncio.sleep(0.05)
    (worker,) = multiprocessing.active_children()
    assert worker.pid is not None and worker.pid != os.getpid()
    os.kill(worker.pid, signal.SIGINT)
    os.kill(worker.pid, signal.SIGTERM)
    await asyncio.sleep(0.3)
    assert worker.is_alive(), "the signals did not end the worker"
    started = time.monotonic()
    await r.loop.stop()
    assert time.monotonic() - started < 10, "the worker is ended, not waited for"
    assert not worker.is_alive() and not r.loop.training
    assert (r.counted("ok"), r.counted("failed")) == (0, 0)


# ---------------------------------------------------------------------------- /metrics


def exposed(registry: CollectorRegistry) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample on /metrics: name -> labels -> value."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        out.setdefault(family.name, {})
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[DaemonHarness]:
    rows = "T1,2024-03-11T08:30:00Z,created,new,normal,email,support\n"
    h = DaemonHarness(tmp_path, config_text(tmp_path, "{precision: 0.8}"), NOW, rows)
    yield h
    await h.stop()


async def test_the_daemon_exports_the_operating_point_and_the_model(
    daemon: DaemonHarness, previous_model: BoostedTrees
) -> None:
    app = await daemon.start()
    before = exposed(app.metrics.registry)
    for family in (
        "sladaemon_prediction_threshold",
        "sladaemon_prediction_threshold_precision",
        "sladaemon_prediction_model_trained_timestamp_seconds",
        "sladaemon_prediction_model_snapshots",
        "sladaemon_prediction_trainings",
        "sladaemon_prediction_training_seconds",
    ):
        assert family in before, family
    key = (("metric", "first_response"), ("policy", "support"))
    precision = app.config.predict.precision
    assert precision == 0.8
    assert before["sladaemon_prediction_threshold"] == {key: precision}, (
        "too few finished metrics yet: the asked precision is the threshold"
    )
    assert before["sladaemon_prediction_threshold_precision"] == {}, "not measured yet"
    assert before["sladaemon_prediction_model_trained_timestamp_seconds"] == {}
    assert before["sladaemon_prediction_trainings_total"] == {
        (("outcome", "ok"),): 0.0,
        (("outcome", "failed"),): 0.0,
    }
    app.prediction.predictor.adopt(previous_model)
    await daemon.advance(1)  # a tick notes the model in force
    after = exposed(app.metrics.registry)
    trained_at = after["sladaemon_prediction_model_trained_timestamp_seconds"][()]
    assert trained_at == previous_model.trained_at / 1e6
    assert after["sladaemon_prediction_model_snapshots"][()] == previous_model.snapshots


def test_a_threshold_precision_is_exported_only_where_measured() -> None:
    registry = CollectorRegistry()
    figures = PredictionFigures(
        thresholds=(("vip", "first_response", 0.62, 0.91), ("vip", "resolution", 0.9, None)),
        model_trained_at_s=None,
        model_snapshots=None,
    )
    registry.register(PredictionCollector(lambda: figures))
    samples = exposed(registry)
    assert samples["sladaemon_prediction_threshold"] == {
        (("metric", metric), ("policy", policy)): value
        for policy, metric, value, _ in figures.thresholds
    }
    assert samples["sladaemon_prediction_threshold_precision"] == {
        (("metric", metric), ("policy", policy)): measured
        for policy, metric, _, measured in figures.thresholds
        if measured is not None
    }
    assert samples["sladaemon_prediction_model_snapshots"] == {}


# ---------------------------------------------------------------------------- explain


def predicted_replay(config: Config) -> tuple[TicketReplay, Prediction]:
    """Ticket N1, created at NOW and waiting, with a breach predicted 40 minutes in."""
    replay = TicketReplay("N1", config.policies)
    replay.feed(
        TicketEvent("N1", NOW, EventKind.CREATED, "new", StatusCategory.NEW, {"queue": "support"})
    )
    at = NOW + timedelta(minutes=40)
    prediction = Prediction(
        key=("desk", "N1"),
        metric=Metric.FIRST_RESPONSE,
        cycle=0,
        at_us=to_us(at),
        probability=0.83,
        deadline_us=to_us(NOW + timedelta(hours=1)),
        expected_met_us=None,
        queue="support",
        position=1,
        backlog=3,
        reason="waiting 40m where 5 in 7 similar tickets went past 1h",
        history_probability=0.7,
        week_factor=1.0,
        calibration=1.1,
        business_left_us=20 * 60 * 1_000_000,
        threshold=0.71,
        model="boosted",
    )
    event = replay.predict_breach(
        prediction.metric, 0, prediction.at_us, prediction.deadline_us, prediction.details()
    )
    assert event is not None
    replay.timeline.append(event)  # as the backtest keeps it
    return replay, prediction


def test_explain_shows_each_predicted_breach_in_json_and_text(tmp_path: Path) -> None:
    config = load(tmp_path)
    replay, p = predicted_replay(config)
    evaluation = replay.evaluate(NOW + timedelta(minutes=50))
    (entry,) = explain_json(evaluation)["predictions"]
    assert entry == {
        "metric": p.metric.value,
        "cycle": p.cycle,
        "at": "2024-03-11T09:40:00Z",
        "deadline": "2024-03-11T10:00:00Z",
        "probability": p.probability,
        "threshold": p.threshold,
        "model": p.model,
        "business_left_s": p.business_left_us / 1e6,
        "reason": p.reason,
    }
    text = explain_text(evaluation, config.calendars)
    section = text[text.index("predicted breach of first_response (cycle 0)") :].splitlines()
    assert section[1:] == [
        "  at        2024-03-11T09:40:00Z (Mon 2024-03-11 09:40 UTC)",
        "  deadline  2024-03-11T10:00:00Z (Mon 2024-03-11 10:00 UTC)",
        f"  likely    {p.probability:.0%} (threshold in force {p.threshold:.0%})",
        f"  model     {p.model}",
        "  left      20m of business time",
        f"  why       {p.reason}",
    ]


def test_explain_without_predicted_breaches_keeps_its_shape(tmp_path: Path) -> None:
    config = load(tmp_path)
    replay = TicketReplay("N2", config.policies)
    replay.feed(TicketEvent("N2", NOW, EventKind.CREATED, "new", StatusCategory.NEW))
    evaluation = replay.evaluate(NOW + timedelta(minutes=10))
    assert "predictions" not in explain_json(evaluation)
    assert "predicted breach" not in explain_text(evaluation, config.calendars)


# ---------------------------------------------------------------------------- example config


EXAMPLE_ENV = {
    "SLACK_SUPPORT_URL": "slack://a/b/c/#support",
    "LEADS_MAIL_URL": "mailto://user:pass@example.com?to=leads@example.com",
}


def example_with(tmp_path: Path, edit: Callable[[str], str]) -> Path:
    path = tmp_path / "example.yaml"
    path.write_text(edit((ROOT / "config" / "example.yaml").read_text()))
    return path


def uncomment_fixed_rule(text: str) -> str:
    return text.replace("  # threshold: 0.3", "  threshold: 0.3").replace(
        "  # early: 0.9", "  early: 0.9"
    )


def test_the_example_config_warns_by_precision_and_shows_the_fixed_rule_instead(
    tmp_path: Path,
) -> None:
    example = load_config(ROOT / "config" / "example.yaml", environ=EXAMPLE_ENV)
    assert example.predict.precision == 0.9
    fixed = example_with(
        tmp_path,
        lambda t: uncomment_fixed_rule(t).replace("  precision: 0.9", "  # precision: 0.9"),
    )
    settings = load_config(fixed, environ=EXAMPLE_ENV).predict
    assert (settings.precision, settings.threshold, settings.early) == (None, 0.3, 0.9)
    both = example_with(tmp_path, uncomment_fixed_rule)
    with pytest.raises(ConfigError) as info:
        load_config(both, environ=EXAMPLE_ENV)
    assert "two ways to choose when to warn" in str(info.value.issues[0])
