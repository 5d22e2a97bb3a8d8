"""Noise control on virtual time: a Monday 08:00 flood of 300 breaches across 4 queues goes out
as a few digests, at most one per group per group_interval, each carrying every ticket; a
group still firing repeats; a restart in a group's wait neither loses nor repeats it; a route
muted by a calendar holds its digest until the calendar closes."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import textwrap
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.scenario.harness import DaemonHarness

MONDAY = datetime(2024, 1, 8, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
QUEUES = ("billing", "sales", "support", "tech")


def config_text(tmp_path: Path, route: str) -> str:
    return textwrap.dedent(
        f"""
        calendars:
          always: {{timezone: Europe/Berlin, hours: {{mon-sun: "00:00-24:00"}}}}
          office: {{timezone: Europe/Berlin, hours: {{mon-fri: "09:00-17:00"}}}}
        receivers:
          desk: {{urls: ["console://"]}}
          leads: {{urls: ["console://"]}}
        policies:
          - name: support
            calendar: always
            targets: {{first_response: 1h}}
            escalation: [{{at: breach}}, {{at: breach+30m}}]
        sources:
          desk: {{type: csv, path: {tmp_path / "events.csv"}, poll_interval: 1m}}
        daemon:
          state: {tmp_path / "state.sqlite"}
          http: {{enabled: false}}
        """
    ) + textwrap.dedent(route)


ROUTE = """
route:
  receiver: desk
  group_by: [queue, metric, kind]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['level="breach+30m"']
      receiver: leads
"""


class Harness(DaemonHarness):
    def messages(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Outbox rows: (receiver, key, payload), in order."""
        assert self.app is not None
        with contextlib.closing(sqlite3.connect(self.app.store.path)) as db:
            rows = db.execute("SELECT receiver, key, payload FROM outbox ORDER BY id").fetchall()
        return [(r, k, json.loads(p)) for r, k, p in rows]


@pytest.fixture
async def flood(tmp_path: Path) -> AsyncIterator[Harness]:
    """300 tickets created over the weekend's last hour, breaching from Monday 08:00 on."""
    h = Harness(tmp_path, config_text(tmp_path, ROUTE), MONDAY - timedelta(hours=1))
    for n in range(300):
        created = MONDAY - timedelta(hours=1) + timedelta(seconds=n * 4)  # breaches 08:00-08:20
        h.add(f"T{n}", created, "created", "new", queue=QUEUES[n % 4])
    yield h
    await h.stop()


async def test_a_monday_flood_goes_out_as_digests_one_per_group_per_interval(
    flood: Harness,
) -> None:
    await flood.start()
    await flood.advance(60 + 60, step_minutes=0.5)  # to 09:00: breaches and breach+30m
    sent = flood.messages()
    groups = Counter(key.rsplit("/", 1)[0] for _, key, _ in sent)
    assert len(groups) == 8  # 4 queues × (breach to desk, breach+30m to leads)
    # 08:00-08:20 of breaches: the first message after 30 s, then one per 5 minutes.
    assert max(groups.values()) <= 1 + 20 // 5 + 1
    tickets = Counter(
        item["ticket_id"] for _, _, p in sent for item in p["items"] if p["kind"] == "group"
    )
    assert len(tickets) == 300 and set(tickets.values()) == {2}  # each ticket, both levels
    by_receiver = Counter(r for r, _, _ in sent)
    per_group = Counter(
        {r: sum(n for g, n in groups.items() if f"/{r}/" in g) for r in by_receiver}
    )
    assert by_receiver == per_group
    assert len(sent) <= 48, f"{len(sent)} messages instead of 600 one-by-one"


async def test_a_restart_during_group_wait_sends_the_group_once(flood: Harness) -> None:
    await flood.start()
    await flood.advance(60, step_minutes=0.25)  # 08:00: the first breaches wait in groups
    await flood.advance(0.25)
    await flood.stop()
    await flood.start()
    await flood.advance(25, step_minutes=0.5)
    keys = [key for _, key, _ in flood.messages()]
    assert len(keys) == len(set(keys))
    tickets = [i["ticket_id"] for _, _, p in flood.messages() for i in p["items"]]
    assert len(tickets) == len(set(tickets)) == 300  # every breach once, none twice


async def test_a_muted_route_holds_its_digest_until_the_calendar_closes(tmp_path: Path) -> None:
    route = ROUTE.replace(
        "      receiver: leads\n",
        "      receiver: leads\n      mute_time_intervals: [office]\n",
    )
    h = Harness(tmp_path, config_text(tmp_path, route), MONDAY - timedelta(hours=1))
    h.add("M1", MONDAY - timedelta(minutes=30), "created", "new", queue="billing")  # 07:30
    try:
        await h.start()
        await h.advance(130, step_minutes=1)  # breach at 08:30, breach+30m at 09:00 (Berlin)
        assert [r for r, _, _ in h.messages()] == ["desk"]
        await h.advance(8 * 60, step_minutes=10)  # the office closes at 17:00
        leads = [(k, p) for r, k, p in h.messages() if r == "leads"]
        assert len(leads) == 1
        assert str(leads[0][1]["at"]).startswith("2024-01-08T16:00")  # 17:00 in Berlin
    finally:
        await h.stop()


def test_with_a_route_a_level_names_no_notify_targets(tmp_path: Path) -> None:
    from sladaemon.config import load_config
    from sladaemon.errors import ConfigError

    path = tmp_path / "config.yaml"
    path.write_text(
        config_text(tmp_path, ROUTE).replace("{at: breach}", "{at: breach, notify: [desk]}")
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    (issue,) = info.value.issues
    assert str(issue).startswith(f"{path}:12 policies[0].escalation[0].notify: with a route:")


async def test_a_silence_added_mid_flood_holds_its_queue_and_its_expiry_lets_it_through(
    flood: Harness,
) -> None:
    from sladaemon.escalate.silences import matchers_of, new_silence

    app = await flood.start()
    await flood.advance(62, step_minutes=0.5)  # 08:02: the first digests went out
    before = len(flood.messages())
    now = flood.clock.now()
    silence = new_silence(
        "s1", matchers_of(['queue="billing"']), now=now, ends_at=now + timedelta(minutes=30),
        created_by="lead", comment="billing migration",
    )  # fmt: skip
    app.silences.add(silence)
    await flood.advance(20, step_minutes=0.5)  # 08:22: the flood goes on in the other queues
    during = flood.messages()[before:]
    assert during and all('queue="billing"' not in k for _, k, _ in during)
    held = app.metrics.notifications_silenced.labels("desk")._value.get()
    assert held > 0
    trail = [e for _, e in app.chains.store.audit("desk", "T0")]  # a billing ticket
    assert any(e.action == "silenced" and "billing migration" in e.detail for e in trail)
    await flood.advance(20, step_minutes=0.5)  # 08:42: the silence ended at 08:32
    after = [
        p for _, k, p in flood.messages() if 'queue="billing"' in k and p["at"] > "2024-01-08T07:32"
    ]
    tickets = {i["ticket_id"] for p in after for i in p["items"]}
    assert len(tickets) >= held, "what was held while silenced went out once it ended"


async def test_without_a_route_a_silence_drops_the_level_messages_it_matches(
    tmp_path: Path,
) -> None:
    from sladaemon.escalate.silences import matchers_of, new_silence

    text = config_text(tmp_path, "").replace(
        "escalation: [{at: breach}, {at: breach+30m}]", "escalation: [{at: breach, notify: [desk]}]"
    )
    h = Harness(tmp_path, text, MONDAY - timedelta(hours=1))
    h.add("B1", MONDAY - timedelta(minutes=50), "created", "new", queue="billing")
    h.add("S1", MONDAY - timedelta(minutes=50), "created", "new", queue="sales")
    try:
        app = await h.start()
        now = h.clock.now()
        app.silences.add(
            new_silence(
                "s2",
                matchers_of(["queue=billing"]),
                now=now,
                ends_at=now + timedelta(hours=2),
                created_by="lead",
                comment="migration",
            )
        )
        await h.advance(75, step_minutes=1)  # both breach at 07:10
        assert [k for _, k, _ in h.messages()] == ["desk/S1/first_response/0/breach"]
        assert app.metrics.notifications_silenced.labels("desk")._value.get() == 1
        (entry,) = [e for _, e in app.chains.store.audit("desk", "B1")]  # what explain shows
        assert (entry.action, entry.via, entry.detail) == (
            "silenced",
            "desk",
            "silence s2 by lead: migration",
        )
    finally:
        await h.stop()


@pytest.mark.parametrize(
    ("breach", "sent_at"),
    [
        # Thursday before Easter, office open (CET): held until 17:00 Berlin = 16:00 UTC.
        (datetime(2024, 3, 28, 9, 0, tzinfo=UTC), "2024-03-28T16:00"),
        # Good Friday, a holiday in Germany: the office is closed, the digest goes at once.
        (datetime(2024, 3, 29, 9, 0, tzinfo=UTC), "2024-03-29T09:00"),
        # Tuesday after Easter, summer time (CEST): held until 17:00 Berlin = 15:00 UTC.
        (datetime(2024, 4, 2, 8, 0, tzinfo=UTC), "2024-04-02T15:00"),
    ],
)
async def test_mute_intervals_follow_the_calendar_across_a_holiday_and_dst(
    tmp_path: Path, breach: datetime, sent_at: str
) -> None:
    route = """
route:
  receiver: desk
  group_by: [queue]
  group_wait: 30s
  routes:
    - matchers: [queue=billing]
      mute_time_intervals: [office]
"""
    text = config_text(tmp_path, route).replace(
        'office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}}',
        'office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}, '
        "holidays: {country: DE}}",
    )
    text = text.replace(
        "escalation: [{at: breach}, {at: breach+30m}]", "escalation: [{at: breach}]"
    )
    h = Harness(tmp_path, text, breach - timedelta(hours=1))
    h.add("H1", breach - timedelta(hours=1), "created", "new", queue="billing")
    try:
        await h.start()
        await h.advance(10 * 60, step_minutes=5)
        first = datetime.fromisoformat(str(h.messages()[0][2]["at"]).replace("Z", "+00:00"))
        due = datetime.fromisoformat(sent_at + ":00+00:00")
        assert due <= first <= due + timedelta(minutes=5), first  # within the clock's step
    finally:
        await h.stop()


async def test_a_receivers_rate_limit_sends_the_rest_as_one_digest_when_there_is_room(
    tmp_path: Path,
) -> None:
    text = config_text(tmp_path, "").replace(
        "escalation: [{at: breach}, {at: breach+30m}]", "escalation: [{at: breach, notify: [desk]}]"
    )
    text = text.replace(
        'desk: {urls: ["console://"]}',
        'desk: {urls: ["console://"], rate_limit: {count: 5, per: 10m}}',
    )
    h = Harness(tmp_path, text, MONDAY - timedelta(hours=1))
    for n in range(30):  # 30 breaches within 3 minutes
        h.add(f"R{n}", MONDAY - timedelta(hours=1) + timedelta(seconds=6 * n), "created", "new")
    try:
        app = await h.start()
        await h.advance(60 + 20, step_minutes=0.5)  # to 08:20
        sent = h.messages()
        one_by_one = [k for _, k, _ in sent if k.startswith("desk/")]
        digests = [p for _, k, p in sent if k.startswith("group/desk/rate_limited")]
        assert len(one_by_one) == 5, "the cap: 5 per 10 minutes"
        assert len(digests) == 1, "the rest in one digest, when the window had room"
        held = {i["ticket_id"] for i in digests[0]["items"]}
        assert len(held) == 25 and held.isdisjoint(k.split("/")[1] for k in one_by_one)
        assert str(digests[0]["at"]) >= "2024-01-08T07:10"  # the first message + 10 minutes
        assert app.metrics.rate_limited.labels("desk")._value.get() == 25
    finally:
        await h.stop()
