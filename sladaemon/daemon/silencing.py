"""``sladaemon silence add | list | expire``: through the running daemon's API when a daemon
holds the state file, else straight into the state file (the daemon reads it when it starts).
Either way a new or expired silence is committed before the command answers."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sladaemon.config import Config
from sladaemon.daemon.daemon_api import call_daemon
from sladaemon.errors import StateLockedError
from sladaemon.escalate.silence_store import SilenceStore
from sladaemon.escalate.silences import SilenceError, silence_from_request, silence_json
from sladaemon.store.lock import StateLock
from sladaemon.store.sqlite import StateStore

SILENCES_PATH = "/api/v1/silences"


async def add_silence(cfg: Config, request: Mapping[str, object]) -> dict[str, Any]:
    """Make the silence ``request`` describes (see ``silence_from_request``); its JSON."""
    with _local(cfg) as store:
        if store is None:
            return await _api(cfg, "POST", SILENCES_PATH, request)
        now = datetime.now(UTC)
        silence = silence_from_request(request, silence_id=str(uuid.uuid4()), now=now)
        store.add(silence)
        return silence_json(silence, now)


async def list_silences(cfg: Config, *, include_expired: bool) -> list[dict[str, Any]]:
    with _local(cfg) as store:
        if store is None:
            query = "?all=1" if include_expired else ""
            answer = await _api(cfg, "GET", SILENCES_PATH + query, None)
            return list(answer["silences"])
        now = datetime.now(UTC)
        return [silence_json(s, now) for s in store.listed(now, include_expired=include_expired)]


async def expire_silence(cfg: Config, silence_id: str, by: str) -> dict[str, Any]:
    with _local(cfg) as store:
        if store is None:
            path = f"{SILENCES_PATH}/{silence_id}"
            return await _api(cfg, "DELETE", path, None, params={"by": by})
        now = datetime.now(UTC)
        return silence_json(store.expire(silence_id, by, now), now)


@contextlib.contextmanager
def _local(cfg: Config) -> Iterator[SilenceStore | None]:
    """The state file's silences when no daemon holds it, else None (ask the daemon)."""
    lock = StateLock(cfg.daemon.state)
    try:
        lock.acquire()
    except StateLockedError:
        yield None
        return
    try:
        state = StateStore(cfg.daemon.state)
        try:
            yield SilenceStore(state)
        finally:
            state.close()
    finally:
        lock.release()


async def _api(
    cfg: Config,
    method: str,
    path: str,
    body: Mapping[str, object] | None,
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    status, answer = await call_daemon(cfg, method, path, body, params, command="silence")
    if status >= 400:
        raise SilenceError(str(answer.get("message") or f"the daemon answered {status}"))
    return answer
