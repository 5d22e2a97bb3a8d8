"""Prediction in the backtest: no look-ahead, quality figures, the command's output."""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.cli import main
from sladaemon.config import load_config
from sladaemon.errors import ConfigError
from sladaemon.eventlog import read_events
from sladaemon.model import Metric, SlaEvent, SlaEventKind
from sladaemon.predict.backtest import predictive_backtest, with_baseline_level
from sladaemon.predict.quality import measure

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
DEMO_EVENTS = ROOT / "sladaemon" / "data" / "demo-events.csv"


def signature(e: SlaEvent) -> tuple[object, ...]:
    return (
        e.ticket_id,
        e.metric,
        e.cycle,
        e.at,
        e.deadline,
        e.details["probability"],
        e.details["reason"],
        e.details["expected_met_us"],
    )


def test_predictions_before_a_cut_do_not_depend_on_the_history_after_it() -> None:
    """The demo history replayed whole and cut in its middle (at an instant off every tick):
    every prediction before the cut is the same, to the probability and the reason."""
    cfg = load_config(DEMO_CONFIG, environ={})
    log = read_events(DEMO_EVENTS, cfg.status_map())
    end = max(evs[-1].at for evs in log.tickets.values())
    start = min(evs[0].at for evs in log.tickets.values())
    cut = start + (end - start) * 0.6 + timedelta(minutes=7, seconds=13)
    whole = predictive_backtest(log.tickets, cfg.policies, cfg.predict)
    truncated = predictive_backtest(log.tickets, cfg.policies, cfg.predict, until=cut)
    before = [signature(e) for e in whole.predictions if e.at < cut]
    assert len(before) >= 20, "the cut must leave predictions to compare"
    assert [signature(e) for e in truncated.predictions if e.at < cut] == before
    assert any(e.at > cut for e in whole.predictions), "and the rest of the history has more"


def test_every_prediction_leaves_the_lead_and_says_why() -> None:
    cfg = load_config(DEMO_CONFIG, environ={})
    log = read_events(DEMO_EVENTS, cfg.status_map())
    result = predictive_backtest(log.tickets, cfg.policies, cfg.predict)
    assert result.predictions
    keys = set()
    for e in result.predictions:
        assert e.kind is SlaEventKind.PREDICTED_BREACH and e.level == "predicted"
        assert e.deadline is not None and e.deadline - e.at >= cfg.predict.lead
        probability = e.details["probability"]
        assert math.isfinite(probability) and 0.0 < probability < 1.0
        assert e.details["reason"] and "nan" not in e.details["reason"].lower()
        keys.add((e.ticket_id, e.metric, e.cycle))
    assert len(keys) == len(result.predictions), "once per ticket × metric × cycle"


def test_quality_counts_leads_in_wall_clock_against_the_deadline() -> None:
    """Three breached metrics and one met; the prediction warns two breaches 3 h and 20 min
    ahead and one metric that was met; the baseline warns all three breaches 1 h ahead."""
    deadline = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

    def event(ticket: str, kind: SlaEventKind, at: datetime, level: str | None) -> SlaEvent:
        return SlaEvent(ticket, "p", Metric.RESOLUTION, kind, at, deadline, level)

    hour = timedelta(hours=1)
    events = [
        *(event(t, SlaEventKind.BREACH, deadline, "breach") for t in ("A", "B", "C")),
        *(event(t, SlaEventKind.WARNING, deadline - hour, "75%") for t in ("A", "B", "C")),
        event("A", SlaEventKind.PREDICTED_BREACH, deadline - 3 * hour, "predicted"),
        event("B", SlaEventKind.PREDICTED_BREACH, deadline - hour / 3, "predicted"),
        event("D", SlaEventKind.PREDICTED_BREACH, deadline - hour, "predicted"),
        event("D", SlaEventKind.MET, deadline, None),
    ]
    quality = measure(events)
    predicted, baseline = quality.predicted, quality.baseline
    assert (predicted.alerts, predicted.breaches, predicted.warned_breaches) == (3, 3, 2)
    assert predicted.precision == pytest.approx(2 / 3)
    assert (predicted.caught_30m, predicted.caught_1h) == (1, 1)
    assert predicted.median_lead_s == pytest.approx((3 * 3600 + 1200) / 2)
    assert (baseline.alerts, baseline.caught_1h, baseline.median_lead_s) == (3, 3, 3600)
    assert baseline.precision == 1.0


def test_the_baseline_level_is_measured_even_where_the_config_has_none(tmp_path: Path) -> None:
    cfg = load_config(DEMO_CONFIG, environ={})
    bare = tuple(
        replace(p, ladder=tuple(lv for lv in p.ladder if lv.label != "75%")) for p in cfg.policies
    )
    shadow, added = with_baseline_level(bare)
    assert added == {p.name for p in cfg.policies}
    assert all(any(lv.label == "75%" and not lv.notify for lv in p.ladder) for p in shadow)
    log = read_events(DEMO_EVENTS, cfg.status_map())
    result = predictive_backtest(log.tickets, bare, cfg.predict)
    assert result.quality.baseline.alerts > 0
    assert not [e for e in result.result.events if e.level == "75%"], "kept out of the output"


def test_backtest_command_writes_predicted_breach_lines_and_a_json_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "events.jsonl"
    args = ["backtest", "--config", str(DEMO_CONFIG), "--events", str(DEMO_EVENTS)]
    assert main([*args, "--out", str(out), "--json"]) == 0
    printed = capsys.readouterr()
    assert "prediction quality" in printed.err and "75% of target" in printed.err
    figures = json.loads(printed.out)  # stdout holds the JSON summary only
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    predicted = [r for r in lines if r["event"] == "predicted_breach"]
    assert predicted and all(0.0 < r["probability"] < 1.0 for r in predicted)
    assert {"probability", "expected_met", "queue", "position", "backlog", "reason"} <= set(
        predicted[0]
    )
    assert figures["prediction"]["predicted"]["alerts"] == len(predicted)
    assert figures["sla_events"]["predicted_breach"] == len(predicted)
    assert main([*args, "--no-predict", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prediction"] is None


def test_predict_section_is_validated_with_file_line_and_path(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """
            receivers:
              leads: {urls: ["console://"]}
            predict:
              threshold: 1.5
              early: 0.2
              horizon: 0s
              half_life: soon
              queue_alerts: {notify: [leads, nobody]}
            """
        ).lstrip()
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    text = str(info.value)
    assert "config.yaml:4 predict.threshold: Input should be less than 1" in text
    assert "config.yaml:6 predict.horizon: must be longer than 0s" in text
    assert "config.yaml:7 predict.half_life: invalid period 'soon'" in text
    assert "config.yaml:8 predict.queue_alerts.notify[1]: unknown receiver 'nobody'" in text
    path.write_text("predict: {threshold: 0.5, early: 0.2}\n")
    with pytest.raises(ConfigError, match=r"predict.early: early \(0.2\) must not be below"):
        load_config(path, environ={})
