"""The daemon's HTTP endpoints: ``/healthz`` and ``/metrics``.

``/healthz`` answers 200 while every source is fresh and every loop runs; 503 ``"failing"`` at
once when a loop crashed or a poll's events could not be taken in (with the error), 503
``"syncing"`` while the daemon is starting and still loading what a source holds (with each
source's progress under ``sync``), 503 ``"stale"`` when a source has had no successful poll for
``stale_after`` (with its last error). ``/metrics`` is Prometheus'
text format; the SLA-state gauges count every open clock, so they are recomputed at most
every ``SCRAPE_CACHE`` seconds.

The port is bounded so that nobody reaching it can starve the daemon: a connection has
``IDLE_TIMEOUT`` seconds to send its request (and to send the next one), bodies are capped at
``MAX_BODY``, and beyond ``MAX_CONNECTIONS`` open at once the oldest is closed to make room for
the new one, counted and logged at most once per ``DROPPED_LOG_EVERY`` seconds.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Mapping, Sized
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sladaemon.calendar import to_us
from sladaemon.clock import Clock
from sladaemon.daemon.pollers import SourceHealth, SourcePoller
from sladaemon.daemon.supervise import Supervisor
from sladaemon.errors import ListenError
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import TicketKey
from sladaemon.sla.batch import OpenClocks, evaluate_open
from sladaemon.sla.engine import TicketReplay

SCRAPE_CACHE = 30.0  # seconds the SLA-state gauges are reused between scrapes
IDLE_TIMEOUT = 10.0  # seconds a connection may take to send a request, or stay idle
MAX_BODY = 64 * 1024  # bytes
MAX_CONNECTIONS = 64
DROPPED_LOG_EVERY = 60.0  # seconds
_STATE_NAMES = {0: "running", 1: "paused", 2: "breached"}


class TicketGauges:
    """Open tickets per source × queue × policy and open clocks per policy × metric × state,
    for the metrics collector."""

    def __init__(self, replays: Mapping[TicketKey, TicketReplay], clock: Clock) -> None:
        self.replays = replays
        self.clock = clock
        self._cached: tuple[float, list[Any], list[Any]] | None = None

    def open_tickets(self) -> list[Any]:
        return self._counts()[0]

    def open_clocks(self) -> list[Any]:
        return self._counts()[1]

    def _counts(self) -> tuple[list[Any], list[Any]]:
        if self._cached is None or time.monotonic() - self._cached[0] > SCRAPE_CACHE:
            tickets: Counter[tuple[str, str, str]] = Counter()
            for (source, _), replay in self.replays.items():
                policy = replay.policy.name if replay.policy else ""
                tickets[(source, replay.fields.get("queue", ""), policy)] += 1
            clocks = OpenClocks.of(self.replays.values())
            result = evaluate_open(clocks, to_us(self.clock.now()))
            policies = {
                r.ticket_id: r.policy.name if r.policy else "" for r in self.replays.values()
            }
            states: Counter[tuple[str, str, str]] = Counter()
            for ticket_id, metric, state in zip(
                clocks.ticket_ids, clocks.metrics, result.state, strict=True
            ):
                states[(policies.get(ticket_id, ""), metric.value, _STATE_NAMES[int(state)])] += 1
            self._cached = (time.monotonic(), list(tickets.items()), list(states.items()))
        return self._cached[1], self._cached[2]


@dataclass(eq=False)
class HttpEndpoints:
    listen: str
    metrics: DaemonMetrics
    pollers: Mapping[str, SourcePoller]
    supervisor: Supervisor
    tickets: Sized
    routes: list[web.RouteDef] = field(default_factory=list)  # more pages: acks, Slack
    monitoring: bool = True  # /healthz and /metrics (False: a listener for the routes only)
    purpose: str = "(ack.listen) for the ack page, the ack API and Slack's buttons"
    _runner: web.AppRunner | None = field(default=None, init=False)
    _listener: asyncio.Server | None = field(default=None, init=False)
    _dropped_logged: float = field(default=-DROPPED_LOG_EVERY, init=False)

    def __post_init__(self) -> None:
        self.log = get_logger("sladaemon.http")

    async def start(self) -> None:
        """Listen; raises ``ListenError`` when the address cannot be bound (a daemon that
        cannot be watched must not run as if it were healthy)."""
        app = web.Application(client_max_size=MAX_BODY)
        if self.monitoring:
            app.router.add_get("/healthz", self._healthz)
            app.router.add_get("/metrics", self._metrics)
        app.add_routes(self.routes)
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=IDLE_TIMEOUT)
        await self._runner.setup()
        host, _, port = self.listen.rpartition(":")
        loop = asyncio.get_running_loop()
        try:
            self._listener = await loop.create_server(
                self._accept, host.strip("[]") or None, int(port), reuse_address=True
            )
        except OSError as exc:
            await self.stop()
            # asyncio rewrites strerror into its own sentence; the errno's text is the reason
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            what = (
                "(daemon.http.listen) for /healthz and /metrics"
                if self.monitoring
                else self.purpose
            )
            raise ListenError(f"cannot listen on {self.listen} {what}: {reason}") from None

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _accept(self) -> asyncio.BaseProtocol:
        """aiohttp's handler for a new connection; when too many are open, the oldest one is
        closed to make room (so a flood of idle connections cannot lock ``/healthz`` out)."""
        assert self._runner is not None and self._runner.server is not None
        server = self._runner.server
        open_ = [h for h in server.connections if h.transport and not h.transport.is_closing()]
        if len(open_) >= MAX_CONNECTIONS:
            open_[0].force_close()
            self.metrics.http_connections_dropped.inc()
            now = time.monotonic()
            if now - self._dropped_logged >= DROPPED_LOG_EVERY:
                self._dropped_logged = now
                self.log.warning("http_connections_dropped", open=MAX_CONNECTIONS)
        return server()

    async def _healthz(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        report = {name: _health(p.health, now) for name, p in self.pollers.items()}
        syncing = {name: p.sync for name, p in self.pollers.items() if p.sync is not None}
        for name, sync in syncing.items():
            report[name]["sync"] = sync.figures()
        loops = {
            name: {"error": f.error, "crashes": f.crashes, "failing_for_s": round(now - f.since)}
            for name, f in self.supervisor.failing.items()
        }
        if loops or any(r["ingest_error"] for r in report.values()):
            status = "failing"
        elif syncing:
            status = "syncing"
        else:
            status = "ok" if all(r["fresh"] for r in report.values()) else "stale"
        body = {"status": status, "sources": report, "loops": loops, "tickets": len(self.tickets)}
        return web.json_response(body, status=200 if status == "ok" else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        data = await asyncio.to_thread(generate_latest, self.metrics.registry)
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _health(h: SourceHealth, now: float) -> dict[str, Any]:
    fresh = h.fresh(now)
    stamp = h.last_success_wall
    last = datetime.fromtimestamp(stamp, UTC).isoformat() if stamp is not None else None
    error = h.ingest_error or ("" if fresh else h.last_error)
    return {"fresh": fresh, "last_success": last, "error": error, "ingest_error": h.ingest_error}
