"""Request Tracker 5 from Debian's packages, for real, against the RT connector and the daemon.

The fixture builds a throwaway RT: a fresh SQLite database (``rt-setup-database``), a site
config (tests/integration/rt/RT_SiteConfig.pm.in) with one SLA level and business hours
Monday to Friday 09:00-17:00 in a named time zone, an auth token for root (the agent) and a
customer user (tests/integration/rt/setup.pl), then ``rt-server`` on a free loopback port.
The test drives tickets through REST2 as the customer and as the agent, lets the daemon
(``App``) read them with a policy whose calendar and targets are RT's level, and checks
that first responses come from RT's correspondence and that our deadlines are RT's ``Due``.

What RT's ``Due`` means, and how sladaemon is configured to match (lib/RT/SLA.pm,
lib/RT/Action/SLA_SetDue.pm, Business::Hours 0.13):

* ``Due = min(Response, Resolve)``. Response runs from the oldest unanswered message of an
  "outside actor" (a requestor who is not the owner) and is dropped once anyone else
  corresponds (KeepInLoop, which would take its place, is not set); Resolve runs from
  creation. With the "standard" level Due is our ``first_response`` deadline until the first
  agent reply, our ``resolution`` deadline after it, and our ``next_response`` deadline after
  a later requestor reply: targets first_response = next_response = the level's Response (60
  business minutes), resolution = its Resolve (480). The connector files each Due as the
  earliest of the goals RT computed it from, and the daemon compares it with the earliest of
  ours. The "express" level resolves within 30 real minutes, before its response goal: its
  Due is the resolution deadline from the start.
* A requestor's correspondence on a resolved ticket reopens it in the same second ("On
  Correspond Open Inactive Tickets"); the reply waits for an answer: next_response.
* ``IgnoreOnStatuses => ['stalled']`` unsets Due while stalled and, with
  ``ExcludeTimeOnIgnoredStatuses``, adds the business time spent stalled when the ticket
  leaves it: our policy pauses on ``on_hold`` (stalled's category). RT counts that time with
  ``Business::Hours::between``, which includes both ends of the pause, so RT's Due is one
  second later than ours for each pause that ends inside business hours.
* Business::Hours counts whole seconds from RT's one-second timestamps: no rounding to
  minutes. A deadline landing on a closing time moves to the next opening, as ours does.
* A ticket created by an agent on a customer's behalf never gets a Response goal in RT (the
  creator is not an outside actor); here every ticket is opened by the customer.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from sladaemon.calendar import BusinessCalendar, to_us
from sladaemon.clock import FakeClock
from sladaemon.config import load_config
from sladaemon.config.models import RequestTrackerSourceConfig
from sladaemon.daemon.app import App
from sladaemon.model import EventKind, Metric, MetricState, TicketEvent
from sladaemon.sla.engine import MetricStatus, TicketReplay, evaluate
from sladaemon.sla.explain import explain_json
from sladaemon.sla.native import native_deadlines
from sladaemon.sources.base import SourceError
from sladaemon.sources.rt.source import RequestTrackerSource

RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
SETUP_DATABASE = Path("/usr/sbin/rt-setup-database-5")
HERE = Path(__file__).resolve().parent / "rt"
RESPONSE_MINUTES = 60
RESOLVE_MINUTES = 480
EXPRESS_RESOLVE_MINUTES = 30  # real minutes: the "express" level's resolve goal comes first
CUSTOMER = "customer@example.com"
CUSTOMER_PASSWORD = "customer-secret"
# Candidate zones for the business hours: the first where it is now a weekday, well within
# 09:00-17:00, makes the stalled pauses fall inside business time.
ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Pacific/Auckland",
    "America/Sao_Paulo",
    "Asia/Dubai",
    "Pacific/Honolulu",
)

# .ci/run sets SLADAEMON_REQUIRE_RT=1: there a missing RT fails the run instead of skipping.
pytestmark = pytest.mark.skipif(
    not (RT_SERVER.exists() and SETUP_DATABASE.exists())
    and os.environ.get("SLADAEMON_REQUIRE_RT") != "1",
    reason="Request Tracker 5 is not installed "
    "(apt-get install request-tracker5 rt5-standalone rt5-db-sqlite; .ci/run does it)",
)


@dataclass
class RealRt:
    url: str
    token: str
    timezone: str
    log: Path

    def call(self, method: str, path: str, body: Any = None, *, customer: bool = False) -> Any:
        if customer:
            pair = f"customer:{CUSTOMER_PASSWORD}".encode()
            auth = "Basic " + base64.b64encode(pair).decode()
        else:
            auth = f"token {self.token}"
        request = urllib.request.Request(
            f"{self.url}/REST/2.0/{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": auth, "Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()!r}") from None

    def create(self, subject: str, sla: str | None = None) -> int:
        body = {
            "Queue": "General",
            "Subject": subject,
            "Requestor": CUSTOMER,
            "Content": "Please help.",
            "ContentType": "text/plain",
            **({"SLA": sla} if sla else {}),
        }
        return int(self.call("POST", "ticket", body, customer=True)["id"])

    def correspond(self, ticket: int, *, customer: bool = False, **extra: Any) -> None:
        body = {"Content": "Answer.", "ContentType": "text/plain", **extra}
        self.call("POST", f"ticket/{ticket}/correspond", body, customer=customer)

    def comment(self, ticket: int) -> None:
        body = {"Content": "Internal note.", "ContentType": "text/plain"}
        self.call("POST", f"ticket/{ticket}/comment", body)

    def status(self, ticket: int, status: str) -> None:
        self.call("PUT", f"ticket/{ticket}", {"Status": status})

    def ticket(self, ticket: int) -> dict[str, Any]:
        data: dict[str, Any] = self.call("GET", f"ticket/{ticket}")
        return data

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def business_zone(at: datetime) -> str:
    for name in ZONES:
        local = at.astimezone(ZoneInfo(name))
        minutes = local.hour * 60 + local.minute
        if local.weekday() < 5 and 9 * 60 + 15 <= minutes <= 15 * 60 + 30:
            return name
    return ZONES[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float) -> str:
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"rt-server exited ({server.returncode}):\n{log.read_text(errors='replace')}"
            )
        try:
            opener.open(f"{url}/REST/2.0/", timeout=5).close()
            return
        except urllib.error.HTTPError:
            return  # 401: RT answers
        except OSError:
            time.sleep(0.2)
    pytest.fail(
        f"rt-server did not answer within {timeout:.0f}s:\n{log.read_text(errors='replace')}"
    )


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop rt-server and its workers (its own process group)."""
    if server.poll() is not None:
        return
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=15)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRt]:
    folder = tmp_path_factory.mktemp("rt")
    port = free_port()
    zone = business_zone(datetime.now(UTC))
    for name in ("siteconfig.d", "mason_data", "session_data"):
        (folder / name).mkdir()
    site = folder / "RT_SiteConfig.pm"
    text = (HERE / "RT_SiteConfig.pm.in").read_text()
    for key, value in {
        "DATABASE": str(folder / "rt.sqlite"),
        "PORT": str(port),
        "VARDIR": str(folder),
        "TIMEZONE": zone,
        "RESPONSE_MINUTES": str(RESPONSE_MINUTES),
        "RESOLVE_MINUTES": str(RESOLVE_MINUTES),
        "EXPRESS_RESOLVE_MINUTES": str(EXPRESS_RESOLVE_MINUTES),
    }.items():
        text = text.replace(f"@@{key}@@", value)
    site.write_text(text)
    env = {
        **os.environ,
        "RT_SITE_CONFIG": str(site),
        "RT_SITE_CONFIG_DIR": str(folder / "siteconfig.d"),
        "TZ": "UTC",
    }
    run([str(SETUP_DATABASE), "--action", "init", "--skip-create"], env, folder, timeout=300)
    perl = shutil.which("perl") or "/usr/bin/perl"
    token = json.loads(run([perl, str(HERE / "setup.pl"), CUSTOMER_PASSWORD], env, folder, 120))
    log = folder / "rt-server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(RT_SERVER), "--host", "127.0.0.1", "--port", str(port), "--max-workers", "2"],
            env=env,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server, log, timeout=180)
        yield RealRt(url, str(token["token"]), zone, log)
    finally:
        stop(server)
        print(f"rt-server log (last lines):\n{RealRt(url, '', zone, log).log_tail()}")


def rt_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def inclusive_extra(calendar: BusinessCalendar, pause_ended_at: datetime) -> timedelta:
    """The second Business::Hours adds for a pause that ends at a business second."""
    start = to_us(pause_ended_at)
    counted = calendar.elapsed_us(start, start + 1_000_000)
    return timedelta(seconds=1) if counted else timedelta(0)


def rt_dues(replay: TicketReplay, field: str) -> list[datetime]:
    """The values RT's Due took while filed under ``field``, in order (clearings left out)."""
    return [rt_time(e.fields[field]) for e in replay.events if e.fields.get(field)]


def reopened_at(events: list[TicketEvent]) -> datetime:
    """When the ticket left "stalled"."""
    after_stall = False
    for event in events:
        if event.status == "stalled":
            after_stall = True
        elif after_stall and event.status == "open" and event.kind is EventKind.STATUS_CHANGED:
            return event.at
    raise AssertionError("the ticket never left stalled")


def write_config(tmp_path: Path, rt: RealRt) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            calendars:
              rt-hours:
                timezone: {rt.timezone}
                hours: {{mon-fri: "09:00-17:00"}}
              rt-always:
                timezone: {rt.timezone}
                hours: {{mon-sun: "00:00-24:00"}}
            policies:
              - name: rt-express
                match: {{sla: express}}
                calendar: rt-hours
                targets:
                  first_response: {RESPONSE_MINUTES}m
                  next_response: {RESPONSE_MINUTES}m
                  resolution: {EXPRESS_RESOLVE_MINUTES}m
                overrides:
                  resolution: {{calendar: rt-always}}
              - name: rt-standard
                calendar: rt-hours
                pause_on: [on_hold]
                targets:
                  first_response: {RESPONSE_MINUTES}m
                  next_response: {RESPONSE_MINUTES}m
                  resolution: {RESOLVE_MINUTES // 60}h
            sources:
              rt:
                type: rt
                url: "{rt.url}"
                token: "{rt.token}"
                overlap: 2s
                tolerance: 2s
                poll_interval: 1h
            daemon:
              state: {tmp_path / "state.sqlite"}
              http: {{enabled: false}}
            """
        )
    )
    return config


async def test_first_responses_and_deadlines_match_rts_own_due(rt: RealRt, tmp_path: Path) -> None:
    answered = rt.create("VPN down")  # note, answer, stall, reopen, the customer writes again
    waiting = rt.create("Printer jam")  # never answered, stalled for a while
    replied = rt.create("Password reset")  # answered at once
    await asyncio.sleep(1.1)
    rt.comment(answered)
    rt.correspond(answered)
    rt.correspond(replied)
    rt.status(answered, "stalled")
    rt.status(waiting, "stalled")
    await asyncio.sleep(2.5)
    rt.status(answered, "open")
    rt.status(waiting, "open")
    await asyncio.sleep(1.1)
    rt.correspond(answered, customer=True)

    app = App(
        load_config(write_config(tmp_path, rt)),
        clock=FakeClock(datetime.now(UTC)),
        console=io.StringIO(),
    )
    with capture_logs() as logs:
        await app.start()
    try:
        replays = {int(key[1]): replay for key, replay in app.tickets.replays.items()}
        assert set(replays) == {answered, waiting, replied}, rt.log_tail()
        calendar = app.config.calendars["rt-hours"]
        now = datetime.now(UTC)

        def metric(ticket: int, which: Metric) -> MetricStatus:
            return evaluate(replays[ticket].events, app.config.policies, now).metrics[which]

        # (a) First responses come from RT's correspondence. RT stamps Told with a fresh "now"
        # after it has recorded the Correspond transaction, so Told may be the next second.
        story = [
            (e.kind, e.status)
            for e in replays[answered].events
            if not any(k.startswith("due:") for k in e.fields)
        ]
        assert story == [
            (EventKind.CREATED, "new"),
            (EventKind.INTERNAL_NOTE, ""),
            (EventKind.AGENT_REPLY, ""),
            (EventKind.STATUS_CHANGED, "open"),
            (EventKind.STATUS_CHANGED, "stalled"),
            (EventKind.STATUS_CHANGED, "open"),
            (EventKind.CUSTOMER_REPLY, "open"),
        ]
        for ticket in (answered, replied):
            first = metric(ticket, Metric.FIRST_RESPONSE)
            assert first.state is MetricState.MET
            assert first.ended_at is not None
            told = rt_time(rt.ticket(ticket)["Told"])
            assert timedelta(0) <= told - first.ended_at <= timedelta(seconds=1)
        assert metric(waiting, Metric.FIRST_RESPONSE).state is MetricState.RUNNING

        # (b) Same calendar and targets: our deadlines are RT's Due, phase by phase.
        first = metric(answered, Metric.FIRST_RESPONSE)
        assert rt_dues(replays[answered], "due:first_response|resolution") == [first.deadline]
        resolution = metric(answered, Metric.RESOLUTION)
        extra = inclusive_extra(calendar, reopened_at(replays[answered].events))
        assert resolution.deadline is not None
        resolves = rt_dues(replays[answered], "due:periodic_update|resolution")
        assert resolves[-1] == resolution.deadline + extra  # after the stall
        next_response = metric(answered, Metric.NEXT_RESPONSE)
        assert rt_dues(replays[answered], "due:next_response|resolution") == [
            next_response.deadline
        ]
        assert rt_time(rt.ticket(answered)["Due"]) == next_response.deadline
        # RT shows one Due: the ticket keeps only the newest, under the metric it stands for.
        ours = replays[answered].deadlines()
        assert native_deadlines(replays[answered].fields, ours) == {
            Metric.NEXT_RESPONSE: rt.ticket(answered)["Due"]
        }

        waiting_first = metric(waiting, Metric.FIRST_RESPONSE)
        extra = inclusive_extra(calendar, reopened_at(replays[waiting].events))
        assert waiting_first.deadline is not None
        waiting_dues = rt_dues(replays[waiting], "due:first_response|resolution")
        assert waiting_dues[-1] == waiting_first.deadline + extra
        assert rt_time(rt.ticket(waiting)["Due"]) == waiting_first.deadline + extra

        # The daemon compared them too, within a 2 s tolerance.
        assert not [entry for entry in logs if entry["event"] == "deadline_mismatch"]
    finally:
        await app.shutdown()


async def test_a_reply_to_a_resolved_ticket_and_a_resolve_goal_that_comes_first(
    rt: RealRt, tmp_path: Path
) -> None:
    """(c) The customer writes to a resolved ticket: RT reopens it and sets Due to the
    response deadline of that reply; our next-response clock runs to the same instant.
    (d) On the "express" level the resolve goal (30 real minutes) comes before the response
    goal (60 business minutes): RT's Due is the resolution deadline, compared as such."""
    reopened = rt.create("Invoice wrong")
    express = rt.create("Payment failed", sla="express")
    rt.correspond(reopened, Status="resolved")
    await asyncio.sleep(1.1)
    rt.correspond(reopened, customer=True)
    assert rt.ticket(reopened)["Status"] == "open"
    assert rt.ticket(express)["SLA"] == "express"

    app = App(
        load_config(write_config(tmp_path, rt)),
        clock=FakeClock(datetime.now(UTC)),
        console=io.StringIO(),
    )
    with capture_logs() as logs:
        await app.start()
    try:
        replays = {int(key[1]): replay for key, replay in app.tickets.replays.items()}
        now = datetime.now(UTC)

        # (c) The reopen comes first; the reply waits for an answer, until RT's Due.
        events = replays[reopened].events
        story = [
            (e.kind, e.status) for e in events if not any(k.startswith("due:") for k in e.fields)
        ]
        assert story[-3:] == [
            (EventKind.RESOLVED, "resolved"),
            (EventKind.REOPENED, "open"),
            (EventKind.CUSTOMER_REPLY, "open"),
        ]
        reply = next(e for e in events if e.kind is EventKind.CUSTOMER_REPLY)
        evaluation = evaluate(events, app.config.policies, now)
        next_response = evaluation.metrics[Metric.NEXT_RESPONSE]
        assert (next_response.state, next_response.started_at) == (MetricState.RUNNING, reply.at)
        due = rt.ticket(reopened)["Due"]
        assert next_response.deadline == rt_time(due)
        assert explain_json(evaluation)["metrics"]["next_response"]["helpdesk_deadline"] == due

        # (d) RT's Due is the resolve deadline, filed under resolution, and agrees with ours.
        evaluation = evaluate(replays[express].events, app.config.policies, now)
        assert evaluation.policy is not None and evaluation.policy.name == "rt-express"
        due = rt.ticket(express)["Due"]
        created = replays[express].events[0].at
        assert rt_time(due) == created + timedelta(minutes=EXPRESS_RESOLVE_MINUTES)
        assert evaluation.metrics[Metric.RESOLUTION].deadline == rt_time(due)
        explained = explain_json(evaluation)["metrics"]
        assert explained["resolution"]["helpdesk_deadline"] == due
        assert "helpdesk_deadline" not in explained["first_response"]

        mine = {str(reopened), str(express)}
        assert not [e for e in logs if e["event"] == "deadline_mismatch" and e["ticket"] in mine]
        counted = app.metrics.deadline_mismatches
        assert counted.labels("rt", "first_response")._value.get() == 0
        assert counted.labels("rt", "next_response")._value.get() == 0
    finally:
        await app.shutdown()


async def test_the_owners_email_is_the_assignee_and_the_queue_the_group(rt: RealRt) -> None:
    """RT records owner changes by user number; the connector names the owner by the email
    RT keeps for that user, and Nobody by an empty ``assignee``."""
    settings = {"type": "rt", "url": rt.url, "token": rt.token, "overlap": "2s"}
    source = RequestTrackerSource("rt", RequestTrackerSourceConfig.model_validate(settings))
    root_email = str(rt.call("GET", "user/root")["EmailAddress"]).lower()
    assert root_email
    try:
        ticket = rt.create("Keyboard missing keys")
        await asyncio.sleep(1.1)
        first = [
            e for e in (await source.poll(datetime.now(UTC))).events if e.ticket_id == str(ticket)
        ]
        assert first[0].fields["group"] == "General"
        assert "assignee" not in first[0].fields  # created unowned
        rt.call("PUT", f"ticket/{ticket}", {"Owner": "root"})
        rt.call("PUT", f"ticket/{ticket}", {"Owner": "Nobody"})
        await asyncio.sleep(1.1)
        changes = await source.poll(datetime.now(UTC))
        owners = [e.fields["assignee"] for e in changes.events if "assignee" in e.fields]
        assert owners == [root_email, ""]
    finally:
        await source.close()


async def test_incremental_polls_of_real_rt_are_cheap_and_complete(rt: RealRt) -> None:
    settings = {"type": "rt", "url": rt.url, "token": rt.token, "overlap": "2s"}
    source = RequestTrackerSource("rt", RequestTrackerSourceConfig.model_validate(settings))
    try:
        await source.poll(datetime.now(UTC))
        ticket = rt.create("Monitor flickers")
        await asyncio.sleep(1.1)
        first = await source.poll(datetime.now(UTC))
        assert [e.kind for e in first.events if e.ticket_id == str(ticket)][:1] == [
            EventKind.CREATED
        ]
        filed = {k: v for k, v in first.events[-1].fields.items() if v}
        assert filed == {"due:first_response|resolution": rt.ticket(ticket)["Due"]}
        rt.correspond(ticket, Status="resolved")
        await asyncio.sleep(1.1)
        answered = await source.poll(datetime.now(UTC))
        kinds = [e.kind for e in answered.events if not e.fields]
        assert kinds[0] is EventKind.AGENT_REPLY and kinds[-1] is EventKind.RESOLVED
        await asyncio.sleep(1.1)
        await source.poll(datetime.now(UTC))
        before = source.requests
        assert (await source.poll(datetime.now(UTC))).events == []
        assert source.requests - before == 1, "an unchanged RT costs one request"
    finally:
        await source.close()

    wrong = {**settings, "token": "1-99-nope"}
    intruder = RequestTrackerSource("rt", RequestTrackerSourceConfig.model_validate(wrong))
    try:
        with pytest.raises(SourceError) as error:
            await intruder.poll(datetime.now(UTC))
        assert error.value.retryable is False
        assert intruder.requests == 1
    finally:
        await intruder.close()
