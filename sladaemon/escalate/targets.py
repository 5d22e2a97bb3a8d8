"""Who a target stands for at the instant a message is sent (not when the config was loaded).

Targets, wherever ``notify:`` takes one:

* ``receiver:NAME`` or plain ``NAME`` — a receiver of ``receivers:``;
* ``person:NAME`` — a person of ``people:`` (their delivery receiver is ``person:NAME``); a
  person in their quiet hours is paged when those end;
* ``oncall:SCHEDULE`` — whoever the schedule has on call then (on call overrides quiet hours);
* ``ticket:assignee`` — the person whose ``email`` is the ticket's ``assignee`` field;
* ``ticket:group`` — the ticket's ``group`` field: the schedule of that name (whoever is on
  call), else the person of that name.

A target that stands for nobody (nobody on call, an unassigned ticket, an assignee who is not a
person of the config) is returned with the reason, for the caller to log and tell. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sladaemon.model import split_target

PERSON = "person:"  # the prefix of a person's delivery receiver


class OnCallView(Protocol):
    @property
    def person(self) -> str: ...


class PersonView(Protocol):
    @property
    def name(self) -> str: ...


class RosterView(Protocol):
    """What target resolution needs of the on-call roster (oncall/roster.py)."""

    def on_call(self, schedule: str, at: datetime) -> OnCallView | None: ...
    def quiet_until(self, person: str, at: datetime) -> datetime | None: ...
    def person_by_email(self, email: str) -> PersonView | None: ...


@dataclass(frozen=True, slots=True)
class Recipient:
    receiver: str  # the delivery receiver: a receiver's name or ``person:NAME``
    person: str  # the person behind it, "" for a plain receiver
    target: str  # the target it was resolved from
    not_before: datetime | None = None  # quiet hours: page then


@dataclass
class Resolution:
    recipients: list[Recipient] = field(default_factory=list)
    unresolved: list[tuple[str, str]] = field(default_factory=list)  # (target, why)


def resolve(
    targets: Iterable[str],
    fields: Mapping[str, str],
    at: datetime,
    roster: RosterView | None,
    schedules: Iterable[str] = (),
    people: Iterable[str] = (),
) -> Resolution:
    resolver = _Resolver(Resolution(), fields, at, roster, set(schedules), set(people))
    for target in targets:
        resolver.add(target)
    return resolver.out


@dataclass
class _Resolver:
    out: Resolution
    fields: Mapping[str, str]
    at: datetime
    roster: RosterView | None
    schedules: set[str]
    people: set[str]
    seen: set[str] = field(default_factory=set)

    def add(self, target: str) -> None:
        kind, name = split_target(target)
        if kind == "receiver":
            self._recipient(Recipient(name, "", target))
        elif kind == "person":
            self._person(name, target)
        elif kind == "oncall":
            self._on_call(name, target)
        elif name == "assignee":
            self._assignee(target)
        else:
            self._group(target)

    def _recipient(self, r: Recipient) -> None:
        if r.receiver not in self.seen:
            self.seen.add(r.receiver)
            self.out.recipients.append(r)

    def _nobody(self, target: str, why: str) -> None:
        self.out.unresolved.append((target, why))

    def _person(self, name: str, target: str, on_call: bool = False) -> None:
        quiet = None if on_call or self.roster is None else self.roster.quiet_until(name, self.at)
        self._recipient(Recipient(PERSON + name, name, target, quiet))

    def _on_call(self, schedule: str, target: str) -> None:
        who = self.roster.on_call(schedule, self.at) if self.roster is not None else None
        if who is None:
            self._nobody(target, f"nobody is on call for {schedule}")
        else:
            self._person(who.person, target, on_call=True)

    def _assignee(self, target: str) -> None:
        email = self.fields.get("assignee", "").strip().lower()
        found = self.roster.person_by_email(email) if email and self.roster else None
        if not email:
            self._nobody(target, "the ticket has no assignee")
        elif found is None:
            self._nobody(target, f"assignee {email} is not one of people:")
        else:
            self._person(found.name, target)

    def _group(self, target: str) -> None:
        group = self.fields.get("group", "").strip()
        if not group:
            self._nobody(target, "the ticket has no group")
        elif group in self.schedules:
            self._on_call(group, target)
        elif group in self.people:
            self._person(group, target)
        else:
            self._nobody(target, f"group {group} is no schedule or person")
