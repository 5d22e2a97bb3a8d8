"""What acknowledging an escalation chain means to the parts that take acks from people (the
signed link, the API, the CLI, Slack buttons): the ``AckDesk`` they call and what it answers.

An ack is recorded durably before the desk answers, so an answer that is lost (a crash, a
dropped connection) never loses the ack; acking a chain twice answers who acked it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Via = Literal["link", "cli", "api", "slack"]


@dataclass(frozen=True, slots=True)
class AckOutcome:
    ok: bool  # the chain is now acknowledged (or was escalated)
    message: str  # for the person: "acknowledged by alice", "already acknowledged by bob at …"
    chains: tuple[str, ...] = ()  # the keys of the chains affected


class AckDesk(Protocol):
    async def acknowledge(self, chain: str, by: str, via: str, note: str = "") -> AckOutcome:
        """Acknowledge the chain ``chain`` (its key): its remaining steps are not sent."""
        ...

    async def escalate(self, chain: str, by: str, via: str) -> AckOutcome:
        """Send the chain's next step now instead of at its instant."""
        ...
