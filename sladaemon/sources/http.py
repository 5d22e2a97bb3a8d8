"""The HTTP side every helpdesk connector shares: one place that retries.

``HelpdeskHttp.get_json`` returns parsed JSON or raises ``SourceError``:

* 429 waits for ``Retry-After`` (seconds or an HTTP date) and tries again;
* 5xx, timeouts, connection resets, HTML error pages and truncated or malformed JSON are
  retried a bounded number of times per request, after the project's one backoff
  (``escalate.retry.retry_delay``: capped, exponential, equal jitter);
* 401/403 are permanent (``retryable=False``): the daemon marks the source failing and tells the
  operator, and does not hammer the server; 404 and other 4xx are permanent too;
* rate-limit headers (``X-RateLimit-*``, ``X-Ratelimit-*``, ``RateLimit-*``) slow requests down
  before the limit is hit: below 10 % of the budget, requests are spaced over what is left of
  the window.

An answer longer than ``MAX_BODY`` is not read to its end: the request fails permanently with
the size in the message (a page the helpdesk keeps serving that large would otherwise fill the
memory on every poll). The ``Date`` header keeps an estimate of the server's clock
(``server_offset``). ``requests`` counts every HTTP request made, for benchmarks and cost tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from sladaemon.escalate.retry import retry_delay
from sladaemon.sources.base import SourceError

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BODY = 32 * 1024 * 1024  # bytes of one answer


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    data: Any
    headers: Mapping[str, str]


class HelpdeskHttp:
    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: aiohttp.BasicAuth | None = None,
        timeout: float = 30.0,
        max_attempts: int = 5,
        first_backoff: float | None = None,
        max_backoff: float | None = None,
        max_retry_after: float = 120.0,
    ) -> None:
        """Backoff between retries starts at ``first_backoff`` and doubles up to
        ``max_backoff``; by default both scale with the timeout: 1 s and 30 s for the usual
        30 s, quick retries for the short timeouts of tests."""
        self.base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json", **(headers or {})}
        if auth is not None:  # sent as a header: aiohttp deprecates its BasicAuth argument
            self._headers["Authorization"] = auth.encode()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max_attempts
        self._first_backoff = min(1.0, timeout / 30) if first_backoff is None else first_backoff
        self._max_backoff = min(30.0, timeout) if max_backoff is None else max_backoff
        self._max_retry_after = max_retry_after
        self._session: aiohttp.ClientSession | None = None
        self._not_before = 0.0  # monotonic time before which no request is sent (rate limits)
        self.requests = 0
        self.server_offset = 0.0  # server clock minus ours, seconds
        self._rng = random.Random()

    def url(self, path: str) -> str:
        return (
            path
            if path.startswith(("http://", "https://"))
            else f"{self.base_url}/{path.lstrip('/')}"
        )

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Response:
        return await self.request("GET", path, params=params)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> Response:
        url = self.url(path)
        problem = ""
        for attempt in range(1, self._max_attempts + 1):
            await self._pace()
            try:
                status, headers, text = await self._send(method, url, params, json_body)
            except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
                await self._backoff(attempt)
                continue
            wait = _retry_after(headers)
            if status == 429 and wait is not None:
                # The server said when to come back: that, not our own pacing, decides.
                self._not_before = time.monotonic() + min(wait, self._max_retry_after)
            else:
                self._note_limits(headers)
            if status in (401, 403):
                raise SourceError(
                    f"{method} {path}: HTTP {status}, check the source's credentials",
                    retryable=False,
                    status=status,
                )
            if status == 429 or status in RETRYABLE_STATUS:
                problem = f"HTTP {status}"
                if wait is None:
                    await self._backoff(attempt)
                elif status != 429:
                    await asyncio.sleep(min(wait, self._max_retry_after))
                continue
            if status >= 400:
                raise SourceError(f"{method} {path}: HTTP {status}", retryable=False, status=status)
            try:
                data = json.loads(text) if text.strip() else None
            except ValueError:
                kind = "an HTML page" if text.lstrip().startswith("<") else "malformed JSON"
                problem = f"{kind} instead of JSON"
                await self._backoff(attempt)
                continue
            return Response(status, data, headers)
        raise SourceError(
            f"{method} {path}: gave up after {self._max_attempts} attempts ({problem})"
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _send(
        self, method: str, url: str, params: Mapping[str, Any] | None, json_body: Any
    ) -> tuple[int, Mapping[str, str], str]:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        self.requests += 1
        async with self._session.request(method, url, params=params, json=json_body) as response:
            body = await _read_at_most(response, f"{method} {url.split('?')[0]}")
            try:
                text = body.decode(response.charset or "utf-8", errors="replace")
            except LookupError:  # a charset nobody knows
                text = body.decode("utf-8", errors="replace")
            headers = dict(response.headers)
        return response.status, headers, text

    async def _backoff(self, attempt: int) -> None:
        await asyncio.sleep(retry_delay(attempt, self._first_backoff, self._max_backoff, self._rng))

    async def _pace(self) -> None:
        delay = self._not_before - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _note_limits(self, headers: Mapping[str, str]) -> None:
        lower = {k.lower(): v for k, v in headers.items()}
        date = lower.get("date")
        if date:
            with contextlib.suppress(TypeError, ValueError):
                self.server_offset = parsedate_to_datetime(date).timestamp() - time.time()
        remaining = _number(
            lower, "x-ratelimit-remaining", "x-rate-limit-remaining", "ratelimit-remaining"
        )
        total = _number(
            lower,
            "x-ratelimit-total",
            "x-ratelimit-limit",
            "x-rate-limit-limit",
            "x-rate-limit",  # Zendesk's name for the total
            "ratelimit-limit",
        )
        if remaining is None or total is None or total <= 0:
            return
        if remaining < 0.1 * total:
            reset = _number(lower, "x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset")
            window = reset if reset is not None and 0 < reset <= 3600 else 60.0
            spacing = window / max(remaining, 1.0)
            self._not_before = time.monotonic() + min(spacing, self._max_retry_after)


async def _read_at_most(response: aiohttp.ClientResponse, what: str) -> bytes:
    """The body, unless it is longer than ``MAX_BODY``."""
    chunks, size = [], 0
    if (response.content_length or 0) <= MAX_BODY:
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > MAX_BODY:
                break
            chunks.append(chunk)
    if size > MAX_BODY or (response.content_length or 0) > MAX_BODY:
        raise SourceError(
            f"{what}: an answer over {MAX_BODY >> 20} MiB (ask for smaller pages)", retryable=False
        )
    return b"".join(chunks)


def _number(headers: Mapping[str, str], *names: str) -> float | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            try:
                return float(value.split(",")[0].split(";")[0])
            except ValueError:
                continue
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
