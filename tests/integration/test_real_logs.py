"""import -> backtest -> explain on the three public ticket logs, with the configs in bench/."""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timedelta
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


def busy_week_end(events: Path) -> datetime:
    """Midnight UTC half a week after the median ticket creation: a week full of tickets."""
    with events.open() as stream:
        created = sorted(
            row["timestamp"] for row in csv.DictReader(stream) if row["event"] == "created"
        )
    middle = datetime.fromisoformat(created[len(created) // 2].replace("Z", "+00:00"))
    return (middle + timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)


def first_instants(events: Path) -> dict[str, datetime]:
    first: dict[str, datetime] = {}
    with events.open() as stream:
        for row in csv.DictReader(stream):
            at = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
            if row["ticket_id"] not in first or at < first[row["ticket_id"]]:
                first[row["ticket_id"]] = at
    return first


@pytest.mark.parametrize("name", list(LOGS))
def test_report_in_every_format_on_a_real_log(
    name: str, imported: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, config = imported[name], ROOT / "bench" / "configs" / f"{name}.yaml"
    until = busy_week_end(events)
    args = ["report", "--config", str(config), "--events", str(events), "--period", "7d"]
    args += ["--until", until.isoformat()]
    out = {fmt: tmp_path / f"report.{fmt}" for fmt in ("table", "json", "html")}
    for fmt, path in out.items():
        assert main([*args, "--format", fmt, "--out", str(path)]) == 0
    capsys.readouterr()

    data = json.loads(out["json"].read_text())
    first = first_instants(events)
    start = until - timedelta(days=7)
    assert data["created"] == sum(1 for t in first.values() if start <= t < until) > 0
    assert 0 < data["backlog"] <= sum(1 for t in first.values() if t < until)
    assert data["daily_volume"] == pytest.approx(data["created"] / 7)
    assert sum(data["created_per_channel"].values()) == data["created"]
    assert data["compliance"], "SLA cycles were decided in a busy week"
    for cell in data["compliance"]:
        assert cell["met"] + cell["breached"] > 0
        assert 0 <= cell["percent"] <= 100
    for key in ("first_response_business", "first_response_calendar", "resolution_business"):
        stats = data[key]
        assert stats["count"] > 0
        assert 0 <= stats["median_s"] <= stats["p90_s"]
        assert stats["mean_s"] >= 0
    assert (
        data["first_response_business"]["median_s"] <= data["first_response_calendar"]["median_s"]
    ), "business time never exceeds calendar time"
    for rate in ("reopen", "escalation", "first_contact_resolution"):
        assert data[rate]["numerator"] <= data[rate]["denominator"]
        assert 0 <= data[rate]["percent"] <= 100
    days = {v["day"] for v in data["volume"]}
    assert len(days) >= 7
    assert sum(v["tickets"] for v in data["volume"]) >= data["created"]

    table = out["table"].read_text()
    for section in (
        "tickets created",
        "open backlog",
        "first response, business",
        "resolution, calendar",
        "reopen rate",
        "escalation rate",
        "first-contact resolution",
        "SLA compliance (target >= 95%)",
        "volume per day and channel",
    ):
        assert section in table
    assert f"tickets created         {data['created']} " in table

    page = out["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<html") == 1 and "<svg" not in page  # mail-safe: no SVG
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', ""), "self-contained"
    for text in (table, page, out["json"].read_text()):
        assert not re.search(r"\bnan\b", text, re.IGNORECASE), "no NaN anywhere"
