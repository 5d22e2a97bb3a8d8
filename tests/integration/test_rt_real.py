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
  corresponds; Resolve runs from creation. So Due is our ``first_response`` deadline until
  the first agent reply, our ``resolution`` deadline after it, and our ``next_response``
  deadline after a later requestor reply: targets first_response = next_response = the
  level's Response (60 business minutes), resolution = its Resolve (480).
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
from sladaemon.sla.engine import MetricStatus, evaluate
from sladaemon.sources.base import SourceError
from sladaemon.sources.rt.source import RequestTrackerSource

RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
SETUP_DATABASE = Path("/usr/sbin/rt-setup-database-5")
HERE = Path(__file__).resolve().parent / "rt"
RESPONSE_MINUTES = 60
RESOLVE_MINUTES = 480
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

    def create(self, subject: str) -> int:
        body = {
            "Queue": "General",
            "Subject": subject,
            "Requestor": CUSTOMER,
            "Content": "Please help.",
            "ContentType": "text/plain",
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
            policies:
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

        def native(ticket: int, which: Metric) -> datetime:
            return rt_time(replays[ticket].fields[f"due:{which.value}"])

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

        # (b) Same calendar and targets: our deadlines are RT's Due.
        first = metric(answered, Metric.FIRST_RESPONSE)
        assert native(answered, Metric.FIRST_RESPONSE) == first.deadline
        resolution = metric(answered, Metric.RESOLUTION)
        extra = inclusive_extra(calendar, reopened_at(replays[answered].events))
        assert resolution.deadline is not None
        assert native(answered, Metric.RESOLUTION) == resolution.deadline + extra
        next_response = metric(answered, Metric.NEXT_RESPONSE)
        assert native(answered, Metric.NEXT_RESPONSE) == next_response.deadline
        assert rt_time(rt.ticket(answered)["Due"]) == next_response.deadline

        waiting_first = metric(waiting, Metric.FIRST_RESPONSE)
        extra = inclusive_extra(calendar, reopened_at(replays[waiting].events))
        assert waiting_first.deadline is not None
        assert native(waiting, Metric.FIRST_RESPONSE) == waiting_first.deadline + extra
        assert rt_time(rt.ticket(waiting)["Due"]) == waiting_first.deadline + extra

        # The daemon compared them too, within a 2 s tolerance.
        assert not [entry for entry in logs if entry["event"] == "deadline_mismatch"]
    finally:
        await app.shutdown()


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
        assert dict(first.events[-1].fields) == {"due:first_response": rt.ticket(ticket)["Due"]}
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
