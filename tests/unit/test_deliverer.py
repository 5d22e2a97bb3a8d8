"""The Deliverer marks an outbox row delivered only once the receiver accepted it: a send that
crashes, hangs or is refused leaves the row owed, in the real SQLite state file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.clock import FakeClock
from sladaemon.config.models import DeliveryConfig
from sladaemon.escalate.deliver import Deliverer
from sladaemon.metrics import DaemonMetrics
from sladaemon.notify.apprise_notifier import AppriseNotifier, DeliveryOutcome
from sladaemon.notify.message import Notification
from sladaemon.store.sqlite import OutboxItem, OutboxRow, StateStore

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
KEY = "desk/T1/first_response/0/breach"
PAYLOAD = {"id": KEY, "kind": "breach", "ticket_id": "T1", "metric": "first_response"}
WAIT_LIMIT = 10.0  # seconds a test waits for the deliverer before it fails

SendScript = Callable[[str, int, Notification], Awaitable[DeliveryOutcome]]


class ScriptedNotifier(AppriseNotifier):
    """A notifier without receivers whose ``send`` follows the test's script."""

    def __init__(self, script: SendScript) -> None:
        super().__init__({})
        self.script = script
        self.sends = 0

    async def send(self, receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        self.sends += 1
        return await self.script(receiver, target, message)


@dataclass
class Bench:
    store: StateStore
    path: Path

    def deliverer(self, script: SendScript) -> Deliverer:
        return Deliverer(
            self.store,
            ScriptedNotifier(script),
            DeliveryConfig(),
            asyncio.Event(),
            FakeClock(START),
            DaemonMetrics(),
            lambda *alert: None,
        )

    def post(self) -> None:
        self.store.enqueue([OutboxItem(KEY, "team", "breach", PAYLOAD, START)])

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

    async def hang(receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        calling.set()
        await asyncio.Event().wait()
        return DeliveryOutcome(True)

    bench.post()
    deliverer = bench.deliverer(hang)
    loop = asyncio.create_task(deliverer.run())
    try:
        await asyncio.wait_for(calling.wait(), WAIT_LIMIT)
        await deliverer.stop(grace=0.0)
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
