"""``sladaemon ack`` and ``unack``: through the running daemon's API when a daemon holds the
state file, else straight into the state file (the next start resumes from it). Either way
the ack is committed before the command answers."""

from __future__ import annotations

import aiohttp

from sladaemon.clock import SystemClock
from sladaemon.config import Config
from sladaemon.errors import AckSetupError, StateLockedError
from sladaemon.escalate.acks import AckOutcome
from sladaemon.escalate.chain_runner import ChainRunner
from sladaemon.escalate.chain_store import ChainStore
from sladaemon.escalate.outbox import Outbox
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import Metric
from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.store.lock import StateLock
from sladaemon.store.sqlite import StateStore

API_TIMEOUT = 10.0  # seconds the CLI waits for the daemon


async def ack_ticket(
    cfg: Config,
    ticket: str,
    *,
    source: str | None,
    metric: Metric | None,
    by: str,
    note: str = "",
    undo: bool = False,
) -> AckOutcome:
    lock = StateLock(cfg.daemon.state)
    try:
        lock.acquire()
    except StateLockedError:
        return await _through_api(cfg, ticket, source, metric, by, note, undo)
    store = StateStore(cfg.daemon.state)
    notifier = AppriseNotifier({})
    try:
        metrics = DaemonMetrics()
        runner = ChainRunner(
            ChainStore(store), Outbox(store, notifier, metrics), cfg, SystemClock(), metrics,
            {}, lambda *alert: None,
        )  # fmt: skip
        if undo:
            return await runner.unacknowledge_ticket(source, ticket, metric, by, "cli")
        return await runner.acknowledge_ticket(source, ticket, metric, by, "cli", note)
    finally:
        notifier.close()
        store.close()
        lock.release()


async def _through_api(
    cfg: Config,
    ticket: str,
    source: str | None,
    metric: Metric | None,
    by: str,
    note: str,
    undo: bool,
) -> AckOutcome:
    ack = cfg.settings.ack
    if ack is None or not ack.api_tokens:
        raise AckSetupError(
            "a daemon holds the state file: give the config an ack: section with api_tokens "
            "so that ack can reach it"
        )
    host, _, port = (ack.listen or cfg.daemon.http.listen).rpartition(":")
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url = f"http://{host}:{port}/api/v1/{'unacks' if undo else 'acks'}"
    body = {"ticket": ticket, "source": source, "by": by, "note": note}
    if metric is not None:
        body["metric"] = metric.value
    headers = {
        "Authorization": f"Bearer {ack.api_tokens[0].get_secret_value()}",
        "User-Agent": "sladaemon-cli",
    }
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=API_TIMEOUT)) as session,
            session.post(url, json=body, headers=headers) as response,
        ):
            answer = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise StateLockedError(
            f"a daemon holds the state file, but its API at {url} did not answer: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return AckOutcome(
        bool(answer.get("ok")), str(answer.get("message", "")), tuple(answer.get("chains", ()))
    )
