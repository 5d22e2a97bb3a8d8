"""The Grafana dashboard (config/grafana/sladaemon.json) is built on what the daemon exports:
every PromQL expression parses, and every metric it names is on a running daemon's /metrics
(scraped over HTTP on 127.0.0.1). So is every metric the README names."""

from __future__ import annotations

import io
import json
import re
import socket
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sladaemon.clock import FakeClock
from sladaemon.config import load_config
from sladaemon.daemon.app import App

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "config" / "grafana" / "sladaemon.json"
README = ROOT / "README.md"
# Grafana's own variables, as Grafana substitutes them before querying.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "7d"}
# Series names a metric family of each type exposes.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "unknown": ("",),
}


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]


def selectors(expr: str) -> list[str]:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    names: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.append(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def scraped_series(tmp_path: Path) -> set[str]:
    """Every series name a running daemon exposes on /metrics, with type suffixes."""
    start = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
    events = tmp_path / "events.csv"
    events.write_text(
        "ticket_id,timestamp,event,status,priority,channel,queue\n"
        "T1,2024-01-08T08:00:00Z,created,new,normal,email,support\n"
    )
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            calendars:
              office: {{timezone: UTC, hours: {{mon-fri: "08:00-17:00"}}}}
            receivers:
              console: {{urls: ["console://"]}}
            policies:
              - name: support
                calendar: office
                targets: {{first_response: 30m}}
                escalation: [{{at: breach, notify: [console]}}]
            sources:
              desk: {{type: csv, path: {events}, poll_interval: 1h}}
            reports:
              - {{every: "mon 10:00", receiver: console}}
            daemon:
              state: {tmp_path / "state.sqlite"}
              http: {{listen: "127.0.0.1:{port}"}}
            """
        )
    )
    clock = FakeClock(start)
    app = App(load_config(config), clock=clock, console=io.StringIO())
    await app.start()
    try:
        await clock.advance(timedelta(minutes=5))
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert response.status == 200
            text = await response.text()
    finally:
        await app.shutdown()
    series: set[str] = set()
    for family in text_string_to_metric_families(text):
        series.update(family.name + suffix for suffix in SUFFIXES[family.type])
        series.update(sample.name for sample in family.samples)
    return series


def test_the_dashboard_is_valid_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels(dashboard["panels"]):
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        if panel["type"] != "row":
            assert panel["targets"], f"{panel['title']} has queries"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "datasource" in variables


async def test_every_metric_the_dashboard_uses_is_exported(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = await scraped_series(tmp_path)
    used: dict[str, str] = {}
    for title, expr in expressions(dashboard):
        names = selectors(expr)  # raises on an expression PromQL cannot parse
        assert names, f"{title}: {expr} selects no metric"
        for name in names:
            used[name] = title
    unknown = {name: title for name, title in used.items() if name not in exported}
    assert not unknown, f"metrics the daemon does not export: {unknown}"
    kpi_families = {name for name in exported if name.startswith("sladaemon_kpi_")}
    assert kpi_families, "the daemon exports KPI metrics"
    assert kpi_families <= set(used), f"KPIs missing from the dashboard: {kpi_families - set(used)}"


async def test_every_metric_the_readme_names_is_exported(tmp_path: Path) -> None:
    named = set(re.findall(r"\bsladaemon_[a-z0-9_]+", README.read_text()))
    assert "sladaemon_deadline_mismatches_total" in named
    missing = sorted(named - await scraped_series(tmp_path))
    assert not missing, f"metrics the README names but the daemon does not export: {missing}"


def scopes(expr: str) -> list[tuple[str, set[tuple[str, str]]]]:
    """Each metric an expression selects, with its regex label matchers (label, pattern)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    found: list[tuple[str, set[tuple[str, str]]]] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            matchers = node.matchers.matchers
            regexes = {(m.name, m.value) for m in matchers if m.op == promql_parser.MatchOp.Re}
            found.append((node.name, regexes))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


async def test_every_query_follows_the_job_and_instance_variables(tmp_path: Path) -> None:
    """With several daemons scraped, the dashboard shows the ones picked: every query, the
    queue forecasts and predicted breaches too, selects ``job=~"$job", instance=~"$instance"``,
    and the instance list follows the job picked."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    scope = {("job", "$job"), ("instance", "$instance")}
    for title, expr in expressions(dashboard):
        for name, regexes in scopes(expr):
            assert scope <= regexes, f"{title}: {name} in {expr} is not scoped to $job/$instance"
    job = variables["job"]["query"].removeprefix("label_values(").removesuffix(", job)")
    instance = variables["instance"]["query"].removeprefix("label_values(")
    instance = instance.removesuffix(", instance)")
    assert scopes(job)[0][0] == scopes(instance)[0][0] and ("job", "$job") in scopes(instance)[0][1]
    exported = await scraped_series(tmp_path)
    assert scopes(job)[0][0] in exported, "the variables list what the daemon exports"
    used = {name for _, expr in expressions(dashboard) for name in selectors(expr)}
    queues = {n for n in exported if n.startswith("sladaemon_queue_") and "_created" not in n}
    assert {"sladaemon_queue_backlog_forecast", "sladaemon_queue_forecast_misses"} <= queues
    wanted = queues | {"sladaemon_predicted_breaches_total"}
    assert wanted <= used, f"missing from the dashboard: {wanted - used}"


def test_selectors_come_from_a_promql_parser() -> None:
    expr = (
        "histogram_quantile(0.9, sum by (le) (rate(a_bucket[$__rate_interval]))) "
        '/ on() group_left b{kind="x"} or vector(0)'
    )
    assert selectors(expr) == ["a_bucket", "b"]
    with pytest.raises(ValueError, match="parenthesis"):
        selectors("sum(rate(a[5m])")
