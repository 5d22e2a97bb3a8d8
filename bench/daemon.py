"""The running daemon with 100,000 open tickets: memory, idle CPU, alert lateness.

Workload
    A normalized event file holds 100,000 tickets created over the last three days (about
    250,000 events: replies, pending periods, customer answers) on a 24/7 calendar with
    first-response, next-response and resolution targets long enough that they stay open, each
    with a four-level ladder. The real daemon process (``sladaemon run``) follows the file.

Measured
    * start-up: from process start until the first evaluation is done (``daemon_started``);
      then the KPI facts of every ticket, written in small steps after it
      (``kpi_facts_written``);
    * resident memory (VmRSS) once the tickets are loaded — goal <= 400 MB; and what a daemon
      that has learnt for long adds to it: the predictor's snapshot book filled to capacity
      (measured with tracemalloc in the bench process);
    * idle CPU between events: CPU time used over a quiet minute (polling the file every
      second, housekeeping every second), as a share of one core — goal <= 2 %;
    * /metrics: the time of a scrape that recomputes the SLA-state gauges and the KPIs, and
      the CPU share over a minute with a Prometheus-like scrape every 15 s;
    * alert lateness: 200 more tickets arrive live with a 10 s first-response target (50 % and
      breach levels, 400 alerts) while the 100,000 stay open; lateness is the time from each
      level's instant to its arrival at a real webhook receiver on 127.0.0.1.

Run ``python -m bench.daemon`` (``--quick``: 10,000 tickets and a 15 s idle window).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.timing import percentile, stamp
from sladaemon.predict.features import FEATURES
from sladaemon.predict.snapshots import LABELLED, PENDING, SnapshotBook
from tests.fakes.process import spawn_module

CLK_TCK = os.sysconf("SC_CLK_TCK")
CONFIG = """
calendars:
  always: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}
receivers:
  hook: {{urls: ["json://127.0.0.1:{port}/hook"], timeout: 5s}}
policies:
  - name: live
    match: {{queue: live}}
    calendar: always
    targets: {{first_response: 10s}}
    escalation: [{{at: 50%, notify: [hook]}}, {{at: breach, notify: [hook]}}]
  - name: fleet
    calendar: always
    targets: {{first_response: 200h, next_response: 200h, resolution: 400h}}
    escalation:
      - {{at: 50%, notify: [hook]}}
      - {{at: 75%, notify: [hook]}}
      - {{at: breach, notify: [hook]}}
      - {{at: breach+4h, notify: [hook]}}
sources:
  desk: {{type: csv, path: {events}, poll_interval: 1s}}
daemon:
  state: {state}
  log_level: info
  http: {{listen: "127.0.0.1:{http_port}"}}
"""


def write_fleet(path: Path, n: int, now: datetime, seed: int = 1) -> int:
    rng = random.Random(seed)
    rows = 0
    with path.open("w") as f:
        f.write("ticket_id,timestamp,event,status,priority,channel,queue\n")
        for i in range(n):
            created = now - timedelta(seconds=rng.randint(60, 3 * 86_400))
            span = (now - created).total_seconds()
            t = f"F{i}"
            f.write(f"{t},{stamp(created)},created,new,normal,email,support\n")
            rows += 1
            if rng.random() < 0.7:
                reply = created + timedelta(seconds=span * rng.uniform(0.05, 0.4))
                status = "pending" if rng.random() < 0.4 else "open"
                f.write(f"{t},{stamp(reply)},agent_reply,{status},,,\n")
                rows += 1
                if status == "pending" and rng.random() < 0.5:
                    answer = reply + (now - reply) * rng.random()
                    f.write(f"{t},{stamp(answer)},customer_reply,open,,,\n")
                    rows += 1
    return rows


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start_receiver(out: Path) -> tuple[subprocess.Popen[bytes], int]:
    process = spawn_module(
        "tests.fakes.receivers", "webhook", "--port", "0", "--out", str(out), stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("READY"):
        raise RuntimeError(f"receiver did not start: {line!r}")
    return process, int(line.split()[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _scrape(port: int) -> tuple[float, bytes]:
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        body: bytes = response.read()
    return time.monotonic() - started, body


def _wait_log(path: Path, event: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if f'"event": "{event}"' in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{event} not seen in {path}")


def full_snapshot_book_mb() -> float:
    """Memory of a snapshot book holding all it may: LABELLED labelled and PENDING waiting."""
    rng = np.random.default_rng(0)
    chunk, serial = 10_000, 0
    tracemalloc.start()
    book = SnapshotBook(len(FEATURES), half_life_us=1.0)

    def offer(count: int) -> list[int]:
        nonlocal serial
        serials = np.arange(serial, serial + count, dtype=np.int64)
        serial += count
        book.note(serials, rng.random((count, len(FEATURES))), np.zeros(count, np.int64))
        return serials.tolist()

    while book.labelled < LABELLED:
        for s in offer(chunk):
            book.settle(s, s % 7 == 0)
        book.harvest()
    offer(PENDING)
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return used / 2**20


def run(quick: bool = False) -> dict[str, Any]:
    n = 10_000 if quick else 100_000
    idle_window = 15.0 if quick else 60.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        events, received = folder / "events.csv", folder / "received.jsonl"
        now = datetime.now(UTC)
        rows = write_fleet(events, n, now)
        receiver, port = _start_receiver(received)
        config = folder / "config.yaml"
        http_port = _free_port()
        config.write_text(
            CONFIG.format(port=port, events=events, state=folder / "s.sqlite", http_port=http_port)
        )
        log = folder / "daemon.log"
        with log.open("wb") as log_stream:
            started = time.monotonic()
            daemon = subprocess.Popen(
                [sys.executable, "-m", "sladaemon", "run", "--config", str(config)],
                stdout=log_stream,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_log(log, "daemon_started", timeout=600)
                startup_s = time.monotonic() - started
                _wait_log(log, "kpi_facts_written", timeout=600)  # written after the start
                kpi_facts_s = next(
                    float(json.loads(line)["seconds"])
                    for line in log.read_text(errors="replace").splitlines()
                    if '"event": "kpi_facts_written"' in line
                )
                time.sleep(5)  # let the follow-up polls settle
                rss_mb = _rss_mb(daemon.pid)
                cpu_before = _cpu_seconds(daemon.pid)
                time.sleep(idle_window)
                idle_cpu = (_cpu_seconds(daemon.pid) - cpu_before) / idle_window
                scrape_s, body = _scrape(http_port)
                if b"sladaemon_kpi_backlog_tickets" not in body:
                    raise RuntimeError("the KPI metrics are missing from /metrics")
                cpu_before = _cpu_seconds(daemon.pid)
                scrape_started = time.monotonic()
                for _ in range(int(idle_window // 15)):
                    time.sleep(15)
                    _scrape(http_port)
                scraped_cpu = (_cpu_seconds(daemon.pid) - cpu_before) / (
                    time.monotonic() - scrape_started
                )
                live = 200
                with events.open("a") as f:
                    for i in range(live):
                        f.write(f"L{i},{stamp(datetime.now(UTC))},created,new,,,live\n")
                        f.flush()
                        time.sleep(0.05)
                deadline = time.monotonic() + 60
                messages: list[dict[str, Any]] = []
                while time.monotonic() < deadline and len(messages) < 2 * live:
                    time.sleep(0.5)
                    lines = received.read_text().splitlines() if received.exists() else []
                    messages = [json.loads(line) for line in lines]
                    messages = [m for m in messages if "ticket: L" in m["body"]["message"]]
                rss_after_mb = _rss_mb(daemon.pid)
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=30)
                receiver.terminate()
                receiver.wait(timeout=10)
    delays = []
    for m in messages:
        body = m["body"]["message"]
        at = next(line[4:] for line in body.splitlines() if line.startswith("at: "))
        due = datetime.fromisoformat(at.replace("Z", "+00:00"))
        got = datetime.fromisoformat(m["received_at"].replace("Z", "+00:00"))
        delays.append((got - due).total_seconds())
    delays.sort()

    return {
        "tickets": n,
        "events": rows,
        "startup_s": startup_s,
        "kpi_facts_s": kpi_facts_s,
        "rss_mb": rss_mb,
        "rss_after_alerts_mb": rss_after_mb,
        "snapshot_book_mb": full_snapshot_book_mb(),
        "idle_cpu_share": idle_cpu,
        "idle_window_s": idle_window,
        "scrape_s": scrape_s,
        "scraped_cpu_share": scraped_cpu,
        "alerts_expected": 2 * live,
        "alerts_received": len(messages),
        "lateness_p50_s": percentile(delays, 0.5),
        "lateness_p90_s": percentile(delays, 0.9),
        "lateness_p99_s": percentile(delays, 0.99),
        "lateness_max_s": delays[-1] if delays else float("nan"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.daemon", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    f = run(args.quick)
    print(
        f"daemon with {f['tickets']:,} open tickets ({f['events']:,} events):\n"
        f"  start-up (load + first evaluation)  {f['startup_s']:.1f} s\n"
        f"  KPI facts of every ticket, after it {f['kpi_facts_s']:.1f} s\n"
        f"  resident memory                     {f['rss_mb']:.0f} MB (goal <= 400 MB); "
        f"{f['rss_after_alerts_mb']:.0f} MB after the live alerts\n"
        f"  + a full snapshot book, once learnt {f['snapshot_book_mb']:.1f} MB: "
        f"{f['rss_after_alerts_mb'] + f['snapshot_book_mb']:.0f} MB\n"
        f"  idle CPU over {f['idle_window_s']:.0f} s                 "
        f"{100 * f['idle_cpu_share']:.2f} % of one core (goal <= 2 %)\n"
        f"  /metrics scrape (recomputing)       {f['scrape_s']:.2f} s; "
        f"{100 * f['scraped_cpu_share']:.2f} % of one core with a scrape every 15 s\n"
        f"  alert lateness at the receiver      {f['alerts_received']}/{f['alerts_expected']} "
        f"alerts: p50 {f['lateness_p50_s'] * 1000:.0f} ms, p90 {f['lateness_p90_s'] * 1000:.0f} "
        f"ms, p99 {f['lateness_p99_s'] * 1000:.0f} ms, max {f['lateness_max_s'] * 1000:.0f} ms"
    )
    if args.json:
        args.json.write_text(json.dumps(f, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
