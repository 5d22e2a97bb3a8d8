"""A synthetic helpdesk: seeded arrivals, agents on shifts, customers who answer late.

Discrete-event simulation, deterministic for a seed. Tickets arrive as a Poisson process whose
rate follows the working week (``tickets_per_hour`` during the agents' shift on weekdays,
``off_hours_factor`` of it otherwise), with channel, priority and queue drawn from weights.
The queue is also the ticket's ``group``, and tickets are assigned round-robin, as a
helpdesk's assignment rule would, to ``agent1@example.com`` .. ``agent<agents>@example.com``
(the ``assignee`` field).
Agents on shift take the most urgent, longest-waiting ticket; a reply takes an exponential
handling time and then resolves the ticket, sets it pending until the customer answers, or
leaves it open for a follow-up. Solved tickets are closed after ``close_after_hours`` or, now
and then, reopened by the customer. When arrivals outpace the agents, queues grow and SLAs
breach, which is what the demo shows.

``HelpdeskSimulation.advance(until)`` returns the events up to an instant, so the same model
drives the bundled demo history and the live ``simulator`` source.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from sladaemon.model import EventKind, StatusCategory, TicketEvent
from sladaemon.sources.people import ASSIGNEE, GROUP

PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
AGENT_EMAIL = "agent{}@example.com"  # the simulated agents, numbered from 1


@dataclass(frozen=True)
class SimulationSettings:
    seed: int = 1
    tickets_per_hour: float = 10.0
    off_hours_factor: float = 0.1
    timezone: str = "Europe/Berlin"
    shift_start_hour: int = 8
    shift_end_hour: int = 18
    agents: int = 6
    handle_minutes: float = 15.0
    pending_probability: float = 0.4
    follow_up_probability: float = 0.1
    customer_reply_hours: float = 4.0
    reopen_probability: float = 0.05
    close_after_hours: float = 48.0
    channels: Mapping[str, float] = field(
        default_factory=lambda: {"email": 0.5, "web": 0.3, "chat": 0.1, "phone": 0.1}
    )
    priorities: Mapping[str, float] = field(
        default_factory=lambda: {"urgent": 0.05, "high": 0.2, "normal": 0.55, "low": 0.2}
    )
    queues: Mapping[str, float] = field(default_factory=lambda: {"support": 0.7, "billing": 0.3})


@dataclass
class _Ticket:
    ticket_id: str
    priority: str
    channel: str
    queue: str
    assignee: str
    replies: int = 0
    waiting_since: datetime | None = None


class HelpdeskSimulation:
    """Runs the synthetic helpdesk forward in simulated time."""

    def __init__(
        self, settings: SimulationSettings, start: datetime, id_prefix: str = "SIM-"
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulation start must be an aware datetime")
        self.settings = settings
        self.id_prefix = id_prefix
        self.zone = ZoneInfo(settings.timezone)
        self.rng = random.Random(settings.seed)
        self.now = start.astimezone(UTC)
        self._seq = itertools.count()
        self._heap: list[tuple[datetime, int, Callable[[datetime], None]]] = []
        self._out: list[TicketEvent] = []
        self._waiting: list[tuple[int, datetime, int, _Ticket]] = []  # work queue
        self._idle_agents = settings.agents
        self._numbers = itertools.count(1000)
        self._peak = settings.tickets_per_hour / 3600.0
        self._schedule(start, self._arrival_candidate)
        self._schedule(self._next_shift_start(start), self._shift_starts)

    # -- public

    def advance(self, until: datetime) -> list[TicketEvent]:
        """Run the simulation up to ``until`` and return the events that happened."""
        while self._heap and self._heap[0][0] <= until:
            at, _, action = heapq.heappop(self._heap)
            self.now = at
            action(at)
        self.now = max(self.now, until)
        out, self._out = self._out, []
        return out

    def run(self, until: datetime) -> Iterator[TicketEvent]:
        """Events up to ``until``, in time order, a day at a time."""
        step = timedelta(days=1)
        t = self.now
        while t < until:
            t = min(t + step, until)
            yield from self.advance(t)

    # -- scheduling helpers

    def _schedule(self, at: datetime, action: Callable[[datetime], None]) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), action))

    def _after_hours(self, hours: float) -> timedelta:
        return timedelta(seconds=round(self.rng.expovariate(1.0 / hours) * 3600))

    def _on_shift(self, t: datetime) -> bool:
        local = t.astimezone(self.zone)
        s = self.settings
        return local.weekday() < 5 and s.shift_start_hour <= local.hour < s.shift_end_hour

    def _next_shift_start(self, t: datetime) -> datetime:
        local = t.astimezone(self.zone)
        day = local.date()
        for _ in range(8):
            opening = datetime(
                day.year, day.month, day.day, self.settings.shift_start_hour, tzinfo=self.zone
            )
            if day.weekday() < 5 and opening > local:
                return opening.astimezone(UTC)
            day += timedelta(days=1)
        raise AssertionError("no shift within a week")

    def _emit(
        self,
        ticket: _Ticket,
        at: datetime,
        kind: EventKind,
        status: str = "",
        with_fields: bool = False,
    ) -> None:
        fields = (
            {
                "priority": ticket.priority,
                "channel": ticket.channel,
                "queue": ticket.queue,
                GROUP: ticket.queue,
                ASSIGNEE: ticket.assignee,
            }
            if with_fields
            else {}
        )
        self._out.append(
            TicketEvent(
                ticket_id=ticket.ticket_id,
                at=at,
                kind=kind,
                status=status,
                category=StatusCategory(status) if status else None,
                fields=MappingProxyType(fields),
            )
        )

    def _pick(self, weights: Mapping[str, float]) -> str:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    # -- arrivals

    def _rate(self, t: datetime) -> float:
        return self._peak if self._on_shift(t) else self._peak * self.settings.off_hours_factor

    def _arrival_candidate(self, at: datetime) -> None:
        # Thinning: candidates at the peak rate, each accepted with rate(t) / peak.
        if self.rng.random() < self._rate(at) / self._peak:
            self._arrive(at)
        gap = self.rng.expovariate(self._peak)
        self._schedule(at + timedelta(seconds=max(1, round(gap))), self._arrival_candidate)

    def _arrive(self, at: datetime) -> None:
        s = self.settings
        number = next(self._numbers)
        ticket = _Ticket(
            ticket_id=f"{self.id_prefix}{number}",
            priority=self._pick(s.priorities),
            channel=self._pick(s.channels),
            queue=self._pick(s.queues),
            assignee=AGENT_EMAIL.format(number % max(s.agents, 1) + 1),
        )
        self._emit(ticket, at, EventKind.CREATED, "new", with_fields=True)
        self._enqueue(ticket, at)

    # -- agents

    def _enqueue(self, ticket: _Ticket, at: datetime) -> None:
        ticket.waiting_since = at
        rank = PRIORITY_RANK.get(ticket.priority, 2)
        heapq.heappush(self._waiting, (rank, at, next(self._seq), ticket))
        self._dispatch(at)

    def _dispatch(self, at: datetime) -> None:
        while self._idle_agents and self._waiting and self._on_shift(at):
            _, _, _, ticket = heapq.heappop(self._waiting)
            self._idle_agents -= 1
            handling = self._after_hours(self.settings.handle_minutes / 60)
            self._schedule(at + handling, self._reply_done(ticket))

    def _shift_starts(self, at: datetime) -> None:
        self._dispatch(at)
        self._schedule(self._next_shift_start(at), self._shift_starts)

    def _reply_done(self, ticket: _Ticket) -> Callable[[datetime], None]:
        def done(at: datetime) -> None:
            s = self.settings
            ticket.replies += 1
            # The more replies, the likelier the issue is solved.
            solve = 1 - math.exp(-0.6 * ticket.replies)
            roll = self.rng.random()
            if roll < solve * (1 - s.pending_probability):
                self._emit(ticket, at, EventKind.AGENT_REPLY, "open")
                self._schedule(at + timedelta(seconds=1), self._solve(ticket))
            elif self.rng.random() < s.follow_up_probability:
                self._emit(ticket, at, EventKind.AGENT_REPLY, "open")
                self._schedule(at + timedelta(seconds=1), lambda t: self._enqueue(ticket, t))
            else:
                self._emit(ticket, at, EventKind.AGENT_REPLY, "pending")
                answer = at + self._after_hours(s.customer_reply_hours)
                self._schedule(answer, self._customer_answers(ticket))
            self._idle_agents += 1
            self._dispatch(at)

        return done

    def _solve(self, ticket: _Ticket) -> Callable[[datetime], None]:
        def solve(at: datetime) -> None:
            self._emit(ticket, at, EventKind.RESOLVED, "solved")
            self._schedule_after_solve(ticket, at)

        return solve

    def _customer_answers(self, ticket: _Ticket) -> Callable[[datetime], None]:
        def answer(at: datetime) -> None:
            self._emit(ticket, at, EventKind.CUSTOMER_REPLY, "open")
            self._enqueue(ticket, at)

        return answer

    def _schedule_after_solve(self, ticket: _Ticket, at: datetime) -> None:
        s = self.settings
        if self.rng.random() < s.reopen_probability:
            when = at + self._after_hours(s.close_after_hours / 2)

            def reopen(t: datetime) -> None:
                self._emit(ticket, t, EventKind.REOPENED, "open")
                self._enqueue(ticket, t)

            self._schedule(when, reopen)
        else:
            close_at = at + timedelta(hours=s.close_after_hours)
            self._schedule(close_at, lambda t: self._emit(ticket, t, EventKind.CLOSED, "closed"))
