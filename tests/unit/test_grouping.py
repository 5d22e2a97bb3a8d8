"""Grouping, the pure part: the first message after group_wait, then at most one per
group_interval and only with something new, a repeat every repeat_interval while anything
fires, and nothing once every item is met."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sladaemon.config import load_config
from sladaemon.escalate.grouping import Group, Item, digest_payload

S = 1_000_000
WAIT, INTERVAL, REPEAT = 30 * S, 300 * S, 4 * 3600 * S


def group() -> Group:
    return Group("group/l1/{}:{queue=\"billing\"}", "l1", {"queue": "billing"}, WAIT, INTERVAL,
                 REPEAT, created_us=0)  # fmt: skip


def item(n: int, at_s: int) -> Item:
    payload = {
        "id": f"desk/T{n}/first_response/0/breach",
        "ticket_id": f"T{n}",
        "link": f"https://desk.example.com/t/T{n}",
        "metric": "first_response",
        "level": "breach",
        "kind": "breach",
        "policy": "support",
        "deadline": "2024-01-08T09:00:00Z",
    }
    return Item(str(payload["id"]), payload, at_s * S)


def test_what_arrives_within_group_wait_goes_out_as_one_message() -> None:
    g = group()
    for n in range(14):
        assert g.add(item(n, n))
    assert not g.add(item(0, 20)), "an item already in the group is not taken twice"
    assert g.next_us == WAIT
    digest = g.due(WAIT)
    assert digest is not None and digest.number == 1 and len(digest.new) == 14
    g.sent(digest, WAIT)
    payload = digest_payload(g, digest, "2024-01-08T09:00:30Z")
    assert payload["title"] == "billing / first_response: 14 tickets breached"
    assert "- T13 https://desk.example.com/t/T13: first_response breach" in payload["body"]
    assert len(payload["items"]) == 14 and payload["id"].endswith("/1")


def test_later_items_wait_for_the_group_interval_and_only_changes_are_sent() -> None:
    g = group()
    g.add(item(1, 0))
    first = g.due(WAIT)
    assert first is not None
    g.sent(first, WAIT)
    g.add(item(2, 40))  # 10 s after the first message: held until group_interval has passed
    assert g.next_us == WAIT + INTERVAL
    second = g.due(WAIT + INTERVAL)
    assert second is not None and [i.key for i in second.new] == [item(2, 0).key]
    assert len(second.firing) == 2 and not second.repeat
    g.sent(second, WAIT + INTERVAL)
    assert g.due(WAIT + 2 * INTERVAL) is None, "nothing new, no repeat yet: no message"


def test_a_group_still_firing_repeats_and_a_met_one_is_done() -> None:
    g = group()
    g.add(item(1, 0))
    g.add(item(2, 0))
    d = g.due(WAIT)
    assert d is not None
    g.sent(d, WAIT)
    assert g.due(WAIT + INTERVAL) is None
    assert g.next_us == WAIT + REPEAT
    repeat = g.due(WAIT + REPEAT)
    assert repeat is not None and repeat.repeat and len(repeat.firing) == 2
    g.sent(repeat, WAIT + REPEAT)
    assert g.resolve(item(1, 0).key) and g.resolve(item(2, 0).key)
    assert not g.resolve(item(2, 0).key)
    assert g.due(WAIT + REPEAT + INTERVAL) is None and g.done


def test_the_readme_noise_control_example_passes_check(tmp_path: Path) -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    section = readme.read_text().split("\n## Noise control\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "config.yaml"
    path.write_text(example + f"daemon: {{state: {tmp_path / 'state.sqlite'}}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "sladaemon", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "SMTP_PASSWORD": "pw"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    cfg = load_config(path, environ={"SMTP_PASSWORD": "pw"})
    assert cfg.settings.route is not None and cfg.settings.route.receiver == "desk"
