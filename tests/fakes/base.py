"""What every fake helpdesk shares: fault injection, request statistics, a process runner.

Control endpoints (never faulted, never counted), under ``/_fake``:

* ``POST /_fake/faults`` with a list of faults applied to the next API requests, in order::

      [{"status": 500, "count": 2},                  # answer 500 twice
       {"status": 429, "retry_after": 1, "count": 3},
       {"status": 429, "retry_after_date": 30},       # Retry-After as an HTTP date, 30 s ahead
       {"html": true},                                # a 502-style HTML page with status 200
       {"malformed": true},                           # truncated JSON, status 200
       {"hang": 30},                                  # no answer for 30 s
       {"status": 401}]

  ``{"latency": 0.2}`` (without ``count``) adds a delay to every request until reset.
* ``GET /_fake/stats`` -> ``{"requests": n, "by_path": {path: n}}``; ``POST /_fake/stats/reset``.
* ``POST /_fake/reset`` forgets faults and latency.

Each helpdesk module exposes ``make_app() -> web.Application`` adding its API routes and its own
scenario endpoints under ``/_fake/`` (create tickets, reply, change status, bulk load). Run one
with ``python -m tests.fakes <helpdesk> --port 0``: it prints ``READY <port>``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FaultPlan:
    faults: list[dict[str, Any]] = field(default_factory=list)
    latency: float = 0.0
    requests: int = 0
    by_path: Counter[str] = field(default_factory=Counter)

    def next_fault(self) -> dict[str, Any] | None:
        while self.faults:
            fault = self.faults[0]
            count = int(fault.get("count", 1))
            if count <= 0:
                self.faults.pop(0)
                continue
            fault["count"] = count - 1
            if fault["count"] <= 0:
                self.faults.pop(0)
            return fault
        return None


PLAN_KEY = web.AppKey("fault_plan", FaultPlan)


@web.middleware
async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_fake"):
        return await handler(request)
    plan = request.app[PLAN_KEY]
    plan.requests += 1
    plan.by_path[request.path] += 1
    if plan.latency:
        await asyncio.sleep(plan.latency)
    fault = plan.next_fault()
    if fault is None:
        return await handler(request)
    if "hang" in fault:
        await asyncio.sleep(float(fault["hang"]))
    if fault.get("html"):
        return web.Response(
            status=int(fault.get("status", 200)),
            text="<html><body><h1>502 Bad Gateway</h1></body></html>",
            content_type="text/html",
        )
    if fault.get("malformed"):
        return web.Response(
            status=200, text='{"tickets": [{"id": 1, "sta', content_type="application/json"
        )
    status = int(fault.get("status", 500))
    headers = {}
    if "retry_after" in fault:
        headers["Retry-After"] = str(fault["retry_after"])
    if "retry_after_date" in fault:  # RFC 7231 IMF-fixdate, e.g. Sun, 06 Nov 1994 08:49:37 GMT
        at = time.time() + float(fault["retry_after_date"])
        headers["Retry-After"] = formatdate(at, usegmt=True)
    return web.json_response({"error": f"injected {status}"}, status=status, headers=headers)


async def _set_faults(request: web.Request) -> web.Response:
    plan = request.app[PLAN_KEY]
    body = await request.json()
    items = body if isinstance(body, list) else [body]
    for item in items:
        if "latency" in item and "count" not in item:
            plan.latency = float(item["latency"])
        else:
            plan.faults.append(dict(item))
    return web.json_response({"faults": plan.faults, "latency": plan.latency})


async def _stats(request: web.Request) -> web.Response:
    plan = request.app[PLAN_KEY]
    return web.json_response({"requests": plan.requests, "by_path": dict(plan.by_path)})


async def _reset_stats(request: web.Request) -> web.Response:
    plan = request.app[PLAN_KEY]
    plan.requests = 0
    plan.by_path.clear()
    return web.json_response({"requests": 0})


async def _reset(request: web.Request) -> web.Response:
    plan = request.app[PLAN_KEY]
    plan.faults.clear()
    plan.latency = 0.0
    return web.json_response({"ok": True})


def base_app() -> web.Application:
    """An application with fault injection and the shared control endpoints."""
    app = web.Application(middlewares=[faults_middleware], client_max_size=64 * 1024 * 1024)
    app[PLAN_KEY] = FaultPlan()
    app.router.add_post("/_fake/faults", _set_faults)
    app.router.add_get("/_fake/stats", _stats)
    app.router.add_post("/_fake/stats/reset", _reset_stats)
    app.router.add_post("/_fake/reset", _reset)
    return app


def json_body(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(data),
        content_type="application/json",
        headers=headers,
    )
