"""Escalation chains, the pure parts: when each page is due, what acks, unacks and
escalations do to the rest of a chain, signed ack links, who a target stands for, and the
config of chains and targets (errors with file, line and path)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sladaemon.config import load_config
from sladaemon.errors import ConfigError
from sladaemon.escalate.chains import Chain, pages
from sladaemon.escalate.links import AckLinks, LinkRefused
from sladaemon.escalate.targets import Recipient, resolve
from sladaemon.model import Metric

S = 1_000_000  # µs


def chain(steps: Sequence[tuple[tuple[str, ...] | None, int]], loops: int = 1) -> Chain:
    return Chain(
        key="desk/T1/first_response/0/breach",
        source="desk",
        ticket_id="T1",
        metric=Metric.FIRST_RESPONSE,
        cycle=0,
        level="breach",
        name="page",
        pages=pages(steps, loops),
        ack_timeout_us=1800 * S,
        started_us=1000 * S,
    )


TWO_LEVELS = [(("oncall:l1",), 0), (None, 900 * S), (("oncall:l2",), 0), (None, 600 * S)]


def test_pages_run_their_waits_and_loops() -> None:
    got = [(p.number, p.offset_us // S, p.notify) for p in pages(TWO_LEVELS, loops=2)]
    assert got == [
        (0, 0, ("oncall:l1",)),
        (1, 900, ("oncall:l2",)),
        (2, 1500, ("oncall:l1",)),
        (3, 2400, ("oncall:l2",)),
    ]


def test_each_page_falls_due_at_its_instant_and_the_chain_ends_after_the_last() -> None:
    c = chain(TWO_LEVELS)
    assert c.due_us() == 1000 * S
    c = c.paged()
    assert (c.state, c.due_us()) == ("active", 1900 * S)
    c = c.paged()
    assert (c.state, c.due_us()) == ("done", None)


def test_an_ack_holds_the_chain_until_it_lapses_then_the_next_page_is_due_at_once() -> None:
    c = chain(TWO_LEVELS).paged().acked("alice", "link", now_us=1100 * S)
    assert (c.state, c.due_us()) == ("acked", 2900 * S)  # ack_timeout after the ack
    lapsed = c.unacked(now_us=2900 * S)
    assert (lapsed.state, lapsed.due_us()) == ("active", 2900 * S)
    early = c.unacked(now_us=1200 * S)  # taken back before the page's own instant
    assert early.due_us() == 1900 * S


def test_escalate_sends_the_next_page_now_and_keeps_the_spacing_after_it() -> None:
    c = chain(TWO_LEVELS, loops=2).paged().escalated(now_us=1100 * S)
    assert c.due_us() == 1100 * S
    assert c.paged().due_us() == 1100 * S + 600 * S  # the wait after page 2 is kept


@given(
    waits=st.lists(st.integers(1, 10_000), min_size=1, max_size=6),
    loops=st.integers(1, 4),
    acks=st.lists(st.integers(0, 50_000), max_size=5),
)
def test_pages_never_go_back_in_time_however_acks_and_lapses_fall(
    waits: list[int], loops: int, acks: list[int]
) -> None:
    steps: list[tuple[tuple[str, ...] | None, int]] = []
    for w in waits:
        steps += [(("receiver:r",), 0), (None, w * S)]
    c = chain(steps, loops)
    sent: list[int] = []
    now = c.started_us
    ack_at = iter(sorted(acks))
    while c.state == "active":
        due = c.due_us()
        assert due is not None
        now = max(now, due or now)
        sent.append(now)
        c = c.paged()
        nxt = next(ack_at, None)
        if nxt is not None and c.state == "active":
            now += nxt * S
            c = c.acked("a", "cli", now).unacked(now + c.ack_timeout_us)
            now += c.ack_timeout_us
    assert len(sent) == len(waits) * loops
    assert sent == sorted(sent)


def test_a_link_verifies_until_it_expires_and_any_change_is_forged() -> None:
    links = AckLinks("https://sla.example.com/", "s" * 32)
    token = links.token("desk/T1/first_response/0/breach", "alice", expires=2000)
    claim = links.verify(token, now=1999)
    assert (claim.chain, claim.person, claim.expires) == (
        "desk/T1/first_response/0/breach",
        "alice",
        2000,
    )
    assert links.url("k", "p", 5).startswith("https://sla.example.com/ack/")
    with pytest.raises(LinkRefused) as expired:
        links.verify(token, now=2000)
    assert expired.value.reason == "expired"
    signature = token.split(".")[1]
    other_body = AckLinks("x", "s" * 32).token("desk/T2/first_response/0/breach", "alice", 2000)
    for forged in (
        other_body.split(".")[0] + "." + signature,  # another chain, the old signature
        AckLinks("x", "t" * 32).token("desk/T1/first_response/0/breach", "alice", 2000),
    ):
        with pytest.raises(LinkRefused) as refused:
            links.verify(forged, now=0)
        assert refused.value.reason == "forged"
    for malformed in ("", "no-dot", "%%%.%%%", "a" * 3000 + ".b"):
        with pytest.raises(LinkRefused) as bad:
            links.verify(malformed, now=0)
        assert bad.value.reason in ("malformed", "forged")


@dataclass(frozen=True)
class OnCall:
    person: str


@dataclass(frozen=True)
class Person:
    name: str


class Roster:
    """A roster with fixed answers: l1 has alice, l2 nobody; bob is quiet until 07:00."""

    def on_call(self, schedule: str, at: datetime) -> OnCall | None:
        return OnCall("alice") if schedule in ("l1", "support") else None

    def quiet_until(self, person: str, at: datetime) -> datetime | None:
        return at.replace(hour=7, minute=0) if person == "bob" else None

    def person_by_email(self, email: str) -> Person | None:
        return {"bob@example.com": Person("bob")}.get(email)


AT = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)


def test_targets_resolve_at_the_instant_they_are_sent() -> None:
    fields = {"assignee": "Bob@Example.com", "group": "support"}
    found = resolve(
        ["hook", "receiver:mail", "oncall:l1", "person:bob", "ticket:assignee", "ticket:group"],
        fields,
        AT,
        Roster(),
        schedules={"l1", "l2", "support"},
        people={"alice", "bob"},
    )
    assert found.recipients == [
        Recipient("hook", "", "hook"),
        Recipient("mail", "", "receiver:mail"),
        Recipient("person:alice", "alice", "oncall:l1"),
        Recipient("person:bob", "bob", "person:bob", AT.replace(hour=7)),
    ]  # the assignee is bob again and the group's on-call alice again: each paged once
    assert found.unresolved == []


def test_targets_that_stand_for_nobody_say_why() -> None:
    found = resolve(
        ["oncall:l2", "ticket:assignee", "ticket:group"],
        {"assignee": "eve@example.com", "group": "billing"},
        AT,
        Roster(),
        schedules={"l2"},
        people=set(),
    )
    assert found.recipients == []
    assert found.unresolved == [
        ("oncall:l2", "nobody is on call for l2"),
        ("ticket:assignee", "assignee eve@example.com is not one of people:"),
        ("ticket:group", "group billing is no schedule or person"),
    ]
    unassigned = resolve(["ticket:assignee", "ticket:group"], {}, AT, Roster())
    assert unassigned.unresolved == [
        ("ticket:assignee", "the ticket has no assignee"),
        ("ticket:group", "the ticket has no group"),
    ]


BASE = """
calendars:
  always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
receivers:
  hook: {urls: ["json://127.0.0.1:9/hook"]}
policies:
  - name: p
    calendar: always
    targets: {first_response: 1h}
    escalation: [{at: breach, chain: page, notify: [hook]}]
"""


def errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(BASE).lstrip() + textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    return [str(i) for i in info.value.issues]


def test_a_chain_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(BASE).lstrip()
        + "chains:\n  page: {steps: [{notify: hook}, {wait: 15m}, {notify: [receiver:hook]}, "
        "{wait: 5m}], loops: 2, ack_timeout: 10m}\n"
        "ack: {public_url: 'https://sla.example.com/', secret: 0123456789abcdef0123}\n"
    )
    cfg = load_config(path, environ={})
    (level,) = cfg.policies[0].ladder
    assert (level.chain, level.notify) == ("page", ("hook",))
    page = cfg.settings.chains["page"]
    assert (page.loops, page.ack_timeout, page.steps[1].wait) == (
        2,
        timedelta(minutes=10),
        timedelta(minutes=15),
    )
    assert cfg.settings.ack is not None and cfg.settings.ack.public_url == "https://sla.example.com"


def test_chain_and_target_mistakes_name_file_line_and_path(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        """
chains:
  page:
    steps:
      - {notify: [oncall:nobody, person:ghost, ticket:owner, nope]}
      - {wait: 5m, notify: [hook]}
    loops: 2
  other: {steps: [{wait: 1m}]}
ack: {public_url: "ftp://x", secret: short}
""",
    )
    text = "\n".join(found)
    path = tmp_path / "config.yaml"
    assert f"{path}:14 chains.page.steps[0].notify[0]: unknown schedule 'nobody'" in text
    assert f"{path}:14 chains.page.steps[0].notify[1]: unknown person 'ghost'" in text
    assert "chains.page.steps[0].notify[2]: unknown ticket target 'ticket:owner'" in text
    assert "chains.page.steps[0].notify[3]: unknown receiver 'nope'" in text
    assert "a step is either {notify: [...]} or {wait: DURATION}" in text
    assert "chains.other: " in text and "the chain notifies nobody" in text
    assert "ack.public_url: public_url must be an http(s) URL" in text
    assert "ack.secret: the ack secret needs at least 16 characters" in text


def test_a_looping_chain_must_end_with_a_wait_and_a_level_names_a_known_chain(
    tmp_path: Path,
) -> None:
    found = errors(tmp_path, "chains:\n  other: {steps: [{notify: hook}], loops: 3}\n")
    text = "\n".join(found)
    assert "policies[0].escalation[0].chain: unknown chain 'page' (other)" in text
    assert "a chain that loops must end with a {wait: ...} step" in text


README = Path(__file__).resolve().parents[2] / "README.md"
README_ENV = {
    "SMTP_PASSWORD": "smtp-password",
    "ZENDESK_TOKEN": "zendesk-token-0123456789",
    "ACK_SECRET": "ack-secret-0123456789abcdef",
    "SLACK_BOT_TOKEN": "xoxb-1-2-readmebottoken",
    "SLACK_SIGNING_SECRET": "readme-signing-secret",
}


def test_the_readme_on_call_example_passes_check(tmp_path: Path) -> None:
    section = README.read_text().split("\n## On call\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "config.yaml"
    path.write_text(example + f"  state: {tmp_path / 'state.sqlite'}\n")
    result = subprocess.run(
        [sys.executable, "-m", "sladaemon", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **README_ENV},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    cfg = load_config(path, environ=README_ENV)
    (chain_level,) = [lv for lv in cfg.policies[0].ladder if lv.chain]
    assert chain_level.chain == "page-support"
    steps = cfg.settings.chains["page-support"].steps
    assert [s.notify for s in steps if s.notify] == [["oncall:support-l1"], ["person:carol"]]
    receivers = cfg.delivery_receivers()
    assert [u.get_secret_value() for u in receivers["person:alice"].urls] == [
        "slack-app://U0123ALICE"
    ]
    assert receivers["person:carol"].urls[0].get_secret_value().startswith("mailtos://")


def test_ack_secrets_are_redacted_and_reading_commands_need_none(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(BASE).lstrip()
        + "chains:\n  page: {steps: [{notify: hook}]}\n"
        + "ack: {public_url: 'https://sla.example.com', secret: '${ACK_SECRET}', "
        "api_tokens: ['${ACK_TOKEN}']}\n"
    )
    env = {"ACK_SECRET": "ack-secret-0123456789", "ACK_TOKEN": "api-token-0123456789"}
    assert {"ack-secret-0123456789", "api-token-0123456789"} <= load_config(
        path, environ=env
    ).secrets()
    reading = load_config(path, environ={}, secrets=False)  # the variables are not set
    assert reading.settings.ack is None


def test_people_are_mailed_through_email_url_and_a_person_with_no_way_is_unresolved(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(BASE).lstrip()
        + "chains:\n  page: {steps: [{notify: hook}]}\n"
        + "people:\n  dora: {email: Dora@Example.com}\n"
        + "daemon: {email_url: 'mailtos://sla:${MAIL_PASSWORD}@smtp.example.com?from=sla@example.com'}\n"
    )
    cfg = load_config(path, environ={"MAIL_PASSWORD": "pw-0123456789"})
    (url,) = cfg.delivery_receivers()["person:dora"].urls
    assert url.get_secret_value() == (
        "mailtos://sla:pw-0123456789@smtp.example.com?from=sla@example.com&to=dora@example.com"
    )
    assert "pw-0123456789" in cfg.secrets()
    assert load_config(path, environ={}, secrets=False).daemon.email_url is None
    without = path.read_text().replace("daemon: {email_url", "#")
    path.write_text(without)
    assert "person:dora" not in load_config(path, environ={}).delivery_receivers()
