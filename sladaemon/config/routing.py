"""The routing tree, as config: ``route:`` at the top level, Alertmanager's ``route`` block.

Every notification enters at the root and goes down depth first: the first child whose
``matchers`` all match takes it (and, with ``continue: true``, the next matching siblings too);
a route none of whose children match takes it itself. A child inherits its parent's
``receiver``, ``group_by`` and the three intervals unless it sets them. ``mute_time_intervals``
and ``active_time_intervals`` name calendars of ``calendars:`` (muted while one is open; sent
only while one is open) and belong to their route alone.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from sladaemon.config.chains import Target
from sladaemon.config.durations import DAY, SECOND, YEAR, Duration, within
from sladaemon.config.models import StrictModel, _custom, _one_or_many
from sladaemon.matchers import Matcher, MatcherError, parse_matchers

GROUP_BY_ALL = "..."
MAX_DEPTH = 20
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def _matchers(text: str) -> str:
    try:
        parse_matchers(text)
    except MatcherError as exc:
        raise _custom("matcher", str(exc)) from None
    return text


MatcherText = Annotated[str, AfterValidator(_matchers)]


class RouteConfig(StrictModel):
    receiver: Target | None = Field(None, description="the target (default: the parent's)")
    matchers: Annotated[list[MatcherText], Field(max_length=100)] = Field(
        [], description='label matchers, all of which must match, e.g. queue=~"billing|sales"'
    )
    continue_: bool = Field(
        False, alias="continue", description="go on to the next siblings after matching"
    )
    group_by: list[str] | None = Field(
        None, description='labels that make a group; ["..."] for every label'
    )
    group_wait: Annotated[Duration, within(SECOND, DAY)] | None = Field(
        None, description="wait before a new group's first notification (30s)"
    )
    group_interval: Annotated[Duration, within(SECOND, DAY)] | None = Field(
        None, description="wait before a group's next notification of new members (5m)"
    )
    repeat_interval: Annotated[Duration, within(SECOND, YEAR)] | None = Field(
        None, description="wait before a group's unchanged notification is sent again (4h)"
    )
    mute_time_intervals: Annotated[list[str], BeforeValidator(_one_or_many)] = Field(
        [], description="calendars while any of which is open the route sends nothing"
    )
    active_time_intervals: Annotated[list[str], BeforeValidator(_one_or_many)] = Field(
        [], description="calendars outside all of which the route sends nothing"
    )
    routes: list[RouteConfig] = Field([], description="child routes, tried in order")

    def parsed_matchers(self) -> list[Matcher]:
        return [m for text in self.matchers for m in parse_matchers(text)]

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if GROUP_BY_ALL in value and len(value) > 1:
            raise _custom("group_by", 'group_by is either ["..."] (every label) or label names')
        for name in value:
            if name != GROUP_BY_ALL and not _LABEL_NAME.match(name):
                raise _custom("group_by", f"invalid label name {name!r} in group_by")
        if len(set(value)) < len(value):
            dup = next(v for v in value if value.count(v) > 1)
            raise _custom("group_by", f"label {dup!r} twice in group_by")
        return value

    @model_validator(mode="after")
    def _not_too_deep(self) -> RouteConfig:
        if _depth(self) > MAX_DEPTH:
            raise _custom("route", f"routes nest at most {MAX_DEPTH} deep")
        return self


def _depth(route: RouteConfig) -> int:
    return 1 + max((_depth(child) for child in route.routes), default=0)


class RootRouteConfig(RouteConfig):
    """The root: it names the default receiver and takes every notification."""

    receiver: Target = Field(description="the target of what no child route takes")

    @model_validator(mode="after")
    def _takes_everything(self) -> RootRouteConfig:
        for key in ("matchers", "mute_time_intervals", "active_time_intervals"):
            if getattr(self, key):
                raise _custom("route", f"the root route takes every notification: no {key}")
        if self.continue_:
            raise _custom("route", "the root route has no siblings: no continue")
        return self


class InhibitRuleConfig(StrictModel):
    """One of ``inhibit_rules:``, Alertmanager's: while a firing alert matches
    ``source_matchers``, notifications matching ``target_matchers`` with the same ``equal``
    labels are held."""

    source_matchers: Annotated[list[MatcherText], Field(max_length=100)] = Field(
        [], description="what the inhibiting alert matches, e.g. kind=breach"
    )
    target_matchers: Annotated[list[MatcherText], Field(max_length=100)] = Field(
        [], description="what the held notifications match, e.g. kind=warning"
    )
    equal: list[str] = Field([], description="labels whose values both must share")

    @field_validator("equal")
    @classmethod
    def _equal(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _LABEL_NAME.match(name):
                raise _custom("equal", f"invalid label name {name!r} in equal")
        return value
