"""The outbox owes each notification once per receiver: its key is deduplicated per receiver
(and URL), never across receivers."""

from __future__ import annotations

import contextlib
import io
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

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
