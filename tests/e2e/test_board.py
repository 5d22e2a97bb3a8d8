"""The web board in a real browser (Debian's headless chromium) against the real daemon process:
it lists what the daemon holds, turns a row from warning to breached at its instant without a
reload, acknowledges a chain and adds a silence that both take effect in the daemon, refuses a
viewer's action and a POST without its CSRF token, stays readable 375 px wide, and does not
hold up the daemon's stop while a page is open."""

from __future__ import annotations

import functools
import http.cookiejar
import json
import os
import re
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from sladaemon.board.access import hash_password
from tests.e2e.conftest import (
    Receivers,
    free_port,
    wait_until,
    wait_until_outbox_drained,
)
from tests.e2e.daemon_process import DaemonProcess, EventFile, body_fields, http_get
from tests.e2e.test_chains import LATE_LIMIT, WAIT, chain_config, sladaemon

CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian's chromium-driver
RESPONDER, VIEWER = "ann", "vic"
PASSWORD = "correct horse battery staple"
SESSION_COOKIE = "sladaemon_board"
TARGET = 20  # seconds: first_response of the warning-to-breach test
ON_TIME = 2.0  # seconds: a row turns at its instant no later than this
PNG = b"\x89PNG\r\n\x1a\n"
STOP_WITHIN = 5.0  # seconds from SIGTERM to exit with a board page open


# ---------------------------------------------------------------------------- the browser


def start_chromium() -> webdriver.Chrome:
    """Headless chromium driven by Debian's chromedriver; skips (or fails, when
    SLADAEMON_REQUIRE_TOOLS is set) where chromedriver is missing."""
    if not Path(CHROMEDRIVER).exists():
        if os.environ.get("SLADAEMON_REQUIRE_TOOLS"):
            pytest.fail(f"{CHROMEDRIVER} is missing (Debian: chromium-driver)")
        pytest.skip("chromium-driver is not installed")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(30)
    return browser


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    started = start_chromium()
    try:
        yield started
    finally:
        started.quit()


def sign_in(browser: webdriver.Chrome, base: str, user: str, password: str = PASSWORD) -> None:
    """Sign in through the form of /login and wait for the board."""
    browser.get(f"{base}/login")
    browser.find_element(By.ID, "user").send_keys(user)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda b: b.find_elements(By.ID, "clocks"))


def row_state(browser: webdriver.Chrome, row_id: str) -> str | None:
    """A row's data-state, read in one step (the live rows are replaced as they change)."""
    state: str | None = browser.execute_script(
        "const row = document.getElementById(arguments[0]);"
        "return row && row.getAttribute('data-state');",
        row_id,
    )
    return state


def cell_text(browser: webdriver.Chrome, row_id: str, label: str) -> str | None:
    text: str | None = browser.execute_script(
        "const cell = document.querySelector(`#${arguments[0]} [data-label=${arguments[1]}]`);"
        "return cell && cell.textContent.trim();",
        row_id,
        label,
    )
    return text


def click(browser: webdriver.Chrome, css: str) -> None:
    """Click what ``css`` finds, again if the live rows were replaced under it."""

    def clicked(b: webdriver.Chrome) -> bool:
        b.find_element(By.CSS_SELECTOR, css).click()
        return True

    WebDriverWait(browser, 10, ignored_exceptions=[StaleElementReferenceException]).until(clicked)


def board_rows(browser: webdriver.Chrome) -> tuple[list[tuple[str, str, str]], str]:
    """Read in one step (the live rows are replaced as they change): each clock row of the
    board — its id, the path its first cell links to, its metric — and the counts line."""
    rows: list[list[str]]
    rows, counts = browser.execute_script(
        """
        const rows = Array.from(document.querySelectorAll("#clocks tbody tr[data-state]"), row => [
          row.id,
          new URL(row.querySelector("th a").href).pathname,
          row.querySelector("td[data-label=Metric]").textContent.trim().split(" ")[0],
        ]);
        return [rows, document.getElementById("counts").innerText];
        """
    )
    return [(row_id, path, metric) for row_id, path, metric in rows], str(counts)


def displayed(browser: webdriver.Chrome, css: str) -> bool:
    """Wait until what ``css`` finds is displayed (found again if the live rows replaced it)."""
    wait = WebDriverWait(browser, 5, ignored_exceptions=[StaleElementReferenceException])
    return bool(wait.until(lambda b: b.find_element(By.CSS_SELECTOR, css).is_displayed()))


def header_csrf(browser: webdriver.Chrome) -> str:
    """The CSRF token in the page header's sign-out form."""
    field = browser.find_element(By.CSS_SELECTOR, "header form.who input[name=csrf]")
    return field.get_attribute("value") or ""


def session_cookie(browser: webdriver.Chrome) -> str:
    cookie = browser.get_cookie(SESSION_COOKIE)
    assert cookie is not None, "signed in without a session cookie"
    return str(cookie["value"])


def layout_faults(browser: webdriver.Chrome, cells: str) -> list[str]:
    """What does not fit the viewport: a page wider than the window, a cell (CSS selector)
    that is hidden, empty in size or reaches past the window's edges, or a table's caption
    squeezed narrower than its table."""
    faults: list[str] = browser.execute_script(
        """
        const width = window.innerWidth, faults = [];
        const page = document.documentElement.scrollWidth;
        if (page > width + 1) faults.push(`the page is ${page}px wide in a ${width}px window`);
        for (const cell of document.querySelectorAll(arguments[0])) {
          const box = cell.getBoundingClientRect();
          if (box.width <= 0 || box.height <= 0 || getComputedStyle(cell).visibility !== "visible")
            faults.push(`hidden: ${cell.outerHTML.slice(0, 80)}`);
          else if (box.left < -1 || box.right > width + 1)
            faults.push(`${box.left}..${box.right}px: ${cell.outerHTML.slice(0, 80)}`);
        }
        for (const caption of document.querySelectorAll("caption:not(.sr)")) {
          const own = caption.getBoundingClientRect().width;
          const table = caption.closest("table").getBoundingClientRect().width;
          if (own < 0.9 * table) faults.push(`caption ${own}px wide in a ${table}px table`);
        }
        return faults;
        """,
        cells,
    )
    return faults


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 1000, f"{path} is not a PNG screenshot"


# ---------------------------------------------------------------------------- the daemon


@functools.cache
def password_hash() -> str:
    return hash_password(PASSWORD)


def board_section(port: int) -> str:
    return f"""
board:
  enabled: true
  listen: "127.0.0.1:{port}"
  page_size: 1000
  login_rate: 5                    # a test signs in more than once a few seconds apart
  accounts:
    {RESPONDER}: {{password_hash: "{password_hash()}", role: responder}}
    {VIEWER}: {{password_hash: "{password_hash()}", role: viewer}}
"""


def start_daemon(tmp_path: Path, daemons: list[DaemonProcess], config: str, board: int) -> str:
    """Start the daemon with the board on port ``board``; the board's base URL."""
    daemon = DaemonProcess(tmp_path, config + board_section(board))
    daemons.append(daemon)
    daemon.start()
    base = f"http://127.0.0.1:{board}"
    wait_until(lambda: http_get(f"{base}/login")[0] == 200, "the board answers")
    return base


def simulator_config(directory: Path, http_port: int) -> str:
    return f"""
calendars:
  always: {{timezone: Europe/Berlin, hours: {{mon-sun: "00:00-24:00"}}}}
policies:
  - name: desk
    calendar: always
    targets: {{first_response: 1h, resolution: 8h}}
sources:
  sim: {{type: simulator, seed: 3, speed: 1, warmup: 24h}}
daemon:
  state: {directory / "state.sqlite"}
  http: {{listen: "127.0.0.1:{http_port}"}}
"""


def ladder_config(directory: Path) -> str:
    """A warning at 50 % of a TARGET-second first response, then the breach."""
    return f"""
calendars:
  always: {{timezone: Europe/Berlin, hours: {{mon-sun: "00:00-24:00"}}}}
receivers:
  console: {{urls: ["console://"]}}
policies:
  - name: quick
    calendar: always
    targets: {{first_response: {TARGET}s}}
    escalation: [{{at: 50%, notify: [console]}}, {{at: breach, notify: [console]}}]
sources:
  desk: {{type: csv, path: {directory / "events.csv"}, poll_interval: 1s}}
daemon:
  state: {directory / "state.sqlite"}
  http: {{listen: "127.0.0.1:{free_port()}"}}
"""


def routed_config(directory: Path, hook: str) -> str:
    """Breaches after 3 s, routed to one webhook, grouped per queue after 1 s."""
    return f"""
calendars:
  always: {{timezone: Europe/Berlin, hours: {{mon-sun: "00:00-24:00"}}}}
receivers:
  hook: {{urls: ["{hook}"], timeout: 5s}}
policies:
  - name: desk
    calendar: always
    targets: {{first_response: 3s}}
    escalation: [{{at: breach}}]
route:
  receiver: hook
  group_by: [queue]
  group_wait: 1s
  group_interval: 1m
sources:
  desk: {{type: csv, path: {directory / "events.csv"}, poll_interval: 1s}}
daemon:
  state: {directory / "state.sqlite"}
  delivery: {{first_retry: 1s, max_retry: 2s, max_attempts: 50}}
  http: {{listen: "127.0.0.1:{free_port()}"}}
"""


class ChainDesk:
    """The daemon of test_chains with the board: a breach pages ``first``, WAIT s later
    ``second`` unless someone acknowledged."""

    def __init__(self, tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]) -> None:
        self.tmp_path = tmp_path
        self.first = receivers.webhook("first")
        self.second = receivers.webhook("second")
        self.events = EventFile(tmp_path / "events.csv")
        config = chain_config(tmp_path, self.first.url, self.second.url, free_port())
        self.base = start_daemon(tmp_path, daemons, config, free_port())
        self.created = datetime.now(UTC)

    def page_one(self, ticket: str) -> None:
        """Create ``ticket`` and wait for the chain's first page."""
        self.created = datetime.now(UTC)
        self.events.add(ticket, "created", "new", at=self.created)
        wait_until(
            lambda: any(paged(m, ticket) for m in self.first.accepted()),
            f"the first page of {ticket}",
            timeout=30,
        )

    def second_instant(self) -> datetime:
        return self.created + timedelta(seconds=2 + WAIT)

    def second_pages(self, ticket: str) -> list[dict[str, Any]]:
        return [m for m in self.second.messages() if paged(m, ticket)]

    def assert_second_never_sent(self, ticket: str) -> None:
        wait_past = (self.second_instant() - datetime.now(UTC)).total_seconds() + LATE_LIMIT
        time.sleep(max(0.0, wait_past))
        assert self.second_pages(ticket) == [], "an acknowledged chain went on"

    def explain(self, ticket: str) -> str:
        shown = sladaemon(self.tmp_path, "explain", "--source", "desk", ticket)
        assert shown.returncode == 0, shown.stderr
        return shown.stdout


def paged(message: dict[str, Any], ticket: str) -> bool:
    return body_fields(message).get("id", "").startswith(f"desk/{ticket}/")


# ---------------------------------------------------------------------------- plain HTTP


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 303 itself is the answer


class HttpClient:
    """A client without a browser: a cookie jar, no proxy, redirects not followed."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPCookieProcessor(self.jar),
            _KeepRedirects(),
        )

    def get(self, path: str) -> tuple[int, str]:
        return self._answer(urllib.request.Request(self.base + path))

    def post(self, path: str, fields: dict[str, str], cookie: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(
            self.base + path,
            data=urllib.parse.urlencode(fields).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        if cookie is not None:
            request.add_header("Cookie", f"{SESSION_COOKIE}={cookie}")
        return self._answer(request)

    def sign_in(self, user: str) -> None:
        status, page = self.get("/login")
        assert status == 200, page
        answer = self.post("/login", {"csrf": csrf_of(page), "user": user, "password": PASSWORD})
        assert answer[0] == 303, answer

    def _answer(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


# ---------------------------------------------------------------------------- the tests


def test_the_board_lists_the_open_tickets_the_daemon_holds(
    tmp_path: Path, daemons: list[DaemonProcess], browser: webdriver.Chrome
) -> None:
    http_port = free_port()
    base = start_daemon(tmp_path, daemons, simulator_config(tmp_path, http_port), free_port())
    sign_in(browser, base, RESPONDER)

    def held() -> int:
        status, body = http_get(f"http://127.0.0.1:{http_port}/healthz")
        assert status == 200, body
        return int(json.loads(body)["tickets"])

    def look() -> tuple[int, list[tuple[str, str, str]], str, set[str], int]:
        """The daemon's count; the board's rows, counts line and tickets; the daemon's again."""
        before, (rows, counts), after = held(), board_rows(browser), held()
        return before, rows, counts, {urllib.parse.unquote(path) for _, path, _ in rows}, after

    deadline = time.monotonic() + 10
    before, rows, counts, paths, after = look()
    while not before == after == len(paths):  # a ticket came or went meanwhile: look again
        assert time.monotonic() < deadline, f"the board lists {len(paths)}, the daemon {after}"
        time.sleep(0.2)
        before, rows, counts, paths, after = look()
    tickets = sorted(p.removeprefix("/ticket/sim/") for p in paths)
    assert len(tickets) >= 5, "the simulated weekend leaves a backlog"
    for row_id, path, metric in rows:
        ticket = urllib.parse.unquote(path).removeprefix("/ticket/sim/")
        assert path.startswith("/ticket/sim/") and row_id == f"row-sim-{ticket}-{metric}", row_id
    assert counts.startswith(f"{len(rows)} running clocks"), counts
    ticket = tickets[0]
    click(browser, f"#clocks a[href='/ticket/sim/{ticket}']")
    WebDriverWait(browser, 15).until(lambda b: b.title.startswith(f"Ticket {ticket}"))
    assert "Source sim · policy desk" in browser.find_element(By.CSS_SELECTOR, "p.meta").text
    assert browser.find_elements(By.CSS_SELECTOR, ".timeline tbody tr.helpdesk"), "no events shown"


def test_a_row_turns_from_warning_to_breached_at_its_instant_without_a_reload(
    tmp_path: Path, daemons: list[DaemonProcess], browser: webdriver.Chrome
) -> None:
    events = EventFile(tmp_path / "events.csv")
    base = start_daemon(tmp_path, daemons, ladder_config(tmp_path), free_port())
    sign_in(browser, base, RESPONDER)
    row_id = "row-desk-W1-first_response"
    # Record (browser clock) when the row first shows each state; the marker is lost on a reload.
    browser.execute_script(
        """
        window.__marker = 1;
        window.__turned = {};
        const look = () => {
          const row = document.getElementById(arguments[0]);
          const state = row && row.getAttribute("data-state");
          if (state && !(state in window.__turned)) window.__turned[state] = Date.now();
        };
        new MutationObserver(look).observe(document.getElementById("live"),
                                           {childList: true, subtree: true, attributes: true});
        """,
        row_id,
    )
    created = datetime.now(UTC)
    events.add("W1", "created", "new", at=created)
    WebDriverWait(browser, 15, poll_frequency=0.1).until(
        lambda b: row_state(b, row_id) == "warning"
    )
    WebDriverWait(browser, TARGET + 10, poll_frequency=0.1).until(
        lambda b: row_state(b, row_id) == "breached"
    )
    turned = browser.execute_script("return window.__turned")
    assert browser.execute_script("return window.__marker") == 1, "the page was reloaded"
    assert {"warning", "breached"} <= set(turned), turned

    def late(state: str, instant: datetime) -> float:
        return float(turned[state]) / 1000 - instant.timestamp()

    warned = late("warning", created + timedelta(seconds=TARGET / 2))
    breached = late("breached", created + timedelta(seconds=TARGET))
    assert -0.05 <= warned <= ON_TIME, f"warning shown {warned:+.2f}s from its instant"
    assert -0.05 <= breached <= ON_TIME, f"breach shown {breached:+.2f}s from its instant"


def test_acknowledge_on_the_ticket_page_stops_the_chain(
    tmp_path: Path,
    receivers: Receivers,
    daemons: list[DaemonProcess],
    browser: webdriver.Chrome,
) -> None:
    desk = ChainDesk(tmp_path, receivers, daemons)
    sign_in(browser, desk.base, RESPONDER)
    desk.page_one("A1")
    browser.get(f"{desk.base}/ticket/desk/A1")
    browser.find_element(By.ID, "note").send_keys("on it")
    browser.find_element(By.ID, "ack").click()
    notice = WebDriverWait(browser, 15).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "p[role=status].notice")
    )
    assert f"acknowledged by {RESPONDER}" in notice[0].text
    desk.assert_second_never_sent("A1")
    assert f"acked by {RESPONDER} via board (on it)" in desk.explain("A1")
    browser.get(desk.base)
    owner = cell_text(browser, "row-desk-A1-first_response", "Owner")
    assert owner == f"acked by {RESPONDER}"


def test_a_silence_added_on_the_silences_page_holds_the_matching_notification(
    tmp_path: Path,
    receivers: Receivers,
    daemons: list[DaemonProcess],
    browser: webdriver.Chrome,
) -> None:
    hook = receivers.webhook()
    events = EventFile(tmp_path / "events.csv")
    base = start_daemon(tmp_path, daemons, routed_config(tmp_path, hook.url), free_port())
    sign_in(browser, base, RESPONDER)
    browser.get(f"{base}/silences")
    browser.find_element(By.ID, "matchers").send_keys("ticket=MUTE2")
    for_field = browser.find_element(By.ID, "for")
    for_field.clear()
    for_field.send_keys("1h")
    browser.find_element(By.ID, "comment").send_keys("known outage")
    browser.find_element(By.ID, "add-silence").click()
    notice = WebDriverWait(browser, 15).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "p[role=status].notice")
    )
    assert notice[0].text.startswith("added silence") and "known outage" in notice[0].text
    listed = browser.find_element(By.CSS_SELECTOR, "table.silences tbody tr.active").text
    assert "MUTE2" in listed and RESPONDER in listed and "known outage" in listed

    for ticket in ("CTRL1", "MUTE2"):  # both breach together, in the same group
        events.add(ticket, "created", "new")
    (message,) = hook.wait_for(1, timeout=30, accepted_only=True)
    daemon = daemons[0]
    held = daemon.wait_for_log("group_items_silenced", timeout=15)
    assert any("MUTE2" in json.dumps(entry["items"]) for entry in held), held
    wait_until_outbox_drained(tmp_path / "state.sqlite")
    assert "CTRL1" in json.dumps(message["body"])
    delivered = [json.dumps(m["body"]) for m in hook.messages()]
    assert not [m for m in delivered if "MUTE2" in m], delivered


def test_a_viewer_cannot_acknowledge(
    tmp_path: Path,
    receivers: Receivers,
    daemons: list[DaemonProcess],
    browser: webdriver.Chrome,
) -> None:
    desk = ChainDesk(tmp_path, receivers, daemons)
    sign_in(browser, desk.base, VIEWER)
    desk.page_one("V1")
    browser.get(f"{desk.base}/ticket/desk/V1")
    assert browser.title.startswith("Ticket V1")
    assert browser.find_elements(By.ID, "ack") == []
    assert browser.find_elements(By.ID, "silence") == []
    token, cookie = header_csrf(browser), session_cookie(browser)
    client = HttpClient(desk.base)
    status, page = client.post("/ticket/desk/V1/ack", {"csrf": token}, cookie)
    assert status == 403, page
    assert f"{VIEWER} is a viewer: only responders can act." in page
    (second,) = desk.second.wait_for(1, timeout=30, accepted_only=True)  # the chain went on
    assert paged(second, "V1")
    assert "acked by" not in desk.explain("V1")


def test_a_post_without_its_csrf_token_is_refused(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    desk = ChainDesk(tmp_path, receivers, daemons)
    client = HttpClient(desk.base)
    status, page = client.post("/login", {"user": RESPONDER, "password": PASSWORD})
    assert status == 403 and "The sign-in form is stale" in page, page
    assert not any(c.name == SESSION_COOKIE for c in client.jar)
    client.sign_in(RESPONDER)
    desk.page_one("X1")
    status, page = client.get("/ticket/desk/X1")
    assert status == 200 and 'id="ack"' in page
    token = csrf_of(page)
    for refused in ({}, {"csrf": ""}, {"csrf": token[::-1]}):
        status, page = client.post("/ticket/desk/X1/ack", refused)
        assert status == 403 and "security token is missing or stale" in page, (refused, page)
    assert "acked by" not in desk.explain("X1")
    status, _ = client.post("/ticket/desk/X1/ack", {"csrf": token})
    assert status == 303
    desk.assert_second_never_sent("X1")
    assert f"acked by {RESPONDER} via board" in desk.explain("X1")


def test_board_and_ticket_page_are_readable_375_px_wide(
    tmp_path: Path, daemons: list[DaemonProcess], browser: webdriver.Chrome
) -> None:
    base = start_daemon(tmp_path, daemons, simulator_config(tmp_path, free_port()), free_port())
    browser.set_window_size(375, 800)
    sign_in(browser, base, RESPONDER)
    assert browser.execute_script("return window.innerWidth") <= 375
    assert len(browser.find_elements(By.CSS_SELECTOR, "#clocks tbody tr[data-state]")) >= 5
    for element in ("form.filters", "#clocks", "#counts", "header nav"):
        assert displayed(browser, element), element
    cells = "#clocks tbody tr > *, .queues tbody tr > *, form.filters label, form.filters button"
    assert layout_faults(browser, cells) == []
    board_shot = tmp_path / "board-375.png"
    assert browser.save_screenshot(str(board_shot))
    assert_png(board_shot)

    click(browser, "#clocks tbody tr th a")
    WebDriverWait(browser, 15).until(lambda b: b.title.startswith("Ticket "))
    for element in (".timeline", ".actions", "#ack"):
        assert displayed(browser, element), element
    faults = layout_faults(browser, ".timeline tbody tr > *, .actions button, .actions select")
    assert faults == []
    ticket_shot = tmp_path / "ticket-375.png"
    assert browser.save_screenshot(str(ticket_shot))
    assert_png(ticket_shot)

    browser.get(f"{base}/silences")
    assert displayed(browser, "#add-silence")
    fields = "form.stacked > :not([type=hidden]), table.silences tbody tr > *"
    assert layout_faults(browser, fields) == []


def test_an_open_board_page_does_not_hold_up_the_daemons_stop(
    tmp_path: Path, daemons: list[DaemonProcess], browser: webdriver.Chrome
) -> None:
    base = start_daemon(tmp_path, daemons, simulator_config(tmp_path, free_port()), free_port())
    sign_in(browser, base, RESPONDER)
    WebDriverWait(browser, 15).until(  # the live feed's first message has been acted on
        lambda b: b.find_element(By.ID, "live").get_attribute("data-updated")
    )
    daemon = daemons[0]
    stopping = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=STOP_WITHIN) == 0
    assert time.monotonic() - stopping < STOP_WITHIN
