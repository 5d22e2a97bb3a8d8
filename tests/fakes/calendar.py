"""A fake calendar server: serves one iCal feed at ``/feed.ics`` with an ETag, answering
``If-None-Match`` with 304, or any status the test sets (``POST /_fake/status {"status":
500}``); ``/_fake/stats`` tells the requests it had and their conditional headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

FEED = Path(__file__).parents[1] / "fixtures" / "ical" / "rotation.ics"
ETAG = '"rotation-1"'


def make_app() -> web.Application:
    state: dict[str, Any] = {"status": 200, "requests": []}

    async def feed(request: web.Request) -> web.StreamResponse:
        state["requests"].append({"if_none_match": request.headers.get("If-None-Match")})
        if state["status"] != 200:
            return web.Response(status=state["status"], text="calendar unavailable")
        if request.headers.get("If-None-Match") == ETAG:
            return web.Response(status=304, headers={"ETag": ETAG})
        return web.Response(
            body=FEED.read_bytes(), content_type="text/calendar", headers={"ETag": ETAG}
        )

    async def set_status(request: web.Request) -> web.Response:
        state["status"] = int((await request.json())["status"])
        return web.json_response({"status": state["status"]})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"requests": len(state["requests"]), "log": state["requests"]})

    app = web.Application()
    app.router.add_get("/feed.ics", feed)
    app.router.add_post("/_fake/status", set_status)
    app.router.add_get("/_fake/stats", stats)
    return app
