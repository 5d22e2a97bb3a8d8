"""The Deliverer marks an outbox row delivered only once the receiver accepted it: a send that
crashes, hangs or is refused leaves the row owed, in the real SQLite state file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from sladaemon.clock import FakeClock
from sladaemon.config.models import DeliveryConfig
from sladaemon.escalate.deliver import CRASH_RETRY, MAX_IN_FLIGHT, PER_RECEIVER, Deliverer
from sladaemon.metrics import DaemonMetrics
from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.notify.message import Notification, render
from sladaemon.notify.outcome import DeliveryOutcome
from sladaemon.store.sqlite import OutboxItem, OutboxRow, StateStore

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
KEY = "desk/T1/first_response/0/breach"
PAYLOAD = {"id": KEY, "kind": "breach", "ticket_id": "T1", "metric": "first_response"}
WAIT_LIMIT = 10.0  # seconds a test waits for the deliverer before it fails

SendScript = Callable[[str, int, Notification], Awaitable[DeliveryOutcome]]
Alert = tuple[str, str, str, float]
LogLine = MutableMapping[str, Any]


class ScriptedNotifier(AppriseNotifier):
    """A notifier without receivers whose ``send`` follows the test's script; receivers'
    templates and unusable URLs are the test's to set."""

    def __init__(self, script: SendScript) -> None:
        super().__init__({})
        self.script = script
        self.sends = 0
        self.messages: list[tuple[str, Notification]] = []  # (receiver, message) as sent
        self.templates: dict[str, str] = {}
        self.invalid: list[tuple[str, int, str]] = []

    async def send(self, receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        self.sends += 1
        self.messages.append((receiver, message))
        return await self.script(receiver, target, message)

    def template(self, receiver: str) -> str | None:
        return self.templates.get(receiver)

    def invalid_targets(self) -> list[tuple[str, int, str]]:
        return self.invalid


@dataclass
class Bench:
    store: StateStore
    path: Path
    alerts: list[Alert] = field(default_factory=list)  # what the operator was told

    def deliverer(
        self,
        script: SendScript,
        settings: DeliveryConfig | None = None,
        clock: FakeClock | None = None,
    ) -> Deliverer:
        return Deliverer(
            self.store,
            ScriptedNotifier(script),
            settings or DeliveryConfig(),
            asyncio.Event(),
            clock or FakeClock(START),
            DaemonMetrics(),
            lambda *alert: self.alerts.append(alert),
        )

    def post(
        self, key: str = KEY, receiver: str = "team", kind: str = "breach", due: datetime = START
    ) -> None:
        payload = PAYLOAD | {"id": key, "kind": kind}
        self.store.enqueue([OutboxItem(key, receiver, kind, payload, due)])

    def row(self, key: str = KEY, receiver: str = "team") -> dict[str, Any]:
        """One outbox row as the state file holds it (read beside a lock, WAL allows it)."""
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            db.row_factory = sqlite3.Row
            (row,) = db.execute(
                "SELECT * FROM outbox WHERE key = ? AND receiver = ?", (key, receiver)
            ).fetchall()
            return dict(row)

    def schedule(self, key: str, at: float) -> None:
        """Move a row's next attempt to ``at`` (Unix time)."""
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute("UPDATE outbox SET next_attempt_at = ? WHERE key = ?", (at, key))

    def counts(self) -> dict[str, int]:
        """Outbox rows by state, read without writing (the state file may be locked)."""
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            return dict(db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state"))

    def claim(self) -> OutboxRow:
        (row,) = self.store.claim_due()
        return row

    def states(self) -> dict[str, int]:
        """Outbox rows by state, read through a connection of its own (what is on disk)."""
        observer = StateStore(self.path)
        try:
            return observer.outbox_counts()
        finally:
            observer.close()

    def delivered_at(self) -> list[float | None]:
        """Each row's delivery stamp, as the state file holds it."""
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            return [at for (at,) in db.execute("SELECT delivered_at FROM outbox ORDER BY id")]


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    store = StateStore(tmp_path / "state.sqlite")
    yield Bench(store, tmp_path / "state.sqlite")
    store.close()


async def eventually(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT_LIMIT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {WAIT_LIMIT}s: {what}")


async def test_a_row_is_not_marked_delivered_while_its_send_is_under_way(bench: Bench) -> None:
    seen_during_send: list[dict[str, int]] = []

    async def accept(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        seen_during_send.append(bench.states())
        return DeliveryOutcome(True)

    bench.post()
    assert await bench.deliverer(accept).drain() == (1, 0)
    assert seen_during_send == [{"sending": 1}], "marked delivered before the receiver answered"
    assert bench.states() == {"delivered": 1}


async def test_a_send_that_crashes_leaves_the_row_owed(bench: Bench) -> None:
    async def crash(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        raise RuntimeError("the plugin crashed")

    bench.post()
    deliverer = bench.deliverer(crash)
    with pytest.raises(RuntimeError, match="plugin crashed"):
        await deliverer.attempt(bench.claim())
    assert bench.states() == {"sending": 1}, "owed: a restart sends it again"
    deliverer.resume()
    (again,) = bench.store.claim_due()
    assert again.key == KEY and again.possible_duplicate


async def test_a_send_cut_off_by_a_stop_leaves_the_row_owed(bench: Bench) -> None:
    calling = asyncio.Event()
    cut_off: list[str] = []

    async def hang(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        calling.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cut_off.append(message.id)
            raise
        return DeliveryOutcome(True)

    bench.post()
    deliverer = bench.deliverer(hang)
    loop = asyncio.create_task(deliverer.run())
    try:
        await asyncio.wait_for(calling.wait(), WAIT_LIMIT)
        await deliverer.stop(grace=0.0)
        assert cut_off == [KEY], "stop returns once the attempt it cut off has ended"
        assert not deliverer.in_flight
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert bench.states() == {"sending": 1}


async def test_a_crash_inside_the_delivery_loop_puts_the_row_back_for_a_later_attempt(
    bench: Bench,
) -> None:
    async def crash(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        raise RuntimeError("the plugin crashed")

    bench.post()
    deliverer = bench.deliverer(crash)
    loop = asyncio.create_task(deliverer.run())
    try:
        notifier = deliverer.notifier
        assert isinstance(notifier, ScriptedNotifier)
        await eventually(lambda: notifier.sends == 1 and not deliverer.in_flight, "one send")
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert bench.states() == {"pending": 1}
    assert bench.store.claim_due() == [], "tried again later, not at once"


async def test_a_refused_send_leaves_the_row_owed(bench: Bench) -> None:
    async def refuse(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        return DeliveryOutcome(False, error="HTTP 503")

    bench.post()
    deliverer = bench.deliverer(refuse)
    assert await deliverer.drain() == (0, 1)
    assert bench.states() == {"pending": 1}
    assert bench.delivered_at() == [None], "never stamped delivered, not even for a moment"
    assert deliverer.metrics.escalations_sent.labels("team", "breach")._value.get() == 0


def outbox_row(path: Path) -> dict[str, object]:
    """The one outbox row, as the state file holds it."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        (row,) = db.execute("SELECT * FROM outbox").fetchall()
        return dict(row)


async def test_a_refused_attempt_is_retried_after_the_backoff_and_given_up_at_max_attempts(
    bench: Bench,
) -> None:
    async def refuse(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        return DeliveryOutcome(False, error="HTTP 500", maybe_sent=False)

    deliverer = bench.deliverer(refuse)
    deliverer.settings = DeliveryConfig(
        first_retry=timedelta(seconds=8), max_retry=timedelta(seconds=20), max_attempts=3
    )
    bench.post()
    for attempts, ceiling in ((1, 8.0), (2, 16.0)):
        before = time.time()
        assert await deliverer.attempt(bench.claim()) is False
        row = outbox_row(bench.path)
        assert (row["state"], row["attempts"], row["last_error"]) == (
            "pending",
            attempts,
            "HTTP 500",
        )
        wait = float(row["next_attempt_at"]) - before  # type: ignore[arg-type]
        assert ceiling / 2 - 0.01 <= wait <= ceiling + 1.0, f"attempt {attempts}: {wait}"
        assert row["possible_duplicate"] == 0 and row["delivered_at"] is None
        with contextlib.closing(sqlite3.connect(bench.path)) as db, db:
            db.execute("UPDATE outbox SET next_attempt_at = 0")  # due again now
    assert await deliverer.attempt(bench.claim()) is False  # the third and last
    row = outbox_row(bench.path)
    assert (row["state"], row["attempts"]) == ("failed", 3)
    assert bench.store.claim_due() == []


async def test_a_receivers_retry_after_longer_than_the_backoff_delays_the_next_attempt(
    bench: Bench,
) -> None:
    async def rate_limited(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        return DeliveryOutcome(False, error="slack chat.postMessage: ratelimited", retry_after=90)

    deliverer = bench.deliverer(rate_limited)
    deliverer.settings = DeliveryConfig(
        first_retry=timedelta(seconds=5), max_retry=timedelta(seconds=10), max_attempts=3
    )
    bench.post()
    before = time.time()
    assert await deliverer.attempt(bench.claim()) is False
    row = outbox_row(bench.path)
    assert row["state"] == "pending"
    wait = float(row["next_attempt_at"]) - before  # type: ignore[arg-type]
    assert 90 <= wait <= 91, wait  # the receiver's wait, not the backoff's 2.5..5 s


async def test_a_send_that_may_have_arrived_is_retried_flagged_and_delivery_is_stamped(
    bench: Bench,
) -> None:
    outcomes = [DeliveryOutcome(False, error="no answer within 5s", maybe_sent=True)]

    async def late_then_ok(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        return outcomes.pop(0) if outcomes else DeliveryOutcome(True)

    deliverer = bench.deliverer(late_then_ok)
    bench.post()
    assert await deliverer.attempt(bench.claim()) is False
    row = outbox_row(bench.path)
    assert (row["state"], row["possible_duplicate"]) == ("pending", 1)
    with contextlib.closing(sqlite3.connect(bench.path)) as db, db:
        db.execute("UPDATE outbox SET next_attempt_at = 0")
    sent_from = time.time()
    retry = bench.claim()
    assert retry.possible_duplicate
    assert await deliverer.attempt(retry) is True
    row = outbox_row(bench.path)
    assert (row["state"], row["attempts"]) == ("delivered", 2)
    assert sent_from <= float(row["delivered_at"]) <= time.time()  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- what is logged


@pytest.fixture
def logs() -> Iterator[list[LogLine]]:
    """Log lines as the Deliverer emits them, with the logger's name the journal shows."""
    factory = structlog.get_config()["logger_factory"]
    structlog.configure(logger_factory=structlog.stdlib.LoggerFactory())
    try:
        with capture_logs(processors=[structlog.stdlib.add_logger_name]) as captured:
            yield captured
    finally:
        structlog.configure(logger_factory=factory)


def logged(lines: list[LogLine], event: str) -> list[dict[str, Any]]:
    """The fields of every ``event`` line, each checked to come from the Deliverer's logger."""
    found = [dict(line) for line in lines if line["event"] == event]
    for line in found:
        assert line.pop("logger") == "sladaemon.deliver", line
        del line["event"]
    return found


def sample(deliverer: Deliverer, name: str, **labels: str) -> float | None:
    """A metric sample as Prometheus would scrape it (None: never observed)."""
    return deliverer.metrics.registry.get_sample_value(name, labels)


# ---------------------------------------------------------------------------- tools


class Gates:
    """A script whose sends wait until the test lets them through, each message id on a gate
    of its own; ``waiting`` counts the sends under way per receiver."""

    def __init__(self) -> None:
        self._gates: dict[str, asyncio.Event] = {}
        self.waiting: Counter[str] = Counter()
        self.sent: list[str] = []  # message ids, in the order they were let through

    def open(self, *keys: str) -> None:
        for key in keys:
            self._gates.setdefault(key, asyncio.Event()).set()

    async def send(self, receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        self.waiting[receiver] += 1
        try:
            await self._gates.setdefault(message.id, asyncio.Event()).wait()
        finally:
            self.waiting[receiver] -= 1
        self.sent.append(message.id)
        return DeliveryOutcome(True)


class Loop:
    """``Deliverer.run`` as a task; ``until`` fails at once when the loop ended."""

    def __init__(self, deliverer: Deliverer) -> None:
        self.deliverer = deliverer
        self.task = asyncio.create_task(deliverer.run())

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        await eventually(lambda: condition() or self.task.done(), what)
        if self.task.done():
            raise AssertionError(f"the delivery loop ended before: {what}: {self.task!r}")


@contextlib.asynccontextmanager
async def running(deliverer: Deliverer) -> AsyncIterator[Loop]:
    loop = Loop(deliverer)
    try:
        yield loop
    finally:  # as the daemon stops: the loop first, then the attempts in flight
        loop.task.cancel()
        await asyncio.gather(loop.task, return_exceptions=True)
        await deliverer.stop(grace=0.0)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another process holds the state file's write lock (reads still work: WAL)."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.rollback()
    finally:
        holder.close()


def impatient(store: StateStore) -> None:
    """The store's writes fail at once on a locked file instead of after SQLite's 5 s wait."""
    store._db.execute("PRAGMA busy_timeout = 0")


def keys(n: int) -> list[str]:
    return [f"desk/T{i}/first_response/0/breach" for i in range(n)]


async def accept(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
    return DeliveryOutcome(True)


# ---------------------------------------------------------------------------- once (drain)


async def test_once_leaves_a_failure_that_may_pass_due_now_flagged_and_with_its_error(
    bench: Bench, logs: list[LogLine]
) -> None:
    async def late(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        return DeliveryOutcome(False, error="no answer within 5s", maybe_sent=True)

    deliverer = bench.deliverer(late, DeliveryConfig(max_attempts=1))
    bench.post()
    assert await deliverer.drain() == (0, 1)
    after = time.time()
    row = bench.row()
    assert (row["state"], row["attempts"], row["possible_duplicate"]) == ("pending", 1, 1)
    assert row["last_error"] == "no answer within 5s"
    assert row["next_attempt_at"] <= after, "due at once for the next run, not after a backoff"
    assert bench.alerts == [], "not given up: the next run tries again"
    assert sample(deliverer, "sladaemon_delivery_attempts_failed_total", receiver="team") == 1
    assert logged(logs, "delivery_failed") == [
        {"receiver": "team", "id": KEY, "error": "no answer within 5s", "log_level": "warning"}
    ]
    assert logged(logs, "receiver_failing") == []


async def test_once_tries_every_due_row_once_and_sums_the_outcomes_over_its_batches(
    bench: Bench,
) -> None:
    every = keys(MAX_IN_FLIGHT + 8)
    refused = set(every[::5])
    attempts: Counter[str] = Counter()
    under_way = most = 0

    async def script(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        nonlocal under_way, most
        attempts[message.id] += 1
        assert attempts[message.id] == 1, f"{message.id} tried twice in one pass"
        under_way += 1
        most = max(most, under_way)
        await asyncio.sleep(0)
        under_way -= 1
        return DeliveryOutcome(message.id not in refused, error="HTTP 503")

    for key in every:
        bench.post(key)
    deliverer = bench.deliverer(script)
    assert await deliverer.drain() == (len(every) - len(refused), len(refused))
    assert sorted(attempts) == sorted(every) and set(attempts.values()) == {1}
    assert most == MAX_IN_FLIGHT, "at most MAX_IN_FLIGHT attempts at once"
    assert bench.counts() == {"delivered": len(every) - len(refused), "pending": len(refused)}


# ---------------------------------------------------------------------------- one attempt


async def test_a_duplicate_flagged_row_says_so_in_its_message(
    bench: Bench, logs: list[LogLine]
) -> None:
    deliverer = bench.deliverer(accept)
    bench.post()
    bench.post("other-key")
    for row in bench.store.claim_due():
        if row.key == KEY:
            continue
        assert await deliverer.attempt(row) is True  # sent whole: not flagged
    deliverer.resume()  # KEY was left ``sending``: interrupted, perhaps received
    assert logged(logs, "outbox_resumed") == [{"interrupted": 1, "log_level": "warning"}]
    assert await deliverer.attempt(bench.claim()) is True
    notifier = deliverer.notifier
    assert isinstance(notifier, ScriptedNotifier)
    (_, plain), (_, flagged) = notifier.messages
    note = "\n(possible duplicate: re-sent after an interrupted delivery)"
    assert not plain.body.endswith(note)
    assert flagged.body == render(PAYLOAD).body + note


async def test_a_receiver_gets_its_own_template_and_a_failing_one_the_default_message(
    bench: Bench, logs: list[LogLine]
) -> None:
    deliverer = bench.deliverer(accept)
    notifier = deliverer.notifier
    assert isinstance(notifier, ScriptedNotifier)
    notifier.templates = {"team": "team: {ticket_id}", "ops": "{ticket_id:d}"}
    bench.post(receiver="team")
    bench.post(receiver="ops")
    for row in bench.store.claim_due():
        assert await deliverer.attempt(row) is True
    bodies = {receiver: message.body for receiver, message in notifier.messages}
    assert bodies == {"team": "team: T1", "ops": render(PAYLOAD).body}
    assert logged(logs, "template_failed") == [
        {
            "receiver": "ops",
            "error": "Unknown format code 'd' for object of type 'str'",
            "log_level": "error",
        }
    ]


async def test_a_delivery_is_counted_timed_in_real_seconds_and_logged(
    bench: Bench, logs: list[LogLine]
) -> None:
    clock = FakeClock(START + timedelta(seconds=60))
    clock.speed = 2.0  # 60 clock seconds late are 30 real seconds
    deliverer = bench.deliverer(accept, clock=clock)
    bench.post(receiver="late")
    bench.post(receiver="early", due=START + timedelta(hours=1))  # sent before it was due
    bench.post(receiver="ops", kind="operator")
    bench.post(receiver="reports", kind="report")
    for row in bench.store.claim_due():
        assert await deliverer.attempt(row) is True
    assert bench.counts() == {"delivered": 4}
    for receiver, kind in (("late", "breach"), ("ops", "operator"), ("reports", "report")):
        sent = sample(deliverer, "sladaemon_escalations_sent_total", receiver=receiver, kind=kind)
        assert sent == 1, receiver
    latency = "sladaemon_delivery_latency_seconds"
    assert sample(deliverer, f"{latency}_sum", receiver="late") == 30.0
    assert sample(deliverer, f"{latency}_count", receiver="early") == 1
    assert sample(deliverer, f"{latency}_sum", receiver="early") == 0.0, "never below zero"
    for untimed in ("ops", "reports"):  # no SLA instant to be late for
        assert sample(deliverer, f"{latency}_count", receiver=untimed) is None
    assert logged(logs, "notification_sent")[0] == {
        "receiver": "late",
        "id": KEY,
        "kind": "breach",
        "log_level": "debug",
    }
    assert logged(logs, "receiver_recovered") == [], "none of them was failing"


async def test_a_failing_receiver_is_logged_once_and_its_recovery_once(
    bench: Bench, logs: list[LogLine]
) -> None:
    outcomes = [DeliveryOutcome(False, error="HTTP 502")] * 2

    async def script(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        return outcomes.pop(0) if outcomes else DeliveryOutcome(True)

    deliverer = bench.deliverer(script)
    for key in keys(3):
        bench.post(key)
    first, second, third = bench.store.claim_due()
    before = time.time()
    assert await deliverer.attempt(first) is False
    assert await deliverer.attempt(second) is False
    (failing,) = logged(logs, "receiver_failing")
    wait = failing.pop("retry_in")
    assert failing == {"receiver": "team", "error": "HTTP 502", "log_level": "warning"}
    assert bench.row(first.key)["next_attempt_at"] >= before + wait
    assert 2.5 <= wait <= 5.0, "half to all of first_retry"
    assert await deliverer.attempt(third) is True
    bench.schedule(first.key, 0.0)
    assert await deliverer.attempt(bench.claim()) is True
    assert logged(logs, "receiver_recovered") == [{"receiver": "team", "log_level": "info"}]


async def test_the_last_attempt_gives_up_keeps_the_error_and_tells_the_operator(
    bench: Bench, logs: list[LogLine]
) -> None:
    async def refuse(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        return DeliveryOutcome(False, error="HTTP 500")

    deliverer = bench.deliverer(refuse, DeliveryConfig(max_attempts=2))
    bench.post()
    assert await deliverer.attempt(bench.claim()) is False
    bench.schedule(KEY, 0.0)
    before = time.time()
    assert await deliverer.attempt(bench.claim()) is False
    row = bench.row()
    assert (row["state"], row["attempts"], row["last_error"]) == ("failed", 2, "HTTP 500")
    failed = sample(deliverer, "sladaemon_escalations_failed_total", receiver="team", kind="breach")
    assert failed == 1
    assert sample(deliverer, "sladaemon_delivery_attempts_failed_total", receiver="team") == 2
    ((kind, subject, summary, since),) = bench.alerts
    assert (kind, subject) == ("delivery_failed", f"team/{KEY}")
    assert summary == f"could not deliver {KEY} to team after 2 attempts: HTTP 500"
    assert isinstance(since, float) and before <= since <= time.time()
    assert logged(logs, "delivery_gave_up") == [
        {"receiver": "team", "id": KEY, "attempts": 2, "error": "HTTP 500", "log_level": "error"}
    ]


async def test_an_operator_message_given_up_is_not_reported_to_the_operator(bench: Bench) -> None:
    async def refuse(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        return DeliveryOutcome(False, retryable=False, error="HTTP 404")

    deliverer = bench.deliverer(refuse)
    bench.post(receiver="ops", kind="operator")
    assert await deliverer.attempt(bench.claim()) is False
    assert bench.row(receiver="ops")["state"] == "failed"
    failed = "sladaemon_escalations_failed_total"
    assert sample(deliverer, failed, receiver="ops", kind="operator") == 1
    assert bench.alerts == [], "the operator's own channel failed: no alert about itself"


async def test_resume_logs_interrupted_sends_and_unusable_receiver_urls(
    bench: Bench, logs: list[LogLine]
) -> None:
    deliverer = bench.deliverer(accept)
    notifier = deliverer.notifier
    assert isinstance(notifier, ScriptedNotifier)
    notifier.invalid = [("team", 1, "unknown scheme")]
    deliverer.resume()
    assert logged(logs, "outbox_resumed") == [], "nothing was interrupted"
    assert logged(logs, "receiver_url_invalid") == [
        {"receiver": "team", "target": 1, "reason": "unknown scheme", "log_level": "error"}
    ]
    assert sample(deliverer, "sladaemon_receiver_invalid_urls", receiver="team") == 1


# ---------------------------------------------------------------------------- the loop


async def test_a_crashed_attempt_keeps_its_error_and_frees_its_receivers_slot(
    bench: Bench, logs: list[LogLine]
) -> None:
    gates = Gates()
    crash_key, ok_key = keys(2)

    async def script(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        if message.id == crash_key:
            raise RuntimeError("the plugin crashed")
        if message.id == ok_key:
            return DeliveryOutcome(True)
        return await gates.send(receiver, target, message)

    deliverer = bench.deliverer(script)
    bench.post(crash_key)
    bench.post(ok_key)
    before = time.time()
    async with running(deliverer) as loop:
        await loop.until(
            lambda: bench.counts() == {"pending": 1, "delivered": 1} and not deliverer.in_flight,
            "one crashed attempt, one delivered",
        )
        crashed = bench.row(crash_key)
        assert crashed["last_error"] == "RuntimeError: the plugin crashed"
        assert crashed["attempts"] == 1
        assert crashed["next_attempt_at"] >= before + CRASH_RETRY
        assert logged(logs, "delivery_crashed") == [
            {"id": crash_key, "receiver": "team", "exc_info": True, "log_level": "error"}
        ]
        bench.schedule(crash_key, time.time() + 300)  # out of the way of what follows
        more = keys(PER_RECEIVER + 3)[2:]
        for key in more:
            bench.post(key)
        bench.post("last", receiver="other")  # another receiver, behind them all
        deliverer.wake.set()
        await loop.until(lambda: gates.waiting["other"] == 1, "the other receiver's send")
        assert gates.waiting["team"] == PER_RECEIVER, "the slots of both attempts are free again"
        gates.open(*more, "last")
        await loop.until(lambda: bench.counts().get("delivered") == 2 + len(more), "all sent")


async def test_a_receiver_with_all_its_slots_busy_holds_up_no_other(
    bench: Bench, logs: list[LogLine]
) -> None:
    gates = Gates()
    team = keys(PER_RECEIVER + 1)
    for key in team:
        bench.post(key)
    bench.post("other-1", receiver="other")
    deliverer = bench.deliverer(gates.send)
    async with running(deliverer) as loop:
        await loop.until(lambda: gates.waiting["other"] == 1, "the other receiver's send")
        assert gates.waiting["team"] == PER_RECEIVER
        held = bench.row(team[-1])
        assert (held["state"], held["attempts"], held["last_error"]) == ("pending", 0, None)
        assert sample(deliverer, "sladaemon_state_write_errors_total", what="delivery") is None
        bench.post("other-2", receiver="other")
        deliverer.wake.set()
        await loop.until(lambda: gates.waiting["other"] == 2, "a later send to the other")
        again = bench.row(team[-1])
        assert again["state"] == "pending"
        assert again["next_attempt_at"] == held["next_attempt_at"], "not claimed while full"
        gates.open(*team, "other-1", "other-2")
        await loop.until(lambda: bench.counts() == {"delivered": len(team) + 2}, "all sent")
    assert bench.row(team[-1])["attempts"] == 1, "being held back was not an attempt"
    assert logged(logs, "delivery_crashed") == []


async def test_start_says_how_many_attempts_it_started(bench: Bench) -> None:
    gates = Gates()
    for key in keys(PER_RECEIVER + 1):
        bench.post(key)
    bench.post("other-1", receiver="other")
    deliverer = bench.deliverer(gates.send)
    assert deliverer._start(MAX_IN_FLIGHT) == PER_RECEIVER + 1
    assert len(deliverer.in_flight) == PER_RECEIVER + 1
    await deliverer.stop(grace=0.0)
    assert bench.counts() == {"sending": PER_RECEIVER + 1, "pending": 1}


async def test_no_more_than_max_in_flight_attempts_run_at_once(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    receivers = [f"r{n}" for n in range(MAX_IN_FLIGHT // PER_RECEIVER + 1)]
    posted = [(f"{r}/{k}", r) for r in receivers for k in range(PER_RECEIVER)]
    for key, receiver in posted:
        bench.post(key, receiver=receiver)
    calls: Counter[str] = Counter()
    for name in ("claim_due", "next_attempt_at"):
        method = getattr(bench.store, name)

        def spy(*args: Any, __name: str = name, __method: Any = method, **kw: Any) -> Any:
            calls[__name] += 1
            return __method(*args, **kw)

        monkeypatch.setattr(bench.store, name, spy)
    gates = Gates()
    deliverer = bench.deliverer(gates.send)
    async with running(deliverer) as loop:
        await loop.until(lambda: gates.waiting.total() >= MAX_IN_FLIGHT, "the first attempts")
        assert gates.waiting.total() == MAX_IN_FLIGHT
        assert bench.counts() == {"sending": MAX_IN_FLIGHT, "pending": len(posted) - MAX_IN_FLIGHT}
        claims, looks = calls["claim_due"], calls["next_attempt_at"]
        deliverer.wake.set()
        await loop.until(lambda: calls["next_attempt_at"] > looks, "the loop looks again")
        assert calls["claim_due"] == claims, "nothing is claimed without a free slot"
        gates.open(posted[0][0])
        await loop.until(
            lambda: len(gates.sent) == 1 and gates.waiting.total() == MAX_IN_FLIGHT,
            "the next row takes the free slot",
        )
        assert bench.counts() == {"delivered": 1, "sending": MAX_IN_FLIGHT, "pending": 3}
        due = time.time() + 0.3
        for key, _ in posted[MAX_IN_FLIGHT + 1 :]:
            bench.schedule(key, due)
        gates.open(posted[1][0])  # one slot free, and nothing due until ``due``
        await loop.until(lambda: bench.counts().get("pending") == 2, "a row falling due later")
        assert time.time() >= due
        gates.open(*(key for key, _ in posted))
        await loop.until(lambda: bench.counts() == {"delivered": len(posted)}, "all sent")


async def test_a_row_falling_due_later_is_sent_without_a_wake(bench: Bench) -> None:
    sent_at: list[float] = []

    async def note(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        sent_at.append(time.time())
        return DeliveryOutcome(True)

    bench.post()
    due = time.time() + 0.3
    bench.schedule(KEY, due)
    deliverer = bench.deliverer(note)
    async with running(deliverer) as loop:
        await loop.until(lambda: bench.counts() == {"delivered": 1}, "sent when due")
    assert len(sent_at) == 1 and sent_at[0] >= due


async def test_a_retry_scheduled_before_the_clock_stepped_back_is_due_at_once(
    bench: Bench,
) -> None:
    settings = DeliveryConfig(max_retry=timedelta(seconds=60))
    longest = 60 + CRASH_RETRY  # no retry waits longer than this
    now = time.time()
    ahead = {"within-retry": 59, "within-crash-retry": longest - 1, "stepped-back": 90}
    for key, seconds in ahead.items():
        bench.post(key)
        bench.schedule(key, now + seconds)
    gates = Gates()
    gates.open(*ahead)
    deliverer = bench.deliverer(gates.send, settings)
    async with running(deliverer) as loop:
        await loop.until(lambda: "stepped-back" in gates.sent, "the stepped-back row sent")
        assert bench.row("within-retry")["state"] == "pending"
        assert bench.row("within-crash-retry")["state"] == "pending"
        assert gates.sent == ["stepped-back"]


async def test_outcomes_the_state_file_refuses_are_recorded_once_it_takes_them(
    bench: Bench, logs: list[LogLine]
) -> None:
    impatient(bench.store)
    bench.post()
    gates = Gates()
    gates.open("next")
    deliverer = bench.deliverer(gates.send)
    errors = "sladaemon_state_write_errors_total"
    async with running(deliverer) as loop:
        await loop.until(lambda: gates.waiting["team"] == 1, "the send under way")
        with locked(bench.path):
            gates.open(KEY)  # accepted while the state file is locked
            await loop.until(
                lambda: (sample(deliverer, errors, what="delivery") or 0) >= 2,
                "the loop tried again to record the delivery",
            )
            assert bench.counts() == {"sending": 1}, "not delivered before it is recorded"
            assert logged(logs, "delivery_record_failed") == [
                {"error": "database is locked", "waiting": 1, "log_level": "error"}
            ]
        await loop.until(lambda: bench.counts() == {"delivered": 1}, "recorded once free")
        assert logged(logs, "delivery_record_recovered") == [{"log_level": "info"}]
        bench.post("next")
        deliverer.wake.set()
        await loop.until(lambda: bench.counts() == {"delivered": 2}, "the next one sent")
    assert len(logged(logs, "delivery_record_failed")) == 1
    assert len(logged(logs, "delivery_record_recovered")) == 1
