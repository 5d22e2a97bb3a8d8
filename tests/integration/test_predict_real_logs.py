"""Breach prediction on a public ticket log (BPIC 2013, the quickest of the three to replay):
every warning leaves the lead, says why, and the summary counts what the lines show."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.cli import main
from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parents[2]


def test_backtest_predicts_breaches_on_bpic2013_with_the_lead_and_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = shared_path("data", "bpic2013_volvo_incidents", "incidents.csv.gz")
    events = tmp_path / "bpic2013.csv"
    assert main(["import", "--format", "bpic2013", str(source), str(events)]) == 0
    config = ROOT / "bench" / "configs" / "bpic2013.yaml"
    out = tmp_path / "sla.jsonl"
    args = ["backtest", "--config", str(config), "--events", str(events)]
    assert main([*args, "--out", str(out), "--json"]) == 0
    printed = capsys.readouterr()
    assert "prediction quality" in printed.err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    predicted = [r for r in records if r["event"] == "predicted_breach"]
    assert predicted, "a log of 7,554 incidents gets predictions"
    for r in predicted:
        lead = datetime.fromisoformat(r["deadline"]) - datetime.fromisoformat(r["at"])
        assert lead >= timedelta(hours=1), r
        assert 0.0 < r["probability"] < 1.0 and r["reason"], r
    breached = {(r["ticket_id"], r["metric"]) for r in records if r["event"] == "breach"}
    figures = json.loads(printed.out)["prediction"]
    assert figures["predicted"]["alerts"] == len(predicted)
    assert figures["predicted"]["breaches"] == figures["baseline_75"]["breaches"]
    # first_response and resolution have one cycle per ticket, so (ticket, metric) names it.
    warned = {(r["ticket_id"], r["metric"]) for r in predicted}
    assert len(warned) == len(predicted), "once per ticket × metric × cycle"
    assert figures["predicted"]["warned_breaches"] == len(warned & breached)
