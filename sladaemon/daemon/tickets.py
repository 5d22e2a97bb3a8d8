"""The TicketTracker: the ticket book, its events in the state file, and the timer loop.

* ``ingest`` stores a poll's events with the source's cursor (one transaction), replays them
  into the book and returns the ``Changes``: SLA events fired, tickets touched, tickets
  closed. Closed tickets leave the state file, keeping what the predictor learnt from them.
* ``run_timers`` sleeps until the earliest ladder instant of any ticket and hands what fires
  to ``on_fired``; ``wake`` is set whenever instants may have moved.
* The helpdesk's own deadlines (``due:`` fields) are compared with ours after each ingest:
  only its newest values (those the ingest delivered that are still the ticket's), each with
  the clock it stands for (``sla.native``), and never with a clock that had stopped before
  the ingest's events (a met first response re-evaluated after a queue move is ours alone). A
  value kept from an earlier phase, say a resolution deadline from before the customer wrote
  again, is not compared again. A difference beyond the source's tolerance is logged and
  counted once per value. The comparison only reads the replays: it never fires or
  schedules anything.
* Input the book quarantines (an event dated outside 1970–2199, a ticket whose replay raises)
  is logged (``input_quarantined``), counted and noted in the state file, where
  ``explain --source`` shows why; the rest goes on.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sladaemon.calendar import to_us
from sladaemon.clock import Clock, run_at_instants
from sladaemon.config.models import SourceConfig
from sladaemon.escalate.book import Fired, IngestResult, TicketBook
from sladaemon.escalate.route import ALERTING
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import TicketKey, native_due_metrics
from sladaemon.predict.learnt import LearntCycle, learnt_cycles
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.native import native_deadlines
from sladaemon.sla.policy import SlaPolicy
from sladaemon.sources.base import PollResult
from sladaemon.store.sqlite import StateStore

DEFAULT_TOLERANCE = timedelta(seconds=60)  # for sources that set none
ORPHANS_LOGGED = 10  # ticket ids named in an events_without_created warning


@dataclass
class Changes:
    """What one step did to the book; the App hands it to routing, KPIs and prediction."""

    fired: list[Fired] = field(default_factory=list)
    touched: dict[TicketKey, TicketReplay] = field(default_factory=dict)  # closed ones too
    closed: list[TicketKey] = field(default_factory=list)  # left the book


class TicketTracker:
    def __init__(
        self, policies: Sequence[SlaPolicy], store: StateStore, clock: Clock, metrics: DaemonMetrics
    ) -> None:
        self.book = TicketBook(policies)
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.wake = asyncio.Event()
        self.log = get_logger("sladaemon.tickets")
        self._mismatches: dict[tuple[str, str, str], str] = {}  # reported once per value
        self._reported: set[TicketKey] = set()  # quarantined tickets already reported

    def __len__(self) -> int:
        return len(self.book)

    @property
    def replays(self) -> dict[TicketKey, TicketReplay]:
        return self.book.replays

    def load(self, source: str) -> tuple[Changes, set[str]]:
        """Replay the events a persistent source stored in an earlier run; returns the
        changes and the tickets they belong to."""
        previous = self.store.load_events(source)
        events = [e for evs in previous.values() for e in evs]
        changes = self._changes(source, self.book.ingest(source, events)) if events else Changes()
        return changes, set(previous)

    def ingest(
        self, source: str, result: PollResult, cfg: SourceConfig, persistent: bool
    ) -> Changes:
        """A poll's events (and cursor, for a persistent source) stored and replayed. A source
        that is not persistent stores its events too, for ``explain``: they are dropped when
        the daemon starts again, never replayed."""
        events = result.events
        cursor = result.cursor if persistent else None
        if events or cursor is not None:
            self.store.save_poll(source, events, cursor)
        ingested = self.book.ingest(source, events)
        if ingested.orphans:
            self.log.warning(
                "events_without_created",
                source=source,
                count=len(ingested.orphans),
                tickets=sorted({e.ticket_id for e in ingested.orphans})[:ORPHANS_LOGGED],
            )
        if ingested.closed:
            self.retire(source, {key: ingested.touched[key] for key in ingested.closed})
        changes = self._changes(source, ingested)
        newest: dict[str, dict[str, str]] = {}  # ticket -> due field -> its last value
        earliest: dict[str, datetime] = {}  # ticket -> its first event in this poll
        for event in events:
            first = earliest.setdefault(event.ticket_id, event.at)
            earliest[event.ticket_id] = min(first, event.at)
            for name, value in event.fields.items():
                if native_due_metrics(name):
                    newest.setdefault(event.ticket_id, {})[name] = value
        tolerance: timedelta = getattr(cfg, "tolerance", None) or DEFAULT_TOLERANCE
        self._cross_check(source, newest, earliest, tolerance)
        return changes

    def fire_due(self) -> list[Fired]:
        """SLA events whose instant has come; their lateness is measured here."""
        now = self.clock.now()
        fired = self.book.fire_due(to_us(now))
        self._report_quarantine()
        for f in fired:
            if f.event.kind in ALERTING:
                late = (now - f.event.at).total_seconds() / self.clock.speed
                self.metrics.lateness.observe(max(0.0, late))
        return fired

    async def run_timers(self, on_fired: Callable[[list[Fired]], None]) -> None:
        await run_at_instants(
            self.clock, self.wake, self.book.timers.next_at, lambda: on_fired(self.fire_due())
        )

    def replace_policies(self, policies: Sequence[SlaPolicy]) -> Changes:
        """Every ticket re-evaluated under a reloaded config's policies."""
        fired = self.book.replace_policies(policies)
        self._report_quarantine()
        self.wake.set()
        return Changes(fired=fired, touched=dict(self.book.replays))

    def evict_idle(
        self, now: datetime, retention: timedelta, persistent: set[str]
    ) -> list[TicketKey]:
        """Solved tickets idle for ``retention`` leave memory (and, for persistent sources, the
        state file). Returns their keys."""
        evicted = self.book.evict_idle(now, retention)
        by_source: dict[str, dict[TicketKey, TicketReplay]] = {}
        for key, replay in evicted.items():
            by_source.setdefault(key[0], {})[key] = replay
        for source, replays in by_source.items():
            if source in persistent:
                self.retire(source, replays)
        if evicted:
            self.log.info("idle_tickets_evicted", count=len(evicted))
        return list(evicted)

    def retire(self, source: str, replays: Mapping[TicketKey, TicketReplay]) -> None:
        """Delete tickets' events, keeping what the predictor learnt from them (one
        transaction)."""
        learnt = [c for replay in replays.values() for c in learnt_cycles(replay)]
        try:
            self.store.forget_tickets(source, [ticket for _, ticket in replays], learnt)
        except (sqlite3.Error, OSError) as exc:  # their events stay; retired at a later close
            self.metrics.state_write_errors.labels("retire").inc()
            self.log.error("retire_failed", source=source, tickets=len(replays), error=str(exc))

    def prune_learnt(self, before: datetime) -> None:
        """Forget learnt cycles that ended (or, never met, started) before ``before``."""
        pruned = self.store.prune_learnt(before)
        if pruned:
            self.log.info("learnt_cycles_pruned", cycles=pruned)

    def learnt(self, source: str, skip: Iterable[str]) -> list[LearntCycle]:
        """The learnt cycles of the source's retired tickets, except those of ``skip`` (their
        events came back and are replayed)."""
        back = set(skip)
        return [c for c in self.store.learnt(source) if c.ticket_id not in back]

    def forget_source(self, source: str) -> None:
        self.book.forget_source(source)

    def _changes(self, source: str, ingested: IngestResult) -> Changes:
        self.wake.set()  # a ticket's next instant may have moved
        if ingested.quarantined:
            self._set_aside(source, ingested.quarantined)
        return Changes(ingested.fired, ingested.touched, ingested.closed)

    def _report_quarantine(self) -> None:
        """Tickets the book set aside while firing or re-evaluating."""
        by_source: dict[str, list[tuple[str, str]]] = {}
        for key, reason in self.book.quarantined.items():
            if key not in self._reported:
                by_source.setdefault(key[0], []).append((key[1], reason))
        for source, entries in by_source.items():
            self._set_aside(source, entries)

    def _set_aside(self, source: str, entries: list[tuple[str, str]]) -> None:
        """Quarantined input: logged and counted, and noted in the state file for explain."""
        self._reported.update((source, ticket) for ticket, _ in entries)
        try:
            new = self.store.quarantine(source, entries)
        except (sqlite3.Error, OSError) as exc:
            self.log.error("quarantine_write_failed", source=source, error=str(exc))
            new = len(entries)
        self.metrics.quarantined.labels(source).inc(len(entries))
        if new:
            for ticket, reason in entries[:ORPHANS_LOGGED]:
                self.log.error("input_quarantined", source=source, ticket=ticket, reason=reason)

    def _cross_check(
        self,
        source: str,
        newest: Mapping[str, Mapping[str, str]],
        earliest: Mapping[str, datetime],
        tolerance: timedelta,
    ) -> None:
        """Compare the due fields each ticket was just given, where still its own, with the
        clocks that were running when its events began."""
        limit = tolerance.total_seconds()
        for ticket_id, delivered in newest.items():
            replay = self.book.replays.get((source, ticket_id))
            if replay is None:
                continue
            current = {k: v for k, v in delivered.items() if v and replay.fields.get(k) == v}
            deadlines = replay.deadlines(ended_since=earliest[ticket_id])
            for metric, native_text in native_deadlines(current, deadlines).items():
                ours = deadlines.get(metric)
                if ours is None:
                    continue
                try:
                    native = datetime.fromisoformat(native_text.replace("Z", "+00:00"))
                except ValueError:
                    continue
                difference = (native - ours).total_seconds()
                key = (source, ticket_id, metric.value)
                if abs(difference) > limit and self._mismatches.get(key) != native_text:
                    self._mismatches[key] = native_text
                    self.metrics.deadline_mismatches.labels(source, metric.value).inc()
                    self.log.warning(
                        "deadline_mismatch",
                        source=source,
                        ticket=ticket_id,
                        metric=metric.value,
                        ours=ours.isoformat(),
                        helpdesk=native.isoformat(),
                        difference_s=difference,
                    )
