"""Support KPIs: ``sladaemon report`` on the real ServiceNow log, and the daemon's KPI ledger
with 100,000 open tickets.

Workloads
    * ``report servicenow``: the ServiceNow incident log (UCI #498, read from ../shared/data)
      imported to the normalized CSV once, then ``sladaemon report`` (in-process: read the
      CSV, replay the tickets that matter, count) for a week in the busiest stretch of the log
      in each format, and for the whole log in one 13-week period. Goal: a few seconds.
    * ``ledger, 100k open tickets``: 100,000 open tickets over the last six days (three
      channels, replies, customer answers, on-hold periods) fed to the daemon's ticket book;
      timed: writing every ticket's KPI facts to a ledger in a state file (what start-up adds),
      and counting the KPIs of the seven-day window from it — what a Prometheus scrape costs
      when the cached figures are older than five minutes. Goal for the count: well under 1 s.

Run ``python -m bench.kpi`` (``--quick``: 5,000 tickets, no real log).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from bench.timing import timed
from sladaemon.cli import main as cli_main
from sladaemon.config import load_config
from sladaemon.escalate.book import TicketBook
from sladaemon.eventlog.importers import convert
from sladaemon.model import EventKind, StatusCategory, TicketEvent
from sladaemon.report.kpi import ticket_facts
from sladaemon.report.ledger import KpiLedger

ROOT = Path(__file__).resolve().parent.parent
SERVICENOW = ROOT.parent / "shared" / "data" / "servicenow_incidents" / "incident_event_log.zip"
BUSY_WEEK_END = "2016-04-18T00:00:00Z"  # a Monday in the busiest stretch of the log
FLEET_CONFIG = """
calendars:
  office: {timezone: Europe/Berlin, hours: {mon-fri: ["09:00-17:00"]}, holidays: {country: DE}}
receivers:
  team: {urls: ["console://"]}
policies:
  - name: fleet
    calendar: office
    targets: {first_response: 4h, next_response: 8h, resolution: {high: 24h, default: 40h}}
    escalation:
      - {at: 75%, notify: [team]}
      - {at: breach, notify: [team]}
      - {at: breach+4h, notify: [team]}
"""


def bench_report() -> dict[str, Any]:
    if not SERVICENOW.exists():
        return {"skipped": f"{SERVICENOW} not present"}
    config = ROOT / "bench" / "configs" / "servicenow.yaml"
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "servicenow.csv"
        convert("servicenow", SERVICENOW, events)
        base = ["report", "--config", str(config), "--events", str(events)]
        runs = [
            (f"week_{fmt}_s", ["--period", "7d", "--until", BUSY_WEEK_END, "--format", fmt])
            for fmt in ("table", "json", "html")
        ]
        whole = ["--period", "13w", "--until", "2016-06-01T00:00:00Z", "--format", "json"]
        runs.append(("whole_log_json_s", whole))
        out = Path(tmp) / "report.out"
        for name, extra in runs:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                seconds, code = timed(partial(cli_main, [*base, *extra, "--out", str(out)]))
            if code != 0:
                raise RuntimeError(f"report {extra} exited with {code}")
            figures[name] = seconds
    return figures


def _fleet(n: int, now: datetime, seed: int = 3) -> list[TicketEvent]:
    rng = random.Random(seed)
    events: list[TicketEvent] = []
    for i in range(n):
        tid = f"T{i}"
        created = now - timedelta(seconds=rng.randint(600, 6 * 86_400))
        span = (now - created).total_seconds()
        fields = {
            "priority": rng.choice(["high", "normal", "low"]),
            "channel": rng.choice(["email", "web", "phone"]),
            "queue": "support",
        }
        events.append(TicketEvent(tid, created, EventKind.CREATED, "new", None, fields))
        if rng.random() < 0.8:
            replied = created + timedelta(seconds=span * rng.uniform(0.01, 0.5))
            events.append(
                TicketEvent(tid, replied, EventKind.AGENT_REPLY, "open", StatusCategory.OPEN)
            )
            answered = replied + (now - replied) * rng.random()
            events.append(TicketEvent(tid, answered, EventKind.CUSTOMER_REPLY))
            if rng.random() < 0.2:
                hold = answered + (now - answered) * rng.random()
                events.append(
                    TicketEvent(tid, hold, EventKind.STATUS_CHANGED, "hold", StatusCategory.ON_HOLD)
                )
    return events


def bench_ledger(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fleet.yaml"
        path.write_text(FLEET_CONFIG)
        cfg = load_config(path)
        now = datetime(2026, 3, 18, 14, 30, tzinfo=UTC)
        book = TicketBook(cfg.policies)
        ingested = book.ingest("desk", _fleet(n, now))
        ledger = KpiLedger(Path(tmp) / "state.sqlite")
        facts_s, facts = timed(lambda: [ticket_facts(r) for r in ingested.touched.values()])
        record_s, _ = timed(lambda: ledger.record("desk", facts))
        counts = [timed(lambda: ledger.report(now - timedelta(days=7), now, "Europe/Berlin"))]
        counts += [
            timed(lambda: ledger.report(now - timedelta(days=7), now, "Europe/Berlin"))
            for _ in range(2)
        ]
        report = counts[-1][1]
        ledger.close()
    return {
        "tickets": n,
        "cycles_recorded": sum(len(f.cycles) for f in facts),
        "facts_s": facts_s,
        "record_s": record_s,
        "count_s": min(s for s, _ in counts),
        "created": report.created,
        "backlog": report.backlog,
    }


def run(quick: bool = False) -> dict[str, Any]:
    return {
        "report_servicenow": bench_report() if not quick else {"skipped": "quick run"},
        "ledger": bench_ledger(5_000 if quick else 100_000),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kpi", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figures = run(args.quick)
    r = figures["report_servicenow"]
    if "skipped" in r:
        print(f"report servicenow: skipped ({r['skipped']})")
    else:
        print(
            f"report servicenow, a busy week (read 98,808 events + replay + count): "
            f"table {r['week_table_s']:.2f}s, json {r['week_json_s']:.2f}s, "
            f"html {r['week_html_s']:.2f}s; 13 weeks (json) {r['whole_log_json_s']:.2f}s"
        )
    f = figures["ledger"]
    print(
        f"KPI ledger, {f['tickets']:,} open tickets ({f['cycles_recorded']:,} decided cycles):\n"
        f"  facts of every ticket {f['facts_s']:.2f}s, writing them {f['record_s']:.2f}s "
        f"(once, at start-up)\n"
        f"  counting the 7-day KPIs (a scrape, at most every 5 minutes) {f['count_s']:.3f}s; "
        f"{f['created']:,} created, backlog {f['backlog']:,}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
