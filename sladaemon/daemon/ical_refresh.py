"""The schedules' iCal feeds, kept fresh: one loop fetches each feed every ``refresh``.

A URL is fetched with ``If-None-Match`` / ``If-Modified-Since``: 304 keeps the copy, 200
parses and replaces it. A failure (network error, an answer other than 200 or 304, a body
that is no iCalendar) keeps the last good copy, is logged (``ical_fetch_failed``), counted
(``sladaemon_ical_fetch_failures_total``) and told to the operator once per episode; the
first success after it ends the episode (``ical_fetch_recovered``). A ``file:`` feed is read
again when its modification time changes.

The last good copy of each feed, with its ETag, is kept beside the state file in
``<state>.ical/<schedule>.ics`` (and ``.json``), so a restart while the calendar server is
down still knows who is on call. The CLI reads the same copies (``cached_feed``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp

from sladaemon.config import Config
from sladaemon.config.oncall import IcalConfig
from sladaemon.escalate.deliver import OperatorAlert
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.oncall.ical import IcalError, IcalFeed

FETCH_TIMEOUT = 30.0  # seconds for one fetch of a feed
CLI_TIMEOUT = 5.0  # seconds the CLI waits for a feed the daemon has no copy of
MAX_FEED_BYTES = 16 * 1024 * 1024
UNKNOWN_AHEAD = timedelta(days=60)  # events naming nobody are looked for this far ahead


def _digest(url: str) -> str:
    """What the copy on disk says of its URL (which may hold a key): a digest."""
    return hashlib.sha256(url.encode()).hexdigest()


def cache_dir(state: Path) -> Path:
    return state.with_name(state.name + ".ical")


def schedule_zone(config: Config, schedule: str) -> ZoneInfo:
    return config.roster.schedules[schedule].zone


def cached_feed(config: Config, schedule: str) -> IcalFeed | None:
    """The last good copy of a schedule's feed kept beside the state file, if readable."""
    path = cache_dir(config.daemon.state) / f"{schedule}.ics"
    try:
        return IcalFeed(path.read_bytes(), schedule_zone(config, schedule))
    except (OSError, IcalError):
        return None


async def fetch_feed(url: str, timeout: float, headers: dict[str, str] | None = None) -> bytes:
    """One GET of a feed's URL; raises on a failure or an answer other than 200."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.get(url, headers=headers or {}) as response,
    ):
        if response.status != 200:
            raise FeedError(f"HTTP {response.status}")
        return await _body(response)


class FeedError(Exception):
    """A feed that could not be fetched or read."""


async def _body(response: aiohttp.ClientResponse) -> bytes:
    data = await response.content.read(MAX_FEED_BYTES + 1)
    if len(data) > MAX_FEED_BYTES:
        raise FeedError(f"the feed is larger than {MAX_FEED_BYTES // 1024 // 1024} MiB")
    return data


@dataclass
class _FeedState:
    etag: str | None = None
    modified: str | None = None  # Last-Modified, as sent
    url: str | None = None  # digest of the URL the validators above belong to
    mtime: float | None = None  # of a file feed
    data: bytes | None = None
    failing_since: float | None = None  # Unix time the current failure episode began


class IcalRefresher:
    def __init__(
        self, config: Config, metrics: DaemonMetrics, operator_alert: OperatorAlert
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.operator_alert = operator_alert
        self.log = get_logger("sladaemon.ical")
        self._states: dict[str, _FeedState] = {}
        self._due: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._told_unknown: set[tuple[str, str]] = set()
        self._load_cached()

    def feeds(self) -> dict[str, IcalConfig]:
        return {n: s.ical for n, s in self.config.settings.schedules.items() if s.ical is not None}

    def reconfigure(self, config: Config) -> None:
        """Use a reloaded config: its roster gets the copies known; new feeds are fetched at
        once."""
        self.config = config
        for name in self.feeds():
            state = self._states.get(name)
            if state is not None and state.data is not None:
                self._use(name, state.data)
        self._load_cached()
        self._due = {n: t for n, t in self._due.items() if n in self.feeds()}
        self._wake.set()

    async def run(self) -> None:
        while True:
            for name, feed in self.feeds().items():
                if self._due.get(name, 0.0) <= time.monotonic():
                    await self.refresh(name, feed)
                    self._due[name] = time.monotonic() + feed.refresh.total_seconds()
            delay = min((t - time.monotonic() for t in self._due.values()), default=3600.0)
            self._wake.clear()
            # not wait_for: on 3.11 it can swallow a cancellation that meets a wake-up
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waker}, timeout=max(delay, 0.0))
            finally:
                waker.cancel()

    async def refresh(self, name: str, feed: IcalConfig) -> None:
        """Fetch (or read) one feed once; a failure keeps the last good copy."""
        state = self._states.setdefault(name, _FeedState())
        try:
            if feed.url is not None:
                url = _digest(feed.url.get_secret_value())
                fetched = await self._fetch(state, feed.url.get_secret_value())
                if fetched is not None:
                    self._use(name, fetched[0])  # raises IcalError before anything is kept
                    state.data, state.etag, state.modified = fetched
                    state.url = url
                    self._save(name, state)
            else:
                assert feed.file is not None
                data = self._read_file(state, feed.file)
                if data is not None:
                    self._use(name, data)
                    state.data = data
        except (aiohttp.ClientError, TimeoutError, OSError, FeedError, IcalError) as exc:
            self._failed(name, state, f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc))
            return
        if state.failing_since is not None:
            state.failing_since = None
            self.log.info("ical_fetch_recovered", schedule=name)
            self.operator_alert(
                "ical_fetch_recovered", name, f"the iCal feed of {name} is read again", time.time()
            )

    async def _fetch(
        self, state: _FeedState, url: str
    ) -> tuple[bytes, str | None, str | None] | None:
        """The body, ETag and Last-Modified of a new copy; None when the copy is current."""
        headers = {}
        if state.url == _digest(url) and state.data is not None:
            if state.etag:
                headers["If-None-Match"] = state.etag
            if state.modified:
                headers["If-Modified-Since"] = state.modified
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers) as response,
        ):
            if response.status == 304 and headers:
                return None
            if response.status != 200:
                raise FeedError(f"HTTP {response.status}")
            data = await _body(response)
            return data, response.headers.get("ETag"), response.headers.get("Last-Modified")

    def _read_file(self, state: _FeedState, path: Path) -> bytes | None:
        mtime = path.stat().st_mtime
        if mtime == state.mtime and state.data is not None:
            return None
        with path.open("rb") as file:
            data = file.read(MAX_FEED_BYTES + 1)
        if len(data) > MAX_FEED_BYTES:
            raise FeedError(f"the feed is larger than {MAX_FEED_BYTES // 1024 // 1024} MiB")
        state.mtime = mtime
        return data

    def _use(self, name: str, data: bytes) -> None:
        """Parse a copy and give it to the roster; log, once each, events naming nobody."""
        feed = IcalFeed(data, schedule_zone(self.config, name))
        now = datetime.now(UTC)
        feed.shifts_between(now - timedelta(days=1), now + UNKNOWN_AHEAD)  # expands, or raises
        self.config.roster.set_feed(name, feed)
        for summary in sorted(self.config.roster.unknown_in_feed(name, now, now + UNKNOWN_AHEAD)):
            if (name, summary) not in self._told_unknown:
                self._told_unknown.add((name, summary))
                self.log.warning("ical_event_names_nobody", schedule=name, summary=summary)

    def _failed(self, name: str, state: _FeedState, error: str) -> None:
        self.metrics.ical_fetch_failures.labels(name).inc()
        self.log.error("ical_fetch_failed", schedule=name, error=error, kept=state.data is not None)
        if state.failing_since is None:
            state.failing_since = time.time()
            kept = "the last good copy is used" if state.data is not None else "no copy is known"
            self.operator_alert(
                "ical_fetch_failed",
                name,
                f"the iCal feed of {name} cannot be read ({error}); {kept}",
                state.failing_since,
            )

    # ------------------------------------------------------------------ the copies on disk

    def _load_cached(self) -> None:
        directory = cache_dir(self.config.daemon.state)
        for name, feed in self.feeds().items():
            if feed.url is None or name in self._states:
                continue
            try:
                data = (directory / f"{name}.ics").read_bytes()
                meta = json.loads((directory / f"{name}.json").read_text())
                self._use(name, data)
            except (OSError, ValueError, IcalError):
                continue
            self._states[name] = _FeedState(
                etag=meta.get("etag"), modified=meta.get("modified"), url=meta.get("url"), data=data
            )
            self.log.info("ical_copy_loaded", schedule=name)

    def _save(self, name: str, state: _FeedState) -> None:
        directory = cache_dir(self.config.daemon.state)
        directory.mkdir(mode=0o700, exist_ok=True)
        meta = {"etag": state.etag, "modified": state.modified, "url": state.url}
        assert state.data is not None
        for suffix, content in ((".ics", state.data), (".json", json.dumps(meta).encode())):
            target = directory / f"{name}{suffix}"
            partial = target.with_name(target.name + ".tmp")
            partial.write_bytes(content)
            os.replace(partial, target)
