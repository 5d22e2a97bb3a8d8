"""Breach prediction benchmark: the three public ticket logs, predicted warnings against the
fixed 75 % threshold on the same replay.

For each log (read in place from ../shared/data, imported to a temporary CSV) the backtest runs
with its SLA config from bench/configs/ and the default ``predict`` settings, once without
prediction and once with it (each timed). Per log the table gives, for the predicted warnings
and for the 75 % instants:

* alerts — warnings raised (each ticket × metric × cycle at most once);
* precision — the share of warned metrics that breached;
* >=30m, >=1h — the share of breached metrics warned at least that long before the deadline
  (wall clock);
* median lead — over the breached metrics warned before their deadline;

and whether prediction met the goal there: no more alerts, more breaches caught at least 1 h
ahead, and a longer median lead. Then, per log, prediction against every fixed threshold
(``sladaemon.predict.curves``): the operating point and the fixed rule of equal precision, in
the tune and report parts of the history.

A second workload measures the daemon's side: 100,000 open tickets (the fleet of bench/sla.py,
300,000 open SLA cycles) handed to the predictor once, then one full tick (every running metric
judged, queues forecast) and one tick after a model refresh, timed; and what a restart costs
with 300,000 learnt cycles of closed tickets in the state file.

Run ``python -m bench.predict`` (``--quick``: the bundled demo history only; ``--json PATH``
saves the figures, the curves with every point included; ``--curve DIR`` writes one HTML page of
curves per log).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.sla import FLEET_CONFIG, _fleet
from bench.timing import timed
from sladaemon.calendar import to_us
from sladaemon.config import load_config
from sladaemon.eventlog import read_events
from sladaemon.eventlog.importers import convert
from sladaemon.predict.backtest import predictive_backtest
from sladaemon.predict.curves import CurveReport, curve_html, format_curves, prediction_curves
from sladaemon.predict.features import COLUMN, feature_matrix, queue_backlogs
from sladaemon.predict.learnt import LearntCycle
from sladaemon.predict.predictor import BreachPredictor
from sladaemon.predict.quality import WarningQuality
from sladaemon.predict.snapshots import LABELLED, storable
from sladaemon.predict.training import TrainingSet, fit
from sladaemon.sla.backtest import backtest
from sladaemon.sla.engine import TicketReplay
from sladaemon.store.sqlite import StateStore
from sladaemon.texttable import aligned, percent, short_duration

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
LOGS = {
    "servicenow": DATA / "servicenow_incidents" / "incident_event_log.zip",
    "helpdesk-italian": DATA / "helpdesk_italian" / "helpdesk_events.csv.gz",
    "bpic2013": DATA / "bpic2013_volvo_incidents" / "incidents.csv.gz",
}


CURVES: dict[str, CurveReport] = {}  # per log, for the text and the pages


def run_log(name: str, config: Path, events: Path) -> dict[str, Any]:
    cfg = load_config(config, environ={})
    log = read_events(events, cfg.status_map())
    plain_s, _ = timed(lambda: backtest(log.tickets, cfg.policies))
    predict_s, result = timed(lambda: predictive_backtest(log.tickets, cfg.policies, cfg.predict))
    curves_s, curves = timed(lambda: prediction_curves(result))
    CURVES[name] = curves
    q = result.quality
    return {
        "log": name,
        "tickets": result.result.tickets,
        "replay_s": plain_s,
        "replay_with_prediction_s": predict_s,
        "predicted": q.predicted.as_json(),
        "baseline_75": q.baseline.as_json(),
        "wins": wins(q.predicted, q.baseline),
        "by_policy_metric": q.as_json()["by_policy_metric"],
        "curves_s": curves_s,
        "curves": curves.as_json(),
    }


def wins(predicted: WarningQuality, baseline: WarningQuality) -> dict[str, bool]:
    lead = predicted.median_lead_s or 0.0
    return {
        "no_more_alerts": predicted.alerts <= baseline.alerts,
        "more_caught_1h": predicted.caught_1h > baseline.caught_1h,
        "longer_median_lead": lead > (baseline.median_lead_s or 0.0),
    }


def bench_fleet(n: int) -> dict[str, Any]:
    """The predictor over ``n`` open tickets: loading them, the first tick (life tables built,
    every row judged once), steady ticks with the life tables, a retraining on the rows'
    own features (as many snapshots as rows, labelled by a planted rule), and steady ticks
    with the boosted model in force. Each steady tick judges the rows due that minute."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fleet.yaml"
        path.write_text(FLEET_CONFIG)
        cfg = load_config(path, environ={})
    now = datetime(2026, 3, 18, 14, 30, tzinfo=UTC)
    replays = []
    for events in _fleet(n, now):
        replay = TicketReplay(events[0].ticket_id, cfg.policies)
        for event in events:
            replay.feed(event)
        replays.append(replay)
    predictor = BreachPredictor(cfg.policies, cfg.predict, train_inline=False)
    now_us = to_us(now)
    minute = 60_000_000

    def observe_all() -> None:
        for replay in replays:
            predictor.observe(("fleet", replay.ticket_id), replay, now_us)

    def ticks(first: int) -> float:
        return min(
            timed(partial(predictor.tick, now_us + k * minute, queues=True, window_us=5_000_000))[0]
            for k in range(first, first + 5)
        )

    observe_s, _ = timed(observe_all)
    first_tick_s, _ = timed(lambda: predictor.tick(now_us, queues=True))  # builds the tables
    tick_s = ticks(1)
    data = _planted_training_set(predictor, now_us + 6 * minute)
    train_s, model = timed(lambda: fit(data))
    predictor.adopt(model)
    boosted_tick_s = ticks(7)
    return {
        "tickets": n,
        "rows": len(predictor),
        "observe_s": observe_s,
        "first_tick_s": first_tick_s,
        "tick_s": tick_s,
        "training_snapshots": int(data.breached.size),
        "training_s": train_s,
        "boosted_tick_s": boosted_tick_s,
    }


TRAINING_SNAPSHOTS = LABELLED


def _planted_training_set(predictor: BreachPredictor, now_us: int) -> TrainingSet:
    """``TRAINING_SNAPSHOTS`` running rows' features now (drawn with replacement), labelled
    breached when their elapsed share and backlog (with noise) say so: what a retraining on
    that many snapshots costs."""
    rows = predictor.rows
    slots = np.flatnonzero(rows.running())
    risk = predictor._evaluate(rows.columns(slots, now_us))
    backlogs = queue_backlogs(rows, len(predictor._registry.queues))
    judged = feature_matrix(risk, predictor.learning.context(predictor._registry), backlogs)
    rng = np.random.default_rng(0)
    picked = rng.choice(slots.size, TRAINING_SNAPSHOTS)  # as many as the book keeps
    features = storable(judged[picked])
    signal = np.nan_to_num(features[:, COLUMN["elapsed_share"]]) + 0.01 * np.nan_to_num(
        features[:, COLUMN["backlog"]]
    )
    n = TRAINING_SNAPSHOTS
    breached = signal + rng.normal(0, 0.3, n) > np.median(signal)
    at = now_us - rng.integers(0, 30 * 86_400_000_000, n)
    return TrainingSet(features, breached, np.ones(n), at, now_us)


def bench_learnt(n: int) -> dict[str, Any]:
    """What a restart costs for ``n`` learnt cycles of closed tickets: the state file's
    size, reading them back and handing them to a new predictor."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fleet.yaml"
        path.write_text(FLEET_CONFIG)
        cfg = load_config(path, environ={})
        policy = cfg.policies[0]
        metrics = [rule.metric for rule in policy.metrics]
        start = to_us(datetime(2026, 1, 5, tzinfo=UTC))
        step = 20 * 60_000_000  # one cycle every 20 s, first response after 30 min to 3 h
        cycles = [
            LearntCycle(
                f"T{i // len(metrics)}",
                metrics[i % len(metrics)],
                0,
                policy.name,
                "normal",
                f"queue-{i % 5}",
                start + i * step // 60,
                start + i * step // 60 + (1 + i % 6) * 1_800_000_000,
                (1 + i % 6) * 1_800_000_000,
            )
            for i in range(n)
        ]
        store = StateStore(Path(tmp) / "state.sqlite")
        store.forget_tickets("fleet", [], cycles)
        read_s, learnt = timed(lambda: store.learnt("fleet"))
        remember_s, _ = timed(
            lambda: BreachPredictor(cfg.policies, cfg.predict).remember("fleet", learnt)
        )
        store.close()  # checkpoints the WAL into the file
        size = (Path(tmp) / "state.sqlite").stat().st_size
    return {"cycles": n, "state_mb": size / 1e6, "read_s": read_s, "remember_s": remember_s}


def run(quick: bool = False) -> list[dict[str, Any]]:
    if quick:
        demo = ROOT / "sladaemon" / "data" / "demo-events.csv"
        return [run_log("demo", ROOT / "config" / "demo.yaml", demo)]
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in LOGS.items():
            if not source.exists():
                figures.append({"log": name, "skipped": f"{source} not present"})
                continue
            events = Path(tmp) / f"{name}.csv"
            convert(name, source, events)
            figures.append(run_log(name, ROOT / "bench" / "configs" / f"{name}.yaml", events))
    return figures


def table(figures: Sequence[dict[str, Any]]) -> str:
    header = ("log", "warning", "alerts", "precision", ">=30m", ">=1h", "median lead", "goal")
    lines: list[Sequence[str]] = [header]
    for f in figures:
        if "skipped" in f:
            lines.append((f["log"], f"skipped: {f['skipped']}", "", "", "", "", "", ""))
            continue
        met = [k.replace("_", " ") for k, ok in f["wins"].items() if not ok]
        goal = "met" if not met else "missed: " + ", ".join(met)
        for key, label, verdict in (
            ("predicted", "predicted", goal),
            ("baseline_75", "75% of target", ""),
        ):
            q = f[key]
            lines.append(
                (
                    f["log"] if key == "predicted" else "",
                    label,
                    str(q["alerts"]),
                    percent(q["precision"]),
                    f"{percent(q['share_30m'])} ({q['caught_30m']})",
                    f"{percent(q['share_1h'])} ({q['caught_1h']})",
                    short_duration(q["median_lead_s"]),
                    verdict,
                )
            )
    return "\n".join(aligned(lines, left=(0, 1, 7)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.predict", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--curve", type=Path, metavar="DIR", help="one HTML page per log")
    args = parser.parse_args(argv)
    if args.curve is not None and not args.curve.is_dir():
        parser.error(f"--curve {args.curve}: no such directory")
    figures = run(args.quick)
    print(table(figures))
    for name, curves in CURVES.items():
        print(f"\n{name}: {format_curves(curves)}")
        if args.curve is not None:
            page = args.curve / f"{name}.html"
            page.write_text(
                curve_html(f"{name}: breach prediction against fixed thresholds", curves)
            )
            print(f"wrote {page}")
    fleet = bench_fleet(5_000 if args.quick else 100_000)
    print(
        f"daemon: {fleet['tickets']:,} open tickets ({fleet['rows']:,} open SLA cycles): handed "
        f"to the predictor in {fleet['observe_s']:.2f}s; first tick (tables built) "
        f"{fleet['first_tick_s']:.2f}s; a tick (the metrics due judged, queues forecast) "
        f"{fleet['tick_s']:.3f}s with the life tables, {fleet['boosted_tick_s']:.3f}s with the "
        f"boosted model; a retraining on {fleet['training_snapshots']:,} snapshots "
        f"{fleet['training_s']:.1f}s"
    )
    learnt = bench_learnt(30_000 if args.quick else 300_000)
    print(
        f"restart: {learnt['cycles']:,} learnt cycles of closed tickets take "
        f"{learnt['state_mb']:.0f} MB of state; read back in {learnt['read_s']:.2f}s, "
        f"counted by a new predictor in {learnt['remember_s']:.2f}s"
    )
    for f in figures:
        if "skipped" not in f:
            print(
                f"{f['log']}: {f['tickets']:,} tickets; backtest {f['replay_s']:.1f}s without "
                f"prediction, {f['replay_with_prediction_s']:.1f}s with it "
                f"({f['replay_with_prediction_s'] / f['replay_s']:.1f}x); curves "
                f"{f['curves_s']:.2f}s"
            )
    if args.json:
        summary = {"logs": figures, "daemon": fleet, "restart": learnt}
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
