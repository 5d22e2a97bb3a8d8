"""import -> backtest -> explain on the three public ticket logs, with the configs in bench/."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sladaemon.cli import main
from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parents[2]
LOGS = {
    "helpdesk-italian": ("data", "helpdesk_italian", "helpdesk_events.csv.gz"),
    "bpic2013": ("data", "bpic2013_volvo_incidents", "incidents.csv.gz"),
    "servicenow": ("data", "servicenow_incidents", "incident_event_log.zip"),
}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out: dict[str, Path] = {}
    folder = tmp_path_factory.mktemp("logs")
    for name, parts in LOGS.items():
        source = shared_path(*parts)
        target = folder / f"{name}.csv"
        assert main(["import", "--format", name, str(source), str(target)]) == 0
        out[name] = target
    return out


@pytest.mark.parametrize("name", list(LOGS))
def test_backtest_and_explain_on_a_real_log(
    name: str, imported: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, config = imported[name], ROOT / "bench" / "configs" / f"{name}.yaml"
    with events.open() as stream:
        tickets = {row["ticket_id"] for row in csv.DictReader(stream)}
    jsonl = tmp_path / "sla.jsonl"
    args = ["backtest", "--config", str(config), "--events", str(events), "--strict"]
    assert main([*args, "--out", str(jsonl)]) == 0
    out, err = capsys.readouterr()
    assert f"of {len(tickets)} tickets" in out
    assert "unknown status" not in err
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    kinds = {r["event"] for r in records}
    assert {"warning", "breach", "met"} <= kinds
    assert {r["ticket_id"] for r in records} <= tickets
    breached = next(r for r in records if r["event"] == "breach")
    assert breached["at"] == breached["deadline"], "a breach fires at its deadline"

    code = main(
        [
            "explain",
            "--config",
            str(config),
            "--events",
            str(events),
            breached["ticket_id"],
            "--json",
        ]
    )
    assert code == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained["ticket_id"] == breached["ticket_id"]
    metric = explained["metrics"][breached["metric"]]
    assert metric["state"] == "breached"
    assert metric["remaining_s"] < 0
