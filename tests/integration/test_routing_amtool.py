"""The routing tree against Alertmanager's own: seeded random trees and label sets, each
written as our config and as the equivalent Alertmanager config (receivers named the same),
routed by ``sladaemon.escalate.routing`` and by ``amtool config routes test --tree``. Both must
give the same receivers in the same order and the same route keys (what amtool's tree shows of
a group key; the group labels part is ``group_by`` applied to the labels).

amtool comes from Debian's ``prometheus-alertmanager`` package. Without it these tests are
skipped, unless ``SLADAEMON_REQUIRE_TOOLS`` is set (.ci/run sets it): then they fail."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sladaemon.config.loader import load_config
from sladaemon.escalate.routing import RouteTree

SEED = 20260301
TREES = 80
LABEL_SETS = 8  # per tree
RECEIVERS = ["ops", "billing", "sales", "night-shift", "person:ann"]
NAMES = ["queue", "priority", "team", "channel", "env_1"]
VALUES = ["a", "b", "ab", "B", "10", "x y", 'say "hi"', "back\\slash", "é", "١٢", "a\n", ""]
PATTERNS = [
    "a|b", "a.*", ".+", "[ab]", "(?i)b", "1[0-9]*", "", "x y", r"\d+", "[[:alpha:]]+",
    "a(b|)", ".*\\\\.*", "(?i)A|x y", "[^a]*", "é|a", "a$", "a.", "(?s)a.", "\\w+",
]  # fmt: skip
OPS = ["=", "!=", "=~", "!~"]


@pytest.fixture(scope="module")
def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        reason = "amtool is not installed (Debian: apt-get install prometheus-alertmanager)"
        if os.environ.get("SLADAEMON_REQUIRE_TOOLS"):
            pytest.fail(f"{reason}; SLADAEMON_REQUIRE_TOOLS is set")
        pytest.skip(reason)
    return path


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def matcher_text(rng: random.Random) -> str:
    """A matcher in one of the spellings Alertmanager accepts."""
    name, op = rng.choice(NAMES), rng.choice(OPS)
    value = rng.choice(PATTERNS if "~" in op else VALUES)
    plain = value.replace(" ", "").isalnum() and value == value.strip() and " " not in value
    shown = value if plain and rng.random() < 0.4 else quoted(value)
    space = " " if rng.random() < 0.3 else ""
    return f"{name}{space}{op}{space}{shown}"


def matchers(rng: random.Random) -> list[str]:
    texts = [matcher_text(rng) for _ in range(rng.choice([0, 1, 1, 1, 2]))]
    if len(texts) == 2 and rng.random() < 0.3:  # a list in one string, as Alertmanager allows
        return ["{" + ", ".join(texts) + "}"]
    return texts


def random_route(rng: random.Random, depth: int, root: bool = False) -> dict[str, Any]:
    route: dict[str, Any] = {}
    if root or rng.random() < 0.6:
        route["receiver"] = rng.choice(RECEIVERS)
    if not root:
        route["matchers"] = matchers(rng)
        if rng.random() < 0.3:
            route["continue"] = True
    if rng.random() < 0.3:
        route["group_by"] = ["..."] if rng.random() < 0.3 else rng.sample(NAMES, 2)
    if depth < 3:
        children = [random_route(rng, depth + 1) for _ in range(rng.choice([0, 1, 2, 3]))]
        if children:
            route["routes"] = children
    return route


def random_labels(rng: random.Random) -> dict[str, str]:
    return {name: rng.choice(VALUES) for name in rng.sample(NAMES, rng.randint(0, len(NAMES)))}


def amtool_route(amtool: str, config: Path, labels: dict[str, str]) -> tuple[list[str], list[str]]:
    """The receivers amtool routes ``labels`` to, and the keys of the routes that take them
    (read off its ``--tree``: the matchers of each route from the root down)."""
    args = [f"{name}={quoted(value)}" for name, value in labels.items()]
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", "--tree", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    receivers = lines[-1].split(",") if lines[-1] else []
    keys: list[str] = []
    path: list[str] = []
    for line in lines:
        at = line.find("── ")
        if at < 0:
            continue
        depth, slug = at // 4, line[at + 3 :]
        final = "  receiver: " in slug
        slug = slug.split("  receiver: ")[0]
        path[depth:] = ["{}" if slug == "default-route" else slug]
        if final:
            keys.append("/".join(path))
    return receivers, keys


def write_configs(tmp_path: Path, index: int, route: dict[str, Any]) -> tuple[Path, Path]:
    ours = {
        "receivers": {name: {"urls": ["console://"]} for name in RECEIVERS if ":" not in name},
        "people": {"ann": {"urls": ["console://"]}},
        "route": route,
    }
    theirs = {"receivers": [{"name": name} for name in RECEIVERS], "route": route}
    our_path, their_path = tmp_path / f"ours-{index}.yaml", tmp_path / f"am-{index}.yaml"
    our_path.write_text(yaml.safe_dump(ours, allow_unicode=True))
    their_path.write_text(yaml.safe_dump(theirs, allow_unicode=True))
    return our_path, their_path


def test_random_trees_route_as_alertmanager_routes_them(amtool: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    compared = continued = fallbacks = 0
    for index in range(TREES):
        route = random_route(rng, 0, root=True)
        ours, theirs = write_configs(tmp_path, index, route)
        cfg = load_config(ours, secrets=False)
        assert cfg.settings.route is not None
        tree = RouteTree.from_config(cfg.settings.route)
        for _ in range(LABEL_SETS):
            labels = random_labels(rng)
            matches = tree.match(labels)
            expected = amtool_route(amtool, theirs, labels)
            got = ([m.receiver for m in matches], [m.key for m in matches])
            assert got == expected, (route, labels)
            compared += 1
            continued += len(matches) > 1
            fallbacks += any(m.key == "{}" for m in matches)
    assert compared >= 500
    assert continued and fallbacks and compared - fallbacks  # every kind of outcome was met


def test_the_cli_prints_what_amtool_prints(amtool: str, tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    for index in range(5):
        ours, theirs = write_configs(tmp_path, index, random_route(rng, 0, root=True))
        labels = random_labels(rng)
        args = [f"{name}={quoted(value)}" for name, value in labels.items()]
        result = subprocess.run(
            [sys.executable, "-m", "sladaemon", "routes", "test", "--config", str(ours), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        receivers, _ = amtool_route(amtool, theirs, labels)
        assert result.stdout == ",".join(receivers) + "\n"


def test_each_regex_matches_each_value_as_alertmanagers(amtool: str, tmp_path: Path) -> None:
    """A route per regex, all continuing: the receivers of a label value are the regexes that
    match it."""
    receivers = [f"r{i}" for i in range(len(PATTERNS))]
    routes = [
        {"matchers": [f"v=~{quoted(p)}"], "receiver": r, "continue": True}
        for p, r in zip(PATTERNS, receivers, strict=True)
    ]
    route = {"receiver": "none", "routes": routes}
    defined = {r: {"urls": ["console://"]} for r in [*receivers, "none"]}
    ours = tmp_path / "ours.yaml"
    ours.write_text(yaml.safe_dump({"receivers": defined, "route": route}, allow_unicode=True))
    theirs = tmp_path / "am.yaml"
    theirs.write_text(
        yaml.safe_dump(
            {"receivers": [{"name": r} for r in [*receivers, "none"]], "route": route},
            allow_unicode=True,
        )
    )
    cfg = load_config(ours, secrets=False)
    assert cfg.settings.route is not None
    tree = RouteTree.from_config(cfg.settings.route)
    hits = 0
    for value in [*VALUES, "AB", "a\nb", "x\n", "123", "_"]:
        got = [m.receiver for m in tree.match({"v": value})]
        assert got == amtool_route(amtool, theirs, {"v": value})[0], value
        hits += got != ["none"]
    assert hits
