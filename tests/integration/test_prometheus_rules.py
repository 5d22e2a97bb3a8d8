"""The Prometheus files (config/prometheus/): the scrape config and the alerting rules pass
``promtool check``, the alerts fire as their unit tests (series in, alerts out) expect under
``promtool test rules``, and every metric they name is on a running daemon's /metrics.

promtool comes from Debian's ``prometheus`` package. Without it these tests are skipped, unless
``SLADAEMON_REQUIRE_TOOLS`` is set (.ci/run sets it): then they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.test_grafana_dashboard import scraped_series, selectors

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "config" / "prometheus"
SCRAPE, ALERTS, ALERT_TESTS = (
    PROMETHEUS / f for f in ("scrape.yml", "alerts.yml", "alerts_test.yml")
)
PROMETHEUS_OWN = {"up"}  # series Prometheus itself writes for each target


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("SLADAEMON_REQUIRE_TOOLS"):
            pytest.fail(f"{reason}; SLADAEMON_REQUIRE_TOOLS is set")
        pytest.skip(reason)
    return path


def run(promtool: str, *args: str) -> str:
    result = subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_the_scrape_config_and_the_rules_pass_promtool_check(promtool: str) -> None:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    assert f"SUCCESS: {len(rules)} rules found" in run(promtool, "check", "rules", ALERTS.name)
    checked = run(promtool, "check", "config", SCRAPE.name)
    assert "SUCCESS: 1 rule files found" in checked and "valid prometheus config" in checked


def test_each_alert_fires_when_its_unit_test_says_and_only_then(promtool: str) -> None:
    assert "SUCCESS" in run(promtool, "test", "rules", ALERT_TESTS.name)
    rules = {rule["alert"] for rule in yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]}
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert firing == rules, "every alert has a unit test in which it fires"


async def test_every_metric_the_rules_and_their_tests_use_is_exported(tmp_path: Path) -> None:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    used = {name for rule in rules for name in selectors(rule["expr"])}
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fed = {selectors(series["series"])[0] for test in tests for series in test["input_series"]}
    exported = await scraped_series(tmp_path)
    assert used - PROMETHEUS_OWN <= exported, used - PROMETHEUS_OWN - exported
    assert fed - PROMETHEUS_OWN <= exported, fed - PROMETHEUS_OWN - exported
