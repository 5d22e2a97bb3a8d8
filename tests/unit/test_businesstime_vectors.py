"""Every shared business-time vector (both files), through the public API:
load_config(path).calendars."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from sladaemon.calendar import BusinessCalendar
from sladaemon.config import load_config
from tests.conftest import SHARED

VECTOR_FILES = tuple(
    SHARED / "docs" / name
    for name in ("businesstime-vectors.json", "businesstime-vectors-holidays.json")
)


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"calendars": {}, "vectors": []}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


SUITES = {path: _load(path) for path in VECTOR_FILES}
CALENDARS: dict[str, Any] = {}
for _suite in SUITES.values():
    assert not CALENDARS.keys() & _suite["calendars"].keys(), "a calendar name is reused"
    CALENDARS.update(_suite["calendars"])
VECTORS = [
    pytest.param(vector, id=vector["id"])
    for suite in SUITES.values()
    for vector in suite["vectors"]
] + [
    pytest.param(None, id=path.name, marks=pytest.mark.skip(reason=f"{path} is not present"))
    for path, suite in SUITES.items()
    if not suite["vectors"]
]


@pytest.fixture(scope="module")
def calendars(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BusinessCalendar]:
    path = Path(tmp_path_factory.mktemp("vectors")) / "calendars.yaml"
    path.write_text(yaml.safe_dump({"calendars": CALENDARS}))
    return dict(load_config(path).calendars)


def _instant(text: str, zone: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize("vector", VECTORS)
def test_shared_vector(vector: dict[str, Any], calendars: dict[str, BusinessCalendar]) -> None:
    calendar = calendars[vector["cal"]]
    zone = CALENDARS[vector["cal"]]["timezone"]
    pauses = [(_instant(a, zone), _instant(b, zone)) for a, b in vector.get("pauses", [])]
    op, expected = vector["op"], vector["expected"]
    if op == "add":
        start, n = _instant(vector["t"], zone), timedelta(seconds=vector["n"])
        if expected == "ERROR":
            with pytest.raises(ValueError, match="negative"):
                calendar.add(start, n, pauses)
            return
        result = calendar.add(start, n, pauses)
        assert result == _instant(expected, zone)
        assert result.utcoffset() == timedelta(0), "results are UTC"
    elif op == "elapsed":
        got = calendar.elapsed(_instant(vector["a"], zone), _instant(vector["b"], zone), pauses)
        assert got == timedelta(seconds=expected)
    elif op == "in_hours":
        assert calendar.is_open(_instant(vector["t"], zone)) is expected
    else:
        pytest.fail(f"unknown op {op}")
