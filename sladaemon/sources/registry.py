"""Source types by config ``type``: adding a helpdesk is one line here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sladaemon.clock import Clock, ScaledClock, SystemClock
from sladaemon.sources.base import Source

# type -> factory(name, config, cursor, clock start)
SourceFactory = Callable[[str, Any, object, datetime], Source]


def _csv(name: str, cfg: Any, cursor: object, start: datetime) -> Source:
    from sladaemon.sources.csv.source import CsvSource

    return CsvSource(name, cfg, cursor)


def _simulator(name: str, cfg: Any, cursor: object, start: datetime) -> Source:
    from sladaemon.sources.simulator.source import SimulatorSource

    return SimulatorSource(name, cfg, start)


def _connector(module: str, cls: str) -> SourceFactory:
    """A helpdesk API connector: ``sladaemon.sources.<module>.source.<cls>(name, cfg, cursor)``."""

    def build(name: str, cfg: Any, cursor: object, start: datetime) -> Source:
        from importlib import import_module

        source_class = getattr(import_module(f"sladaemon.sources.{module}.source"), cls)
        built: Source = source_class(name, cfg, cursor)
        return built

    return build


FACTORIES: dict[str, SourceFactory] = {
    "csv": _csv,
    "simulator": _simulator,
    "zendesk": _connector("zendesk", "ZendeskSource"),
    "zammad": _connector("zammad", "ZammadSource"),
    "freshdesk": _connector("freshdesk", "FreshdeskSource"),
    "rt": _connector("rt", "RequestTrackerSource"),
    "jira": _connector("jira", "JiraSource"),
}


def build_source(name: str, cfg: Any, cursor: object, start: datetime) -> Source:
    factory = FACTORIES.get(cfg.type)
    if factory is None:
        raise ValueError(f"source type {cfg.type!r} is not available in this version")
    return factory(name, cfg, cursor, start)


def clock_for(sources: Iterable[Any]) -> Clock:
    """Real time, unless a source replays or simulates faster (then it sets the clock)."""
    for cfg in sources:
        if cfg.type == "simulator" and cfg.speed != 1:
            return ScaledClock(cfg.start or datetime.now(UTC), cfg.speed)
        if cfg.type == "csv" and cfg.speed is not None:
            from sladaemon.sources.csv.source import CsvSource

            first = CsvSource("replay", cfg).first_instant()
            return ScaledClock(first or datetime.now(UTC), cfg.speed)
    return SystemClock()
