"""Inhibition, Alertmanager's ``inhibit_rules``: a notification (the target) is held while a
firing alert (the source) matches a rule's ``source_matchers``, the target matches its
``target_matchers``, and every ``equal`` label has the same value in both (a label absent from
both counts as equal, both being empty). A source that matches both sides of a rule does not
inhibit a target that does too, so such an alert never inhibits itself.

Built-in rules (``inhibit_defaults``) over sladaemon's labels:

* a breach holds the warnings of its ticket's metric (same source, ticket, metric and cycle);
* a stale source (pseudo alert ``{alertname="source_stale", source=NAME}``) holds the alerts
  of its tickets, whose clocks it may no longer see right;
* a queue forecast alert (pseudo alert ``{alertname="queue_forecast", source, queue}``) holds
  the predicted breaches of the tickets of its queue: the forecast tells it once.

Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sladaemon.matchers import Matcher, parse_matchers
from sladaemon.predict.results import QueueAlert

SOURCE_STALE = "source_stale"
QUEUE_FORECAST = "queue_forecast"
_ALERTING = 'kind=~"warning|breach|escalation|predicted_breach"'


class RuleSpec(Protocol):
    """A rule as the config gives it (config/routing.py's InhibitRuleConfig)."""

    @property
    def source_matchers(self) -> Sequence[str]: ...
    @property
    def target_matchers(self) -> Sequence[str]: ...
    @property
    def equal(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Rule:
    name: str  # for logs: ``inhibit_rules[N]`` or the built-in rule's name
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def of(
        cls, name: str, source: Iterable[str], target: Iterable[str], equal: Iterable[str]
    ) -> Rule:
        return cls(
            name,
            tuple(m for text in source for m in parse_matchers(text)),
            tuple(m for text in target for m in parse_matchers(text)),
            tuple(equal),
        )


def _all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


DEFAULT_RULES = (
    Rule.of(
        "breach_over_warning",
        ['kind="breach"'],
        ['kind="warning"'],
        ["source", "ticket", "metric", "cycle"],
    ),
    Rule.of("stale_source", [f'alertname="{SOURCE_STALE}"'], [_ALERTING], ["source"]),
    Rule.of(
        "queue_forecast_over_predictions",
        [f'alertname="{QUEUE_FORECAST}"'],
        ['kind="predicted_breach"'],
        ["source", "queue"],
    ),
)


class Inhibitor:
    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules = tuple(rules)

    @classmethod
    def from_config(cls, rules: Iterable[RuleSpec], defaults: bool) -> Inhibitor:
        own = [
            Rule.of(f"inhibit_rules[{i}]", r.source_matchers, r.target_matchers, r.equal)
            for i, r in enumerate(rules)
        ]
        return cls([*own, *(DEFAULT_RULES if defaults else ())])

    def inhibited(
        self, target_labels: Mapping[str, str], sources: Iterable[Mapping[str, str]]
    ) -> Rule | None:
        """The first rule that holds ``target_labels`` given the firing ``sources``."""
        return self.against(sources).inhibited(target_labels)

    def against(self, sources: Iterable[Mapping[str, str]]) -> Inhibition:
        """The firing ``sources`` indexed once, for many targets."""
        return Inhibition(self.rules, sources)


class Inhibition:
    """Per rule, the ``equal`` values of the sources it sees, each with whether one of them
    matches the rule's source side only (such a source inhibits even a two-sided target)."""

    def __init__(self, rules: tuple[Rule, ...], sources: Iterable[Mapping[str, str]]) -> None:
        self.rules = rules
        self.index: list[dict[tuple[str, ...], bool]] = [{} for _ in rules]
        for source in sources:
            for rule, seen in zip(rules, self.index, strict=True):
                if _all(rule.source, source):
                    key = tuple(source.get(n, "") for n in rule.equal)
                    seen[key] = seen.get(key, False) or not _all(rule.target, source)

    def inhibited(self, target: Mapping[str, str]) -> Rule | None:
        for rule, seen in zip(self.rules, self.index, strict=True):
            if not seen or not _all(rule.target, target):
                continue
            one_sided = seen.get(tuple(target.get(n, "") for n in rule.equal))
            if one_sided is None:
                continue
            if one_sided or not _all(rule.source, target):
                return rule
        return None


def stale_source_alert(source: str) -> dict[str, str]:
    return {"alertname": SOURCE_STALE, "source": source}


class QueueForecasts:
    """The queues whose forecast alert is active, as pseudo source alerts: from an alert that
    some tickets will miss until the forecast's all-clear (an alert with none missing) or the
    forecast's horizon has passed, whichever comes first."""

    def __init__(self) -> None:
        self._until: dict[tuple[str, str], int] = {}

    def note(self, alerts: Iterable[QueueAlert], horizon: timedelta) -> None:
        for alert in alerts:
            if alert.will_miss > 0:
                until = alert.at_us + horizon // timedelta(microseconds=1)
                self._until[(alert.source, alert.queue)] = until
            else:
                self._until.pop((alert.source, alert.queue), None)

    def active(self, now_us: int) -> list[dict[str, str]]:
        for key in [k for k, until in self._until.items() if until <= now_us]:
            del self._until[key]
        return [
            {"alertname": QUEUE_FORECAST, "source": source, "queue": queue}
            for source, queue in self._until
        ]
