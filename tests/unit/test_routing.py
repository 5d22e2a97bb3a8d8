"""The routing tree: its config (errors at their line), Alertmanager's walk (first matching
child, continue, the parent when no child matches), inheritance, keys, time intervals on
calendars, and ``sladaemon routes test``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sladaemon.cli import main
from sladaemon.config.loader import Config, load_config
from sladaemon.errors import ConfigError
from sladaemon.escalate.routing import RouteTree

BASE = """
calendars:
  office: {timezone: UTC, hours: {mon-fri: "09:00-17:00"}}
receivers:
  ops: {urls: ["console://"]}
  billing: {urls: ["console://"]}
  sales: {urls: ["console://"]}
people:
  ann: {urls: ["console://"]}
"""

TREE = (
    BASE
    + """
route:
  receiver: ops
  group_by: [queue]
  group_wait: 10s
  routes:
    - matchers: ['queue=~"billing|sales"', 'priority="urgent"']
      receiver: billing
      continue: true
      repeat_interval: 1h
      routes:
        - matchers: ['team="a"']
          receiver: person:ann
          group_by: ["..."]
    - matchers: ['queue="sales"']
      receiver: sales
      mute_time_intervals: [office]
    - matchers: ['queue="sales"']
      receiver: ops
    - matchers: [queue=night]
      receiver: sales
      active_time_intervals: [office]
"""
)


def load(text: str) -> Config:
    return load_config("routes.yaml", text=text, secrets=False)


@pytest.fixture
def tree() -> RouteTree:
    cfg = load(TREE)
    assert cfg.settings.route is not None
    return RouteTree.from_config(cfg.settings.route)


def receivers(tree: RouteTree, **labels: str) -> list[str]:
    return [m.receiver for m in tree.match(labels)]


def test_the_first_matching_child_takes_it_and_continue_goes_on(tree) -> None:
    assert receivers(tree, queue="sales") == ["sales"]  # not the second queue="sales" route
    assert receivers(tree, queue="sales", priority="urgent") == ["billing", "sales"]
    assert receivers(tree, queue="billing", priority="urgent") == ["billing"]
    assert receivers(tree, queue="sales", priority="urgent", team="a") == ["person:ann", "sales"]


def test_a_route_no_child_of_which_matches_takes_it_itself(tree) -> None:
    assert receivers(tree, queue="other") == ["ops"]
    assert receivers(tree) == ["ops"]


def test_children_inherit_grouping_and_intervals_unless_they_set_them(tree) -> None:
    urgent, _ = tree.match({"queue": "sales", "priority": "urgent"})
    assert urgent.group_by == {"queue"} and not urgent.group_by_all
    assert urgent.group_wait == timedelta(seconds=10)  # the root's
    assert urgent.group_interval == timedelta(minutes=5)  # Alertmanager's default
    assert urgent.repeat_interval == timedelta(hours=1)  # its own
    ann, _ = tree.match({"queue": "sales", "priority": "urgent", "team": "a"})
    assert ann.group_by_all and ann.repeat_interval == timedelta(hours=1)  # the parent's
    root = tree.match({})[0]
    assert (root.group_wait, root.repeat_interval) == (timedelta(seconds=10), timedelta(hours=4))


def test_keys_name_the_route_and_the_group_as_alertmanagers_dispatcher(tree) -> None:
    labels = {"queue": "sales", "priority": "urgent", "team": "a", "ticket": 'T"1'}
    ann, sales = tree.match(labels)
    assert ann.key == '{}/{priority="urgent",queue=~"billing|sales"}/{team="a"}'
    assert ann.group_key(labels) == (
        ann.key + ':{priority="urgent", queue="sales", team="a", ticket="T\\"1"}'
    )
    assert sales.group_key(labels) == '{}/{queue="sales"}:{queue="sales"}'
    assert tree.match({})[0].group_key({"team": "a"}) == "{}:{}"  # no queue label: no value


def test_mute_and_active_intervals_follow_their_calendars(tree) -> None:
    calendars = load(TREE).calendars
    monday_noon = datetime(2026, 3, 2, 12, tzinfo=UTC)
    monday_night = datetime(2026, 3, 2, 22, tzinfo=UTC)
    (sales,) = tree.match({"queue": "sales"})
    assert sales.mute_calendars == ("office",)
    assert sales.muted(monday_noon, calendars) and not sales.muted(monday_night, calendars)
    (night,) = tree.match({"queue": "night"})
    assert not night.muted(monday_noon, calendars) and night.muted(monday_night, calendars)
    (other,) = tree.match({"queue": "other"})  # not inherited
    assert not other.muted(monday_noon, calendars) and not other.muted(monday_night, calendars)


@pytest.mark.parametrize(
    ("route", "line", "message"),
    [
        ("  receiver: ops\n  routes:\n    - matchers: ['a=\"x']\n", 3, "unescaped double quote"),
        ("  receiver: ops\n  routes:\n    - matchers: ['a=~\"(?=x)\"']\n", 3, "invalid regex"),
        ("  receiver: nobody\n", 1, "unknown receiver 'nobody'"),
        ("  receiver: ops\n  routes:\n    - receiver: person:bob\n", 3, "unknown person 'bob'"),
        ("  receiver: ops\n  routes:\n    - receiver: oncall:x\n", 3, "unknown schedule 'x'"),
        (
            "  receiver: ops\n  routes:\n    - mute_time_intervals: [office, nights]\n",
            3,
            "unknown calendar 'nights'",
        ),
        ("  receiver: ops\n  routes:\n    - active_time_intervals: x\n", 3, "unknown calendar"),
        ("  receiver: ops\n  group_by: [queue, '...']\n", 2, 'either ["..."]'),
        ("  receiver: ops\n  group_by: [queue, queue]\n", 2, "'queue' twice"),
        ("  receiver: ops\n  group_by: [a-b]\n", 2, "invalid label name"),
        ("  receiver: ops\n  group_wait: 0s\n", 2, "at least 1s"),
        ("  receiver: ops\n  repeat_interval: 9000h\n", 2, "at most 8760h"),
        ("  group_by: [queue]\n", 0, "missing required key 'receiver'"),
        ("  receiver: ops\n  matchers: [a=b]\n", 0, "no matchers"),
        ("  receiver: ops\n  mute_time_intervals: [office]\n", 0, "no mute_time_intervals"),
        ("  receiver: ops\n  continue: true\n", 0, "no continue"),
        ("  receiver: ops\n  routes:\n    - recevier: ops\n", 3, "did you mean 'receiver'"),
    ],
)
def test_a_bad_route_is_a_config_error_at_its_line(route, line, message) -> None:
    with pytest.raises(ConfigError) as raised:
        load(BASE + "route:\n" + route)
    at = BASE.count("\n") + 1 + line  # line counts from route:'s, 0
    issues = raised.value.issues
    assert any(i.line == at and message in i.message for i in issues), issues


def test_a_config_without_a_route_has_none() -> None:
    assert load(BASE).settings.route is None


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return path


def test_routes_test_prints_the_targets_comma_separated(tmp_path, capsys) -> None:
    config = str(write(tmp_path, TREE))
    assert main(["routes", "test", "-c", config, "queue=sales", 'priority="urgent"']) == 0
    assert capsys.readouterr().out == "billing,sales\n"
    assert main(["routes", "test", "-c", config, "--tree", "queue=billing"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Matching routes:",
        "default-route  receiver: ops",
        "",
        "ops",
    ]


def test_routes_test_json_gives_each_match_with_its_group_key(tmp_path, capsys) -> None:
    config = str(write(tmp_path, TREE))
    assert main(["routes", "test", "-c", config, "--json", "queue=sales", "team=a"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["labels"] == {"queue": "sales", "team": "a"}
    (match,) = shown["matches"]
    assert match["receiver"] == "sales"
    assert match["group_key"] == '{}/{queue="sales"}:{queue="sales"}'
    assert match["mute_time_intervals"] == ["office"]
    assert (match["group_wait"], match["repeat_interval"]) == ("10s", "4h")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["queue=~x"], "labels are given as name=value"),
        (['queue="x'], "unescaped double quote"),
    ],
)
def test_routes_test_refuses_bad_labels(tmp_path, capsys, args, error) -> None:
    assert main(["routes", "test", "-c", str(write(tmp_path, TREE)), *args]) == 2
    assert error in capsys.readouterr().err


def test_routes_test_without_a_route_says_so(tmp_path, capsys) -> None:
    assert main(["routes", "test", "-c", str(write(tmp_path, BASE)), "a=b"]) == 2
    assert "no route: tree" in capsys.readouterr().err
