"""The board: what the web pages read, kept up to date from the book's steps.

The App hands it every step's changes (``apply``) and every SLA event it routes (``routed``:
predicted breaches carry their probability and reason). The index holds every open clock
(board/index.py), the tally the per-queue figures (board/tally.py), and the live feed tells open
pages when either changed or a row's instant came (board/live.py). ``view`` answers a page's
question — filters in, rows and counts out — from the index alone, plus the chain pages and
notifications of the rows shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sladaemon.board.index import STATE_NAMES, BoardIndex, Prediction
from sladaemon.board.live import LiveFeed
from sladaemon.board.tally import QueueFigures, QueueTally
from sladaemon.calendar import from_us, to_us
from sladaemon.clock import Clock
from sladaemon.durations import format_duration
from sladaemon.escalate.book import Fired
from sladaemon.escalate.chain_store import ChainStore
from sladaemon.escalate.outbox import cycle_prefix
from sladaemon.model import SlaEventKind, TicketKey
from sladaemon.sla.engine import TicketReplay
from sladaemon.store.sqlite import StateStore


@dataclass(frozen=True)
class Paged:
    who: str
    via: str
    at: datetime


@dataclass(frozen=True)
class BoardRow:
    source: str
    ticket_id: str
    link: str | None  # the ticket in its helpdesk
    queue: str
    priority: str
    channel: str
    assignee: str
    policy: str
    metric: str
    cycle: int
    left: str  # business time left, or "-2h 5m" overdue
    deadline: datetime | None
    state: str
    paused: bool
    probability: float | None
    reason: str
    paged: tuple[Paged, ...]
    acked_by: str


@dataclass(frozen=True)
class BoardView:
    rows: list[BoardRow]
    matching: int
    per_state: dict[str, int]
    queues: list[QueueFigures]
    choices: dict[str, list[str]]
    version: int
    now: datetime


class Board:
    def __init__(
        self,
        clock: Clock,
        zone: str,
        store: StateStore,
        chains: ChainStore,
        ticket_urls: Mapping[str, str | None],
    ) -> None:
        self.clock = clock
        self.index = BoardIndex()
        self.tally = QueueTally(ZoneInfo(zone))
        self.feed = LiveFeed(clock, self.index.next_change)
        self.store = store
        self.chains = chains
        self.ticket_urls = ticket_urls

    def use(self, zone: str, ticket_urls: Mapping[str, str | None]) -> None:
        self.tally.zone = ZoneInfo(zone)
        self.ticket_urls = ticket_urls

    # ------------------------------------------------------------------ changes

    def apply(self, touched: Mapping[TicketKey, TicketReplay], closed: Iterable[TicketKey]) -> None:
        if not touched and not closed:
            return
        self.tally.note_tickets(touched, self.index.number, self.clock.now())
        self.index.update(touched, closed)
        self.feed.changed()

    def forget(self, keys: Iterable[TicketKey]) -> None:
        """Tickets that left the daemon's memory (idle and solved, or their source removed)."""
        gone = [k for k in keys if k in self.index.number]
        if gone:
            self.index.update({}, gone)
            self.feed.changed()

    def forget_source(self, source: str) -> None:
        self.forget([k for k in self.index.number if k[0] == source])

    def routed(self, fired: list[Fired]) -> None:
        """SLA events as they are routed: decided cycles counted, predictions noted."""
        if not fired:
            return
        queues = {}
        for f in fired:
            key = (f.source, f.event.ticket_id)
            queues[key] = self.index.queue_of(key)
            if f.event.kind is SlaEventKind.PREDICTED_BREACH:
                details = f.event.details
                probability = details.get("probability")
                self.index.predict(
                    key,
                    f.event.metric,
                    f.event.cycle,
                    Prediction(
                        float(probability) if isinstance(probability, int | float) else 0.0,
                        str(details.get("reason") or ""),
                    ),
                )
        self.tally.note_events(((f.source, f.event) for f in fired), queues, self.clock.now())
        self.feed.changed()

    # ------------------------------------------------------------------ reading

    def view(self, filters: Mapping[str, str], state: str | None, limit: int) -> BoardView:
        now = self.clock.now()
        now_us = to_us(now)
        index = self.index
        chosen = index.select(now_us, filters, state, limit)
        left = index.left_us(chosen.rows, now_us)
        rows = [
            self._row(slot, STATE_NAMES[s], us)
            for slot, s, us in zip(chosen.rows, chosen.states, left, strict=True)
        ]
        choices = {name: sorted(n for n in c.names if n) for name, c in index.codes.items()}
        return BoardView(
            rows,
            chosen.matching,
            chosen.per_state,
            self.tally.figures(index.queue_backlog(), now),
            choices,
            self.feed.version,
            now,
        )

    def _row(self, slot: int, state: str, left_us: int) -> BoardRow:
        index = self.index
        row = index.row(slot)
        source, ticket_id = row.key
        fields = row.fields
        prediction = index.predictions.get((row.key, row.metric, row.cycle))
        prefix = cycle_prefix(source, ticket_id, row.metric, row.cycle)
        paged, acked_by = self._paged(source, ticket_id, prefix)
        template = self.ticket_urls.get(source)
        at = int(index.breach_at[slot])
        return BoardRow(
            source=source,
            ticket_id=ticket_id,
            link=template.replace("{ticket_id}", ticket_id) if template else None,
            queue=fields.get("queue", ""),
            priority=fields.get("priority", ""),
            channel=fields.get("channel", ""),
            assignee=fields.get("assignee", ""),
            policy=row.policy,
            metric=row.metric.value,
            cycle=row.cycle,
            left=_signed(left_us),
            deadline=index.instant(at) if index.running[slot] else None,
            state=state,
            paused=not bool(index.running[slot]),
            probability=prediction.probability if prediction else None,
            reason=prediction.reason if prediction else "",
            paged=paged,
            acked_by=acked_by,
        )

    def _paged(self, source: str, ticket_id: str, prefix: str) -> tuple[tuple[Paged, ...], str]:
        """Who was told about this cycle (chain pages and direct notifications, the last
        three) and who acknowledged it."""
        told: list[Paged] = []
        acked_by = ""
        for _, entry in self.chains.audit(source, ticket_id):
            if not entry.chain.startswith(prefix):
                continue
            if entry.action == "paged":
                told.append(Paged(entry.actor or entry.via, entry.via, from_us(entry.at_us)))
            elif entry.action == "acked":
                acked_by = entry.actor
            elif entry.action in ("unacked", "ack_lapsed"):
                acked_by = ""
        for sent in self.store.sent_under(prefix):
            if "/page" not in sent.key[len(prefix) :]:  # chain pages are in the audit already
                told.append(
                    Paged(sent.receiver, sent.kind, datetime.fromtimestamp(sent.created_at, UTC))
                )
        told.sort(key=lambda p: p.at)
        return tuple(told[-3:]), acked_by


def _signed(us: int) -> str:
    text = format_duration(timedelta(microseconds=abs(us)), exact=False)
    return text if us >= 0 else f"-{text}"
