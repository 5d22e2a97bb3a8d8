"""Escalation chains, the pure part: when each page of a chain is due, what an ack, an
escalation or a lapsed ack does to a chain, and whether a ticket still needs an owner.

A chain is started by a ladder level (``chain: NAME``) and keyed like the level's message
(``source/ticket/metric/cycle/level``). Its config — steps ``{notify: [...]}`` and
``{wait: 15m}``, run ``loops`` times — flattens into *pages*: the notify steps with their offset
from the chain's start. Page ``n`` is due at ``started + shift + offset(n)``; ``shift`` moves
the rest of the chain when someone presses "escalate" (the next page now) or when an ack lapses
(the next page when it lapses). States:

* ``active`` — the next page is due at its instant;
* ``acked`` — someone owns it: no page is sent; at ``ack_until`` the ack lapses back to
  ``active`` if the metric still breaches and nobody replied on the ticket since the ack, else
  the chain ends ``done``;
* ``met`` — its metric was met (whoever was paged gets a "resolved" follow-up);
* ``done`` — every page was sent, or a lapsed ack found the ticket answered.

Times are integer µs, like the engine's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from sladaemon.calendar import to_us
from sladaemon.model import EventKind, Metric
from sladaemon.sla.engine import TicketReplay

State = Literal["active", "acked", "met", "done"]
ENDED: frozenset[str] = frozenset({"met", "done"})


@dataclass(frozen=True, slots=True)
class Page:
    number: int  # counted over loops: 0, 1, 2, ...
    offset_us: int  # after the chain's start
    notify: tuple[str, ...]  # targets, resolved when the page is sent


def pages(steps: Sequence[tuple[tuple[str, ...] | None, int]], loops: int) -> tuple[Page, ...]:
    """The pages of a chain: ``steps`` as (targets, None) or (None, wait µs), ``loops`` times."""
    out: list[Page] = []
    t = 0
    for _ in range(loops):
        for notify, wait in steps:
            if notify:
                out.append(Page(len(out), t, tuple(notify)))
            else:
                t += wait
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Chain:
    key: str
    source: str
    ticket_id: str
    metric: Metric
    cycle: int
    level: str
    name: str  # the config's chain
    pages: tuple[Page, ...]
    ack_timeout_us: int
    started_us: int
    state: State = "active"
    next_page: int = 0  # the first page not sent yet
    shift_us: int = 0
    acked_by: str = ""
    acked_via: str = ""
    acked_us: int | None = None

    @property
    def ack_until_us(self) -> int | None:
        return None if self.acked_us is None else self.acked_us + self.ack_timeout_us

    def due_us(self) -> int | None:
        """When the chain needs attention next: its next page, or its ack lapsing."""
        if self.state == "acked":
            return self.ack_until_us
        if self.state != "active" or self.next_page >= len(self.pages):
            return None
        return self.started_us + self.shift_us + self.pages[self.next_page].offset_us

    def paged(self) -> Chain:
        """After its next page was sent."""
        n = self.next_page + 1
        return replace(self, next_page=n, state="active" if n < len(self.pages) else "done")

    def acked(self, by: str, via: str, now_us: int) -> Chain:
        return replace(self, state="acked", acked_by=by, acked_via=via, acked_us=now_us)

    def unacked(self, now_us: int) -> Chain:
        """Ack taken back (or lapsed): the next page is due now, or at its own instant if
        that is later; the rest of the chain keeps its spacing."""
        if self.next_page >= len(self.pages):
            return replace(self, state="done")
        planned = self.started_us + self.shift_us + self.pages[self.next_page].offset_us
        shift = self.shift_us + max(0, now_us - planned)
        return replace(self, state="active", shift_us=shift)

    def escalated(self, now_us: int) -> Chain:
        """The next page now instead of at its instant (an "escalate" button)."""
        if self.next_page >= len(self.pages):
            return self
        planned = self.started_us + self.shift_us + self.pages[self.next_page].offset_us
        return replace(self, state="active", shift_us=self.shift_us + now_us - planned)

    def ended(self) -> Chain:
        return replace(self, state="met")


def still_needs_owner(
    replay: TicketReplay | None, metric: Metric, cycle: int, since_us: int
) -> bool:
    """Whether an ack given at ``since_us`` should lapse: the metric's cycle still runs (not
    met) and no agent replied on the ticket since the ack."""
    if replay is None:
        return False
    clock = next((c for c in replay.clocks if c.metric is metric), None)
    if clock is None or not 0 <= cycle < len(clock.cycles) or clock.cycles[cycle].ended:
        return False
    return not any(
        e.kind is EventKind.AGENT_REPLY and to_us(e.at) > since_us for e in replay.events
    )
