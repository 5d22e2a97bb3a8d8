"""The HTML report, read back with an HTML parser: safe to mail (no SVG, script or style
sheet), every volume spike marked where it can be seen, and the headline figures with their
change against the period before, on a history whose figures are counted by hand."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sladaemon.cli import main
from sladaemon.config import load_config
from sladaemon.model import EventKind as K
from sladaemon.model import TicketEvent
from sladaemon.report.ledger import compute_kpis
from sladaemon.report.render import SPIKE_MARK, as_html

MON = datetime(2024, 1, 8, tzinfo=UTC)
CONFIG = """
calendars:
  always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
receivers: {team: {urls: ["console://"]}}
policies:
  - name: desk
    calendar: always
    targets: {first_response: 1h, resolution: 8h}
    escalation: [{at: breach, notify: [team]}]
"""
VOID = {"meta", "br", "img", "hr", "link", "input", "col", "wbr", "source", "area", "base"}
HIDING = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(px)?\s*(;|$)|opacity\s*:\s*0"
    r"(\.0*)?\s*(;|$)|max-height\s*:\s*0"
)


@dataclass
class Cell:
    text: str = ""  # what a reader sees
    style: str = ""


class Page(HTMLParser):
    """Every tag of the page, and each table (by id, in page order) as rows of cells; a table
    inside a cell (a bar) belongs to that cell."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.tables: dict[str, list[list[Cell]]] = {}
        self._open: list[tuple[str, bool]] = []  # (tag, hides what it holds)
        self._tables: list[str] = []
        self._cell: Cell | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag in VOID:
            return
        attributes = dict(attrs)
        hides = "hidden" in attributes or bool(HIDING.search(attributes.get("style") or ""))
        self._open.append((tag, hides))
        if tag == "table":
            self._tables.append(attributes.get("id") or "")
            self.tables.setdefault(self._tables[-1], [])
        elif tag == "tr" and len(self._tables) == 1:
            self.tables[self._tables[-1]].append([])
        elif tag in ("td", "th") and len(self._tables) == 1:
            self._cell = Cell(style=attributes.get("style") or "")
            self.tables[self._tables[-1]][-1].append(self._cell)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            opened, _ = self._open.pop()
            if opened == "table":
                self._tables.pop()
            elif opened in ("td", "th") and len(self._tables) == 1:
                self._cell = None
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not any(hides for _, hides in self._open):
            self._cell.text = " ".join(f"{self._cell.text} {data}".split())


def read(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    parsed.close()
    return parsed


def assert_mail_safe(page: Page) -> None:
    assert not page.tags & {"svg", "script", "style", "link", "img", "iframe", "object"}


def ev(t: str, day: int, hour: float, kind: K, **fields: str) -> TicketEvent:
    return TicketEvent(t, MON + timedelta(days=day, hours=hour), kind, fields=fields)


@pytest.fixture
def policies(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    return load_config(path, environ={}).policies


def test_every_spike_is_marked_where_a_reader_sees_it_and_nothing_else_is(policies) -> None:
    """Four weeks of the same days (email 2, web 1, phone 1 a day), then a week with a spike
    on each of six days, in every channel, a day with two."""
    spiking = {0: {"email": 5}, 1: {"web": 3}, 2: {"email": 5}, 3: {"web": 3}, 4: {"email": 5}}
    spiking[5] = {"phone": 4, "email": 5}
    tickets: dict[str, list[TicketEvent]] = {}
    for week in range(5):
        for day in range(6):
            usual = {"email": 2, "web": 1, "phone": 1}
            for channel, n in (spiking.get(day, {}) if week == 4 else {}).items():
                usual[channel] = n
            for channel, n in usual.items():
                for k in range(n):
                    t = f"{week}-{day}-{channel}-{k}"
                    tickets[t] = [ev(t, 7 * week + day, 9 + k / 10, K.CREATED, channel=channel)]
    start = MON + timedelta(weeks=4)
    r = compute_kpis(tickets, policies, start, start + timedelta(days=7), "UTC")
    spikes = {(v.day.strftime("%a %Y-%m-%d"), v.channel) for v in r.volume if v.spike}
    assert len(spikes) == 7 and len({day for day, _ in spikes}) == 6

    expected = {
        ((start + timedelta(days=day)).strftime("%a %Y-%m-%d"), channel): n
        for day, counts in spiking.items()
        for channel, n in counts.items()
    }
    assert set(expected) == spikes

    page = read(as_html(r))
    assert_mail_safe(page)
    header, *rows = page.tables["volume"]
    channels = [cell.text for cell in header]
    assert channels[0] == "Day" and sorted(channels[1:4]) == ["email", "phone", "web"]
    marked = {
        (row[0].text, channel): int(cell.text.split()[0])
        for row in rows
        for channel, cell in zip(channels[1:4], row[1:4], strict=True)
        if SPIKE_MARK in cell.text
    }
    assert marked == expected


def csv_history(path: Path) -> None:
    """The week before: 4 tickets, answered in 30 min, resolved in 2 h. The week reported: 5
    tickets — three answered in 15 min and resolved in 3 h, one answered after 2 h (a breach)
    and resolved in 4 h, one answered in 15 min and still open (its resolution breached)."""
    rows = ["ticket_id,timestamp,event,status,priority,channel,queue"]

    def ticket(t: str, day: int, reply_h: float, resolved_h: float | None) -> None:
        at = MON + timedelta(days=day, hours=9)
        rows.append(f"{t},{at.isoformat()},created,New,normal,email,support")
        rows.append(f"{t},{(at + timedelta(hours=reply_h)).isoformat()},agent_reply,Open,,,")
        if resolved_h is not None:
            rows.append(
                f"{t},{(at + timedelta(hours=resolved_h)).isoformat()},resolved,Resolved,,,"
            )

    for k in range(4):
        ticket(f"P{k}", k, 0.5, 2)
    for k in range(3):
        ticket(f"T{k}", 7 + k, 0.25, 3)
    ticket("T3", 10, 2, 4)
    ticket("T4", 11, 0.25, None)
    path.write_text("\n".join(rows) + "\n")


def test_the_page_leads_with_the_headline_figures_and_their_change_since_the_period_before(
    tmp_path: Path,
) -> None:
    config, events, out = tmp_path / "c.yaml", tmp_path / "events.csv", tmp_path / "r.html"
    config.write_text(CONFIG)
    csv_history(events)
    until = (MON + timedelta(days=14)).isoformat()
    args = ["report", "--config", str(config), "--events", str(events), "--until", until]
    assert main([*args, "--period", "7d", "--format", "html", "--out", str(out)]) == 0

    page = read(out.read_text())
    assert_mail_safe(page)
    assert next(iter(page.tables)) == "headline", "the headline comes first"
    header, *rows = page.tables["headline"]
    assert [c.text for c in header][1:] == ["This period", "Previous period", "Change"]
    figures = {row[0].text: [c.text for c in row[1:]] for row in rows}
    assert figures == {
        # 8 of 10 cycles met (T3's first response, T4's resolution breached) against 8 of 8
        "SLA compliance": ["80.0%", "100.0%", "\u25bc \u221220.0 pts"],
        "First response, median (business time)": ["15m", "30m", "\u25bc \u221215m"],
        "Resolution, median (business time)": ["3.0h", "2.0h", "\u25b2 +1.0h"],
        "Open backlog": ["1", "0", "\u25b2 +1"],
        "Tickets created": ["5", "4", "\u25b2 +1 (+25%)"],
    }
    colours = {row[0].text: re.search(r"color:(#\w+)", row[3].style) for row in rows}
    worse, better, neither = "#b00020", "#1b5e20", "#555"
    assert {label: m.group(1) for label, m in colours.items() if m} == {
        "SLA compliance": worse,
        "First response, median (business time)": better,
        "Resolution, median (business time)": worse,
        "Open backlog": worse,
        "Tickets created": neither,
    }


def test_without_a_period_before_the_change_says_so(policies) -> None:
    r = compute_kpis({}, policies, MON, MON + timedelta(days=7), "UTC")
    page = read(as_html(r))
    _, *rows = page.tables["headline"]
    assert {row[3].text for row in rows} == {"no figure to compare"}
