"""The daemon: polls sources, keeps every open ticket's SLA clocks, fires ladder levels at their
instant, and delivers notifications durably.

Tasks (one asyncio loop):
* one poller per source — its own interval with jitter, capped backoff on failure;
* the timer — sleeps until the earliest ladder instant of any ticket, independent of polling;
* the deliverer — sends outbox rows (written before any attempt), retries with backoff;
* housekeeping — source staleness (alerting the operator receiver), gauges, watchdog pings;
* reports — scheduled KPI reports, queued in the outbox once per scheduled instant;
* prediction — judges every running SLA metric each ``predict.every`` and at each last call
  (the deadline ``predict.lead`` away), raises predicted breaches and queue alerts;
* the HTTP endpoints /healthz and /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sladaemon.calendar import from_us, to_us
from sladaemon.clock import Clock, ScaledClock, SystemClock
from sladaemon.config import Config
from sladaemon.config.models import (
    CsvSourceConfig,
    ReportConfig,
    SimulatorSourceConfig,
    SourceConfig,
)
from sladaemon.daemon.systemd import SystemdNotifier
from sladaemon.escalate.book import Fired, IngestResult, TicketBook, TicketKey
from sladaemon.escalate.retry import retry_delay
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics, KpiCollector, QueueCollector, TicketCollector
from sladaemon.model import NATIVE_DUE_PREFIX, SlaEventKind, native_due_field
from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.notify.message import Notification, iso, operator_payload, render, sla_payload
from sladaemon.predict.engine import BreachPredictor, Prediction, QueueAlert, learnt_cycles
from sladaemon.report.kpi import KpiReport, ticket_facts
from sladaemon.report.ledger import KpiLedger
from sladaemon.report.render import as_html, as_table
from sladaemon.report.schedule import Every
from sladaemon.sla.batch import OpenClocks, evaluate_open
from sladaemon.sla.engine import TicketReplay
from sladaemon.sources.base import PollResult, Source, SourceError
from sladaemon.sources.csv.source import CsvSource
from sladaemon.sources.registry import build_source
from sladaemon.store.sqlite import OutboxItem, OutboxRow, StateStore

ALERTING = (
    SlaEventKind.WARNING,
    SlaEventKind.BREACH,
    SlaEventKind.ESCALATION,
    SlaEventKind.PREDICTED_BREACH,
)
LAST_CALL_MARGIN_S = 5.0  # clock seconds a last call is judged before its instant
MAX_IN_FLIGHT = 32
PER_RECEIVER = 4  # in flight per receiver: a slow or hanging one cannot starve the others
STOP_GRACE = 5.0  # seconds in-flight deliveries get to finish on shutdown
SCRAPE_CACHE = 30.0  # seconds the SLA-state gauges are reused between scrapes
KPI_CACHE = 300.0  # clock seconds the KPI gauges are reused (a window of days moves slowly)
MAX_MISSED_REPORTS = 1000  # missed instants counted after downtime, per report
FACTS_CHUNK = 2000  # tickets whose KPI facts are written in one step (~60 ms)
RETRY_AFTER_ERROR = 60.0  # seconds before KPI work tries the state file again
LEARNT_HALF_LIVES = 10  # learnt cycles are kept this many half-lives (then weigh < 0.1 %)
# Ledger facts change when a cycle's outcome is decided or an escalation level is reached.
_KPI_EVENTS = (
    SlaEventKind.BREACH,
    SlaEventKind.ESCALATION,
    SlaEventKind.MET,
    SlaEventKind.MET_LATE,
)


@dataclass
class SourceHealth:
    stale_after: float
    started: float
    last_success: float | None = None
    failing_since: float | None = None
    last_error: str = ""
    stale: bool = False

    def fresh(self, now: float) -> bool:
        reference = self.last_success if self.last_success is not None else self.started
        return now - reference <= self.stale_after


def clock_for(config: Config) -> Clock:
    """Real time, unless a source replays or simulates faster (then it sets the clock)."""
    for cfg in config.sources.values():
        if isinstance(cfg, SimulatorSourceConfig) and cfg.speed != 1:
            return ScaledClock(cfg.start or datetime.now(UTC), cfg.speed)
        if isinstance(cfg, CsvSourceConfig) and cfg.speed is not None:
            first = CsvSource("replay", cfg).first_instant()
            return ScaledClock(first or datetime.now(UTC), cfg.speed)
    return SystemClock()


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
        self.clock = clock or clock_for(config)
        self.log = get_logger("sladaemon.daemon")
        self.metrics = DaemonMetrics()
        self.store = StateStore(config.daemon.state)
        self.console = console
        self.notifier = AppriseNotifier(config.receivers, console)
        self.systemd = systemd or SystemdNotifier({})
        self.serve_http = serve_http and config.daemon.http.enabled
        self.book = TicketBook(config.policies)
        self.ledger = KpiLedger(config.daemon.state)
        self.sources: dict[str, Source] = {}
        self.health: dict[str, SourceHealth] = {}
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._busy: Counter[str] = Counter()  # deliveries in flight per receiver
        self._wake_timer = asyncio.Event()
        self._wake_delivery = asyncio.Event()
        self._stopping = asyncio.Event()
        self._failing_receivers: set[str] = set()
        self._unknown_reported: dict[str, set[str]] = {}
        self._more: dict[str, bool] = {}
        self._slow_down: dict[str, bool] = {}
        self._mismatches: dict[tuple[str, str, str], str] = {}
        self._http: web.AppRunner | None = None
        self._scrape: tuple[float, list[Any], list[Any]] | None = None
        self._kpis: KpiReport | None = None
        self._wake_reports = asyncio.Event()
        # Tickets whose KPI facts are to be rewritten, and the first escalation of those whose
        # ladder reached one (the replay knows that it did, not when).
        self._changed: dict[TicketKey, TicketReplay] = {}
        self._escalated: dict[TicketKey, datetime] = {}
        self._wake_kpis = asyncio.Event()
        self._rng = random.Random()
        self.metrics.add_collector(TicketCollector(self._open_ticket_counts, self._clock_counts))
        self.metrics.add_collector(KpiCollector(self._kpi_figures))
        self.predictor = BreachPredictor(config.policies, config.predict)
        self._wake_predict = asyncio.Event()
        self.metrics.add_collector(QueueCollector(lambda: self.predictor.queue_figures()))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open state, resume where the last run stopped, run a first poll and evaluation."""
        released = self.store.release_unfinished()
        if released:
            self.log.warning("outbox_resumed", interrupted=released)
        for name, target, problem in self.notifier.invalid_targets():
            self.log.error("receiver_url_invalid", receiver=name, target=target, reason=problem)
            self.metrics.invalid_targets.labels(name).inc()
        for name, cfg in self.config.sources.items():
            self._add_source(name, cfg)
        for name in self.sources:
            await self._poll_all(name)
        self._fire_due()
        self._predict(self.clock.now())
        self._tasks = [
            asyncio.create_task(self._timer_loop(), name="timer"),
            asyncio.create_task(self._delivery_loop(), name="delivery"),
            asyncio.create_task(self._housekeeping_loop(), name="housekeeping"),
            asyncio.create_task(self._report_loop(), name="reports"),
            asyncio.create_task(self._kpi_loop(), name="kpis"),
            asyncio.create_task(self._predict_loop(), name="predict"),
        ]
        for name in self.sources:
            self._pollers[name] = asyncio.create_task(self._poll_loop(name), name=f"poll:{name}")
        if self.serve_http:
            await self._start_http()
        self.log.info(
            "daemon_started",
            sources=list(self.sources),
            tickets=len(self.book),
            clock_speed=self.clock.speed,
        )
        self.systemd.ready(self._status())

    async def run(self) -> None:
        """Start and run until ``stop`` is called."""
        await self.start()
        await self._stopping.wait()
        await self.shutdown()

    def stop(self) -> None:
        self._stopping.set()

    async def shutdown(self) -> None:
        self.systemd.stopping()
        self.log.info("daemon_stopping", in_flight=len(self._in_flight))
        for task in [*self._pollers.values(), *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._pollers.values(), *self._tasks, return_exceptions=True)
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=STOP_GRACE)
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._http is not None:
            await self._http.cleanup()
        for source in self.sources.values():
            await source.close()
        self.notifier.close(wait=False)
        self.store.close()
        self._write_facts()
        self.ledger.close()
        self.log.info("daemon_stopped")

    async def once(self) -> dict[str, int]:
        """One poll of every source, one evaluation, one delivery pass; then close."""
        for name, cfg in self.config.sources.items():
            self._add_source(name, cfg)
        self.store.release_unfinished()
        for name in self.sources:
            await self._poll_all(name)
        self._fire_due()
        self._predict(self.clock.now())
        self._run_reports()
        self._write_facts()
        sent = failed = 0
        while rows := self.store.claim_due(limit=MAX_IN_FLIGHT):
            results = await asyncio.gather(*(self._deliver(row, final=True) for row in rows))
            sent += sum(results)
            failed += len(results) - sum(results)
        counts = {"tickets": len(self.book), "sent": sent, "failed": failed}
        for source in self.sources.values():
            await source.close()
        self.notifier.close(wait=False)
        self.store.close()
        self.ledger.close()
        return counts

    async def reload(self, config_path: str | None = None) -> bool:
        """Validate a new config first; swap only if it is good. Returns success."""
        from sladaemon.config import load_config
        from sladaemon.errors import ConfigError

        self.systemd.reloading()
        try:
            new = load_config(config_path or self.config.path)
        except ConfigError as exc:
            self.log.error("config_reload_failed", errors=[str(i) for i in exc.issues])
            self.metrics.reloads.labels("failed").inc()
            self.systemd.ready(self._status())
            return False
        old = self.config
        self.config = new
        old_notifier, self.notifier = self.notifier, AppriseNotifier(new.receivers, self.console)
        old_notifier.close(wait=False)
        for name in set(old.sources) | set(new.sources):
            if old.sources.get(name) != new.sources.get(name):
                await self._remove_source(name)
                if name in new.sources:
                    self._add_source(name, new.sources[name])
                    await self._poll_all(name)
                    self._pollers[name] = asyncio.create_task(
                        self._poll_loop(name), name=f"poll:{name}"
                    )
        fired = self.book.replace_policies(new.policies)
        self._route(fired)
        if not self.predictor.reconfigure(new.predict):  # history weighed anew: start over
            self.predictor = BreachPredictor(new.policies, new.predict)
            for name, source in self.sources.items():
                if source.persistent:
                    self._remember(name, skip={t for s, t in self.book.replays if s == name})
        self._observe(dict(self.book.replays), [])
        self._wake_predict.set()
        self._facts_changed(dict(self.book.replays), fired)
        self._kpis = None
        self._wake_timer.set()
        self._wake_reports.set()
        self.metrics.reloads.labels("ok").inc()
        self.log.info("config_reloaded", policies=len(new.policies), sources=list(self.sources))
        self.systemd.ready(self._status())
        return True

    def _add_source(self, name: str, cfg: SourceConfig) -> None:
        source = build_source(name, cfg, self.store.cursor(name), self.clock.now())
        if not source.persistent:
            self.store.forget_source(name)
            self.ledger.forget_source(name)
        else:
            previous = self.store.load_events(name)
            self._remember(name, skip=previous.keys())
            if previous:
                events = [e for evs in previous.values() for e in evs]
                self._absorb(name, self.book.ingest(name, events))
        self.sources[name] = source
        self.health[name] = SourceHealth(cfg.stale_after.total_seconds(), time.time())

    async def _remove_source(self, name: str) -> None:
        task = self._pollers.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        source = self.sources.pop(name, None)
        if source is not None:
            await source.close()
        self.health.pop(name, None)
        self.book.forget_source(name)
        self.predictor.forget_source(name)

    # ------------------------------------------------------------------ polling

    async def _poll_loop(self, name: str) -> None:
        cfg = self.config.sources[name]
        interval = cfg.poll_interval.total_seconds()
        delay = interval
        while True:
            await asyncio.sleep(delay * self._rng.uniform(0.9, 1.1))
            ok = await self._poll_all(name)
            if ok:
                delay = interval
            elif self._slow_down.pop(name, False):
                delay = max(interval, 300.0)  # no retry storm on a permanent error
            else:
                delay = min(max(delay * 2, interval), max(interval, 300.0))

    async def _poll_all(self, name: str) -> bool:
        """Poll until the source has nothing more waiting (large backlogs come in pieces)."""
        while (ok := await self._poll(name)) and self._more.pop(name, False):
            await asyncio.sleep(0)
        return ok

    async def _poll(self, name: str) -> bool:
        source, health = self.sources[name], self.health[name]
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(source.poll(self.clock.now()), timeout=120)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.metrics.poll_errors.labels(name).inc()
            health.last_error = str(exc) if isinstance(exc, SourceError) else repr(exc)
            permanent = isinstance(exc, SourceError) and not exc.retryable
            if health.failing_since is None:
                health.failing_since = time.time()
                self.log.error("poll_failed", source=name, error=health.last_error)
                if permanent:  # e.g. 401/403: say so now rather than after stale_after
                    self.operator_alert(
                        "source_failing",
                        name,
                        f"source {name} fails and retrying will not help: {health.last_error}",
                        health.failing_since,
                    )
            if permanent:
                self._slow_down[name] = True
            return False
        self.metrics.poll_duration.labels(name).observe(time.monotonic() - started)
        self.metrics.last_poll.labels(name).set(time.time())
        if health.failing_since is not None:
            self.log.info("poll_recovered", source=name)
        health.failing_since, health.last_success = None, time.time()
        self._ingest(name, result)
        if result.more:
            self._more[name] = True
        return True

    def _ingest(self, name: str, result: PollResult) -> None:
        source = self.sources[name]
        if source.persistent and (result.events or result.cursor is not None):
            self.store.save_poll(name, result.events, result.cursor)
        for issue in result.issues[:20]:
            self.log.warning(
                "input_row_skipped", source=name, line=issue.line, reason=issue.message
            )
        if result.issues:
            self.metrics.rows_skipped.labels(name).inc(len(result.issues))
        for status in sorted(result.unknown_statuses - self._known_unknown(name)):
            self.log.warning("unknown_status", source=name, status=status, counted_as="open")
            self._known_unknown(name).add(status)
        ingested = self.book.ingest(name, result.events)
        if ingested.orphans:
            self.log.warning(
                "events_without_created",
                source=name,
                count=len(ingested.orphans),
                tickets=sorted({e.ticket_id for e in ingested.orphans})[:10],
            )
        if ingested.closed and source.persistent:
            self._retire(name, {key: ingested.touched[key] for key in ingested.closed})
        self._absorb(name, ingested)
        touched = {e.ticket_id for e in result.events if _has_native_due(e.fields)}
        if touched:
            self._cross_check(name, touched)

    def _absorb(self, name: str, ingested: IngestResult) -> None:
        """What follows every ingest: route the SLA events, note the KPI facts, tell the
        predictor."""
        self._after_ingest(name, ingested.fired)
        self._facts_changed(ingested.touched, ingested.fired)
        if ingested.closed:  # their events are gone from the state file: keep the facts now
            self._write_facts(ingested.closed)
        self._observe(ingested.touched, ingested.closed)

    def _cross_check(self, name: str, ticket_ids: Iterable[str]) -> None:
        """Compare the helpdesk's own deadlines with ours; report differences once each."""
        cfg = self.config.sources[name]
        tolerance = getattr(cfg, "tolerance", None)
        limit = tolerance.total_seconds() if tolerance is not None else 60.0
        now = self.clock.now()
        for ticket_id in ticket_ids:
            replay = self.book.replays.get((name, ticket_id))
            if replay is None:
                continue
            evaluation = replay.evaluate(now)
            self.book.timers.schedule((name, ticket_id), replay.next_instant())
            replay.release_caches()
            for metric, status in evaluation.metrics.items():
                native_text = replay.fields.get(native_due_field(metric))
                if not native_text or status.deadline is None:
                    continue
                try:
                    native = datetime.fromisoformat(native_text.replace("Z", "+00:00"))
                except ValueError:
                    continue
                difference = (native - status.deadline).total_seconds()
                key = (name, ticket_id, metric.value)
                if abs(difference) > limit and self._mismatches.get(key) != native_text:
                    self._mismatches[key] = native_text
                    self.metrics.deadline_mismatches.labels(name, metric.value).inc()
                    self.log.warning(
                        "deadline_mismatch",
                        source=name,
                        ticket=ticket_id,
                        metric=metric.value,
                        ours=status.deadline.isoformat(),
                        helpdesk=native.isoformat(),
                        difference_s=difference,
                    )

    def _known_unknown(self, name: str) -> set[str]:
        """Unknown statuses already reported for a source (each is logged once)."""
        return self._unknown_reported.setdefault(name, set())

    def _after_ingest(self, name: str, fired: list[Fired]) -> None:
        self._route(fired)
        self._wake_timer.set()

    # ------------------------------------------------------------------ timers

    async def _timer_loop(self) -> None:
        while True:
            nxt = self.book.next_instant()
            await self.clock.wait(self._wake_timer, from_us(nxt) if nxt is not None else None)
            self._wake_timer.clear()
            self._fire_due()

    def _fire_due(self) -> None:
        now = self.clock.now()
        fired = self.book.fire_due(to_us(now))
        for f in fired:
            if f.event.kind in ALERTING:
                late = (now - f.event.at).total_seconds() / self.clock.speed
                self.metrics.lateness.observe(max(0.0, late))
        self._route(fired)
        self._facts_changed({}, fired)

    # ------------------------------------------------------------------ routing

    def _route(self, fired: Iterable[Fired]) -> None:
        now = self.clock.now()
        horizon = now - self.config.daemon.catch_up
        items: list[OutboxItem] = []
        for f in fired:
            e = f.event
            self.metrics.sla_events.labels(f.source, e.policy, e.metric.value, e.kind.value).inc()
            if e.kind is SlaEventKind.BREACH:
                self.metrics.breaches.labels(f.source, e.policy, e.metric.value).inc()
            elif e.kind is SlaEventKind.PREDICTED_BREACH:
                self.metrics.predicted_breaches.labels(f.source, e.policy, e.metric.value).inc()
            if e.kind in ALERTING or e.kind is SlaEventKind.MET_LATE:
                if e.at < horizon:
                    self.metrics.sla_events_skipped.labels(f.source).inc()
                    continue
                self.log.info(
                    f"sla_{e.kind.value}",
                    source=f.source,
                    ticket=e.ticket_id,
                    policy=e.policy,
                    metric=e.metric.value,
                    level=e.level,
                    cycle=e.cycle,
                    at=e.at.isoformat(),
                    deadline=e.deadline.isoformat() if e.deadline else None,
                )
            if e.kind in ALERTING:
                receivers: Iterable[str] = e.details.get("notify", ())
            elif e.kind is SlaEventKind.MET_LATE:
                receivers = self._resolved_receivers(f)
            else:
                continue
            payload = sla_payload(f.source, e, self._link(f.source, e.ticket_id))
            for receiver in receivers:
                for target in range(self.notifier.targets(receiver)):
                    items.append(
                        OutboxItem(payload["id"], receiver, payload["kind"], payload, e.at, target)
                    )
        if items and self.store.enqueue(items):
            self._wake_delivery.set()

    def _resolved_receivers(self, f: Fired) -> list[str]:
        e = f.event
        prefix = f"{f.source}/{e.ticket_id}/{e.metric.value}/{e.cycle}/"
        notified = self.store.receivers_of(prefix, ("breach", "escalation"))
        return [
            r
            for r in notified
            if r in self.config.receivers and self.config.receivers[r].send_resolved
        ]

    def _link(self, source: str, ticket_id: str) -> str | None:
        cfg = self.config.sources.get(source)
        template = cfg.ticket_url if cfg else None
        return template.replace("{ticket_id}", ticket_id) if template else None

    def operator_alert(self, kind: str, subject: str, summary: str, since: float) -> None:
        receiver = self.config.daemon.operator
        if receiver is None:
            return
        stamp = datetime.fromtimestamp(since, UTC)
        key = f"operator/{kind}/{subject}/{stamp.isoformat()}"
        payload = operator_payload(key, summary, stamp, subject=subject)
        items = [
            OutboxItem(key, receiver, "operator", payload, stamp, target)
            for target in range(self.notifier.targets(receiver))
        ]
        if items and self.store.enqueue(items):
            self._wake_delivery.set()

    # ------------------------------------------------------------------ delivery

    async def _delivery_loop(self) -> None:
        while True:
            free = MAX_IN_FLIGHT - len(self._in_flight)
            saturated = [r for r, n in self._busy.items() if n >= PER_RECEIVER]
            rows = self.store.claim_due(limit=free, skip_receivers=saturated) if free > 0 else []
            started = 0
            for row in rows:
                if self._busy[row.receiver] >= PER_RECEIVER:
                    self.store.retry_later(row.id, time.time(), "", count=False)
                    continue
                self._busy[row.receiver] += 1
                task = asyncio.create_task(self._send(row))
                self._in_flight.add(task)
                task.add_done_callback(self._delivery_done)
                started += 1
            if started:
                continue
            nxt = self.store.next_attempt_at()
            timeout = None if nxt is None or free <= 0 else max(0.05, nxt - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_delivery.wait(), timeout=timeout)
            self._wake_delivery.clear()

    async def _send(self, row: OutboxRow) -> None:
        try:
            await self._deliver(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never lose the row: it goes back to pending
            self.log.exception("delivery_crashed", id=row.key, receiver=row.receiver)
            self.store.retry_later(row.id, time.time() + 5.0, f"{type(exc).__name__}: {exc}")
        finally:
            self._busy[row.receiver] -= 1

    def _delivery_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake_delivery.set()

    async def _deliver(self, row: OutboxRow, final: bool = False) -> bool:
        """One attempt. ``final`` (the ``once`` command) leaves failures pending for next time."""
        payload = dict(row.payload)
        if row.possible_duplicate:
            payload["possible_duplicate"] = True
        message = self._render(row, payload)
        outcome = await self.notifier.send(row.receiver, row.target, message)
        if outcome.delivered:
            self.store.delivered(row.id)
            self.metrics.escalations_sent.labels(row.receiver, row.kind).inc()
            if row.kind not in ("operator", "report"):
                due = datetime.fromisoformat(row.due_at)
                late = (self.clock.now() - due).total_seconds() / self.clock.speed
                self.metrics.delivery_latency.labels(row.receiver).observe(max(0.0, late))
            if row.receiver in self._failing_receivers:
                self._failing_receivers.discard(row.receiver)
                self.log.info("receiver_recovered", receiver=row.receiver)
            self.log.debug("notification_sent", receiver=row.receiver, id=row.key, kind=row.kind)
            return True
        self.metrics.delivery_attempts_failed.labels(row.receiver).inc()
        attempts = row.attempts + 1
        delivery = self.config.daemon.delivery
        if outcome.retryable and attempts < delivery.max_attempts and not final:
            delay = retry_delay(
                attempts,
                delivery.first_retry.total_seconds(),
                delivery.max_retry.total_seconds(),
                self._rng,
            )
            self.store.retry_later(row.id, time.time() + delay, outcome.error)
            if row.receiver not in self._failing_receivers:
                self._failing_receivers.add(row.receiver)
                self.log.warning(
                    "receiver_failing", receiver=row.receiver, error=outcome.error, retry_in=delay
                )
            return False
        if final and outcome.retryable:
            self.store.retry_later(row.id, time.time(), outcome.error)
            self.log.warning(
                "delivery_failed", receiver=row.receiver, id=row.key, error=outcome.error
            )
            return False
        self.store.failed(row.id, outcome.error)
        self.metrics.escalations_failed.labels(row.receiver, row.kind).inc()
        self.log.error(
            "delivery_gave_up",
            receiver=row.receiver,
            id=row.key,
            attempts=attempts,
            error=outcome.error,
        )
        if row.kind != "operator":
            self.operator_alert(
                "delivery_failed",
                f"{row.receiver}/{row.key}",
                f"could not deliver {row.key} to {row.receiver} after {attempts} attempts: "
                f"{outcome.error}",
                time.time(),
            )
        return False

    def _render(self, row: OutboxRow, payload: dict[str, Any]) -> Notification:
        try:
            return render(payload, self.notifier.template(row.receiver))
        except (KeyError, ValueError, IndexError) as exc:
            self.log.error("template_failed", receiver=row.receiver, error=str(exc))
            return render(payload)

    # ------------------------------------------------------------------ housekeeping

    async def _housekeeping_loop(self) -> None:
        interval = self.systemd.watchdog_interval
        last_ping = 0.0
        last_sweep = time.time()
        while True:
            now = time.time()
            if now - last_sweep >= 3600:
                last_sweep = now
                self._evict_idle()
                self._prune_ledger()
            for name, health in self.health.items():
                fresh = health.fresh(now)
                self.metrics.source_up.labels(name).set(1 if fresh else 0)
                if not fresh and not health.stale:
                    health.stale = True
                    since = health.last_success or health.started
                    self.log.error(
                        "source_stale", source=name, since=since, error=health.last_error
                    )
                    self.operator_alert(
                        "source_stale",
                        name,
                        f"source {name} has had no successful poll since "
                        f"{datetime.fromtimestamp(since, UTC).isoformat()}: {health.last_error}",
                        since,
                    )
                elif fresh and health.stale:
                    health.stale = False
                    self.log.info("source_recovered", source=name)
                    self.operator_alert(
                        "source_recovered", name, f"source {name} is polled again", now
                    )
            for state, n in self.store.outbox_counts().items():
                self.metrics.outbox.labels(state).set(n)
            if interval is not None and now - last_ping >= interval:
                self.systemd.watchdog()
                self.systemd.status(self._status())
                last_ping = now
            await asyncio.sleep(1.0)

    def _evict_idle(self) -> None:
        evicted = self.book.evict_idle(self.clock.now(), self.config.daemon.retention)
        by_source: dict[str, dict[TicketKey, TicketReplay]] = {}
        for key, replay in evicted.items():
            by_source.setdefault(key[0], {})[key] = replay
        for source, replays in by_source.items():
            if source in self.sources and self.sources[source].persistent:
                self._retire(source, replays)
        for key in evicted:
            self.predictor.forget(key)
        if evicted:
            self.log.info("idle_tickets_evicted", count=len(evicted))
        kept_since = self.clock.now() - LEARNT_HALF_LIVES * self.config.predict.half_life
        pruned = self.store.prune_learnt(kept_since)
        if pruned:
            self.log.info("learnt_cycles_pruned", cycles=pruned)

    def _retire(self, source: str, replays: dict[TicketKey, TicketReplay]) -> None:
        """Tickets left memory: delete their events, keep what the predictor learnt from
        them (one transaction)."""
        learnt = [c for replay in replays.values() for c in learnt_cycles(replay)]
        self.store.forget_tickets(source, [ticket for _, ticket in replays], learnt)

    def _remember(self, source: str, skip: Iterable[str]) -> None:
        """Hand the predictor the learnt cycles of the source's retired tickets (not those
        whose events came back: they are observed)."""
        back = set(skip)
        learnt = [c for c in self.store.learnt(source) if c.ticket_id not in back]
        counted = self.predictor.remember(source, learnt)
        if counted:
            self.log.info("learnt_cycles_loaded", source=source, cycles=counted)

    # ------------------------------------------------------------------ prediction

    def _observe(self, touched: dict[TicketKey, TicketReplay], closed: list[TicketKey]) -> None:
        """Tell the predictor what changed; judge the new cycles at once."""
        now_us = to_us(self.clock.now())
        for key, replay in touched.items():
            self.predictor.observe(key, replay, now_us)
        for key in closed:
            self.predictor.forget(key)
        if touched:
            self._route_predictions(self.predictor.judge_fresh(self._margin_us()))
            self._wake_predict.set()  # a new deadline may come before the next tick

    def _margin_us(self) -> int:
        return int(LAST_CALL_MARGIN_S * 1_000_000)

    async def _predict_loop(self) -> None:
        """A tick each ``predict.every``, and a last call a little before each instant a
        running metric's deadline is ``predict.lead`` away."""
        last_tick = self.clock.now()  # start() ran the first tick
        margin = timedelta(seconds=LAST_CALL_MARGIN_S)
        while True:
            until = last_tick + self.config.predict.every
            call = self.predictor.next_call_us
            if call is not None:
                until = min(until, from_us(call) - margin)
            await self.clock.wait(self._wake_predict, until)
            self._wake_predict.clear()
            now = self.clock.now()
            call = self.predictor.next_call_us
            if call is not None and call <= to_us(now + margin):
                self._route_predictions(
                    self.predictor.last_calls(to_us(now), 2 * self._margin_us())
                )
            if now - last_tick >= self.config.predict.every:
                self._predict(now)
                last_tick = now

    def _predict(self, now: datetime) -> None:
        """One tick of the predictor: route its predictions and queue alerts."""
        started = time.monotonic()
        result = self.predictor.tick(to_us(now), queues=True, window_us=self._margin_us())
        self._route_predictions(result.predictions)
        self._route_queue_alerts(result.alerts)
        self.log.debug(
            "prediction_tick",
            rows=len(self.predictor),
            predictions=len(result.predictions),
            seconds=round(time.monotonic() - started, 3),
        )

    def _route_predictions(self, predictions: list[Prediction]) -> None:
        fired = []
        for p in predictions:
            replay = self.book.replays.get(p.key)
            if replay is None:
                continue
            event = replay.predict_breach(p.metric, p.cycle, p.at_us, p.deadline_us, p.details())
            if event is not None:
                fired.append(Fired(p.key[0], event))
        self._route(fired)

    def _route_queue_alerts(self, alerts: list[QueueAlert]) -> None:
        receivers = self.config.predict.queue_alerts
        items: list[OutboxItem] = []
        for alert in alerts:
            self.metrics.queue_alerts.labels(alert.source, alert.queue).inc()
            at = from_us(alert.at_us)
            self.log.info(
                "queue_alert",
                source=alert.source,
                queue=alert.queue,
                will_miss=alert.will_miss,
                summary=alert.summary,
            )
            payload = {
                "id": alert.key,
                "kind": "queue",
                "summary": alert.summary,
                "at": iso(at),
                "source": alert.source,
                "queue": alert.queue,
                "will_miss": alert.will_miss,
            }
            for receiver in receivers:
                for target in range(self.notifier.targets(receiver)):
                    items.append(OutboxItem(alert.key, receiver, "queue", payload, at, target))
        if items and self.store.enqueue(items):
            self._wake_delivery.set()

    def _status(self) -> str:
        stale = [n for n, h in self.health.items() if h.stale]
        text = f"{len(self.book)} open tickets from {len(self.sources)} sources"
        return text + (f"; stale: {', '.join(stale)}" if stale else "")

    # ------------------------------------------------------------------ KPIs and reports

    def _facts_changed(self, touched: dict[TicketKey, TicketReplay], fired: list[Fired]) -> None:
        """Note the tickets whose KPI facts changed: new events (closed tickets included), a
        cycle decided, an escalation level reached. The KPI task writes them soon after."""
        self._changed.update(touched)
        for f in fired:
            e = f.event
            if e.kind not in _KPI_EVENTS:
                continue
            key = (f.source, e.ticket_id)
            if key not in self._changed:
                replay = self.book.replays.get(key)
                if replay is None:
                    continue
                self._changed[key] = replay
            if e.kind is SlaEventKind.ESCALATION:
                first = self._escalated.get(key)
                if first is None or e.at < first:
                    self._escalated[key] = e.at
        if self._changed:
            self._wake_kpis.set()

    def _write_facts(self, keys: Iterable[TicketKey] | None = None, limit: int = 0) -> int:
        """Write the facts of changed tickets to the ledger: those of ``keys``, or the oldest
        changes (at most ``limit``, 0: all). Returns how many tickets were written."""
        if keys is None:
            keys = list(self._changed) if limit <= 0 else list(islice(self._changed, limit))
        by_source: dict[str, list[Any]] = {}
        written = 0
        for key in keys:
            replay = self._changed.pop(key, None)
            escalated = self._escalated.pop(key, None)
            if replay is None or not replay.events:
                continue
            facts = by_source.setdefault(key[0], [])
            facts.append(ticket_facts(replay, escalated))
            written += 1
            if len(facts) >= FACTS_CHUNK:  # bounded memory when many tickets change at once
                self.ledger.record(key[0], facts)
                facts.clear()
        for source, facts in by_source.items():
            self.ledger.record(source, facts)
        return written

    async def _kpi_loop(self) -> None:
        """Write changed facts in small steps, so 100k tickets loading at once never hold up
        the timers."""
        while True:
            await self._wake_kpis.wait()
            self._wake_kpis.clear()
            started, written = time.monotonic(), 0
            try:
                while self._changed:
                    written += self._write_facts(limit=FACTS_CHUNK)
                    await asyncio.sleep(0)
                self._changed, self._escalated = {}, {}  # an emptied dict keeps its size
            except (sqlite3.Error, OSError) as exc:  # the state file: try again shortly
                self.log.error("kpi_facts_failed", error=str(exc), waiting=len(self._changed))
                await asyncio.sleep(RETRY_AFTER_ERROR)
                self._wake_kpis.set()
                continue
            if written >= FACTS_CHUNK:
                seconds = round(time.monotonic() - started, 2)
                self.log.info("kpi_facts_written", tickets=written, seconds=seconds)

    def _prune_ledger(self) -> None:
        reach = max([self.config.daemon.kpi_window, *(r.period for r in self.config.reports)])
        forgotten = self.ledger.prune(self.clock.now(), reach)
        if forgotten:
            self.log.info("kpi_facts_pruned", tickets=forgotten)

    def _kpi_figures(self) -> KpiReport | None:
        """The KPIs of the rolling window ending now, recomputed at most every KPI_CACHE
        seconds of the daemon's clock."""
        now = self.clock.now()
        age = (now - self._kpis.end).total_seconds() if self._kpis is not None else None
        if age is None or not 0 <= age < KPI_CACHE:
            zone = self.config.report_timezone(None)
            try:
                self._kpis = self.ledger.report(now - self.config.daemon.kpi_window, now, zone)
            except sqlite3.Error as exc:  # keep serving the last figures; say why
                self.log.error("kpi_count_failed", error=str(exc))
        return self._kpis

    async def _report_loop(self) -> None:
        while True:
            try:
                nxt = self._run_reports()
            except (sqlite3.Error, OSError) as exc:  # the state file: try again shortly
                self.log.error("report_failed", error=str(exc))
                nxt = self.clock.now() + timedelta(seconds=RETRY_AFTER_ERROR)
            await self.clock.wait(self._wake_reports, nxt)
            self._wake_reports.clear()

    def _run_reports(self) -> datetime | None:
        """Queue the reports that are due; return the next due instant of any report.

        Each scheduled instant is handled once (the ledger remembers the last one): queued if
        it is at most ``daemon.catch_up`` old, otherwise counted and logged as skipped — after
        downtime only the latest missed instant can still be sent.
        """
        now = self.clock.now()
        catch_up = self.config.daemon.catch_up
        nxt: datetime | None = None
        if self.config.reports and self._changed:
            self._write_facts()  # a report counts every change so far
        for cfg in self.config.reports:
            zone = ZoneInfo(self.config.report_timezone(cfg.calendar))
            every = Every.parse(cfg.every)
            last_us = self.ledger.last_due(cfg.key)
            if last_us is None:  # a new report: only an instant within catch_up is owed
                due_now = [every.latest(now, zone)]
                missed = [] if now - due_now[0] <= catch_up else due_now
            else:
                due_now, t = [], from_us(last_us)
                while len(due_now) < MAX_MISSED_REPORTS and (t := every.following(t, zone)) <= now:
                    due_now.append(t)
                missed = [t for t in due_now if now - t > catch_up or t != due_now[-1]]
            for at in missed:
                if last_us is not None:
                    self.metrics.reports_skipped.labels(cfg.key).inc()
                    self.log.warning("report_skipped", report=cfg.key, due=iso(at))
            if due_now and due_now[-1] not in missed:
                self._queue_report(cfg, due_now[-1], zone)
            if due_now:
                self.ledger.set_last_due(cfg.key, to_us(due_now[-1]))
            following = every.following(now, zone)
            nxt = following if nxt is None else min(nxt, following)
        return nxt

    def _queue_report(self, cfg: ReportConfig, due: datetime, zone: ZoneInfo) -> None:
        # The period starts at the same wall-clock time: "mon 09:00" covers Monday 09:00 to
        # Monday 09:00 even across a DST change.
        wall = due.astimezone(zone).replace(tzinfo=None) - cfg.period
        start = wall.replace(tzinfo=zone).astimezone(UTC)
        report = self.ledger.report(start, due, zone.key)
        key = f"report/{cfg.key}/{iso(due)}"
        title = f"Support KPIs {cfg.key}: {report.start:%Y-%m-%d} to {report.end:%Y-%m-%d}"
        bodies: dict[str, str] = {}
        items: list[OutboxItem] = []
        for receiver in cfg.receiver:
            for target in range(self.notifier.targets(receiver)):
                fmt = cfg.format
                if fmt == "auto":
                    fmt = "html" if self.notifier.prefers_html(receiver, target) else "text"
                if fmt not in bodies:
                    bodies[fmt] = as_html(report) if fmt == "html" else as_table(report)
                payload = {
                    "id": key,
                    "kind": "report",
                    "title": title,
                    "body": bodies[fmt],
                    "format": fmt,
                    "at": iso(due),
                }
                items.append(OutboxItem(key, receiver, "report", payload, due, target))
        self.metrics.reports_generated.labels(cfg.key).inc()
        self.log.info("report_queued", report=cfg.key, due=iso(due), receivers=cfg.receiver)
        if items and self.store.enqueue(items):
            self._wake_delivery.set()

    # ------------------------------------------------------------------ metrics on scrape

    def _scrape_cache(self) -> tuple[list[Any], list[Any]]:
        if self._scrape is None or time.monotonic() - self._scrape[0] > SCRAPE_CACHE:
            tickets: Counter[tuple[str, str, str]] = Counter()
            for (source, _), replay in self.book.replays.items():
                policy = replay.policy.name if replay.policy else ""
                tickets[(source, replay.fields.get("queue", ""), policy)] += 1
            clocks = OpenClocks.of(self.book.replays.values())
            result = evaluate_open(clocks, to_us(self.clock.now()))
            names = {0: "running", 1: "paused", 2: "breached"}
            policies = {
                r.ticket_id: r.policy.name if r.policy else "" for r in self.book.replays.values()
            }
            states: Counter[tuple[str, str, str]] = Counter()
            for tid, metric, state in zip(
                clocks.ticket_ids, clocks.metrics, result.state, strict=True
            ):
                states[(policies.get(tid, ""), metric.value, names[int(state)])] += 1
            self._scrape = (time.monotonic(), list(tickets.items()), list(states.items()))
        return self._scrape[1], self._scrape[2]

    def _open_ticket_counts(self) -> list[Any]:
        return self._scrape_cache()[0]

    def _clock_counts(self) -> list[Any]:
        return self._scrape_cache()[1]

    # ------------------------------------------------------------------ HTTP

    async def _start_http(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._http = web.AppRunner(app, access_log=None)
        await self._http.setup()
        host, _, port = self.config.daemon.http.listen.rpartition(":")
        site = web.TCPSite(self._http, host.strip("[]"), int(port))
        try:
            await site.start()
        except OSError as exc:
            self.log.error(
                "http_listen_failed", listen=self.config.daemon.http.listen, error=str(exc)
            )
            await self._http.cleanup()
            self._http = None

    async def _healthz(self, request: web.Request) -> web.Response:
        now = time.time()
        report = {
            name: {
                "fresh": h.fresh(now),
                "last_success": (
                    datetime.fromtimestamp(h.last_success, UTC).isoformat()
                    if h.last_success
                    else None
                ),
                "error": h.last_error if not h.fresh(now) else "",
            }
            for name, h in self.health.items()
        }
        ok = all(r["fresh"] for r in report.values())
        body = {"status": "ok" if ok else "stale", "sources": report, "tickets": len(self.book)}
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        data = await asyncio.to_thread(generate_latest, self.metrics.registry)
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _has_native_due(fields: Any) -> bool:
    return any(k.startswith(NATIVE_DUE_PREFIX) for k in fields)
