"""KPI reports: each figure on a small history where it can be counted by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.cli import main
from sladaemon.config import load_config
from sladaemon.model import EventKind as K
from sladaemon.model import StatusCategory as S
from sladaemon.model import TicketEvent
from sladaemon.report.ledger import compute_kpis
from sladaemon.report.render import as_html, as_json, as_table

MON = datetime(2024, 1, 8, tzinfo=UTC)
CONFIG = """
calendars:
  always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
receivers: {team: {urls: ["console://"]}}
policies:
  - name: desk
    calendar: always
    targets: {first_response: 1h, resolution: 8h}
    escalation: [{at: breach, notify: [team]}, {at: breach+1h, notify: [team]}]
"""


def ev(t: str, day: int, hour: float, kind: K, cat: S | None = None, **f: str) -> TicketEvent:
    return TicketEvent(t, MON + timedelta(days=day, hours=hour), kind, category=cat, fields=f)


@pytest.fixture
def cfg(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    return load_config(path, environ={})


def history() -> dict[str, list[TicketEvent]]:
    return {
        # answered in 30 min, solved at 2 h with one reply: first-contact resolution
        "A": [
            ev("A", 0, 9, K.CREATED, channel="email", queue="l1"),
            ev("A", 0, 9.5, K.AGENT_REPLY),
            ev("A", 0, 11, K.RESOLVED),
        ],
        # answered after 3 h (breached, and escalation level at 2 h), moved to l2, reopened
        "B": [
            ev("B", 0, 10, K.CREATED, channel="email", queue="l1"),
            ev("B", 0, 13, K.AGENT_REPLY, queue="l2"),
            ev("B", 0, 14, K.RESOLVED),
            ev("B", 1, 9, K.REOPENED),
            ev("B", 1, 10, K.AGENT_REPLY),
            ev("B", 1, 11, K.RESOLVED),
        ],
        # still open at the end, answered in time
        "C": [
            ev("C", 1, 9, K.CREATED, channel="phone", queue="l1"),
            ev("C", 1, 9.25, K.AGENT_REPLY),
        ],
    }


def test_kpis_count_what_happened(cfg) -> None:
    r = compute_kpis(history(), cfg.policies, MON, MON + timedelta(days=2), "UTC")
    assert r.created == 3 and r.backlog == 1
    assert r.first_response_business.count == 3
    assert r.first_response_business.median_s == 1800  # 30 min, 3 h, 15 min
    assert r.resolution_business.count == 2
    cells = {(c.metric, c.channel): (c.met, c.breached) for c in r.compliance}
    assert cells[("first_response", "email")] == (1, 1)
    assert cells[("first_response", "phone")] == (1, 0)
    assert r.reopen.numerator == 1 and r.reopen.denominator == 2
    # B moved to l2; C, open 15 h against an 8 h resolution target, reached breach+1h.
    assert r.escalation.numerator == 2
    assert r.first_contact_resolution.numerator == 1  # A only
    assert r.daily_volume == 1.5 and r.backlog_limit == pytest.approx(0.15)


def test_spikes_compare_with_the_same_weekday(cfg) -> None:
    tickets = {}
    for week in range(5):
        n = 2 if week < 4 else 5  # the fifth Monday is busy
        for k in range(n):
            t = f"W{week}-{k}"
            tickets[t] = [ev(t, 7 * week, 9 + k, K.CREATED, channel="web")]
    start = MON + timedelta(weeks=4)
    r = compute_kpis(tickets, cfg.policies, start, start + timedelta(days=1), "UTC")
    (monday,) = [v for v in r.volume if v.tickets]
    assert monday.baseline == 2.0 and monday.spike


def test_renderings(cfg, tmp_path: Path) -> None:
    r = compute_kpis(history(), cfg.policies, MON, MON + timedelta(days=2), "UTC")
    table = as_table(r)
    assert "reopen rate             50.0% of 2 (target < 5%)" in table
    data = json.loads(json.dumps(as_json(r)))
    assert data["reopen"]["percent"] == 50.0 and data["created"] == 3
    page = as_html(r)
    assert page.startswith("<!DOCTYPE html>") and "<svg" not in page
    assert "http" not in page, "self-contained"


def test_report_command_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    args = [
        "report",
        "--config",
        str(root / "config" / "demo.yaml"),
        "--events",
        str(root / "sladaemon" / "data" / "demo-events.csv"),
        "--period",
        "7d",
    ]
    assert main(args) == 0
    assert "SLA compliance (target >= 95%)" in capsys.readouterr().out
    assert main([*args, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["created"] > 0
    out = tmp_path / "r.html"
    assert main([*args, "--format", "html", "--out", str(out)]) == 0
    assert "Previous period" in out.read_text()
    assert main([*args, "--period", "soon"]) == 2
