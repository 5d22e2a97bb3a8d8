"""Who is on call: people, and schedules asked at an instant (no I/O).

A schedule's answer at an instant, highest precedence first: an override active then (the last
listed wins), a shift of its iCal feed (the one that started last), then its rotation layers,
the last listed active layer first. A layer hands over every ``rotation`` at the same local
wall-clock time as its ``start`` (so across DST a turn is an hour longer or shorter), from its
start on, and covers only its ``restrict`` calendar's open hours when it has one.

All instants are compared in UTC: two datetimes sharing a ZoneInfo compare by wall clock,
which is wrong in the repeated hour of a DST change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sladaemon.calendar import BusinessCalendar
from sladaemon.errors import CalendarError
from sladaemon.oncall.ical import IcalFeed, IcalShift

HORIZON = timedelta(days=400)  # how far ahead ``until`` is looked for
MAX_STEPS = 5000  # boundaries looked at for ``until`` (each may leave the answer as it was)


@dataclass(frozen=True)
class Person:
    name: str
    email: str | None = None
    slack: str | None = None
    quiet_hours: BusinessCalendar | None = field(default=None, compare=False)


@dataclass(frozen=True)
class OnCall:
    person: str
    since: datetime  # when the shift (of the layer, override or feed) that answers began
    until: datetime | None  # when the answer next changes; None: not within HORIZON
    why: str  # "layer NAME", "override" or "ical"


@dataclass(frozen=True)
class Layer:
    name: str
    members: tuple[str, ...]
    rotation: timedelta
    start: datetime  # naive: wall clock in the schedule's zone
    restrict: BusinessCalendar | None = field(default=None, compare=False)

    def handoff(self, turn: int, zone: ZoneInfo) -> datetime:
        """When turn ``turn`` (0: the first member's first) begins, in UTC."""
        return (self.start + turn * self.rotation).replace(tzinfo=zone).astimezone(UTC)

    def turn_at(self, at: datetime, zone: ZoneInfo) -> int:
        """The turn running at ``at``; negative before the start."""
        local = at.astimezone(zone).replace(tzinfo=None)
        turn = (local - self.start) // self.rotation
        while turn > -1 and self.handoff(turn, zone) > at:
            turn -= 1
        while self.handoff(turn + 1, zone) <= at:
            turn += 1
        return turn


@dataclass(frozen=True)
class Override:
    who: str
    start: datetime  # aware
    until: datetime


@dataclass(frozen=True)
class Schedule:
    name: str
    zone: ZoneInfo
    layers: tuple[Layer, ...] = ()
    overrides: tuple[Override, ...] = ()
    has_ical: bool = False


@dataclass(frozen=True)
class _Answer:
    person: str
    since: datetime
    why: str


class Roster:
    """People and schedules; the schedules' iCal feeds are set as they are fetched."""

    def __init__(
        self,
        people: Mapping[str, Person] | None = None,
        schedules: Mapping[str, Schedule] | None = None,
    ) -> None:
        self.people: Mapping[str, Person] = dict(people or {})
        self.schedules: Mapping[str, Schedule] = dict(schedules or {})
        self._feeds: dict[str, IcalFeed] = {}
        self._by_email = {p.email.lower(): p for p in self.people.values() if p.email}
        self._by_slack = {p.slack: p for p in self.people.values() if p.slack}
        self._by_key = {**{name.lower(): p for name, p in self.people.items()}, **self._by_email}

    # ------------------------------------------------------------------ people

    def person_by_email(self, email: str) -> Person | None:
        return self._by_email.get(email.strip().lower())

    def person_by_slack(self, user_id: str) -> Person | None:
        return self._by_slack.get(user_id)

    def quiet_until(self, person: str, at: datetime) -> datetime | None:
        """When ``person``'s quiet hours end, if they are in them at ``at`` and on call for no
        schedule then (being on call overrides quiet hours); else None."""
        found = self.people.get(person)
        if found is None or found.quiet_hours is None:
            return None
        try:
            window = found.quiet_hours.open_window(at)
        except CalendarError:  # open for good: quiet for good
            return None
        if window is None:
            return None
        for schedule in self.schedules:
            answer = self._answer(self.schedules[schedule], at.astimezone(UTC))
            if answer is not None and answer.person == person:
                return None
        return window[1]

    # ------------------------------------------------------------------ iCal feeds

    def set_feed(self, schedule: str, feed: IcalFeed) -> None:
        self._feeds[schedule] = feed

    def feed(self, schedule: str) -> IcalFeed | None:
        return self._feeds.get(schedule)

    def feed_missing(self, schedule: str) -> bool:
        """The schedule has a feed, and no copy of it is known: its answers may be wrong."""
        return self.schedules[schedule].has_ical and schedule not in self._feeds

    def unknown_in_feed(self, schedule: str, start: datetime, end: datetime) -> set[str]:
        """The SUMMARYs of the feed's shifts in [start, end) that name nobody known."""
        feed = self._feeds.get(schedule)
        if feed is None:
            return set()
        return {s.summary for s in feed.shifts_between(start, end) if self._owner(s) is None}

    def _owner(self, shift: IcalShift) -> Person | None:
        found = self._by_key.get(shift.summary.lower())
        if found is None:
            found = next((self._by_email[e] for e in shift.emails if e in self._by_email), None)
        return found

    # ------------------------------------------------------------------ on call

    def on_call(self, schedule: str, at: datetime) -> OnCall | None:
        """Who is on call for ``schedule`` at ``at`` (aware), since when, until when and why;
        None when nobody is. Raises KeyError for an unknown schedule."""
        sched = self.schedules[schedule]
        at = at.astimezone(UTC)
        answer = self._answer(sched, at)
        if answer is None:
            return None
        return OnCall(answer.person, answer.since, self._until(sched, at, answer), answer.why)

    def _answer(self, sched: Schedule, at: datetime) -> _Answer | None:
        for override in reversed(sched.overrides):
            if override.start <= at < override.until:
                return _Answer(override.who, override.start, "override")
        feed = self._feeds.get(sched.name)
        if feed is not None:
            shifts = [s for s in feed.shifts_between(at, at + _TICK) if self._owner(s)]
            if shifts:
                shift = max(shifts, key=lambda s: s.start)
                owner = self._owner(shift)
                assert owner is not None
                return _Answer(owner.name, shift.start, "ical")
        for layer in reversed(sched.layers):
            answer = _layer_answer(layer, sched.zone, at)
            if answer is not None:
                return answer
        return None

    def _until(self, sched: Schedule, at: datetime, answer: _Answer) -> datetime | None:
        """The first boundary after ``at`` where someone else is on call (or nobody), or the
        same person for another reason."""
        t, end = at, at + HORIZON
        for _ in range(MAX_STEPS):
            boundary = self._next_boundary(sched, t, end)
            if boundary is None:
                return None
            then = self._answer(sched, boundary)
            if then is None or (then.person, then.why) != (answer.person, answer.why):
                return boundary
            t = boundary
        return None

    def _next_boundary(self, sched: Schedule, t: datetime, end: datetime) -> datetime | None:
        """The first instant after ``t`` (before ``end``) at which any part may change."""
        candidates = [b for o in sched.overrides for b in (o.start, o.until) if b > t]
        feed = self._feeds.get(sched.name)
        if feed is not None:
            for shift in feed.shifts_between(t, end):
                candidates += [b for b in (shift.start, shift.end) if b > t]
        for layer in sched.layers:
            turn = layer.turn_at(t, sched.zone)
            candidates.append(layer.handoff(max(turn + 1, 0), sched.zone))
            if layer.restrict is not None:
                with contextlib.suppress(CalendarError):  # never opens again, or never closes
                    candidates.append(layer.restrict.next_change(t))
        candidates = [c for c in candidates if t < c <= end]
        return min(candidates, default=None)


_TICK = timedelta(microseconds=1)


def _layer_answer(layer: Layer, zone: ZoneInfo, at: datetime) -> _Answer | None:
    turn = layer.turn_at(at, zone)
    if turn < 0:
        return None
    since = layer.handoff(turn, zone)
    if layer.restrict is not None:
        try:
            window = layer.restrict.open_window(at)
        except CalendarError:  # open for years on end
            window = (since, since) if layer.restrict.is_open(at) else None
        if window is None:
            return None
        since = max(since, window[0])
    return _Answer(layer.members[turn % len(layer.members)], since, f"layer {layer.name}")
