"""The outbox: the one way anything is queued for delivery.

``Outbox.post(key, kind, payload, due, receivers)`` writes one row per URL of each receiver
(every URL is its own delivery, so a retry never repeats a message to a URL that took it)
before any attempt, and wakes the Deliverer when something new is due. ``key`` is the
notification's identity: posting a key again for the same URL is a no-op, so re-polls,
reloads and restarts never send twice. The key of an SLA message is
``source/ticket/metric/cycle/level`` (``sla_key``); ``cycle_prefix`` is the shared start of the
keys of one metric's cycle, by which ``receivers_told`` finds who heard of its breach.

A state file that refuses the write (locked, full) never loses a post: the rows wait in memory,
in order, and ``flush`` (on the next post, and every second from housekeeping) writes them once
the file takes them again.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import Metric, NotificationKind, SlaEvent
from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.store.sqlite import OutboxItem, StateStore

# A payload that depends on the URL it goes to (a report in HTML for email, text elsewhere):
# (receiver, index of the URL) -> payload.
PayloadFor = Callable[[str, int], Mapping[str, Any]]


def cycle_prefix(source: str, ticket_id: str, metric: Metric, cycle: int) -> str:
    """The start of every key about one cycle of one ticket metric."""
    return f"{source}/{ticket_id}/{metric.value}/{cycle}/"


def sla_key(source: str, event: SlaEvent) -> str:
    """The identity of a message about an SLA event: never delivered twice to one URL."""
    level = event.level or event.kind.value
    return cycle_prefix(source, event.ticket_id, event.metric, event.cycle) + level


class Outbox:
    def __init__(
        self, store: StateStore, notifier: AppriseNotifier, metrics: DaemonMetrics
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.metrics = metrics
        self.posted = asyncio.Event()  # set when new rows were written; the Deliverer waits
        self.log = get_logger("sladaemon.outbox")
        self._batch: list[OutboxItem] | None = None
        self._unwritten: list[OutboxItem] = []  # the state file refused them: written later
        self._failing = False

    def use(self, notifier: AppriseNotifier) -> None:
        """Fan out over the receivers of a reloaded config from now on."""
        self.notifier = notifier

    def post(
        self,
        key: str,
        kind: NotificationKind,
        payload: Mapping[str, Any] | PayloadFor,
        due: datetime,
        receivers: Iterable[str],
    ) -> None:
        """Queue ``payload`` for every URL of every receiver (written at once, or when the
        enclosing ``batch`` ends)."""
        items = [
            OutboxItem(
                key,
                receiver,
                kind.value,
                payload(receiver, target) if callable(payload) else payload,
                due,
                target,
            )
            for receiver in receivers
            for target in range(self.notifier.targets(receiver))
        ]
        if self._batch is not None:
            self._batch.extend(items)
        elif items:
            self._write(items)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Write every post made inside in one transaction (a poll's worth of SLA events)."""
        if self._batch is not None:  # already batching: the outer batch writes
            yield
            return
        self._batch = []
        try:
            yield
            items = self._batch
        finally:
            self._batch = None
        if items:
            self._write(items)

    def _write(self, items: list[OutboxItem]) -> None:
        self._unwritten.extend(items)
        self.flush()

    def flush(self) -> bool:
        """Write what could not be written before (a locked or full state file); True when
        nothing is left waiting. Rows wait in order, in memory, until the file takes them."""
        if not self._unwritten:
            return True
        try:
            new = self.store.enqueue(self._unwritten)
        except (sqlite3.Error, OSError) as exc:
            self.metrics.state_write_errors.labels("outbox").inc()
            if not self._failing:
                self._failing = True
                self.log.error("outbox_write_failed", error=str(exc), waiting=len(self._unwritten))
            return False
        if self._failing:
            self._failing = False
            self.log.info("outbox_write_recovered", written=len(self._unwritten))
        self._unwritten = []
        if new:
            self.posted.set()
        return True

    def receivers_told(
        self, source: str, ticket_id: str, metric: Metric, cycle: int, kinds: Iterable[str]
    ) -> list[str]:
        """Receivers sent (or being sent) one of ``kinds`` about this cycle."""
        return self.store.receivers_of(cycle_prefix(source, ticket_id, metric, cycle), kinds)

    def receivers_told_key(self, key_prefix: str, kinds: Iterable[str]) -> list[str]:
        """Receivers sent (or being sent) one of ``kinds`` under keys starting ``key_prefix``."""
        return self.store.receivers_of(key_prefix, kinds)
