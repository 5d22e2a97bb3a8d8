"""The commands that change a running daemon's state (``ack``, ``unack``, ``silence``) reach
it through its API when it holds the state file: on ``ack.listen`` (else beside /metrics),
with the first of ``ack.api_tokens``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from sladaemon.config import Config
from sladaemon.errors import AckSetupError, StateLockedError

API_TIMEOUT = 10.0  # seconds a command waits for the daemon


async def call_daemon(
    cfg: Config,
    method: str,
    path: str,
    body: Mapping[str, object] | None = None,
    params: Mapping[str, str] | None = None,
    *,
    command: str,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) of the running daemon's API for ``command``."""
    ack = cfg.settings.ack
    if ack is None or not ack.api_tokens:
        raise AckSetupError(
            "a daemon holds the state file: give the config an ack: section with api_tokens "
            f"so that {command} can reach it"
        )
    host, _, port = (ack.listen or cfg.daemon.http.listen).rpartition(":")
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url = f"http://{host}:{port}{path}"
    headers = {
        "Authorization": f"Bearer {ack.api_tokens[0].get_secret_value()}",
        "User-Agent": "sladaemon-cli",
    }
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=API_TIMEOUT)) as session,
            session.request(method, url, json=body, params=params, headers=headers) as response,
        ):
            answer = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise StateLockedError(
            f"a daemon holds the state file, but its API at {url} did not answer: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(answer, dict):
        raise StateLockedError(f"the daemon's API at {url} answered {status} without JSON")
    return status, answer
