"""SLA engine benchmark: backtest of the real ServiceNow log, and a fleet of open tickets.

Workloads
    * ``backtest servicenow``: the whole ServiceNow incident log (UCI #498, ≈120k audit rows,
      read from ../shared/data) is imported to the normalized CSV, read back, and replayed with
      bench/configs/servicenow.yaml — each stage timed. Goal: the backtest (read + replay)
      under 10 s.
    * ``100k open tickets``: 100,000 tickets, each created, answered, then written to again by
      the customer (20 % of them then put on hold), so each has three open clocks
      (next_response, periodic_update, resolution) on one business calendar with a four-level
      ladder. Timed: folding every history into clock states (once, when tickets load), and the
      full evaluation of all 300,000 clocks at ``now`` — elapsed, remaining, fraction,
      deadline, state, next ladder instant — vectorised (``evaluate_open``). Goal: under 1 s.
      The per-ticket path (``TicketReplay.evaluate``) on a sample gives the comparison.

Run ``python -m bench.sla`` (``--quick`` for a smoke run, ``--json PATH`` to save figures).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.timing import timed
from sladaemon.calendar import to_us
from sladaemon.config import load_config
from sladaemon.eventlog import read_events
from sladaemon.eventlog.importers import convert
from sladaemon.model import EventKind, StatusCategory, TicketEvent
from sladaemon.sla.backtest import backtest
from sladaemon.sla.batch import OpenClocks, evaluate_open
from sladaemon.sla.engine import TicketReplay

ROOT = Path(__file__).resolve().parent.parent
SERVICENOW = ROOT.parent / "shared" / "data" / "servicenow_incidents" / "incident_event_log.zip"
FLEET_CONFIG = """
calendars:
  office: {timezone: Europe/Berlin, hours: {mon-fri: ["09:00-17:00"]}, holidays: {country: DE}}
receivers:
  team: {urls: ["console://"]}
policies:
  - name: fleet
    calendar: office
    targets: {next_response: 8h, periodic_update: 16h, resolution: {high: 24h, default: 40h}}
    escalation:
      - {at: 50%, notify: [team]}
      - {at: 75%, notify: [team]}
      - {at: breach, notify: [team]}
      - {at: breach+1h, notify: [team]}
"""


def bench_backtest() -> dict[str, Any]:
    if not SERVICENOW.exists():
        return {"skipped": f"{SERVICENOW} not present"}
    cfg = load_config(ROOT / "bench" / "configs" / "servicenow.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        events_csv = Path(tmp) / "servicenow.csv"
        import_s, report = timed(lambda: convert("servicenow", SERVICENOW, events_csv))
        read_s, log = timed(lambda: read_events(events_csv, cfg.status_map()))
        replay_s, result = timed(lambda: backtest(log.tickets, cfg.policies))
    return {
        "rows_imported": 119_998,
        "events": report.events,
        "tickets": report.tickets,
        "sla_events": len(result.events),
        "import_s": import_s,
        "read_s": read_s,
        "replay_s": replay_s,
        "backtest_s": read_s + replay_s,
    }


def _fleet(n: int, now: datetime, seed: int = 1) -> list[list[TicketEvent]]:
    rng = random.Random(seed)
    tickets = []
    for i in range(n):
        tid = f"T{i}"
        created = now - timedelta(seconds=rng.randint(600, 6 * 86_400))
        span = (now - created).total_seconds()
        replied = created + timedelta(seconds=span * rng.uniform(0.05, 0.5))
        answered = replied + timedelta(seconds=(now - replied).total_seconds() * rng.random())
        fields = {"priority": rng.choice(["high", "normal", "low"]), "queue": "support"}
        events = [
            TicketEvent(tid, created, EventKind.CREATED, "new", StatusCategory.NEW, fields),
            TicketEvent(tid, replied, EventKind.AGENT_REPLY, "open", StatusCategory.OPEN),
            TicketEvent(tid, answered, EventKind.CUSTOMER_REPLY, "open", StatusCategory.OPEN),
        ]
        if rng.random() < 0.2:
            hold = answered + (now - answered) * rng.random()
            events.append(
                TicketEvent(tid, hold, EventKind.STATUS_CHANGED, "hold", StatusCategory.ON_HOLD)
            )
        tickets.append(events)
    return tickets


def bench_fleet(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fleet.yaml"
        path.write_text(FLEET_CONFIG)
        cfg = load_config(path)
    now = datetime(2026, 3, 18, 14, 30, tzinfo=UTC)
    histories = _fleet(n, now)

    def fold() -> list[TicketReplay]:
        replays = []
        for events in histories:
            replay = TicketReplay(events[0].ticket_id, cfg.policies)
            for event in events:
                replay.feed(event)
            replays.append(replay)
        return replays

    fold_s, replays = timed(fold)
    collect_s, clocks = timed(lambda: OpenClocks.of(replays))
    evaluate_s = min(timed(lambda: evaluate_open(clocks, to_us(now)))[0] for _ in range(3))
    result = evaluate_open(clocks, to_us(now))
    sample = replays[: max(1, n // 20)]
    scalar_s, _ = timed(lambda: [r.evaluate(now) for r in sample])
    scalar_full_s = scalar_s * n / len(sample)
    return {
        "tickets": n,
        "clocks": len(clocks),
        "running": result.count(0),
        "paused": result.count(1),
        "breached": result.count(2),
        "fold_s": fold_s,
        "collect_s": collect_s,
        "evaluate_s": evaluate_s,
        "per_ticket_evaluate_s": scalar_full_s,
        "speedup": scalar_full_s / evaluate_s,
    }


def run(quick: bool = False) -> dict[str, Any]:
    return {
        "backtest_servicenow": bench_backtest() if not quick else {"skipped": "quick run"},
        "open_tickets": bench_fleet(5_000 if quick else 100_000),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sla", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figures = run(args.quick)
    b = figures["backtest_servicenow"]
    if "skipped" in b:
        print(f"backtest servicenow: skipped ({b['skipped']})")
    else:
        print(
            f"backtest servicenow: {b['rows_imported']:,} rows -> {b['events']:,} events of "
            f"{b['tickets']:,} tickets; import {b['import_s']:.2f}s, read {b['read_s']:.2f}s, "
            f"replay {b['replay_s']:.2f}s -> backtest {b['backtest_s']:.2f}s (goal < 10 s); "
            f"{b['sla_events']:,} SLA events"
        )
    f = figures["open_tickets"]
    print(
        f"{f['tickets']:,} open tickets, {f['clocks']:,} clocks "
        f"({f['running']:,} running, {f['paused']:,} paused, {f['breached']:,} breached):\n"
        f"  full evaluation (vectorised) {f['evaluate_s']:.3f}s (goal < 1 s); "
        f"per-ticket path {f['per_ticket_evaluate_s']:.2f}s ({f['speedup']:.0f}x slower)\n"
        f"  folding histories once {f['fold_s']:.2f}s, collecting clocks {f['collect_s']:.2f}s"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
