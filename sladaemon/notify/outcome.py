"""What one delivery attempt came to, whatever sent it (apprise, the Slack app, the webhook)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    delivered: bool
    retryable: bool = True
    error: str = ""
    maybe_sent: bool = False  # no answer in time: the receiver may have taken it after all
    retry_after: float = 0.0  # seconds the receiver asked us to wait before trying again
