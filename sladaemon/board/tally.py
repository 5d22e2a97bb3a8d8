"""Per-queue figures at the top of the board: daily volume and compliance today.

* Daily volume: tickets created per day over the last ``VOLUME_DAYS`` days (or the days since
  the earliest creation seen, when fewer, and at least one), per queue, from
  the first event of every ticket the daemon has seen, counted once — when the board first
  sees it — in the hour it was created (no memory per ticket: a queue's counts per hour).
* Compliance today: of the SLA cycles decided since midnight in the report time zone, the share
  met in time (met: a ``met`` event; not met: a ``breach``), per queue.

Both are counted from what this run of the daemon saw: after a restart they start again from
the tickets it loads (volume) and from the restart (compliance); the KPI report page has the
durable figures. Pure.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sladaemon.calendar import to_us
from sladaemon.model import SlaEvent, SlaEventKind, TicketKey
from sladaemon.sla.engine import TicketReplay

VOLUME_DAYS = 7
BACKLOG_SHARE = 0.10  # a queue's backlog is fine up to this share of its daily volume
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US


@dataclass(frozen=True)
class QueueFigures:
    source: str
    queue: str
    backlog: int
    daily_volume: float
    met_today: int
    breached_today: int

    @property
    def backlog_limit(self) -> float:
        return BACKLOG_SHARE * self.daily_volume

    @property
    def over_limit(self) -> bool:
        return self.daily_volume > 0 and self.backlog > self.backlog_limit

    @property
    def compliance(self) -> float | None:
        decided = self.met_today + self.breached_today
        return 100.0 * self.met_today / decided if decided else None


@dataclass
class QueueTally:
    zone: ZoneInfo
    arrivals: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)  # hour: n
    decided: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # met, breached
    day_start: int = 0

    def note_tickets(
        self, touched: Mapping[TicketKey, TicketReplay], known: Container[TicketKey], now: datetime
    ) -> None:
        """Count the tickets not ``known`` yet (to the board) in their hour of creation."""
        oldest = to_us(now) - VOLUME_DAYS * DAY_US
        for key, replay in touched.items():
            if key in known or not replay.events:
                continue
            created = to_us(replay.events[0].at)
            if created >= oldest:
                hours = self.arrivals.setdefault((key[0], replay.fields.get("queue", "")), {})
                hour = created // HOUR_US
                hours[hour] = hours.get(hour, 0) + 1

    def note_events(
        self, fired: Iterable[tuple[str, SlaEvent]], queues: Mapping[TicketKey, str], now: datetime
    ) -> None:
        self._roll(now)
        for source, event in fired:
            if event.kind not in (SlaEventKind.MET, SlaEventKind.BREACH):
                continue
            if to_us(event.at) < self.day_start:
                continue
            queue = queues.get((source, event.ticket_id), "")
            counts = self.decided.setdefault((source, queue), [0, 0])
            counts[0 if event.kind is SlaEventKind.MET else 1] += 1

    def _roll(self, now: datetime) -> None:
        local = now.astimezone(self.zone)
        start = to_us(local.replace(hour=0, minute=0, second=0, microsecond=0))
        if start != self.day_start:
            self.day_start = start
            self.decided.clear()

    def figures(self, backlog: Mapping[tuple[str, str], int], now: datetime) -> list[QueueFigures]:
        """Every queue with a backlog or a figure, by source and queue."""
        self._roll(now)
        this_hour = to_us(now) // HOUR_US
        oldest = this_hour - VOLUME_DAYS * 24
        arrivals: dict[tuple[str, str], int] = {}
        first = this_hour
        for queue, hours in self.arrivals.items():
            for hour in [h for h in hours if h < oldest]:
                del hours[hour]
            arrivals[queue] = sum(hours.values())
            first = min([first, *hours])
        days = max(1.0, (this_hour - first + 1) / 24)  # less than a week seen: what was seen
        queues = sorted(set(backlog) | set(arrivals) | set(self.decided))
        return [
            QueueFigures(
                source,
                queue,
                backlog.get((source, queue), 0),
                arrivals.get((source, queue), 0) / days,
                *self.decided.get((source, queue), [0, 0]),
            )
            for source, queue in queues
        ]
