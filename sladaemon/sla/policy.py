"""SLA policies as the engine sees them: matching rules, targets, calendars, ladders.

Policies form an ordered list and the first match wins. A policy matches when every ``match``
entry matches the ticket field of that name (case-insensitive; a value, a list of values, or a
glob). A policy without ``match`` entries matches every ticket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase

from sladaemon.calendar import BusinessCalendar
from sladaemon.model import Metric, StatusCategory

PAUSABLE = frozenset(
    {StatusCategory.NEW, StatusCategory.OPEN, StatusCategory.PENDING, StatusCategory.ON_HOLD}
)
DEFAULT_PAUSE_ON = frozenset({StatusCategory.PENDING, StatusCategory.ON_HOLD})


@dataclass(frozen=True, slots=True)
class LadderLevel:
    """One rung of an escalation ladder.

    ``fraction`` is the share of the target at which it fires: 0.75 for ``75%``, 1.0 for
    ``breach``. ``after_breach`` is business time past the target (``breach+30m``). Levels below
    100 % fire at the earliest instant elapsed business time reaches them; the others at the
    latest instant it is still within them, like the deadline itself (so an alert due at a
    closing time goes out at the next opening, not at night).
    """

    label: str
    fraction: float
    after_breach: timedelta = timedelta(0)
    predicted: bool = False
    notify: tuple[str, ...] = ()  # targets told once (see escalate/targets.py)
    metrics: frozenset[Metric] | None = None  # None: every metric of the policy
    chain: str | None = None  # the escalation chain the level starts (config ``chains:``)

    @property
    def before_breach(self) -> bool:
        return self.fraction < 1.0 and not self.predicted

    @property
    def is_breach(self) -> bool:
        return self.fraction == 1.0 and not self.after_breach and not self.predicted

    def threshold_us(self, target_us: int) -> int:
        """Business µs of elapsed time at which this level is reached."""
        after = (self.after_breach.days * 86_400 + self.after_breach.seconds) * 1_000_000
        return round(target_us * self.fraction) + after + self.after_breach.microseconds

    def applies_to(self, metric: Metric) -> bool:
        return self.metrics is None or metric in self.metrics


BREACH = LadderLevel("breach", 1.0)


def ladder_for(ladder: tuple[LadderLevel, ...], metric: Metric) -> tuple[LadderLevel, ...]:
    """The clock levels of ``metric``, always including the breach itself. ``predicted``
    levels are not clock instants; the prediction engine raises them."""
    levels = tuple(lv for lv in ladder if lv.applies_to(metric) and not lv.predicted)
    if not any(level.is_breach for level in levels):
        levels = (*levels, BREACH)
    return levels


@dataclass(frozen=True, slots=True)
class FieldMatch:
    field: str
    patterns: tuple[str, ...]  # lower-cased values or globs

    def test(self, value: str | None) -> bool:
        v = (value or "").lower()
        return any(fnmatchcase(v, p) for p in self.patterns)

    def describe(self) -> str:
        if len(self.patterns) == 1:
            return f"{self.field} = {self.patterns[0]!r}"
        return f"{self.field} in [{', '.join(self.patterns)}]"


@dataclass(frozen=True, slots=True)
class MetricRule:
    """A metric of a policy: its targets per priority, calendar and pausing statuses."""

    metric: Metric
    targets: Mapping[str, timedelta]  # lower-cased priority -> target
    default: timedelta | None
    calendar: BusinessCalendar
    pause_on: frozenset[StatusCategory]

    def target_for(self, priority: str | None) -> timedelta | None:
        if priority:
            found = self.targets.get(priority.lower())
            if found is not None:
                return found
        return self.default


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    name: str
    index: int
    match: tuple[FieldMatch, ...]
    metrics: tuple[MetricRule, ...]
    ladder: tuple[LadderLevel, ...]
    calendar: BusinessCalendar
    ladders: Mapping[Metric, tuple[LadderLevel, ...]]  # per metric, with the breach level

    def mismatch(self, fields: Mapping[str, str]) -> str | None:
        """Why this policy does not match the ticket, or None when it does."""
        for m in self.match:
            value = fields.get(m.field)
            if not m.test(value):
                shown = repr(value) if value else "empty"
                return f"{m.field} is {shown}, policy wants {m.describe().split(' ', 2)[2]}"
        return None

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(m.test(fields.get(m.field)) for m in self.match)

    def levels_for(self, metric: Metric) -> tuple[LadderLevel, ...]:
        found = self.ladders.get(metric)
        return found if found is not None else ladder_for(self.ladder, metric)


def select_policy(policies: Sequence[SlaPolicy], fields: Mapping[str, str]) -> SlaPolicy | None:
    """The first policy that matches (explicit order, never alphabetical)."""
    for policy in policies:
        if policy.matches(fields):
            return policy
    return None
