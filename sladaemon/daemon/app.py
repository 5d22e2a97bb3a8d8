"""The daemon: builds the components, runs their loops, reloads, stops.

The data path (README, "Architecture"): pollers → tickets (store, book) → timers → router →
outbox → deliverer. Each step of the book returns ``Changes``, which ``apply`` fans out to the
router, the KPI facts and the prediction loop. Loops, one task each: a poller per source, the
timers, the deliverer, housekeeping, reports, KPI facts, prediction, and the reload queue (a
SIGHUP queues a reload; reloads run one after the other).

A reload stages the new config first (``daemon/staging.py``) and takes it only when every part
was built.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TextIO

from sladaemon.clock import Clock
from sladaemon.config import Config, load_config
from sladaemon.config.models import SourceConfig
from sladaemon.daemon.housekeeping import Housekeeping
from sladaemon.daemon.http import HttpEndpoints, TicketGauges
from sladaemon.daemon.kpis import KpiFacts
from sladaemon.daemon.pollers import SourcePoller
from sladaemon.daemon.prediction import PredictionLoop
from sladaemon.daemon.reports import ReportScheduler
from sladaemon.daemon.staging import Staged, stage
from sladaemon.daemon.supervise import LoopFactory, Supervisor
from sladaemon.daemon.systemd import SystemdNotifier
from sladaemon.daemon.tickets import Changes, TicketTracker
from sladaemon.errors import ConfigError
from sladaemon.escalate.book import Fired
from sladaemon.escalate.deliver import Deliverer
from sladaemon.escalate.outbox import Outbox
from sladaemon.escalate.route import Router
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics, KpiCollector, QueueCollector, TicketCollector
from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.predict.results import QueueAlert
from sladaemon.report.ledger import KpiLedger
from sladaemon.sources.base import PollResult, Source
from sladaemon.sources.registry import build_source, clock_for
from sladaemon.store.backup import lost_state
from sladaemon.store.lock import StateLock
from sladaemon.store.sqlite import StateStore

STOP_GRACE = 5.0  # seconds in-flight deliveries get to finish on shutdown
LEARNT_HALF_LIVES = 10  # learnt cycles are kept this many half-lives (then weigh < 0.1 %)


class App:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        console: TextIO | None = None,
        systemd: SystemdNotifier | None = None,
        serve_http: bool = True,
    ) -> None:
        self.config = config
        self.clock = clock or clock_for(config.sources.values())
        self.console = console
        self.systemd = systemd or SystemdNotifier({})
        self.log = get_logger("sladaemon.daemon")
        self.metrics = DaemonMetrics()
        self.lock = StateLock(config.daemon.state)
        self.store = StateStore(config.daemon.state)
        self.ledger = KpiLedger(config.daemon.state)
        self.notifier = AppriseNotifier(config.receivers, console)
        self.tickets = TicketTracker(config.policies, self.store, self.clock, self.metrics)
        self.outbox = Outbox(self.store, self.notifier, self.metrics)
        self.supervisor = Supervisor(self.metrics, self.alert)
        self.router = Router(config, self.outbox, self.notifier, self.metrics)
        self.deliverer = Deliverer(
            self.store,
            self.notifier,
            config.daemon.delivery,
            self.outbox.posted,
            self.clock,
            self.metrics,
            self.alert,
        )
        self.prediction = PredictionLoop(
            config, self.tickets.replays, self.clock, self.route, self.queue_alerts
        )
        self.kpis = KpiFacts(self.ledger, self.tickets.replays, config, self.clock)
        self.reports = ReportScheduler(
            config, self.kpis, self.clock, self.metrics, lambda *r: self.router.report(*r)
        )
        self.pollers: dict[str, SourcePoller] = {}
        self.housekeeping = Housekeeping(
            self.pollers, self.supervisor, self.outbox, self.sweep, self.metrics, self.systemd,
            self.status,
        )  # fmt: skip
        self.http: HttpEndpoints | None = None
        if serve_http and config.daemon.http.enabled:
            self.http = HttpEndpoints(
                config.daemon.http.listen, self.metrics, self.pollers, self.supervisor,
                self.tickets,
            )  # fmt: skip
        gauges = TicketGauges(self.tickets.replays, self.clock)
        self.metrics.add_collector(TicketCollector(gauges.open_tickets, gauges.open_clocks))
        self.metrics.add_collector(KpiCollector(self.kpis.figures))
        self.metrics.add_collector(QueueCollector(self.prediction.queue_figures))
        self._stopping = asyncio.Event()
        self._reloads: asyncio.Queue[str | None] = asyncio.Queue()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open state, resume where the last run stopped, run a first poll and evaluation."""
        await self._first_pass()
        loops: dict[str, LoopFactory] = {
            "timer": lambda: self.tickets.run_timers(lambda f: self.apply(Changes(fired=f))),
            "delivery": self.deliverer.run,
            "housekeeping": self.housekeeping.run,
            "reports": self.reports.run,
            "kpis": self.kpis.run,
            "predict": self.prediction.run,
            "reloads": self._reload_queue,
        }
        for name, loop in loops.items():
            self.supervisor.start(name, loop)
        for poller in self.pollers.values():
            self.supervisor.start(poller.loop_name, poller.run)
        if self.http is not None:
            await self.http.start()
        sources, tickets, speed = list(self.pollers), len(self.tickets), self.clock.speed
        self.log.info("daemon_started", sources=sources, tickets=tickets, clock_speed=speed)
        self.systemd.ready(self.status())

    async def run(self) -> None:
        """Start and run until ``stop`` is called."""
        await self.start()
        await self._stopping.wait()
        await self.shutdown()

    def stop(self) -> None:
        self._stopping.set()

    async def shutdown(self) -> None:
        self.systemd.stopping()
        self.log.info("daemon_stopping", in_flight=len(self.deliverer.in_flight))
        await self.supervisor.stop()
        await self.deliverer.stop(STOP_GRACE)
        if self.http is not None:
            await self.http.stop()
        await self._close()
        self.log.info("daemon_stopped")

    async def once(self) -> dict[str, int]:
        """One poll of every source, one evaluation, one delivery pass; then close."""
        await self._first_pass()
        self.reports.run_due()
        self.kpis.write()
        sent, failed = await self.deliverer.drain()
        counts = {"tickets": len(self.tickets), "sent": sent, "failed": failed}
        await self._close()
        return counts

    async def _first_pass(self) -> None:
        """Interrupted sends resumed; every source added and polled, what is due fired, every
        metric judged."""
        self.lock.acquire()  # one daemon per state file: refused before anything is sent
        if (lost := lost_state(self.store.path, self.store.created)) is not None:
            self.log.error("state_recreated", state=str(self.store.path))
            self.alert("state_recreated", str(self.store.path), lost, time.time())
        self.deliverer.resume()
        for name, cfg in self.config.sources.items():
            self._add_source(name, cfg)
        for poller in self.pollers.values():
            await poller.poll_all()
        self.apply(Changes(fired=self.tickets.fire_due()))
        self.prediction.tick(self.clock.now())

    async def _close(self) -> None:
        for poller in self.pollers.values():
            await poller.close()
        self.notifier.close(wait=False)
        self.store.close()
        self.kpis.write()
        self.ledger.close()
        self.lock.release()

    def request_reload(self, config_path: str | None = None) -> None:
        """Queue a reload (SIGHUP): reloads run one at a time, in the order asked."""
        self._reloads.put_nowait(config_path)

    async def _reload_queue(self) -> None:
        while True:
            path = await self._reloads.get()
            try:
                await self.reload(path)
            except Exception as exc:  # the daemon goes on with the config it has
                self.log.exception("config_reload_crashed", error=str(exc))
                self.metrics.reloads.labels("failed").inc()

    async def reload(self, config_path: str | None = None) -> bool:
        """All or nothing: the new config and what depends on it (notifier, router, changed
        sources) are built first and taken only when all of them were; if taking them fails,
        the config that ran is taken back. What lives long stays (store, book, ledger,
        predictor). READY=1 follows RELOADING=1 whatever happens. Returns success."""
        self.systemd.reloading()
        self.log.info("config_reload_started")
        try:
            staged = self._stage(config_path or self.config.path)
            await self._take(staged)
        except ConfigError as exc:
            return self._reload_failed([str(i) for i in exc.issues])
        except Exception as exc:  # a part that failed while taken: the old config runs again
            self.log.exception("config_reload_error")
            return self._reload_failed([f"{config_path or self.config.path}: {exc!r}"])
        finally:
            for poller in self.pollers.values():  # fixed credentials are tried at once
                if poller.health.failing_since is not None:
                    poller.wake()
            self.systemd.ready(self.status())
        self.metrics.reloads.labels("ok").inc()
        self.log.info(
            "config_reloaded", policies=len(self.config.policies), sources=list(self.pollers)
        )
        return True

    def _reload_failed(self, errors: list[str]) -> bool:
        self.log.error("config_reload_failed", errors=errors)
        self.metrics.reloads.labels("failed").inc()
        return False

    def _stage(self, config_path: str | Path) -> Staged:
        """The new config and the parts it changes, built; nothing of the daemon touched."""
        new = load_config(config_path)
        changed = _changed_sources(self.config, new)
        return stage(
            new,
            console=self.console,
            sources=[name for name in changed if name in new.sources],
            cursor=self.store.cursor,
            now=self.clock.now(),
        )

    async def _take(self, staged: Staged) -> None:
        """Use a staged config; when that fails part way, go back to the one that ran."""
        previous = Staged(self.config, self.notifier)
        try:
            await self._swap(staged)
        except Exception:
            staged.close()
            await self._swap(previous)
            raise
        previous.close()

    async def _swap(self, staged: Staged) -> None:
        """Make ``staged`` the running config: its notifier and router, its sources where
        they differ (built again from the store's cursor unless staged), its policies,
        prediction, KPI and report settings."""
        old, new = self.config, staged.config
        self.config, self.notifier = new, staged.notifier
        self.outbox.use(self.notifier)
        self.deliverer.use(self.notifier, new.daemon.delivery)
        self.router = Router(new, self.outbox, self.notifier, self.metrics)
        for name in _changed_sources(old, new):
            await self._remove_source(name)
            if name in new.sources:
                poller = self._add_source(name, new.sources[name], staged.sources.get(name))
                await poller.poll_all()
                self.supervisor.start(poller.loop_name, poller.run)
        changes = self.tickets.replace_policies(new.policies)
        if not self.prediction.reconfigure(new):  # history weighed anew: start over
            for name, poller in self.pollers.items():
                if poller.source.persistent:
                    tickets = {t for s, t in self.tickets.replays if s == name}
                    self.prediction.remember(name, self.tickets.learnt(name, skip=tickets))
        self.kpis.reconfigure(new)
        self.apply(changes)
        self.reports.reconfigure(new)

    def _add_source(
        self, name: str, cfg: SourceConfig, source: Source | None = None
    ) -> SourcePoller:
        if source is None:
            source = build_source(name, cfg, self.store.cursor(name), self.clock.now())
        if not source.persistent:
            self.store.forget_source(name)
            self.ledger.forget_source(name)
        else:
            changes, tickets = self.tickets.load(name)
            self.prediction.remember(name, self.tickets.learnt(name, skip=tickets))
            self.apply(changes)
        poller = SourcePoller(name, source, cfg, self.clock, self.metrics, self._ingest, self.alert)
        if source.persistent:  # after a failed ingest, read again from the stored cursor
            poller.reopen = lambda: build_source(
                name, cfg, self.store.cursor(name), self.clock.now()
            )
        self.pollers[name] = poller
        return poller

    async def _remove_source(self, name: str) -> None:
        poller = self.pollers.pop(name, None)
        if poller is not None:
            await self.supervisor.stop(poller.loop_name)
            await poller.close()
        self.tickets.forget_source(name)
        self.prediction.forget_source(name)

    # ------------------------------------------------------------------ the data path

    def _ingest(self, name: str, result: PollResult) -> None:
        persistent = self.pollers[name].source.persistent
        self.apply(self.tickets.ingest(name, result, self.config.sources[name], persistent))

    def apply(self, changes: Changes) -> None:
        """Fan a step's changes out: route the SLA events, note the KPI facts (those of
        closed tickets now: their events are gone from the state file), tell the predictor."""
        self.route(changes.fired)
        self.kpis.note(changes.touched, changes.fired)
        self.kpis.write_closed(changes.closed)
        self.prediction.observe(changes.touched, changes.closed)

    def route(self, fired: list[Fired]) -> None:
        self.router.sla_events(fired, self.clock.now())

    def queue_alerts(self, alerts: list[QueueAlert]) -> None:
        self.router.queue_alerts(alerts)

    def alert(self, kind: str, subject: str, summary: str, since: float) -> None:
        """Tell the operator about the daemon itself (see Router.operator)."""
        self.router.operator(kind, subject, summary, since)

    def sweep(self) -> None:
        """Hourly: idle solved tickets leave memory; old learnt cycles and KPI facts go."""
        now = self.clock.now()
        persistent = {name for name, p in self.pollers.items() if p.source.persistent}
        evicted = self.tickets.evict_idle(now, self.config.daemon.retention, persistent)
        self.prediction.forget(evicted)
        self.tickets.prune_learnt(now - LEARNT_HALF_LIVES * self.config.predict.half_life)
        self.kpis.prune()

    def status(self) -> str:
        stale = [name for name, p in self.pollers.items() if p.health.stale]
        text = f"{len(self.tickets)} open tickets from {len(self.pollers)} sources"
        return text + (f"; stale: {', '.join(stale)}" if stale else "")


def _changed_sources(old: Config, new: Config) -> list[str]:
    """The sources added, removed or configured otherwise, in a stable order."""
    names = sorted(set(old.sources) | set(new.sources))
    return [name for name in names if old.sources.get(name) != new.sources.get(name)]
