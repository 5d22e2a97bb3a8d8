"""Inhibition rules with Alertmanager's semantics (source and target matchers, ``equal`` with
absent labels as empty, no self-inhibition), the built-in rules, the queue forecasts as
inhibiting alerts, and ``inhibit_rules:`` errors at their line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sladaemon.config.loader import Config, load_config
from sladaemon.errors import ConfigError
from sladaemon.escalate.inhibition import DEFAULT_RULES, Inhibitor, QueueForecasts, Rule
from sladaemon.predict.results import QueueAlert

CRITICAL_OVER_WARNING = Rule.of(
    "critical", ['severity="critical"'], ['severity="warning"'], ["alertname", "cluster"]
)


def test_a_source_inhibits_a_target_with_the_same_equal_labels() -> None:
    inhibitor = Inhibitor([CRITICAL_OVER_WARNING])
    target = {"alertname": "Disk", "cluster": "a", "severity": "warning"}
    source = {"alertname": "Disk", "cluster": "a", "severity": "critical"}
    assert inhibitor.inhibited(target, [source]) is CRITICAL_OVER_WARNING
    assert inhibitor.inhibited(target, [{**source, "cluster": "b"}]) is None
    assert inhibitor.inhibited(target, [{**source, "severity": "page"}]) is None
    assert inhibitor.inhibited({**target, "severity": "info"}, [source]) is None
    assert inhibitor.inhibited(target, []) is None


def test_an_equal_label_absent_from_both_counts_as_equal() -> None:
    inhibitor = Inhibitor([CRITICAL_OVER_WARNING])
    target = {"alertname": "Disk", "severity": "warning"}
    assert inhibitor.inhibited(target, [{"alertname": "Disk", "severity": "critical"}])
    absent_on_one_side = {"alertname": "Disk", "cluster": "a", "severity": "critical"}
    assert inhibitor.inhibited(target, [absent_on_one_side]) is None
    empty_equals_absent = {"alertname": "Disk", "cluster": "", "severity": "critical"}
    assert inhibitor.inhibited(target, [empty_equals_absent])


def test_an_alert_matching_both_sides_does_not_inhibit_itself() -> None:
    rule = Rule.of("both", ['team="db"'], ['env="prod"'], ["service"])
    inhibitor = Inhibitor([rule])
    both = {"team": "db", "env": "prod", "service": "pg"}
    assert inhibitor.inhibited(both, [both]) is None
    # another two-sided source does not inhibit a two-sided target either (Alertmanager)
    assert inhibitor.inhibited(both, [{**both, "alertname": "other"}]) is None
    # a source matching the source side only does
    source_only = {"team": "db", "env": "test", "service": "pg"}
    assert inhibitor.inhibited(both, [both, source_only]) is rule
    # and a two-sided source inhibits a target that matches the target side only
    target_only = {"team": "web", "env": "prod", "service": "pg"}
    assert inhibitor.inhibited(target_only, [both]) is rule


def test_the_first_rule_that_holds_is_named() -> None:
    other = Rule.of("any", ['severity="critical"'], ['severity="warning"'], [])
    inhibitor = Inhibitor([CRITICAL_OVER_WARNING, other])
    target = {"alertname": "Disk", "cluster": "a", "severity": "warning"}
    source = {"alertname": "Cpu", "cluster": "a", "severity": "critical"}
    assert inhibitor.inhibited(target, [source]) is other


def sla(kind: str, **more: str) -> dict[str, str]:
    labels = {
        "source": "desk",
        "policy": "support",
        "metric": "first_response",
        "level": kind,
        "kind": kind,
        "ticket": "T1",
        "cycle": "0",
        "queue": "billing",
    }
    return labels | more


def test_built_in_a_breach_inhibits_the_same_metric_cycles_warning_only() -> None:
    inhibitor = Inhibitor(DEFAULT_RULES)
    warning, breach = sla("warning", level="75%"), sla("breach")
    assert inhibitor.inhibited(warning, [warning, breach]) is DEFAULT_RULES[0]
    assert inhibitor.inhibited(breach, [warning, breach]) is None
    for other in ({"ticket": "T2"}, {"metric": "resolution"}, {"cycle": "1"}, {"source": "x"}):
        assert inhibitor.inhibited(warning, [sla("breach", **other)]) is None, other


def test_built_in_a_stale_source_holds_its_tickets_alerts() -> None:
    inhibitor = Inhibitor(DEFAULT_RULES)
    stale = {"alertname": "source_stale", "source": "desk"}
    for kind in ("warning", "breach", "escalation", "predicted_breach"):
        assert inhibitor.inhibited(sla(kind), [stale]) is DEFAULT_RULES[1]
        assert inhibitor.inhibited(sla(kind, source="jira"), [stale]) is None
    assert inhibitor.inhibited(sla("resolved"), [stale]) is None


def test_built_in_a_queue_forecast_holds_the_queues_predicted_breaches() -> None:
    inhibitor = Inhibitor(DEFAULT_RULES)
    forecast = {"alertname": "queue_forecast", "source": "desk", "queue": "billing"}
    assert inhibitor.inhibited(sla("predicted_breach"), [forecast]) is DEFAULT_RULES[2]
    assert inhibitor.inhibited(sla("predicted_breach", queue="sales"), [forecast]) is None
    assert inhibitor.inhibited(sla("breach"), [forecast]) is None


def test_queue_forecasts_last_until_the_all_clear_or_the_horizon() -> None:
    hour = 3_600_000_000
    forecasts = QueueForecasts()

    def alert(queue: str, at_us: int, will_miss: int) -> QueueAlert:
        return QueueAlert(f"queue/desk/{queue}", "desk", queue, at_us, "", will_miss)

    forecasts.note([alert("billing", 0, 5), alert("sales", 0, 3)], timedelta(hours=8))
    assert {a["queue"] for a in forecasts.active(hour)} == {"billing", "sales"}
    forecasts.note([alert("sales", 2 * hour, 0)], timedelta(hours=8))  # all clear
    assert forecasts.active(3 * hour) == [
        {"alertname": "queue_forecast", "source": "desk", "queue": "billing"}
    ]
    assert forecasts.active(8 * hour) == []


BASE = """
receivers:
  ops: {urls: ["console://"]}
route:
  receiver: ops
"""


def load(text: str) -> Config:
    return load_config("inhibit.yaml", text=text, secrets=False)


def test_inhibit_rules_load_with_the_built_in_rules_after_them() -> None:
    config = load(
        BASE
        + "inhibit_rules:\n"
        + "  - source_matchers: ['priority=urgent']\n"
        + "    target_matchers: ['priority!=urgent', 'kind=~\"warning|breach\"']\n"
        + "    equal: [queue]\n"
    )
    settings = config.settings
    inhibitor = Inhibitor.from_config(settings.inhibit_rules, settings.inhibit_defaults)
    assert [r.name for r in inhibitor.rules] == [
        "inhibit_rules[0]",
        *(r.name for r in DEFAULT_RULES),
    ]
    urgent = sla("breach", priority="urgent")
    assert inhibitor.inhibited(sla("warning", ticket="T9"), [urgent]) is inhibitor.rules[0]
    off = load(BASE + "inhibit_defaults: false\n").settings
    assert Inhibitor.from_config(off.inhibit_rules, off.inhibit_defaults).rules == ()


@pytest.mark.parametrize(
    ("rules", "line", "message"),
    [
        ("  - source_matchers: ['a=\"x']\n", 1, "unescaped double quote"),
        ("  - target_matchers: [kind=breach, 'a=~\"(?=x)\"']\n", 1, "invalid regex"),
        ("  - equal: [queue, a-b]\n", 1, "invalid label name 'a-b'"),
        ("  - source_matchers: [kind=breach]\n    equals: [queue]\n", 2, "unknown key 'equals'"),
    ],
)
def test_a_bad_inhibit_rule_is_a_config_error_at_its_line(rules, line, message) -> None:
    with pytest.raises(ConfigError) as raised:
        load(BASE + "inhibit_rules:\n" + rules)
    at = BASE.count("\n") + 1 + line  # line counts from inhibit_rules:'s, 0
    issues = raised.value.issues
    assert any(i.line == at and message in i.message for i in issues), issues


def test_inhibit_rules_need_a_route() -> None:
    text = 'receivers:\n  ops: {urls: ["console://"]}\ninhibit_rules:\n  - equal: [queue]\n'
    with pytest.raises(ConfigError) as raised:
        load(text)
    (issue,) = raised.value.issues
    assert issue.line == 3 and "add a route: section" in issue.message
