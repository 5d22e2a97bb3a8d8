"""The open tickets of every source, their SLA clocks, and when each needs attention next.

Pure (no I/O, no clock): the daemon hands in events and ``now`` and routes the SLA events that
come back. Every ticket keeps its replay (see sla.engine) and one entry in the timer queue: its
next ladder instant. New events re-evaluate the ticket, which moves, replaces or cancels that
instant (a met target, a pause, another policy). Events that arrive out of order rebuild the
ticket from its sorted history; levels already reached are never reached again. Closed tickets
leave the book.

Input that cannot be processed is quarantined, never retried and never in the way of the
rest: an event dated outside 1970–2199 is set aside, and a ticket whose replay raises is taken
out of the book with its reason (``quarantined``); its later events are set aside too, so the
same history fails the same way, once, after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sladaemon.calendar import to_us
from sladaemon.escalate.timers import TimerQueue
from sladaemon.model import (
    EARLIEST,
    LATEST,
    EventKind,
    SlaEvent,
    StatusCategory,
    TicketEvent,
    TicketKey,
)
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.policy import SlaPolicy


@dataclass(frozen=True, slots=True)
class Fired:
    source: str
    event: SlaEvent


@dataclass
class IngestResult:
    fired: list[Fired] = field(default_factory=list)
    orphans: list[TicketEvent] = field(default_factory=list)  # no created event known
    closed: list[TicketKey] = field(default_factory=list)  # left the book
    touched: dict[TicketKey, TicketReplay] = field(default_factory=dict)  # incl. closed ones
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (ticket id, why)


class TicketBook:
    def __init__(self, policies: Sequence[SlaPolicy]) -> None:
        self.policies = tuple(policies)
        self.replays: dict[TicketKey, TicketReplay] = {}
        self.timers: TimerQueue[TicketKey] = TimerQueue()
        self.quarantined: dict[TicketKey, str] = {}  # tickets set aside, and why

    def __len__(self) -> int:
        return len(self.replays)

    def ingest(self, source: str, events: Iterable[TicketEvent]) -> IngestResult:
        result = IngestResult()
        by_ticket: dict[str, list[TicketEvent]] = {}
        for event in events:
            if not EARLIEST <= event.at < LATEST:
                result.quarantined.append((event.ticket_id, f"{event.at:%Y-%m-%d} {_OUT_OF_RANGE}"))
                continue
            by_ticket.setdefault(event.ticket_id, []).append(event)
        for ticket_id, batch in by_ticket.items():
            key = (source, ticket_id)
            if key in self.quarantined:
                result.quarantined.append((ticket_id, self.quarantined[key]))
                continue
            try:
                self._ingest_ticket(source, key, batch, result)
            except Exception as exc:  # one ticket's history never stops the others
                result.quarantined.append((ticket_id, self._quarantine(key, exc)))
        return result

    def _ingest_ticket(
        self, source: str, key: TicketKey, batch: list[TicketEvent], result: IngestResult
    ) -> None:
        batch.sort(key=lambda e: (e.at, e.kind is not EventKind.CREATED))
        batch = _unique(batch)
        replay = self.replays.get(key)
        if replay is not None and any(e.event_id for e in batch):
            known = {e.event_id for e in replay.events if e.event_id}
            batch = [e for e in batch if not e.event_id or e.event_id not in known]
            if not batch:
                return
        if replay is None:
            start = next((i for i, e in enumerate(batch) if e.kind is EventKind.CREATED), None)
            if start is None:
                result.orphans.extend(batch)
                return
            result.orphans.extend(batch[:start])
            batch = batch[start:]
            replay = self.replays[key] = TicketReplay(key[1], self.policies)
        if replay.events and batch[0].at < replay.events[-1].at:
            replay = self.replays[key] = _rebuilt(replay, [*replay.events, *batch])
        else:
            for event in batch:
                replay.feed(event)
        result.fired.extend(Fired(source, e) for e in replay.take_timeline())
        result.touched[key] = replay
        if self._settle(key, replay):
            result.closed.append(key)

    def _quarantine(self, key: TicketKey, exc: Exception) -> str:
        """Set a ticket aside: out of the book and the timers, its later events too."""
        reason = f"{type(exc).__name__}: {exc}"
        self.quarantined[key] = reason
        self.replays.pop(key, None)
        self.timers.schedule(key, None)
        return reason

    def fire_due(self, now: int) -> list[Fired]:
        """SLA events of every ticket whose next instant is at or before ``now`` (µs)."""
        fired: list[Fired] = []
        for key, _ in self.timers.pop_due(now):
            replay = self.replays.get(key)
            if replay is None:
                continue
            try:
                replay.advance(now, inclusive=True)
                fired.extend(Fired(key[0], e) for e in replay.take_timeline())
                self.timers.schedule(key, replay.next_instant())
            except Exception as exc:  # noted in ``quarantined``; the others go on
                self._quarantine(key, exc)
                continue
            replay.release_caches()
        return fired

    def next_instant(self) -> int | None:
        return self.timers.next_instant()

    def replace_policies(self, policies: Sequence[SlaPolicy]) -> list[Fired]:
        """Re-evaluate every ticket under new policies (a reload)."""
        self.policies = tuple(policies)
        fired: list[Fired] = []
        for key, replay in list(self.replays.items()):
            try:
                new = self.replays[key] = _rebuilt(replay, replay.events, self.policies)
                fired.extend(Fired(key[0], e) for e in new.take_timeline())
                self.timers.schedule(key, new.next_instant())
            except Exception as exc:  # noted in ``quarantined``; the others go on
                self._quarantine(key, exc)
                continue
            new.release_caches()
        return fired

    def evict_idle(self, now: datetime, retention: timedelta) -> dict[TicketKey, TicketReplay]:
        """Drop solved tickets with no event for ``retention``: helpdesks that never close
        tickets would otherwise keep every ticket forever. A later event brings one back only
        with its history, which the source then has to send again. Returns the dropped."""
        cutoff = now - retention
        idle = {
            key: replay
            for key, replay in self.replays.items()
            if replay.category is StatusCategory.SOLVED and replay.events[-1].at < cutoff
        }
        for key in idle:
            del self.replays[key]
            self.timers.schedule(key, None)
        return idle

    def forget_source(self, source: str) -> None:
        for key in [k for k in self.replays if k[0] == source]:
            del self.replays[key]
            self.timers.schedule(key, None)

    def _settle(self, key: TicketKey, replay: TicketReplay) -> bool:
        """Schedule the ticket's next instant; drop it when closed. True if dropped."""
        if replay.category is StatusCategory.CLOSED:
            del self.replays[key]
            self.timers.schedule(key, None)
            return True
        self.timers.schedule(key, replay.next_instant())
        replay.release_caches()
        return False


_OUT_OF_RANGE = "is outside the instants sladaemon accepts (1970 to 2199)"


def _unique(events: list[TicketEvent]) -> list[TicketEvent]:
    """Events with repeated ids (an overlapping poll window) count once."""
    seen: set[str] = set()
    out = []
    for e in events:
        if e.event_id:
            if e.event_id in seen:
                continue
            seen.add(e.event_id)
        out.append(e)
    return out


def _rebuilt(
    old: TicketReplay, events: list[TicketEvent], policies: Sequence[SlaPolicy] | None = None
) -> TicketReplay:
    """A fresh replay of ``events`` in time order that remembers what ``old`` already reached."""
    replay = TicketReplay(old.ticket_id, old.policies if policies is None else policies)
    replay.fired = old.fired
    ordered = sorted(events, key=lambda e: (to_us(e.at), e.kind is not EventKind.CREATED))
    for event in ordered:
        replay.feed(event)
    return replay
