"""What the predictor learnt from a ticket, kept after the ticket's events are gone.

``learnt_cycles(replay)`` turns a ticket's replay into one ``LearntCycle`` per cycle of each
of its SLA clocks (none when no policy matched); ``BreachPredictor.remember`` counts them again
after a restart exactly as ``observe`` counted them. ``queue_and_priority`` is the one place
that says which queue and priority a ticket's cycles are counted under.
"""

from __future__ import annotations

from dataclasses import dataclass

from sladaemon.model import Metric
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.policy import SlaPolicy


@dataclass(frozen=True, slots=True)
class LearntCycle:
    """One cycle of a ticket that left memory (closed, or evicted when idle), as the predictor
    counted it. The daemon keeps these in its state file, so a restart does not forget what the
    model learnt from tickets whose events are gone."""

    ticket_id: str
    metric: Metric
    cycle: int
    policy: str
    priority: str
    queue: str
    started_us: int
    ended_us: int | None  # None: never met
    elapsed_us: int  # business time used


def learnt_cycles(replay: TicketReplay) -> list[LearntCycle]:
    """The cycles of a ticket's replay, to be remembered once its events are gone."""
    policy = replay.policy
    if policy is None:
        return []
    queue, priority = queue_and_priority(replay, policy)
    return [
        LearntCycle(
            replay.ticket_id,
            clock.metric,
            cycle.number,
            policy.name,
            priority,
            queue,
            cycle.start,
            cycle.ended,
            cycle.elapsed,
        )
        for clock in replay.clocks
        for cycle in clock.cycles
    ]


def queue_and_priority(replay: TicketReplay, policy: SlaPolicy) -> tuple[str, str]:
    """The ticket's ``queue`` field (else its policy's name) and its lower-cased ``priority``
    field (else ``(none)``)."""
    queue = replay.fields.get("queue") or policy.name
    priority = (replay.fields.get("priority") or "").lower() or "(none)"
    return queue, priority
