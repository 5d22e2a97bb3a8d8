"""HelpdeskHttp honours Retry-After in both of its forms, delay-seconds and an HTTP date
(RFC 7231 IMF-fixdate), and waits no longer than ``max_retry_after``. A real aiohttp server
on 127.0.0.1 answers; the waits are recorded instead of slept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from sladaemon.sources.http import HelpdeskHttp
from tests.conftest import RecordedWaits
from tests.fakes.base import PLAN_KEY, FaultPlan, base_app, json_body

CAP = 45.0
TICKETS: dict[str, list[Any]] = {"tickets": []}


@dataclass
class Server:
    url: str
    plan: FaultPlan

    def fault(self, **fault: Any) -> None:
        self.plan.faults.append(fault)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async def tickets(request: web.Request) -> web.Response:
        return json_body(TICKETS)

    app = base_app()
    app.router.add_get("/api/tickets", tickets)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield Server(f"http://{host}:{port}", app[PLAN_KEY])
    await runner.cleanup()


async def fetch(server: Server) -> None:
    """One GET through HelpdeskHttp; quick own backoff, so a wait it did not honour shows."""
    http = HelpdeskHttp(server.url, first_backoff=0.001, max_backoff=0.001, max_retry_after=CAP)
    try:
        response = await http.get_json("/api/tickets")
    finally:
        await http.close()
    assert response.data == TICKETS
    assert server.plan.requests == 2, "refused once, then asked again"


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_in_seconds_is_waited(
    server: Server, http_waits: RecordedWaits, status: int
) -> None:
    server.fault(status=status, retry_after=7)
    await fetch(server)
    assert http_waits.seconds == [pytest.approx(7.0, abs=0.1)]


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_as_an_http_date_is_waited_until_that_instant(
    server: Server, http_waits: RecordedWaits, status: int
) -> None:
    server.fault(status=status, retry_after_date=30)
    await fetch(server)
    (wait,) = http_waits.seconds
    assert 28.5 <= wait <= 30.0, "the date counts whole seconds"


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("form", ["retry_after", "retry_after_date"])
async def test_a_retry_after_beyond_the_cap_waits_the_cap(
    server: Server, http_waits: RecordedWaits, status: int, form: str
) -> None:
    server.fault(status=status, **{form: 600})
    await fetch(server)
    assert http_waits.seconds == [pytest.approx(CAP, abs=0.1)]


async def test_a_retry_after_date_already_past_asks_again_at_once(
    server: Server, http_waits: RecordedWaits
) -> None:
    server.fault(status=429, retry_after_date=-60)
    await fetch(server)
    assert http_waits.seconds == []
