"""``sladaemon ack`` and ``unack``: through the running daemon's API when a daemon holds the
state file, else straight into the state file (the next start resumes from it). Either way
the ack is committed before the command answers."""

from __future__ import annotations

from sladaemon.clock import SystemClock
from sladaemon.config import Config
from sladaemon.daemon.daemon_api import call_daemon
from sladaemon.errors import StateLockedError
from sladaemon.escalate.acks import AckOutcome
from sladaemon.escalate.chain_runner import ChainRunner
from sladaemon.escalate.chain_store import ChainStore
from sladaemon.escalate.outbox import Outbox
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import Metric
from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.store.lock import StateLock
from sladaemon.store.sqlite import StateStore


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
    body = {"ticket": ticket, "source": source, "by": by, "note": note}
    if metric is not None:
        body["metric"] = metric.value
    path = f"/api/v1/{'unacks' if undo else 'acks'}"
    _, answer = await call_daemon(cfg, "POST", path, body, command="ack")
    return AckOutcome(
        bool(answer.get("ok")), str(answer.get("message", "")), tuple(answer.get("chains", ()))
    )
