"""Per-receiver rate caps: at most ``count`` ladder-level messages per ``per`` to a receiver
(``receivers.NAME.rate_limit``); what comes beyond the cap is not dropped but gathered into one
digest, sent when the window has room again (the GroupRunner's group ``rate_limited`` of that
receiver). Digests, chain pages and operator messages are not capped: they are few by design,
or must not wait. The windows live in memory: after a restart a receiver's cap starts afresh.
Pure.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class RateCaps:
    _sent: dict[str, deque[int]] = field(default_factory=dict)  # receiver -> µs of messages

    def allow(self, receiver: str, count: int, per_us: int, now_us: int) -> bool:
        """Whether one more message to ``receiver`` fits its cap now; counts it if so."""
        window = self._sent.setdefault(receiver, deque())
        while window and window[0] <= now_us - per_us:
            window.popleft()
        if len(window) >= count:
            return False
        window.append(now_us)
        return True

    def free_at(self, receiver: str, per_us: int, now_us: int) -> int:
        """When the window of ``receiver`` has room again (µs)."""
        window = self._sent.get(receiver)
        return window[0] + per_us if window else now_us
