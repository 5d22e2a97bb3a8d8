"""The outbox, the timer queue, message rendering and log redaction (the retry policy:
test_retry_delay.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.escalate.timers import TimerQueue
from sladaemon.logs import Redactor, configure_logging, get_logger
from sladaemon.model import EventKind, TicketEvent
from sladaemon.notify.message import render, template_problem
from sladaemon.store.sqlite import OutboxItem, StateStore

DUE = datetime(2024, 1, 8, 10, 0, tzinfo=UTC)


def item(key: str, receiver: str = "team", target: int = 0) -> OutboxItem:
    return OutboxItem(key, receiver, "breach", {"id": key, "kind": "breach"}, DUE, target)


def test_outbox_ignores_a_second_insert_of_the_same_escalation(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    assert store.enqueue([item("desk/T1/first_response/0/breach")], now=100.0) == 1
    assert store.enqueue([item("desk/T1/first_response/0/breach")], now=101.0) == 0
    assert store.enqueue([item("desk/T1/first_response/0/breach", target=1)], now=101.0) == 1
    (a, _) = store.claim_due(now=200.0)
    store.delivered(a.id)
    assert store.enqueue([item("desk/T1/first_response/0/breach")], now=300.0) == 0
    assert store.outbox_counts() == {"delivered": 1, "sending": 1}
    store.close()


def test_interrupted_sends_resume_after_a_restart_flagged(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    store.enqueue([item("k1"), item("k2")], now=100.0)
    claimed = store.claim_due(now=100.0)
    assert len(claimed) == 2
    store.delivered(claimed[0].id)
    store.close()  # the process dies with k2 "sending"
    store = StateStore(tmp_path / "s.sqlite")
    assert store.release_unfinished() == 1
    (again,) = store.claim_due(now=100.0)
    assert again.key == "k2" and again.possible_duplicate
    assert "possible duplicate" in render(dict(again.payload, possible_duplicate=True)).body
    store.close()


def test_retries_wait_and_failures_are_final(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    store.enqueue([item("k1")], now=100.0)
    (row,) = store.claim_due(now=100.0)
    store.retry_later(row.id, 160.0, "refused")
    assert store.claim_due(now=150.0) == []
    assert store.next_attempt_at() == 160.0
    (row,) = store.claim_due(now=160.0)
    assert row.attempts == 1
    store.failed(row.id, "gave up")
    assert store.claim_due(now=1e12) == []
    assert store.outbox_counts() == {"failed": 1}
    store.close()


def test_receivers_of_a_breach_are_found_for_resolved_messages(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    store.enqueue([item("desk/T_1/first_response/0/breach", "a"), item("desk/T_1x/x", "b")])
    assert store.receivers_of("desk/T_1/first_response/0/", ["breach"]) == ["a"]
    store.close()


def test_timer_queue_keeps_one_live_instant_per_ticket() -> None:
    timers: TimerQueue[str] = TimerQueue()
    timers.schedule("a", 50)
    timers.schedule("b", 20)
    timers.schedule("a", 10)  # moved earlier
    timers.schedule("b", None)  # cancelled
    assert timers.next_instant() == 10
    assert timers.pop_due(100) == [("a", 10)]
    assert timers.pop_due(100) == [] and len(timers) == 0


def test_templates_are_checked_and_rendered() -> None:
    assert template_problem("{ticket_id} due {deadline_local}") is None
    assert "unknown template field(s) colour" in (template_problem("{colour}") or "")
    assert template_problem("{") is not None
    message = render({"kind": "breach", "ticket_id": "T9", "metric": "resolution"}, "{ticket_id}!")
    assert message.body == "T9!" and message.title == "SLA breached: ticket T9 resolution breached"


def test_redaction_of_configured_secrets_and_url_credentials() -> None:
    redactor = Redactor(["json://alice:hunter22@hooks.example.com/T0K3Nabcdef?key=zz99yy88xx"])
    text = redactor.scrub(
        "POST https://hooks.example.com/T0K3Nabcdef?key=zz99yy88xx as alice:hunter22; "
        "also smtp://bob:pw123456@mail.example.com"
    )
    for secret in ("hunter22", "T0K3Nabcdef", "zz99yy88xx", "pw123456"):
        assert secret not in text
    assert "hooks.example.com" in text


def test_logs_are_json_lines_and_stdlib_logs_share_the_formatter() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream, json_output=True, secrets=["s3cr3t-value"])
    get_logger("sladaemon.test").info("poll_failed", source="zd", error="token s3cr3t-value")
    logging.getLogger("aiohttp.client").warning("connection to %s failed", "h:s3cr3t-value@x")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["event"] == "poll_failed" and lines[0]["source"] == "zd"
    assert lines[1]["logger"] == "aiohttp.client"
    assert "s3cr3t-value" not in stream.getvalue()
    configure_logging("warning", stream=io.StringIO(), json_output=True)


@pytest.fixture
def console_config(tmp_path: Path) -> Path:
    # Breached ten minutes ago: recent enough to be sent (daemon.catch_up is 1 h).
    created = (datetime.now(UTC) - timedelta(minutes=70)).isoformat()
    (tmp_path / "events.csv").write_text(
        "ticket_id,timestamp,event,status,priority,channel,queue\n"
        f"T1,{created},created,new,,,\nOLD,2024-01-08T09:00:00Z,created,new,,,\n"
    )
    path = tmp_path / "c.yaml"
    path.write_text(
        f"""
calendars: {{always: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}}}
receivers:
  console: {{urls: ["console://"]}}
  nowhere: {{urls: ["json://127.0.0.1:9/hook?cto=1&rto=1"], timeout: 3s}}
policies:
  - {{name: p, calendar: always, targets: {{first_response: 1h}},
      escalation: [{{at: breach, notify: [console]}}]}}
sources:
  desk: {{type: csv, path: {tmp_path / "events.csv"}}}
daemon: {{state: {tmp_path / "s.sqlite"}, http: {{enabled: false}}}}
"""
    )
    return path


def test_once_polls_evaluates_and_delivers(
    console_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sladaemon.cli import main

    assert main(["once", "--config", str(console_config)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # not a tty
    messages = {line["id"]: line for line in lines if line["event"] == "console_message"}
    message = messages.pop("desk/T1/first_response/0/breach")
    assert message["title"] == "SLA breached: ticket T1 first_response breached"
    assert "ticket: T1" in message["body"].splitlines()
    # A breach older than daemon.catch_up is not sent on its own; on a first start it is
    # summed up with the other tickets already overdue when monitoring began.
    ((key, summary),) = messages.items()
    assert key.startswith("overdue_at_start/desk/")
    assert "  ticket OLD: first_response breach" in summary["body"].splitlines()
    (finished,) = [line for line in lines if line["event"] == "once_finished"]
    assert (finished["tickets"], finished["sent"], finished["failed"]) == (2, 2, 0)
    assert main(["once", "--config", str(console_config)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["sent"] for line in lines if line["event"] == "once_finished"] == [0], (
        "never twice"
    )


def test_notify_test_reports_each_url(
    console_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sladaemon.cli import main

    assert main(["notify-test", "--config", str(console_config), "console"]) == 0
    assert "console url 1: delivered" in capsys.readouterr().out
    assert main(["notify-test", "--config", str(console_config), "nowhere"]) == 1
    assert "nowhere url 1: FAILED: json://127.0.0.1" in capsys.readouterr().out
    assert main(["notify-test", "--config", str(console_config), "ghost"]) == 2


def test_solved_tickets_without_news_leave_the_book() -> None:
    from datetime import timedelta

    from sladaemon.escalate.book import TicketBook
    from sladaemon.model import EventKind, TicketEvent

    book = TicketBook(())
    book.ingest(
        "s",
        [
            TicketEvent("A", DUE, EventKind.CREATED),
            TicketEvent("B", DUE, EventKind.CREATED),
            TicketEvent("A", DUE, EventKind.RESOLVED),
        ],
    )
    assert list(book.evict_idle(DUE + timedelta(days=13), timedelta(days=14))) == []
    assert list(book.evict_idle(DUE + timedelta(days=15), timedelta(days=14))) == [("s", "A")]
    assert list(book.replays) == [("s", "B")], "open tickets stay however old"


def test_a_state_file_of_an_earlier_version_opens_and_gains_the_new_columns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:  # the events table as first released: no event_id
        old.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, source TEXT NOT NULL, ticket_id TEXT "
            "NOT NULL, at_us INTEGER NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, "
            "category TEXT, fields TEXT NOT NULL)"
        )
        old.execute(
            "INSERT INTO events (source, ticket_id, at_us, kind, status, category, fields) "
            "VALUES ('desk', '7', 1700000000000000, 'created', 'new', 'new', '{}')"
        )
    old.close()
    store = StateStore(path)
    try:
        kept = store.load_events("desk")["7"]
        assert [(e.kind, e.event_id) for e in kept] == [(EventKind.CREATED, "")]
        at = datetime(2024, 1, 1, tzinfo=UTC)
        reply = TicketEvent("7", at, EventKind.AGENT_REPLY, event_id="r1")
        store.add_events("desk", [reply, reply])  # the new unique index drops the repeat
        assert [e.event_id for e in store.load_events("desk")["7"]] == ["", "r1"]
    finally:
        store.close()


def test_a_row_is_claimed_by_one_caller_only(tmp_path: Path) -> None:
    """Two connections claiming at once (threads) never both get a row."""
    import threading

    path = tmp_path / "s.sqlite"
    store = StateStore(path)
    store.enqueue([item(f"k{n}") for n in range(400)], now=100.0)
    claimed: list[list[str]] = [[], []]

    def claim(into: list[str]) -> None:
        mine = StateStore(path)
        while rows := mine.claim_due(now=200.0, limit=7):
            into.extend(r.key for r in rows)
        mine.close()

    threads = [threading.Thread(target=claim, args=(c,)) for c in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed[0] + claimed[1]) == sorted(f"k{n}" for n in range(400))
    assert not set(claimed[0]) & set(claimed[1])
    store.close()


def test_a_retry_after_no_answer_is_flagged_as_a_possible_duplicate(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    store.enqueue([item("k1"), item("k2")], now=100.0)
    first, second = store.claim_due(now=100.0)
    store.retry_later(first.id, 100.0, "did not answer within 5s", maybe_sent=True)
    store.retry_later(second.id, 100.0, "refused")
    again = {r.key: r.possible_duplicate for r in store.claim_due(now=100.0)}
    assert again == {"k1": True, "k2": False}
    store.close()


def test_one_daemon_per_state_file(tmp_path: Path) -> None:
    from sladaemon.errors import StateLockedError
    from sladaemon.store.lock import StateLock

    first, second = StateLock(tmp_path / "s.sqlite"), StateLock(tmp_path / "s.sqlite")
    first.acquire()
    with pytest.raises(StateLockedError, match=rf"pid {os.getpid()}\)"):
        second.acquire()
    first.release()
    second.acquire()  # free again once the holder let go (or its process ended)
    second.release()


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("opsgenie://KEYSECRET123", "KEYSECRET123"),
        ("pagerduty://k@KEYSECRET123", "KEYSECRET123"),
        ("prowl://KEYSECRET1234567890123456789012345678901", "KEYSECRET123456"),
        ("json://alice:hunter22@127.0.0.1:8080/hook", "hunter22"),
        ("slack://T000/B000/XXXXSECRETXXXX", "XXXXSECRETXXXX"),
    ],
)
def test_a_receiver_url_is_shown_without_its_keys(url: str, secret: str) -> None:
    """Keys live in the host or path for many services: the label masks them wherever."""
    from sladaemon.notify.apprise_notifier import describe_url

    label = describe_url(url)
    assert secret not in label and label.startswith(url.split("://")[0] + "://")


def test_the_state_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    store.enqueue([item("k1")])
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    store.close()


def test_a_newline_in_a_ticket_id_adds_no_line_to_the_message() -> None:
    payload = {"id": "desk/T1/x", "kind": "breach", "ticket_id": "T1\nid: forged", "metric": "m"}
    body = render(payload).body.splitlines()
    assert [line for line in body if line.startswith("id:")] == ["id: desk/T1/x"]
    assert "ticket: T1 id: forged" in body


def test_a_retry_scheduled_before_the_clock_stepped_back_is_not_held_up(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    store.enqueue([item("k1")], now=100.0)
    (row,) = store.claim_due(now=100.0)
    store.retry_later(row.id, 160.0, "refused")  # due at 160 by the clock of that moment
    # The clock steps back an hour: 160 is now 3,660 s away, far beyond any retry wait.
    assert store.claim_due(now=160.0 - 3600.0) == []
    (again,) = store.claim_due(now=160.0 - 3600.0, longest_wait=600.0)
    assert again.key == "k1"
    store.close()


def test_a_damaged_state_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    from sladaemon.errors import StateFileError
    from sladaemon.store.backup import check, restore

    path = tmp_path / "s.sqlite"
    store = StateStore(path)
    store.enqueue([item("k1")])
    store.backup()
    store.close()
    path.write_bytes(b"not a database, really" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"s.sqlite{suffix}").unlink(missing_ok=True)
    with pytest.raises(StateFileError, match=r"is damaged .*sladaemon state restore"):
        StateStore(path)
    assert check(path) != "ok"
    kept = restore(path)
    assert kept is not None and kept.read_bytes().startswith(b"not a database")
    store = StateStore(path)
    assert store.outbox_counts() == {"pending": 1}  # what the backup held
    store.close()
