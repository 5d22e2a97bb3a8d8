"""The outbox owes each notification once per receiver: its key is deduplicated per receiver
(and URL), never across receivers."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from sladaemon.config.models import ReceiverConfig
from sladaemon.escalate.outbox import Outbox
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import NotificationKind
from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.store.sqlite import StateStore

DUE = datetime(2024, 1, 8, 10, 0, tzinfo=UTC)
KEY = "desk/T1/first_response/0/breach"
PAYLOAD = {"id": KEY, "kind": "breach", "ticket_id": "T1", "metric": "first_response"}


@dataclass
class Posting:
    outbox: Outbox
    store: StateStore
    path: Path

    def post(self, *receivers: str) -> None:
        self.outbox.post(KEY, NotificationKind.BREACH, PAYLOAD, DUE, receivers)

    def rows(self) -> list[tuple[str, str, str]]:
        """(key, receiver, state) of every outbox row, as the state file holds them."""
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            found = db.execute("SELECT key, receiver, state FROM outbox ORDER BY receiver, id")
            return [(key, receiver, state) for key, receiver, state in found]

    def owed(self) -> list[str]:
        return [receiver for _, receiver, state in self.rows() if state in ("pending", "sending")]


@pytest.fixture
def posting(tmp_path: Path) -> Iterator[Posting]:
    console = {"urls": ["console://"]}
    receivers = {name: ReceiverConfig.model_validate(console) for name in ("alpha", "beta")}
    receivers["gamma"] = ReceiverConfig.model_validate({"urls": ["console://", "console://"]})
    notifier = AppriseNotifier(receivers, io.StringIO())
    path = tmp_path / "state.sqlite"
    store = StateStore(path)
    yield Posting(Outbox(store, notifier, DaemonMetrics()), store, path)
    notifier.close(wait=False)
    store.close()


def test_one_key_posted_to_two_receivers_is_owed_to_each(posting: Posting) -> None:
    posting.post("alpha", "beta")
    assert posting.rows() == [(KEY, "alpha", "pending"), (KEY, "beta", "pending")]


def test_one_key_posted_to_two_receivers_one_at_a_time_is_owed_to_each(posting: Posting) -> None:
    posting.post("alpha")
    posting.post("beta")
    assert posting.owed() == ["alpha", "beta"]


def test_a_key_posted_twice_to_one_receiver_is_owed_once(posting: Posting) -> None:
    posting.post("alpha")
    posting.outbox.posted.clear()
    posting.post("alpha")
    posting.post("alpha", "alpha")
    assert posting.rows() == [(KEY, "alpha", "pending")]
    assert not posting.outbox.posted.is_set(), "nothing new: the deliverer is not woken"


def test_delivering_to_one_receiver_leaves_the_other_owed(posting: Posting) -> None:
    posting.post("alpha", "beta")
    (alpha,) = [row for row in posting.store.claim_due() if row.receiver == "alpha"]
    posting.store.delivered(alpha.id)
    assert posting.owed() == ["beta"]
    posting.post("alpha", "beta")  # a re-poll, a reload or a restart posts the key again
    assert posting.rows() == [(KEY, "alpha", "delivered"), (KEY, "beta", "sending")]


LogLine = MutableMapping[str, Any]


@pytest.fixture
def logs() -> Iterator[list[LogLine]]:
    """Log lines as the Outbox emits them, with the logger's name the journal shows."""
    factory = structlog.get_config()["logger_factory"]
    structlog.configure(logger_factory=structlog.stdlib.LoggerFactory())
    try:
        with capture_logs(processors=[structlog.stdlib.add_logger_name]) as captured:
            yield captured
    finally:
        structlog.configure(logger_factory=factory)


def logged(lines: list[LogLine], event: str) -> list[dict[str, Any]]:
    """The fields of every ``event`` line, each checked to come from the Outbox's logger."""
    found = [dict(line) for line in lines if line["event"] == event]
    for line in found:
        assert line.pop("logger") == "sladaemon.outbox", line
        del line["event"]
    return found


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


def test_a_payload_built_per_url_is_built_for_each_receiver_and_url(posting: Posting) -> None:
    def payload(receiver: str, target: int) -> dict[str, Any]:
        return PAYLOAD | {"body": f"{receiver} #{target}"}

    posting.outbox.post(KEY, NotificationKind.REPORT, payload, DUE, ["alpha", "gamma"])
    with contextlib.closing(sqlite3.connect(posting.path)) as db:
        found = db.execute("SELECT receiver, target, payload FROM outbox ORDER BY id").fetchall()
    bodies = [(r, t, json.loads(p)["body"]) for r, t, p in found]
    assert bodies == [("alpha", 0, "alpha #0"), ("gamma", 0, "gamma #0"), ("gamma", 1, "gamma #1")]


def test_posts_a_locked_state_file_refuses_wait_in_order_and_are_written_once(
    posting: Posting, logs: list[LogLine]
) -> None:
    outbox = posting.outbox
    posting.store._db.execute("PRAGMA busy_timeout = 0")  # refused at once, not after 5 s
    errors = ("sladaemon_state_write_errors_total", {"what": "outbox"})
    assert outbox.flush() is True, "nothing waiting"
    posting.post("alpha")
    assert logged(logs, "outbox_write_recovered") == [], "an outbox starts healthy"
    outbox.posted.clear()
    with locked(posting.path):
        outbox.post("second", NotificationKind.BREACH, PAYLOAD, DUE, ["beta"])
        outbox.post("third", NotificationKind.BREACH, PAYLOAD, DUE, ["alpha"])
        assert outbox.flush() is False, "still waiting"
        assert posting.rows() == [(KEY, "alpha", "pending")]
        assert not outbox.posted.is_set()
        assert outbox.metrics.registry.get_sample_value(*errors) == 3
        assert logged(logs, "outbox_write_failed") == [
            {"error": "database is locked", "waiting": 1, "log_level": "error"}
        ], "told once, not at every retry"
    assert outbox.flush() is True
    assert outbox.posted.is_set()
    with contextlib.closing(sqlite3.connect(posting.path)) as db:
        written = [key for (key,) in db.execute("SELECT key FROM outbox ORDER BY id")]
    assert written == [KEY, "second", "third"], "in the order they were posted"
    assert logged(logs, "outbox_write_recovered") == [{"written": 2, "log_level": "info"}]
    assert outbox.flush() is True
    posting.post("beta")
    assert len(posting.rows()) == 4
    assert len(logged(logs, "outbox_write_recovered")) == 1
    assert len(logged(logs, "outbox_write_failed")) == 1
