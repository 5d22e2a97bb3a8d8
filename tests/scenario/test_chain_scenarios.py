"""Escalation chains on virtual time: pages at their instants over loops, an ack that lapses
when nobody replied (and does not when someone did), unack and escalate, a met metric that ends
the chain with a "resolved" follow-up to whoever was paged, and a restart in between."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.scenario.harness import DaemonHarness

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)


def config_text(tmp_path: Path) -> str:
    return textwrap.dedent(
        f"""
        calendars:
          always: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}
        receivers:
          l1: {{urls: ["console://"]}}
          l2: {{urls: ["console://"]}}
        chains:
          page:
            steps:
              - notify: [l1]
              - wait: 15m
              - notify: [receiver:l2]
              - wait: 10m
            loops: 2
            ack_timeout: 30m
        policies:
          - name: support
            calendar: always
            targets: {{first_response: 1h}}
            escalation: [{{at: breach, chain: page}}]
        sources:
          desk: {{type: csv, path: {tmp_path / "events.csv"}, poll_interval: 1m}}
        daemon:
          state: {tmp_path / "state.sqlite"}
          http: {{enabled: false}}
        """
    )


class Harness(DaemonHarness):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, config_text(tmp_path), START)

    def sent(self) -> list[tuple[str, str, str]]:
        """Outbox rows about chains, in order: (key, receiver, due)."""
        assert self.app is not None
        with contextlib.closing(sqlite3.connect(self.app.store.path)) as db:
            rows = db.execute(
                "SELECT key, receiver, due_at FROM outbox WHERE key LIKE 'desk/%' ORDER BY id"
            ).fetchall()
        return [(key.split("/", 4)[-1], receiver, due[11:16]) for key, receiver, due in rows]

    def payloads(self, suffix: str) -> list[dict[str, object]]:
        assert self.app is not None
        with contextlib.closing(sqlite3.connect(self.app.store.path)) as db:
            rows = db.execute("SELECT payload FROM outbox WHERE key LIKE ?", (f"%{suffix}",))
            return [json.loads(p) for (p,) in rows]

    def trail(self, ticket: str) -> list[tuple[str, str, str]]:
        assert self.app is not None
        return [
            (e.action, e.actor, e.via)
            for _, e in self.app.chains.store.audit("desk", ticket)
            if e.action != "started"
        ]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    yield h
    await h.stop()


CHAIN = "desk/T1/first_response/0/breach"


async def test_pages_go_out_at_their_instants_over_both_loops(harness: Harness) -> None:
    harness.add("T1", START, "created", "new")
    await harness.start()
    await harness.advance(60 + 50)
    assert harness.sent() == [
        ("breach/page1", "l1", "10:00"),
        ("breach/page2", "l2", "10:15"),
        ("breach/page3", "l1", "10:25"),
        ("breach/page4", "l2", "10:40"),
    ]
    assert harness.trail("T1") == [
        ("paged", "l1", "l1"),
        ("paged", "l2", "l2"),
        ("paged", "l1", "l1"),
        ("paged", "l2", "l2"),
    ]


async def test_an_ack_lapses_after_ack_timeout_when_nobody_replied(harness: Harness) -> None:
    harness.add("T1", START, "created", "new")
    app = await harness.start()
    await harness.advance(62)  # page 1 at 10:00
    outcome = await app.chains.acknowledge(CHAIN, "alice", "cli")
    assert outcome.ok and outcome.message == "acknowledged by alice"
    await harness.advance(28)  # 10:30: page 2's instant (10:15) passed while acked
    assert [s[0] for s in harness.sent()] == ["breach/page1"]
    await harness.advance(3)  # the ack (10:02) lapsed at 10:32: page 2 now
    assert harness.sent()[1] == ("breach/page2", "l2", "10:32")
    assert harness.trail("T1")[1:3] == [("acked", "alice", "cli"), ("ack_lapsed", "alice", "")]


async def test_a_reply_after_the_ack_keeps_the_chain_quiet_and_the_met_metric_ends_it(
    harness: Harness,
) -> None:
    harness.add("T1", START, "created", "new")
    app = await harness.start()
    await harness.advance(62)
    await app.chains.acknowledge(CHAIN, "alice", "link", "mine")
    harness.add("T1", START + timedelta(minutes=70), "agent_reply", "open")
    await harness.advance(10)
    await harness.poll()
    await harness.advance(60)
    assert [s[0] for s in harness.sent()] == ["breach/page1", "breach/resolved"]
    (resolved,) = harness.payloads("/resolved")
    assert resolved["kind"] == "resolved"
    assert [s[1] for s in harness.sent()] == ["l1", "l1"]  # told: whoever was paged
    assert harness.trail("T1")[-1][0] == "met"


async def test_unack_lets_the_chain_go_on_and_escalate_sends_the_next_page_now(
    harness: Harness,
) -> None:
    harness.add("T1", START, "created", "new")
    app = await harness.start()
    await harness.advance(61)  # page 1 at 10:00
    await app.chains.acknowledge(CHAIN, "alice", "api")
    await harness.advance(4)
    assert (await app.chains.unacknowledge(CHAIN, "alice", "api")).ok
    await harness.advance(11)  # 10:16
    assert harness.sent()[-1] == ("breach/page2", "l2", "10:15")  # at its own instant
    assert (await app.chains.escalate(CHAIN, "bob", "slack")).ok
    await harness.advance(1)
    assert harness.sent()[-1] == ("breach/page3", "l1", "10:16")  # due at 10:25
    await harness.advance(15)
    assert harness.sent()[-1] == ("breach/page4", "l2", "10:31")  # the 15 m wait kept
    assert [t[0] for t in harness.trail("T1")] == [
        "paged", "acked", "unacked", "paged", "escalated", "paged", "paged",
    ]  # fmt: skip


async def test_a_restart_between_pages_resumes_the_chain_and_keeps_an_ack(
    harness: Harness, tmp_path: Path
) -> None:
    harness.add("T1", START, "created", "new")
    harness.add("T2", START, "created", "new")
    app = await harness.start()
    await harness.advance(62)
    await app.chains.acknowledge("desk/T2/first_response/0/breach", "carol", "cli")
    await harness.stop()
    await harness.start()
    await harness.advance(14)  # 10:16: T1's page 2 (10:15), T2 still acked
    pages = [(k, r) for k, r, _ in harness.sent() if "page" in k]
    assert pages.count(("breach/page2", "l2")) == 1
    assert sum(1 for k, r, _ in harness.sent() if k.startswith("breach/page")) == 3
    assert harness.app is not None
    (t2,) = harness.app.chains.chains_of("desk", "T2", None)
    assert (t2.state, t2.acked_by) == ("acked", "carol")


def oncall_config(tmp_path: Path) -> str:
    return textwrap.dedent(
        f"""
        calendars:
          always: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}
          nights: {{timezone: UTC, hours: {{mon-sun: ["00:00-07:00", "22:00-24:00"]}}}}
        people:
          alice: {{email: Alice@Example.com, urls: ["console://"]}}
          bob: {{urls: ["console://"]}}
          carol: {{urls: ["console://"], quiet_hours: nights}}
        schedules:
          l1:
            timezone: UTC
            layers:
              - {{name: weekly, members: [alice, bob], rotation: 1w, start: "2024-01-01T09:00"}}
        chains:
          page:
            steps:
              - notify: [oncall:l1, ticket:assignee, ticket:group]
              - wait: 15m
              - notify: [person:carol]
        policies:
          - name: support
            calendar: always
            targets: {{first_response: 1h}}
            escalation: [{{at: breach, chain: page}}]
        sources:
          desk: {{type: csv, path: {tmp_path / "events.csv"}, poll_interval: 1m}}
        daemon:
          state: {tmp_path / "state.sqlite"}
          http: {{enabled: false}}
        """
    )


async def test_targets_are_whoever_is_on_call_assigned_or_awake_when_the_page_goes_out(
    tmp_path: Path,
) -> None:
    night = datetime(2024, 1, 8, 21, 30, tzinfo=UTC)  # bob's week on l1
    h = Harness(tmp_path)
    h.config.write_text(oncall_config(tmp_path))
    h.clock = type(h.clock)(night)
    h.events.write_text(
        "ticket_id,timestamp,event,status,priority,channel,queue,assignee,group\n"
        f"N1,{night:%Y-%m-%dT%H:%M:%SZ},created,new,normal,email,support,alice@example.com,"
        "support\n"
    )
    try:
        await h.start()
        await h.advance(80, step_minutes=5)  # 22:50: both pages are due
        assert h.sent() == [
            ("breach/page1", "person:bob", "22:30"),  # on call on l1
            ("breach/page1", "person:alice", "22:30"),  # the ticket's assignee
            ("breach/page2", "person:carol", "07:00"),  # in her quiet hours until 07:00
        ]
        assert h.trail("N1")[:2] == [
            ("paged", "bob", "person:bob"),
            ("paged", "alice", "person:alice"),
        ]
        assert h.app is not None
        unresolved = h.app.metrics.targets_unresolved.labels("ticket:group")._value.get()
        assert unresolved == 1  # group "support" is no schedule or person
    finally:
        await h.stop()


async def test_a_page_that_reaches_nobody_is_told_to_the_operator(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    text = oncall_config(tmp_path)
    text = text.replace(
        'carol: {urls: ["console://"], quiet_hours: nights}', "carol: {email: carol@example.com}"
    )
    text = text.replace(
        "\ndaemon:\n", '\nreceivers:\n  ops: {urls: ["console://"]}\ndaemon:\n  operator: ops\n'
    )
    assert "operator: ops" in text and "carol: {email" in text
    h.config.write_text(text)
    h.add("T1", START, "created", "new")
    try:
        await h.start()
        await h.advance(80, step_minutes=5)
        page2 = [s for s in h.sent() if s[0] == "breach/page2"]
        assert page2 == [], "carol has no way to be reached: no email_url"
        assert h.app is not None
        with contextlib.closing(sqlite3.connect(h.app.store.path)) as db:
            (summary,) = db.execute(
                "SELECT json_extract(payload, '$.summary') FROM outbox WHERE receiver = 'ops'"
            ).fetchone()
        assert "page 2 of chain page for ticket T1 first_response paged nobody" in summary
        assert "carol has no way to be reached" in summary
    finally:
        await h.stop()


async def test_a_reload_changes_who_the_next_page_goes_to(tmp_path: Path) -> None:
    night = datetime(2024, 1, 8, 21, 30, tzinfo=UTC)  # bob's week on l1
    h = Harness(tmp_path)
    h.config.write_text(oncall_config(tmp_path))
    h.clock = type(h.clock)(night)
    h.add("R1", night, "created", "new")
    try:
        app = await h.start()
        h.config.write_text(
            oncall_config(tmp_path).replace("members: [alice, bob]", "members: [carol, alice]")
        )
        assert await app.reload()
        await h.advance(62, step_minutes=2)  # 22:30: the breach pages l1
        assert [r for k, r, _ in h.sent() if k == "breach/page1"] == ["person:alice"]
    finally:
        await h.stop()
