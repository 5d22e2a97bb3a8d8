"""The routing tree (Alertmanager's ``route``): which targets a notification goes to, and with
which grouping, from its labels. Pure: built from the config, asked with labels and a time.

``RouteTree.match`` walks the tree as Alertmanager does: depth first, a route's first child
that matches takes the notification (and the following siblings too while the matching child
says ``continue``); a route none of whose children match is itself a match. Each match carries
its route's receiver, grouping and intervals, inherited down the tree, and keys that name the
route and a group as Alertmanager's dispatcher does (``{}/{queue="billing"}:{queue="billing"}``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sladaemon.calendar import BusinessCalendar
from sladaemon.matchers import Matcher, format_matchers, matches_all

DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)
GROUP_BY_ALL = "..."  # group_by: ["..."]


class RouteSpec(Protocol):
    """A route as configured (``sladaemon.config.routing.RouteConfig``); unset is None."""

    @property
    def receiver(self) -> str | None: ...
    @property
    def continue_(self) -> bool: ...
    @property
    def group_by(self) -> Sequence[str] | None: ...
    @property
    def group_wait(self) -> timedelta | None: ...
    @property
    def group_interval(self) -> timedelta | None: ...
    @property
    def repeat_interval(self) -> timedelta | None: ...
    @property
    def mute_time_intervals(self) -> Sequence[str]: ...
    @property
    def active_time_intervals(self) -> Sequence[str]: ...
    @property
    def routes(self) -> Sequence[RouteSpec]: ...
    def parsed_matchers(self) -> list[Matcher]: ...


@dataclass(frozen=True)
class RouteMatch:
    """What a route does with the notifications it takes."""

    receiver: str  # a target: receiver:NAME (or NAME), person:NAME, oncall:SCHEDULE, ticket:...
    group_by: frozenset[str]
    group_by_all: bool  # group_by: ["..."]: every label
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    mute_calendars: tuple[str, ...]
    active_calendars: tuple[str, ...]
    key: str  # the route's matchers from the root down, as Alertmanager's Route.Key()

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that make the notification's group (those set, of ``group_by``)."""
        return {
            name: value
            for name, value in labels.items()
            if value and (self.group_by_all or name in self.group_by)
        }

    def group_key(self, labels: Mapping[str, str]) -> str:
        """The key of the notification's group: the route's key and its group labels."""
        return f"{self.key}:{format_label_set(self.group_labels(labels))}"

    def muted(self, at: datetime, calendars: Mapping[str, BusinessCalendar]) -> bool:
        """Whether the route sends nothing at ``at``: a mute calendar is open, or it has
        active calendars and none is open."""
        if any(calendars[name].is_open(at) for name in self.mute_calendars):
            return True
        return bool(self.active_calendars) and not any(
            calendars[name].is_open(at) for name in self.active_calendars
        )


@dataclass(frozen=True)
class Route:
    """A node of the tree: its matchers, what it does, and its children in order."""

    matchers: tuple[Matcher, ...]
    continue_: bool
    settings: RouteMatch
    routes: tuple[Route, ...]

    def takes(self, labels: Mapping[str, str]) -> bool:
        return matches_all(list(self.matchers), labels)

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes below (or at) this one that take ``labels``; none if this one does not."""
        if not self.takes(labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(labels)
            found += matched
            if matched and not child.continue_:
                break
        return found or [self]

    def walk(self) -> Iterator[Route]:
        yield self
        for child in self.routes:
            yield from child.walk()


@dataclass(frozen=True)
class RouteTree:
    root: Route

    @classmethod
    def from_config(cls, config: RouteSpec) -> RouteTree:
        return cls(_build(config, None))

    def match(self, labels: Mapping[str, str]) -> list[RouteMatch]:
        """Where a notification with ``labels`` goes, in the tree's order."""
        return [route.settings for route in self.root.match(labels)]


def _build(config: RouteSpec, parent: RouteMatch | None) -> Route:
    matchers = tuple(config.parsed_matchers())
    shown = format_matchers(list(matchers))
    inherited = parent or RouteMatch(
        receiver="",
        group_by=frozenset(),
        group_by_all=False,
        group_wait=DEFAULT_GROUP_WAIT,
        group_interval=DEFAULT_GROUP_INTERVAL,
        repeat_interval=DEFAULT_REPEAT_INTERVAL,
        mute_calendars=(),
        active_calendars=(),
        key="",
    )
    group_by, group_by_all = inherited.group_by, inherited.group_by_all
    if config.group_by is not None:
        group_by_all = list(config.group_by) == [GROUP_BY_ALL]
        group_by = frozenset() if group_by_all else frozenset(config.group_by)
    settings = RouteMatch(
        receiver=config.receiver or inherited.receiver,
        group_by=group_by,
        group_by_all=group_by_all,
        group_wait=config.group_wait or inherited.group_wait,
        group_interval=config.group_interval or inherited.group_interval,
        repeat_interval=config.repeat_interval or inherited.repeat_interval,
        mute_calendars=tuple(config.mute_time_intervals),
        active_calendars=tuple(config.active_time_intervals),
        key=f"{parent.key}/{shown}" if parent else shown,
    )
    children = tuple(_build(child, settings) for child in config.routes)
    return Route(matchers, config.continue_, settings, children)


def format_label_set(labels: Mapping[str, str]) -> str:
    """``{a="1", b="2"}`` as Alertmanager shows a label set (Go-quoted values)."""
    return "{" + ", ".join(sorted(f"{k}={_go_quote(v)}" for k, v in labels.items())) + "}"


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", '"': '\\"', "\\": "\\\\"}  # fmt: skip


def _go_quote(value: str) -> str:
    """``value`` as Go's ``%q`` writes it."""
    out = []
    for ch in value:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'
