"""A helpdesk's raw channel values (``via.channel``, article types, source codes, ...) -> the
channel names policies match on, the same way for every connector."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OTHER_CHANNEL = "other"


class ChannelMap:
    """Raw channel -> channel name: the source's ``channels`` config over the helpdesk's
    defaults, case-insensitive (a configured empty name keeps the default). Any other value is
    ``other`` and remembered in ``unknown``; ``log_unknown`` logs each one once."""

    def __init__(self, defaults: Mapping[str, str], configured: Mapping[str, str] | None = None):
        merged = {**defaults, **{k: v for k, v in (configured or {}).items() if v.strip()}}
        self._names = {str(raw).strip().lower(): name for raw, name in merged.items()}
        self.unknown: set[str] = set()
        self._logged: set[str] = set()

    def find(self, raw: str) -> str | None:
        return self._names.get(raw.strip().lower())

    def __call__(self, raw: str) -> str:
        """The channel name; "" for an empty value."""
        if not raw.strip():
            return ""
        name = self.find(raw)
        if name is None:
            self.unknown.add(raw.strip())
            return OTHER_CHANNEL
        return name

    def log_unknown(self, log: Any, source: str) -> None:
        """Log the unknown values not logged yet."""
        for raw in sorted(self.unknown - self._logged):
            log.warning("unknown_channel", source=source, channel=raw, counted_as=OTHER_CHANNEL)
            self._logged.add(raw)
