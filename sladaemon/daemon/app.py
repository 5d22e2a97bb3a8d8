"""The daemon: builds the components, runs their loops, reloads, stops.

The data path (README, "Architecture"): pollers → tickets (store, book) → timers → router →
outbox → deliverer. Each step of the book returns ``Changes``, which ``apply`` fans out to the
router, the KPI facts and the prediction loop. Loops, one task each: a poller per source, the
timers, the deliverer, housekeeping, reports, KPI facts, prediction, the iCal feeds and the
reload queue (a SIGHUP queues a reload; reloads run one after the other).

A reload stages the new config first (``daemon/staging.py``) and takes it only when every part
was built.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TextIO

from sladaemon.board.access import Access
from sladaemon.board.board import Board
from sladaemon.board.web import BoardPages
from sladaemon.calendar import to_us
from sladaemon.clock import Clock, SystemClock
from sladaemon.config import Config, load_config
from sladaemon.config.models import SourceConfig
from sladaemon.daemon.housekeeping import Housekeeping
from sladaemon.daemon.http import HttpEndpoints, TicketGauges
from sladaemon.daemon.ical_refresh import IcalRefresher
from sladaemon.daemon.kpis import KpiFacts
from sladaemon.daemon.pollers import POLL_TIMEOUT, SourcePoller
from sladaemon.daemon.prediction import PredictionLoop
from sladaemon.daemon.reports import ReportScheduler
from sladaemon.daemon.responders import Responders
from sladaemon.daemon.slack_interactions import slack_app
from sladaemon.daemon.staging import Staged, stage
from sladaemon.daemon.supervise import LoopFactory, Supervisor
from sladaemon.daemon.sync import PROGRESS_EVERY, SyncProgress, requests_of
from sladaemon.daemon.systemd import SystemdNotifier
from sladaemon.daemon.tickets import Changes, TicketTracker
from sladaemon.errors import ConfigError, ListenError
from sladaemon.escalate.book import Fired
from sladaemon.escalate.chain_runner import ChainRunner
from sladaemon.escalate.chain_store import ChainStore
from sladaemon.escalate.deliver import Deliverer
from sladaemon.escalate.group_runner import GroupRunner
from sladaemon.escalate.inhibition import Inhibitor, QueueForecasts, stale_source_alert
from sladaemon.escalate.outbox import Outbox
from sladaemon.escalate.overdue import OverdueAtStart
from sladaemon.escalate.rate_caps import RateCaps
from sladaemon.escalate.route import Router
from sladaemon.escalate.silence_store import SilenceBook, SilenceStore
from sladaemon.logs import REDACTOR, get_logger
from sladaemon.metrics import (
    DaemonMetrics,
    KpiCollector,
    PredictionCollector,
    QueueCollector,
    TicketCollector,
)
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
# While a sync runs, systemd's start timeout is pushed this far ahead each time it progresses:
# a poll ends (or fails) within POLL_TIMEOUT, so a sync this quiet is stuck.
SYNC_EXTEND = POLL_TIMEOUT + 2 * PROGRESS_EVERY


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
        self.slack = slack_app(config)
        self.notifier = AppriseNotifier(config.delivery_receivers(), console, slack=self.slack)
        self.tickets = TicketTracker(config.policies, self.store, self.clock, self.metrics)
        self.outbox = Outbox(self.store, self.notifier, self.metrics)
        self.supervisor = Supervisor(self.metrics, self.alert)
        self.overdue = OverdueAtStart()
        self.chains = ChainRunner(
            ChainStore(self.store), self.outbox, config, self.clock, self.metrics,
            self.tickets.replays, self.alert,
        )  # fmt: skip
        self.silences = SilenceStore(self.store)
        self.queue_forecasts = QueueForecasts()
        self.groups = GroupRunner(
            self.store, self.outbox, self.clock, self.metrics, self.chains.resolve,
            SilenceBook(self.silences), self.chains.store, self.inhibiting_alerts,
        )  # fmt: skip
        self.groups.use(config.calendars, _inhibitor(config))
        self.chains.on_acked.append(self.groups.resolve_items)  # an owner: no more repeats
        self.caps = RateCaps()  # receivers' rate limits: outlive reloads
        self.router = Router(
            config, self.outbox, self.notifier, self.metrics, self.overdue, self.chains,
            self.groups, self.caps,
        )  # fmt: skip
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
            config, self.tickets.replays, self.clock, self.route, self.queue_alerts, self.metrics
        )
        self.kpis = KpiFacts(self.ledger, self.tickets.replays, config, self.clock)
        self.reports = ReportScheduler(
            config, self.kpis, self.clock, self.metrics, lambda *r: self.router.report(*r)
        )
        self.ical = IcalRefresher(config, self.metrics, self.alert)
        self.pollers: dict[str, SourcePoller] = {}
        self.housekeeping = Housekeeping(
            self.pollers, self.supervisor, self.outbox, self.sweep, self.metrics, self.systemd,
            self.status,
        )  # fmt: skip
        self.responders = Responders(
            config, self.chains, self.slack, self.metrics, self.clock, self.alert, self.silences
        )
        routes, listen = self.responders.routes, self.responders.listen
        apart = listen not in (None, config.daemon.http.listen)
        self.http: HttpEndpoints | None = None
        self.human_http: HttpEndpoints | None = None  # ack page, API, Slack on their own address
        if serve_http and config.daemon.http.enabled:
            self.http = HttpEndpoints(
                config.daemon.http.listen, self.metrics, self.pollers, self.supervisor,
                self.tickets, routes=[] if apart else routes,
            )  # fmt: skip
        if serve_http and routes and (apart or self.http is None):
            self.human_http = HttpEndpoints(
                listen or config.daemon.http.listen, self.metrics, self.pollers,
                self.supervisor, self.tickets, routes=routes, monitoring=False,
            )  # fmt: skip
        self.board: Board | None = None
        self.board_http: HttpEndpoints | None = None
        if serve_http and config.settings.board.enabled:
            self._build_board()
        gauges = TicketGauges(self.tickets.replays, self.clock)
        self.metrics.add_collector(TicketCollector(gauges.open_tickets, gauges.open_clocks))
        self.metrics.add_collector(KpiCollector(self.kpis.figures))
        self.metrics.add_collector(QueueCollector(self.prediction.queue_figures))
        self.metrics.add_collector(PredictionCollector(self.prediction.model_figures))
        self._stopping = asyncio.Event()
        self._reloads: asyncio.Queue[str | None] = asyncio.Queue()
        self._state_lost = False  # the state file was deleted and created afresh
        self.failed_sources: dict[str, str] = {}  # of ``once``: name -> error

    def _build_board(self) -> None:
        """The web board on its own listener (``board.listen``)."""
        cfg = self.config
        self.board = Board(
            self.clock, cfg.report_timezone(None), self.store, self.chains.store,
            _ticket_urls(cfg),
        )  # fmt: skip
        self.board_access = Access(cfg.settings.board)
        pages = BoardPages(
            self.board, self.board_access, lambda: self.config, self.tickets.replays,
            self.chains, self.silences, self.ledger, self.clock, self.metrics,
        )  # fmt: skip
        self.board_http = HttpEndpoints(
            cfg.settings.board.listen, self.metrics, self.pollers, self.supervisor,
            self.tickets, routes=pages.routes(), monitoring=False,
            purpose="(board.listen) for the web board",
        )  # fmt: skip

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open state, resume where the last run stopped, listen (a port that cannot be bound
        stops the start), sync every source and run a first evaluation; then run the loops and
        tell systemd READY=1. A long sync extends systemd's start timeout while it progresses
        (see ``_sync``)."""
        self._open()
        for endpoints in (self.http, self.human_http, self.board_http):
            if endpoints is None:
                continue
            try:  # before the sync, so that /healthz shows its progress
                await endpoints.start()
            except ListenError:
                for started in (self.http, self.human_http):
                    if started is not None:
                        await started.stop()
                await self._close()
                raise
        await self._first_pass()
        await self.responders.start()
        loops: dict[str, LoopFactory] = {
            "timer": lambda: self.tickets.run_timers(lambda f: self.apply(Changes(fired=f))),
            "chains": self.chains.run,
            "groups": self.groups.run,
            "delivery": self.deliverer.run,
            "housekeeping": self.housekeeping.run,
            "reports": self.reports.run,
            "kpis": self.kpis.run,
            "predict": self.prediction.run,
            "reloads": self._reload_queue,
            "ical": self.ical.run,
        }
        if self.board is not None:
            loops["board"] = self.board.feed.run
        for name, loop in loops.items():
            self.supervisor.start(name, loop)
        for poller in self.pollers.values():
            self.supervisor.start(poller.loop_name, poller.run)
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
        await self.prediction.stop()  # a training under way is abandoned, its worker ended
        await self.deliverer.stop(STOP_GRACE)
        await self.responders.stop()
        for endpoints in (self.http, self.human_http, self.board_http):
            if endpoints is not None:
                await endpoints.stop()
        await self._close()
        self.log.info("daemon_stopped")

    async def once(self) -> dict[str, int]:
        """One sync of every source, one evaluation, one delivery pass; then close. The
        sources whose sync failed are left in ``failed_sources`` (name: error)."""
        self._open()
        self.failed_sources = await self._first_pass()
        self.reports.run_due()
        self.kpis.write()
        self.chains.fire_due(to_us(self.clock.now()))
        self.groups.fire_due(to_us(self.clock.now()))
        sent, failed = await self.deliverer.drain()
        counts = {
            "tickets": len(self.tickets),
            "sent": sent,
            "failed": failed,
            "sources_failed": len(self.failed_sources),
        }
        await self._close()
        return counts

    def _open(self) -> None:
        """The state locked, interrupted sends resumed, every source added."""
        self.lock.acquire()  # one daemon per state file: refused before anything is sent
        if (lost := lost_state(self.store.path, self.store.created)) is not None:
            self._state_lost = True
            self.log.error("state_recreated", state=str(self.store.path))
            self.alert("state_recreated", str(self.store.path), lost, time.time())
        self.store.set_simulated_time(None)  # set again on stop, if the clock is simulated
        self.deliverer.resume()
        self.chains.resume()
        for name, cfg in self.config.sources.items():
            self._add_source(name, cfg)

    async def _first_pass(self) -> dict[str, str]:
        """Every source synced, what is due fired, every metric judged. Returns the sources
        whose sync failed, with their error."""
        failed = await self._sync(list(self.pollers.values()))
        self.apply(Changes(fired=self.tickets.fire_due()))
        self.prediction.tick(self.clock.now())
        return failed

    async def _sync(self, pollers: list[SourcePoller], starting: bool = True) -> dict[str, str]:
        """Poll the sources, side by side, until each has nothing more waiting. The first sync
        of a big helpdesk takes minutes: its progress is logged every ``PROGRESS_EVERY``
        seconds (``sync_progress``), shown in systemd's STATUS= and in /healthz (``syncing``),
        and, while ``starting``, systemd's start timeout is extended (EXTEND_TIMEOUT_USEC) as
        long as polls keep completing. Returns the sources whose sync failed, with their
        error."""
        for poller in pollers:
            poller.sync = SyncProgress(poller.name, partial(_requests_of, poller))
            self.log.info("sync_started", source=poller.name)
        if starting:
            self.systemd.extend_timeout(SYNC_EXTEND, self.status())
        reporter = asyncio.create_task(self._report_sync(pollers, starting))
        try:
            outcomes = await asyncio.gather(*(self._sync_one(p) for p in pollers))
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            for poller in pollers:
                poller.sync = None
        return {
            p.name: p.health.last_error
            for p, outcome in zip(pollers, outcomes, strict=True)
            if outcome is not True
        }

    async def _sync_one(self, poller: SourcePoller) -> bool | None:
        outcome = await poller.poll_all()
        sync = poller.sync
        poller.sync = None
        if sync is not None:
            sync.finish()
            if outcome is True:
                self.log.info("sync_finished", source=poller.name, **sync.figures())
            else:
                error = poller.health.last_error
                self.log.warning("sync_failed", source=poller.name, error=error, **sync.figures())
        return outcome

    async def _report_sync(self, pollers: list[SourcePoller], starting: bool) -> None:
        """Every ``PROGRESS_EVERY`` seconds: log each sync's progress and tell systemd, while
        ``starting`` with more time when something moved since the last time."""
        last: object = None
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            running = [p.sync for p in pollers if p.sync is not None]
            for sync in running:
                self.log.info("sync_progress", source=sync.source, **sync.figures())
            moved = [(sync.source, sync.marker()) for sync in running]
            if starting and moved != last:
                self.systemd.extend_timeout(SYNC_EXTEND, self.status())
            else:
                self.systemd.status(self.status())
            last = moved

    async def _close(self) -> None:
        for poller in self.pollers.values():
            await poller.close()
        self.notifier.close(wait=False)
        self.store.set_simulated_time(self._simulated_now())
        self.store.close()
        self.kpis.write()
        self.ledger.close()
        self.lock.release()

    def _simulated_now(self) -> datetime | None:
        """The clock's instant unless it is real time: ``report`` and ``explain`` read the
        state at that instant once the daemon has stopped."""
        return None if isinstance(self.clock, SystemClock) else self.clock.now()

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
        REDACTOR.add(new.secrets())  # the new receivers' URLs are kept out of the log too
        self.config, self.notifier = new, staged.notifier
        self.outbox.use(self.notifier)
        self.deliverer.use(self.notifier, new.daemon.delivery)
        self.chains.use(new)
        self.groups.use(new.calendars, _inhibitor(new))
        self.router = Router(
            new, self.outbox, self.notifier, self.metrics, self.overdue, self.chains, self.groups,
            self.caps,
        )  # fmt: skip
        for name in _changed_sources(old, new):
            await self._remove_source(name)
            if name in new.sources:
                poller = self._add_source(name, new.sources[name], staged.sources.get(name))
                await self._sync([poller], starting=False)
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
        self.ical.reconfigure(new)
        if self.board is not None:
            self.board.use(new.report_timezone(None), _ticket_urls(new))
            self.board_access.use(new.settings.board)

    def _add_source(
        self, name: str, cfg: SourceConfig, source: Source | None = None
    ) -> SourcePoller:
        if source is None:
            source = build_source(name, cfg, self.store.cursor(name), self.clock.now())
        if not source.persistent:
            self.store.forget_source(name)
            self.ledger.forget_source(name)
        else:
            self._watch_overdue(name)
            changes, tickets = self.tickets.load(name)
            self.prediction.remember(name, self.tickets.learnt(name, skip=tickets))
            self.apply(changes)
        poller = SourcePoller(name, source, cfg, self.clock, self.metrics, self._ingest, self.alert)
        poller.on_caught_up = self._caught_up
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
        if self.board is not None:
            self.board.forget_source(name)
        self.overdue.forget(name)

    def _watch_overdue(self, name: str) -> None:
        """Monitoring of a persistent source begins at its first start without a stored cursor
        (not when the state file was lost): what its tickets had reached by then is summed up
        once its first sync is done (``_caught_up``, see escalate/overdue.py)."""
        known = self.store.monitoring(name)
        if known is None:
            first = self.store.cursor(name) is None and not self._state_lost
            known = (self.clock.now().replace(microsecond=0) if first else None, not first)
            self.store.set_monitoring(name, *known)
        self.overdue.watch(name, *known)

    def _caught_up(self, name: str) -> None:
        """A source has nothing more waiting: after its first sync, the summary of what was
        overdue when its monitoring began goes out (once)."""
        if not self.overdue.pending(name):
            return
        # Levels reached after a ticket's last event fire from the timers: fire them first.
        self.apply(Changes(fired=self.tickets.fire_due()))
        began = self.overdue.began(name)
        self.router.overdue_at_start(name, self.clock.now())
        try:
            self.store.set_monitoring(name, began, True)
        except (sqlite3.Error, OSError) as exc:  # the summary's key keeps it from going twice
            self.metrics.state_write_errors.labels("monitoring").inc()
            self.log.error("monitoring_write_failed", source=name, error=str(exc))

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
        if self.board is not None:
            self.board.apply(changes.touched, changes.closed)

    def route(self, fired: list[Fired]) -> None:
        self.router.sla_events(fired, self.clock.now())
        if self.board is not None:
            self.board.routed(fired)

    def queue_alerts(self, alerts: list[QueueAlert]) -> None:
        self.router.queue_alerts(alerts)
        self.queue_forecasts.note(alerts, self.config.predict.horizon)

    def inhibiting_alerts(self) -> list[dict[str, str]]:
        """The daemon's own alerts that inhibit notifications: each stale source (as
        ``/healthz`` judges it) and each queue with an active forecast alert."""
        now = time.monotonic()
        stale = [stale_source_alert(n) for n, p in self.pollers.items() if not p.health.fresh(now)]
        return stale + self.queue_forecasts.active(to_us(self.clock.now()))

    def alert(self, kind: str, subject: str, summary: str, since: float) -> None:
        """Tell the operator about the daemon itself (see Router.operator)."""
        self.router.operator(kind, subject, summary, since)

    def sweep(self) -> None:
        """Hourly: idle solved tickets leave memory; old learnt cycles and KPI facts go."""
        now = self.clock.now()
        persistent = {name for name, p in self.pollers.items() if p.source.persistent}
        evicted = self.tickets.evict_idle(now, self.config.daemon.retention, persistent)
        self.prediction.forget(evicted)
        if self.board is not None:
            self.board.forget(evicted)
        self.tickets.prune_learnt(now - LEARNT_HALF_LIVES * self.config.predict.half_life)
        self.kpis.prune()

    def status(self) -> str:
        syncing = [p.sync.describe() for p in self.pollers.values() if p.sync is not None]
        if syncing:
            return f"syncing {'; '.join(syncing)}"
        stale = [name for name, p in self.pollers.items() if p.health.stale]
        text = f"{len(self.tickets)} open tickets from {len(self.pollers)} sources"
        return text + (f"; stale: {', '.join(stale)}" if stale else "")


def _inhibitor(config: Config) -> Inhibitor:
    settings = config.settings
    return Inhibitor.from_config(settings.inhibit_rules, settings.inhibit_defaults)


def _ticket_urls(config: Config) -> dict[str, str | None]:
    return {name: cfg.ticket_url for name, cfg in config.sources.items()}


def _requests_of(poller: SourcePoller) -> int | None:
    return requests_of(poller.source)  # the poller's source of the moment (it may reopen)


def _changed_sources(old: Config, new: Config) -> list[str]:
    """The sources added, removed or configured otherwise, in a stable order."""
    names = sorted(set(old.sources) | set(new.sources))
    return [name for name in names if old.sources.get(name) != new.sources.get(name)]
