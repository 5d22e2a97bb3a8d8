"""HelpdeskHttp reads no answer longer than MAX_BODY: declared or streamed, it fails the
request permanently with the reason, and answers within the bound are read whole."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from sladaemon.sources import http as http_module
from sladaemon.sources.base import SourceError
from sladaemon.sources.http import HelpdeskHttp

LIMIT = 100_000


@pytest.fixture
async def base_url(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    monkeypatch.setattr(http_module, "MAX_BODY", LIMIT)

    async def declared(request: web.Request) -> web.Response:
        size = int(request.query["size"])
        return web.json_response({"pad": "x" * size})

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()  # no Content-Length: the size shows only as it comes
        await response.prepare(request)
        await response.write(b'{"pad": "')
        for _ in range(int(request.query["size"]) // 10_000):
            await response.write(b"y" * 10_000)
        await response.write(b'"}')
        return response

    app = web.Application()
    app.router.add_get("/declared", declared)
    app.router.add_get("/streamed", streamed)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest.mark.parametrize("path", ["/declared", "/streamed"])
async def test_an_answer_over_the_bound_fails_permanently_and_one_within_it_is_read(
    base_url: str, path: str
) -> None:
    http = HelpdeskHttp(base_url, first_backoff=0.001, max_backoff=0.001)
    try:
        small = await http.get_json(path, {"size": 50_000})
        assert len(json.dumps(small.data)) > 50_000
        with pytest.raises(SourceError, match="an answer over") as refused:
            await http.get_json(path, {"size": 300_000})
        assert refused.value.retryable is False
        assert http.requests == 2  # not retried
    finally:
        await http.close()
