"""People and on-call schedules, as config: ``people:`` and ``schedules:`` at the top level.

A person is reached through apprise ``urls`` (or ``urls_file``), a Slack user id or an email
address, and may have ``quiet_hours`` (a calendar whose open hours nobody pages them directly).
A schedule is rotation layers (later layers win where they are active), an optional iCal feed
above them and overrides above everything; ``build_roster`` turns both into the runtime
``Roster`` (sladaemon/oncall/roster.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator, model_validator

from sladaemon.calendar import BusinessCalendar
from sladaemon.config.durations import HOUR, MINUTE, YEAR, Duration, Period, within
from sladaemon.config.models import (
    StrictModel,
    _custom,
    _secret_from_file,
    known_zone,
    usable_urls,
)
from sladaemon.oncall.roster import Layer, Override, Person, Roster, Schedule

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class PersonConfig(StrictModel):
    """Someone who can be paged: at least one of urls, slack or email."""

    email: str | None = Field(None, description="mail address; also matches helpdesk assignees")
    slack: str | None = Field(None, description="Slack user id (U...), for direct messages")
    urls: list[SecretStr] = Field([], description="apprise URLs that reach the person")
    quiet_hours: str | None = Field(
        None, description="a calendar whose open hours the person is not paged directly"
    )

    @model_validator(mode="before")
    @classmethod
    def _urls_file(cls, data: Any) -> Any:
        return _secret_from_file(data, "urls", as_lines=True)

    @field_validator("email")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value.strip()):
            raise _custom("email", f"invalid email address {value!r}")
        return value.strip().lower() if value is not None else None

    @field_validator("slack")
    @classmethod
    def _slack_user(cls, value: str | None) -> str | None:
        if value is not None and not _SLACK_USER.match(value):
            raise _custom("slack", f"invalid Slack user id {value!r} (e.g. U0123ABC)")
        return value

    @field_validator("urls")
    @classmethod
    def _usable_urls(cls, urls: list[SecretStr]) -> list[SecretStr]:
        return usable_urls(urls)

    @model_validator(mode="after")
    def _reachable(self) -> PersonConfig:
        if not (self.urls or self.slack or self.email):
            raise _custom("person", "no way to reach this person: give urls, slack or email")
        return self


def _naive(value: datetime, what: str) -> datetime:
    if value.tzinfo is not None:
        raise _custom(
            "datetime", f"{what} is a wall-clock time in the schedule's zone: drop the offset"
        )
    return value


class LayerConfig(StrictModel):
    """A rotation: ``members`` take turns of ``rotation`` from ``start`` (local wall clock)."""

    name: str
    members: list[str] = Field(min_length=1, description="people, in the order of their turns")
    rotation: Annotated[Period, within(HOUR, YEAR, days=True)] = Field(
        description="length of a turn: e.g. 12h, 1d, 1w"
    )
    start: datetime = Field(description="local wall-clock time the first member's turn starts")
    restrict: str | None = Field(None, description="a calendar: the layer covers its open hours")

    @field_validator("start")
    @classmethod
    def _wall_clock(cls, value: datetime) -> datetime:
        return _naive(value, "start")


class OverrideConfig(StrictModel):
    """Someone on call instead of the layers and the feed, from ``from`` until ``until``."""

    who: str
    start: datetime = Field(alias="from", description="naive: in the schedule's zone")
    until: datetime

    @model_validator(mode="after")
    def _ordered(self) -> OverrideConfig:
        if (self.start.tzinfo is None) != (self.until.tzinfo is None):
            raise _custom("override", "give both from and until with an offset, or neither")
        if self.until <= self.start:
            raise _custom("override", "until must be after from")
        return self


class IcalConfig(StrictModel):
    """An iCalendar feed whose events name who is on call (SUMMARY or ATTENDEE)."""

    url: SecretStr | None = Field(None, description="http(s) URL of the .ics feed")
    file: Path | None = Field(None, description="a local .ics file, read again when it changes")
    refresh: Annotated[Duration, within(MINUTE, 24 * HOUR)] = Field(
        timedelta(minutes=15), description="how often the feed is fetched"
    )

    @field_validator("url")
    @classmethod
    def _web(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value() if value is not None else "https://"
        if not url.startswith(("http://", "https://")):
            raise _custom("url", f"the feed URL must be http:// or https://, got {url[:8]!r}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> IcalConfig:
        if (self.url is None) == (self.file is None):
            raise _custom("ical", "give either url or file")
        return self


class ScheduleConfig(StrictModel):
    timezone: str | None = Field(None, description="default: the first calendar's zone, else UTC")
    layers: list[LayerConfig] = Field([], description="rotations; later layers win")
    overrides: list[OverrideConfig] = Field([], description="above the layers and the feed")
    ical: IcalConfig | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return known_zone(value) if value is not None else None

    @model_validator(mode="after")
    def _someone(self) -> ScheduleConfig:
        if not self.layers and self.ical is None and not self.overrides:
            raise _custom("schedule", "the schedule has no layers, ical feed nor overrides")
        names = [layer.name for layer in self.layers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise _custom("schedule", f"two layers named {twice[0]!r}: give each its own name")
        return self


def build_roster(
    people: Mapping[str, PersonConfig],
    schedules: Mapping[str, ScheduleConfig],
    calendars: Mapping[str, BusinessCalendar],
) -> Roster:
    """The runtime roster of a validated config (references already checked)."""
    default_zone = next((c.spec.timezone for c in calendars.values()), "UTC")
    built_people = {
        name: Person(
            name=name,
            email=cfg.email,
            slack=cfg.slack,
            quiet_hours=calendars[cfg.quiet_hours] if cfg.quiet_hours else None,
        )
        for name, cfg in people.items()
    }
    built_schedules = {}
    for name, cfg in schedules.items():
        zone = ZoneInfo(cfg.timezone or default_zone)
        layers = tuple(
            Layer(
                name=layer.name,
                members=tuple(layer.members),
                rotation=layer.rotation,
                start=layer.start,
                restrict=calendars[layer.restrict] if layer.restrict else None,
            )
            for layer in cfg.layers
        )
        overrides = tuple(
            Override(o.who, _aware(o.start, zone), _aware(o.until, zone)) for o in cfg.overrides
        )
        built_schedules[name] = Schedule(name, zone, layers, overrides, cfg.ical is not None)
    return Roster(built_people, built_schedules)


def _aware(value: datetime, zone: ZoneInfo) -> datetime:
    return (value if value.tzinfo is not None else value.replace(tzinfo=zone)).astimezone(UTC)
