"""The Deliverer: claim due outbox rows, render, send, record; retry or give up.

Contract, in the order the code follows it:

* a row is claimed (``sending``) before its attempt and is ``delivered`` only once the
  receiver accepted it; a crash mid-call leaves it ``sending``, which the next start sends
  again flagged as a possible duplicate;
* at most ``MAX_IN_FLIGHT`` attempts run at once and at most ``PER_RECEIVER`` per receiver,
  so a slow or hanging receiver cannot hold up the others;
* a failure that may pass is tried again after ``retry_delay`` (``daemon.delivery``), up to
  ``max_attempts`` — flagged as a possible duplicate when the receiver did not answer in time
  and may have taken it; a permanent one, or the last attempt, marks the row ``failed`` and tells
  the operator (unless the row was itself an operator message);
* a receiver's template that cannot be rendered falls back to the default message;
* an outcome the state file refuses (locked, full) is kept in memory and recorded before
  anything new is claimed;
* retry times are wall-clock instants (they survive restarts); one further ahead than the
  longest retry wait is due at once, so a backward step of the system clock delays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from sladaemon.clock import Clock
from sladaemon.config.models import DeliveryConfig
from sladaemon.escalate.retry import retry_delay
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import NotificationKind
from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.notify.message import Notification, render
from sladaemon.notify.outcome import DeliveryOutcome
from sladaemon.store.sqlite import OutboxRow, StateStore

MAX_IN_FLIGHT = 32
PER_RECEIVER = 4  # in flight per receiver: a slow or hanging one cannot starve the others
CRASH_RETRY = 5.0  # seconds before a row whose attempt crashed is tried again
RECORD_RETRY = 1.0  # seconds between tries to record outcomes the state file refused
MIN_WAIT = 0.05  # seconds the loop sleeps at least before looking at the outbox again
_NOT_TIMED = (NotificationKind.OPERATOR.value, NotificationKind.REPORT.value)

# kind, subject, summary, since (Unix time): see Router.operator
OperatorAlert = Callable[[str, str, str, float], None]


@dataclass(eq=False)
class Deliverer:
    store: StateStore
    notifier: AppriseNotifier
    settings: DeliveryConfig
    wake: asyncio.Event  # set when rows may have fallen due (the outbox's ``posted``)
    clock: Clock
    metrics: DaemonMetrics
    operator_alert: OperatorAlert
    in_flight: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _busy: Counter[str] = field(default_factory=Counter, init=False)  # in flight per receiver
    _failing: set[str] = field(default_factory=set, init=False)  # last attempt failed
    _unrecorded: list[Callable[[], None]] = field(default_factory=list, init=False)
    _record_failing: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.log = get_logger("sladaemon.deliver")

    def resume(self) -> None:
        """At start: sends a crash interrupted go back to pending (flagged as possible
        duplicates); receiver URLs apprise cannot use are logged and counted."""
        released = self.store.release_unfinished()
        if released:
            self.log.warning("outbox_resumed", interrupted=released)
        for name, target, problem in self.notifier.invalid_targets():
            self.log.error("receiver_url_invalid", receiver=name, target=target, reason=problem)
            self.metrics.invalid_targets.labels(name).inc()

    def use(self, notifier: AppriseNotifier, settings: DeliveryConfig) -> None:
        """Send through a reloaded config's receivers from now on."""
        self.notifier, self.settings = notifier, settings

    async def run(self) -> None:
        """Start attempts as rows fall due, until cancelled."""
        while True:
            if not self._record_pending():  # the state file refuses writes: wait, then retry
                await asyncio.sleep(RECORD_RETRY)
                continue
            free = MAX_IN_FLIGHT - len(self.in_flight)
            if free > 0 and self._start(free):
                continue
            nxt = self.store.next_attempt_at()
            wait = None if nxt is None else min(nxt - time.time(), self._longest_wait())
            timeout = None if wait is None or free <= 0 else max(MIN_WAIT, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=timeout)
            self.wake.clear()

    async def drain(self) -> tuple[int, int]:
        """One attempt at every row due now (``once``): failures that may pass stay pending
        for the next run. Returns (sent, failed)."""
        sent = failed = 0
        started = time.time()  # rows put back during this pass wait for the next run
        while rows := self.store.claim_due(now=started, limit=MAX_IN_FLIGHT):
            results = await asyncio.gather(*(self.attempt(row, final=True) for row in rows))
            sent += sum(results)
            failed += len(results) - sum(results)
        return sent, failed

    async def stop(self, grace: float) -> None:
        """Give attempts in flight ``grace`` seconds to finish; cancel the rest (their rows
        stay ``sending`` and are sent again, flagged, after the restart)."""
        if not self.in_flight:
            return
        await asyncio.wait(self.in_flight, timeout=grace)
        for task in self.in_flight:
            task.cancel()
        await asyncio.gather(*self.in_flight, return_exceptions=True)

    def _longest_wait(self) -> float:
        """No retry waits longer than this; one scheduled further ahead was scheduled before
        the system clock stepped back, and is due now."""
        return self.settings.max_retry.total_seconds() + CRASH_RETRY

    def _record(self, update: Callable[[], None]) -> None:
        """Apply an outcome to the outbox; one the state file refuses is kept, in order, and
        applied before anything new is claimed (a row is never sent twice for it)."""
        self._unrecorded.append(update)
        self._record_pending()

    def _record_pending(self) -> bool:
        while self._unrecorded:
            try:
                self._unrecorded[0]()
            except (sqlite3.Error, OSError) as exc:
                self.metrics.state_write_errors.labels("delivery").inc()
                if not self._record_failing:
                    self._record_failing = True
                    self.log.error(
                        "delivery_record_failed", error=str(exc), waiting=len(self._unrecorded)
                    )
                return False
            self._unrecorded.pop(0)
        if self._record_failing:
            self._record_failing = False
            self.log.info("delivery_record_recovered")
        return True

    def _start(self, free: int) -> int:
        """Claim up to ``free`` due rows of receivers with room; returns how many started."""
        saturated = [r for r, n in self._busy.items() if n >= PER_RECEIVER]
        started = 0
        rows = self.store.claim_due(
            limit=free, skip_receivers=saturated, longest_wait=self._longest_wait()
        )
        for row in rows:
            if self._busy[row.receiver] >= PER_RECEIVER:
                self._record(partial(self.store.retry_later, row.id, time.time(), "", count=False))
                continue
            self._busy[row.receiver] += 1
            task = asyncio.create_task(self._send(row))
            self.in_flight.add(task)
            task.add_done_callback(self._done)
            started += 1
        return started

    async def _send(self, row: OutboxRow) -> None:
        try:
            await self.attempt(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never lose the row: it goes back to pending
            self.log.exception("delivery_crashed", id=row.key, receiver=row.receiver)
            error = f"{type(exc).__name__}: {exc}"
            self._record(partial(self.store.retry_later, row.id, time.time() + CRASH_RETRY, error))
        finally:
            self._busy[row.receiver] -= 1

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self.wake.set()

    async def attempt(self, row: OutboxRow, final: bool = False) -> bool:
        """One attempt; True when delivered. ``final`` (``once``) leaves failures that may
        pass pending for the next run."""
        outcome = await self.notifier.send(row.receiver, row.target, self._render(row))
        if outcome.delivered:
            self._delivered(row)
            return True
        self.metrics.delivery_attempts_failed.labels(row.receiver).inc()
        attempts = row.attempts + 1
        if outcome.retryable and final:
            self._record(
                partial(
                    self.store.retry_later,
                    row.id,
                    time.time(),
                    outcome.error,
                    maybe_sent=outcome.maybe_sent,
                )
            )
            self.log.warning(
                "delivery_failed", receiver=row.receiver, id=row.key, error=outcome.error
            )
        elif outcome.retryable and attempts < self.settings.max_attempts:
            self._retry(row, attempts, outcome)
        else:
            self._give_up(row, attempts, outcome)
        return False

    def _delivered(self, row: OutboxRow) -> None:
        self._record(partial(self.store.delivered, row.id))
        self.metrics.escalations_sent.labels(row.receiver, row.kind).inc()
        if row.kind not in _NOT_TIMED:
            due = datetime.fromisoformat(row.due_at)
            late = (self.clock.now() - due).total_seconds() / self.clock.speed
            self.metrics.delivery_latency.labels(row.receiver).observe(max(0.0, late))
        if row.receiver in self._failing:
            self._failing.discard(row.receiver)
            self.log.info("receiver_recovered", receiver=row.receiver)
        self.log.debug("notification_sent", receiver=row.receiver, id=row.key, kind=row.kind)

    def _retry(self, row: OutboxRow, attempts: int, outcome: DeliveryOutcome) -> None:
        delay = max(
            outcome.retry_after,  # the receiver's own Retry-After, when it gave one
            retry_delay(
                attempts,
                self.settings.first_retry.total_seconds(),
                self.settings.max_retry.total_seconds(),
            ),
        )
        self._record(
            partial(
                self.store.retry_later,
                row.id,
                time.time() + delay,
                outcome.error,
                maybe_sent=outcome.maybe_sent,
            )
        )
        if row.receiver not in self._failing:
            self._failing.add(row.receiver)
            self.log.warning(
                "receiver_failing", receiver=row.receiver, error=outcome.error, retry_in=delay
            )

    def _give_up(self, row: OutboxRow, attempts: int, outcome: DeliveryOutcome) -> None:
        self._record(partial(self.store.failed, row.id, outcome.error))
        self.metrics.escalations_failed.labels(row.receiver, row.kind).inc()
        self.log.error(
            "delivery_gave_up",
            receiver=row.receiver,
            id=row.key,
            attempts=attempts,
            error=outcome.error,
        )
        if row.kind != NotificationKind.OPERATOR.value:
            self.operator_alert(
                "delivery_failed",
                f"{row.receiver}/{row.key}",
                f"could not deliver {row.key} to {row.receiver} after {attempts} attempts: "
                f"{outcome.error}",
                time.time(),
            )

    def _render(self, row: OutboxRow) -> Notification:
        payload = dict(row.payload)
        if row.possible_duplicate:
            payload["possible_duplicate"] = True
        try:
            return render(payload, self.notifier.template(row.receiver))
        except (KeyError, ValueError, IndexError) as exc:
            self.log.error("template_failed", receiver=row.receiver, error=str(exc))
            return render(payload)
