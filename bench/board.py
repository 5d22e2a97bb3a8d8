"""The web board with 100,000 open tickets: page time, live-update latency, memory.

Workload
    The fleet of ``bench/daemon.py`` (tickets created over the last three days in queue
    ``support``, whose clocks stay ok) makes up 90 % of 100,000 open tickets; the rest are
    queue ``billing``, every clock breached days ago, and queue ``sales``, in warning with the
    breach days ahead. No row changes state while the bench runs, so every update of the live
    feed comes from what the bench appends. The real daemon process (``sladaemon run``) follows
    the event file with the board enabled; the bench signs in through ``/login`` like a browser
    (the form's CSRF token, the cookies) and reads the pages over HTTP on 127.0.0.1.

Measured
    * page time: the board's first page (``/``, 100 rows), the fragment the page's script
      fetches (``/rows``) and a filtered page (``/?queue=billing&state=breached``), each
      fetched 30 times (after one cold request) — client-side time on 127.0.0.1 from the
      request to the whole body, which is the server's time plus a loopback round trip;
      goal: first page <= 300 ms;
    * live latency: with the live feed (``/events``) open, a new ticket of queue ``live`` is
      appended to the event file (20 times, 1 to 2 s apart at random, so that the appends
      fall anywhere between two polls); the time from the append (written and flushed) to the
      next ``data:`` line of the feed, and to a ``/rows?queue=live`` fetched on it (as the
      page's script does) that shows the ticket; goal <= 1 s. Both
      include the wait for the source's next poll (``poll_interval: 1s``, the least allowed):
      the instant the daemon read the appended line is seen with inotify on the file, which
      splits each figure into the poll wait and the rest (ingest, board, feed, page);
    * resident memory (VmRSS) of the daemon with the board enabled, after start-up and after
      the page loads, against the same fleet with the board disabled (a second daemon run);
      daemon budget <= 400 MB.

Run ``python -m bench.board`` (``--quick``: 10,000 tickets).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import json
import os
import queue
import random
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

from bench.daemon import _free_port, _rss_mb, _start_receiver, _wait_log, write_fleet
from bench.timing import percentile, stamp
from sladaemon.board.access import SESSION_COOKIE, hash_password

USER, PASSWORD = "ann", "bench-board-password"
PAGE_REPEATS = 30
LIVE_SAMPLES = 20
LIVE_SPACING = (1.0, 2.0)  # seconds between appends: random, so they fall anywhere in a poll
LIVE_TIMEOUT = 10.0  # seconds an append may take to show
PAGES = {
    "first_page": "/",
    "rows": "/rows",
    "filtered": "/?queue=billing&state=breached",
}
CONFIG = """
calendars:
  always: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}
receivers:
  hook: {{urls: ["json://127.0.0.1:{port}/hook"], timeout: 5s}}
policies:
  - name: live
    match: {{queue: live}}
    calendar: always
    targets: {{first_response: 30m}}
    escalation: [{{at: 50%, notify: [hook]}}, {{at: breach, notify: [hook]}}]
  - name: billing
    match: {{queue: billing}}
    calendar: always
    targets: {{first_response: 8h, resolution: 48h}}
    escalation: [{{at: breach, notify: [hook]}}]
  - name: sales
    match: {{queue: sales}}
    calendar: always
    targets: {{first_response: 240h}}
    escalation: [{{at: 10%, notify: [hook]}}, {{at: breach, notify: [hook]}}]
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
BOARD = """
board:
  enabled: true
  listen: "127.0.0.1:{board_port}"
  accounts:
    {user}: {{password_hash: "{hash}", role: responder}}
  page_size: 100
"""


def write_board_fleet(path: Path, n: int, now: datetime, seed: int = 1) -> int:
    """``n`` open tickets: 90 % the daemon bench's fleet, 5 % breached (``billing``), 5 % in
    warning (``sales``). Returns the number of events written."""
    rng = random.Random(seed)
    each = n // 20
    rows = write_fleet(path, n - 2 * each, now, seed)
    with path.open("a") as f:
        for i in range(each):
            created = now - timedelta(seconds=rng.randint(4 * 86_400, 10 * 86_400))
            f.write(f"B{i},{stamp(created)},created,new,high,phone,billing\n")
            rows += 1
            if rng.random() < 0.5:  # answered late: only the resolution clock stays open
                reply = created + timedelta(hours=rng.uniform(9, 30))
                f.write(f"B{i},{stamp(reply)},agent_reply,open,,,\n")
                rows += 1
        for i in range(each):
            created = now - timedelta(seconds=rng.randint(30 * 3600, 70 * 3600))
            f.write(f"S{i},{stamp(created)},created,new,low,web,sales\n")
            rows += 1
    return rows


class BoardClient:
    """A signed-in browser, as far as the pages go: the cookie jar of a sign-in by form."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def sign_in(self, user: str, password: str) -> None:
        with self.opener.open(f"{self.base}/login", timeout=30) as response:
            form = response.read().decode()
        found = re.search(r'name="csrf" value="([^"]+)"', form)
        if found is None:
            raise RuntimeError("no csrf field in the sign-in form")
        body = urllib.parse.urlencode(
            {"user": user, "password": password, "csrf": found.group(1), "next": "/"}
        ).encode()
        with self.opener.open(f"{self.base}/login", data=body, timeout=60) as response:
            page = response.read().decode()  # the redirect to the board, followed
        if 'id="live"' not in page or not self.session:
            raise RuntimeError("sign-in failed")

    @property
    def session(self) -> str:
        return next((c.value or "" for c in self.jar if c.name == SESSION_COOKIE), "")

    def get(self, path: str) -> tuple[float, str]:
        """(seconds from the request to the whole body, the body)."""
        started = time.perf_counter()
        with self.opener.open(self.base + path, timeout=60) as response:
            body: bytes = response.read()
        return time.perf_counter() - started, body.decode()


class LiveStream:
    """``GET /events`` read line by line in a thread: (arrival, line) of every ``data:``."""

    def __init__(self, port: int, session: str) -> None:
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=None)
        self.connection.request("GET", "/events", headers={"Cookie": f"{SESSION_COOKIE}={session}"})
        self.response = self.connection.getresponse()
        if self.response.status != 200:
            raise RuntimeError(f"/events answered {self.response.status}")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            while line := self.response.readline():
                if line.startswith(b"data:"):
                    self.lines.put((time.monotonic(), line.decode().strip()))

    def drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.lines.get_nowait()

    def next_after(self, instant: float, timeout: float) -> float | None:
        """Arrival of the first ``data:`` line at or after ``instant`` (monotonic)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                arrived, _ = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if arrived >= instant:
                return arrived
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.connection.sock is not None:
                self.connection.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=5)  # it sees the end of the stream
        self.connection.close()


class FileReads:
    """Instants at which some process read ``path`` (inotify ``IN_ACCESS``), seen in a thread;
    empty where inotify is not available."""

    IN_ACCESS = 0x1

    def __init__(self, path: Path) -> None:
        self.instants: list[float] = []
        self._stop = threading.Event()
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = int(libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK))
        if self.fd < 0 or libc.inotify_add_watch(self.fd, bytes(path), self.IN_ACCESS) < 0:
            self.available = False
            return
        self.available = True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                now = time.monotonic()
                with contextlib.suppress(BlockingIOError):
                    os.read(self.fd, 65_536)
                self.instants.append(now)

    def first_after(self, instant: float) -> float | None:
        return next((t for t in self.instants if t >= instant), None)

    def close(self) -> None:
        self._stop.set()
        if self.available:
            self.thread.join(timeout=2)
        if self.fd >= 0:
            os.close(self.fd)


@contextlib.contextmanager
def running_daemon(config: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """The daemon process, yielded once its start-up and the KPI facts after it are done,
    with the start-up's seconds; stopped with SIGTERM on leaving."""
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
            _wait_log(log, "kpi_facts_written", timeout=600)
            time.sleep(5)  # let the follow-up polls settle
            yield daemon, startup_s
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)


def time_pages(client: BoardClient) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, path in PAGES.items():
        cold, body = client.get(path)
        times = [client.get(path)[0] for _ in range(PAGE_REPEATS)]
        figures[f"{name}_cold_s"] = cold
        figures[f"{name}_p50_s"] = percentile(times, 0.5)
        figures[f"{name}_p90_s"] = percentile(times, 0.9)
        figures[f"{name}_max_s"] = max(times)
        figures[f"{name}_kb"] = len(body.encode()) / 1024
        figures[f"{name}_rows"] = body.count('<tr id="row-')
        if not figures[f"{name}_rows"]:
            raise RuntimeError(f"{path} shows no row")
    return figures


def live_latency(
    client: BoardClient, stream: LiveStream, reads: FileReads, events: Path
) -> dict[str, list[float]]:
    """Per appended ticket: seconds from the append to the feed's line (``sse``), to a
    ``/rows`` showing it (``rows``), and to the daemon's read of the file (``poll``)."""
    out: dict[str, list[float]] = {"sse": [], "rows": [], "poll": [], "fetch": []}
    rng = random.Random(2)
    with events.open("a") as f:
        for i in range(LIVE_SAMPLES):
            time.sleep(rng.uniform(*LIVE_SPACING))
            stream.drain()
            ticket = f"L{i}"
            appended = time.monotonic()
            f.write(f"{ticket},{stamp(datetime.now(UTC))},created,new,urgent,chat,live\n")
            f.flush()
            seen = stream.next_after(appended, LIVE_TIMEOUT)
            if seen is None:
                raise RuntimeError(f"no live update for {ticket}")
            shown: float | None = None
            at: float | None = seen
            while shown is None and at is not None:
                fetch_s, body = client.get("/rows?queue=live")
                if f'id="row-desk-{ticket}-' in body:
                    shown = time.monotonic()
                    out["fetch"].append(fetch_s)
                else:  # not in this version yet: the next one
                    at = stream.next_after(at, LIVE_TIMEOUT)
            if shown is None:
                raise RuntimeError(f"{ticket} never shown in /rows")
            out["sse"].append(seen - appended)
            out["rows"].append(shown - appended)
            read = reads.first_after(appended)
            if read is not None:
                out["poll"].append(read - appended)
    return out


def _stats(prefix: str, values: list[float]) -> dict[str, float]:
    return {
        f"{prefix}_p50_s": percentile(values, 0.5),
        f"{prefix}_p90_s": percentile(values, 0.9),
        f"{prefix}_max_s": max(values) if values else float("nan"),
    }


def run(quick: bool = False) -> dict[str, Any]:
    n = 10_000 if quick else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        events, received = folder / "events.csv", folder / "received.jsonl"
        rows = write_board_fleet(events, n, datetime.now(UTC))
        receiver, port = _start_receiver(received)
        try:
            base = {"port": port, "events": events}
            # The board disabled first: it leaves the event file as it found it.
            plain = folder / "plain.yaml"
            plain.write_text(
                CONFIG.format(**base, state=folder / "plain.sqlite", http_port=_free_port())
            )
            with running_daemon(plain, folder / "plain.log") as (daemon, plain_startup_s):
                plain_rss_mb = _rss_mb(daemon.pid)
            board_port = _free_port()
            config = folder / "board.yaml"
            config.write_text(
                CONFIG.format(**base, state=folder / "board.sqlite", http_port=_free_port())
                + BOARD.format(board_port=board_port, user=USER, hash=hash_password(PASSWORD))
            )
            with running_daemon(config, folder / "board.log") as (daemon, startup_s):
                rss_mb = _rss_mb(daemon.pid)
                client = BoardClient(board_port)
                client.sign_in(USER, PASSWORD)
                pages = time_pages(client)
                rss_pages_mb = _rss_mb(daemon.pid)
                stream = LiveStream(board_port, client.session)
                reads = FileReads(events)
                try:
                    live = live_latency(client, stream, reads, events)
                finally:
                    stream.close()
                    reads.close()
                rss_live_mb = _rss_mb(daemon.pid)
        finally:
            receiver.terminate()
            receiver.wait(timeout=10)
    separable = len(live["poll"]) == len(live["sse"])
    after_read = {
        name: [v - p for v, p in zip(live[name], live["poll"], strict=True)] if separable else []
        for name in ("sse", "rows")
    }
    return {
        "tickets": n,
        "events": rows,
        "page_repeats": PAGE_REPEATS,
        **pages,
        "startup_s": startup_s,
        "startup_board_disabled_s": plain_startup_s,
        "rss_mb": rss_mb,
        "rss_after_pages_mb": rss_pages_mb,
        "rss_after_live_mb": rss_live_mb,
        "rss_board_disabled_mb": plain_rss_mb,
        "live_samples": len(live["sse"]),
        **_stats("sse", live["sse"]),
        **_stats("rows_shown", live["rows"]),
        **_stats("poll_wait", live["poll"]),
        **_stats("sse_after_read", after_read["sse"]),
        **_stats("rows_shown_after_read", after_read["rows"]),
        **_stats("live_rows_fetch", live["fetch"]),
    }


def _ms(f: dict[str, Any], prefix: str) -> str:
    p50, p90, top = (1000 * f[f"{prefix}_{k}_s"] for k in ("p50", "p90", "max"))
    return f"p50 {p50:.0f} ms, p90 {p90:.0f} ms, max {top:.0f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.board", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    f = run(args.quick)
    pages = "\n".join(
        f"  {path:<34}{_ms(f, name)}; cold {1000 * f[f'{name}_cold_s']:.0f} ms "
        f"({f[f'{name}_rows']} rows, {f[f'{name}_kb']:.0f} kB)"
        for name, path in PAGES.items()
    )
    print(
        f"board of a daemon with {f['tickets']:,} open tickets ({f['events']:,} events):\n"
        f"page time, request to whole body on 127.0.0.1 ({f['page_repeats']} each; "
        f"goal: first page <= 300 ms):\n{pages}\n"
        f"live update, from the append to the event file ({f['live_samples']} tickets; "
        f"goal <= 1 s):\n"
        f"  the feed's data: line              {_ms(f, 'sse')}\n"
        f"  /rows showing the ticket           {_ms(f, 'rows_shown')}\n"
        f"  of which the wait for the poll     {_ms(f, 'poll_wait')}\n"
        f"  after the poll read it: data: line {_ms(f, 'sse_after_read')}\n"
        f"                          /rows      {_ms(f, 'rows_shown_after_read')}\n"
        f"resident memory (goal <= 400 MB):\n"
        f"  board enabled                      {f['rss_mb']:.0f} MB after start-up, "
        f"{f['rss_after_pages_mb']:.0f} MB after the page loads, "
        f"{f['rss_after_live_mb']:.0f} MB after the live updates\n"
        f"  board disabled                     {f['rss_board_disabled_mb']:.0f} MB after "
        f"start-up\n"
        f"start-up (load + first evaluation)   {f['startup_s']:.1f} s; "
        f"{f['startup_board_disabled_s']:.1f} s with the board disabled"
    )
    if args.json:
        args.json.write_text(json.dumps(f, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
