"""The board's live feed: server-sent events telling open pages that the board changed.

The board changes when a step of the book touched tickets (``changed``) and when a row reaches
its warning or breach instant, which the feed's own loop waits for (``run``: the index says
which instant is next). Each open page holds one event stream and is told the board's new
version at most ``MAX_RATE`` times a second; it then fetches the rows it shows. A comment every
``HEARTBEAT`` seconds keeps proxies from closing an idle stream. When the feed's loop is
cancelled (the daemon stops) every stream ends, so that open pages do not hold up the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from sladaemon.calendar import from_us, to_us
from sladaemon.clock import Clock, run_at_instants

MAX_RATE = 4.0  # updates a second per stream
HEARTBEAT = 15.0  # seconds
MAX_STREAMS = 200


class LiveFeed:
    def __init__(self, clock: Clock, next_change: Callable[[int], int | None]) -> None:
        self.clock = clock
        self.next_change = next_change
        self.version = 0
        self.wake = asyncio.Event()  # the index changed: its next instant may have too
        self._changed = asyncio.Condition()
        self.streams = 0
        self.closing = False  # the loop was cancelled: streams end

    def changed(self) -> None:
        """Something on the board changed now (called on the event loop)."""
        self.version += 1
        self.wake.set()
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def run(self) -> None:
        """Bump the version whenever a row's warning or breach instant comes."""
        self.closing = False
        try:
            await run_at_instants(self.clock, self.wake, self._next_instant, self._passed)
        except asyncio.CancelledError:
            self.closing = True
            asyncio.get_running_loop().create_task(self._notify())
            raise

    def _next_instant(self) -> datetime | None:
        at = self.next_change(to_us(self.clock.now()))
        return None if at is None else from_us(at)

    def _passed(self) -> None:
        self.version += 1
        asyncio.get_running_loop().create_task(self._notify())

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """``GET /events``: ``data: <version>`` whenever the board changed."""
        if self.streams >= MAX_STREAMS:
            raise web.HTTPServiceUnavailable(text="too many live pages open")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            }
        )
        await response.prepare(request)
        self.streams += 1
        sent = -1
        try:
            await response.write(b"retry: 2000\n\n")
            while not self.closing:
                if self.version != sent:
                    sent = self.version
                    await response.write(f"data: {sent}\n\n".encode())
                    await asyncio.sleep(1 / MAX_RATE)  # coalesce what follows
                    if self.version != sent:
                        continue
                async with self._changed:
                    if self.version == sent and not self.closing:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._changed.wait(), HEARTBEAT)
                if self.version == sent and not self.closing:
                    await response.write(b": idle\n\n")
        except ConnectionResetError:  # the page was closed
            pass
        finally:
            self.streams -= 1
        return response
