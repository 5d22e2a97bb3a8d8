"""Fake helpdesk servers as separate processes on 127.0.0.1, and a way to drive them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sladaemon.sources.base import Source
from tests.fakes.process import FakeHelpdesk

S = TypeVar("S", bound=Source)
Closing = Callable[[S], S]

__all__ = ["Closing", "FakeHelpdesk", "daemon_config"]


def daemon_config(
    tmp_path: Path,
    sources: Mapping[str, Mapping[str, Any]],
    *,
    targets: Mapping[str, str] | None = None,
    hours: Mapping[str, str] | None = None,
) -> Path:
    """A daemon config for following ``sources``: one policy on a UTC calendar (24/7 unless
    ``hours``), alerts at breach to the console, state in ``tmp_path``, no HTTP endpoint."""
    config = {
        "calendars": {"office": {"timezone": "UTC", "hours": hours or {"mon-sun": "00:00-24:00"}}},
        "receivers": {"console": {"urls": ["console://"]}},
        "policies": [
            {
                "name": "support",
                "calendar": "office",
                "targets": targets or {"first_response": "1h", "resolution": "8h"},
                "escalation": [{"at": "breach", "notify": ["console"]}],
            }
        ],
        "sources": {name: {"poll_interval": "1h", **source} for name, source in sources.items()},
        "daemon": {"state": str(tmp_path / "state.sqlite"), "http": {"enabled": False}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


@pytest.fixture
async def closing() -> AsyncIterator[Closing[Any]]:
    """``closing(source)``: the source, closed after the test."""
    opened: list[Source] = []

    def keep(source: S) -> S:
        opened.append(source)
        return source

    yield keep
    for source in opened:
        await source.close()


@pytest.fixture
def fake_helpdesk() -> Iterator[Callable[[str], FakeHelpdesk]]:
    """``fake_helpdesk("zendesk")`` starts a fake; every one started is stopped afterwards."""
    started: list[FakeHelpdesk] = []

    def start(helpdesk: str) -> FakeHelpdesk:
        fake = FakeHelpdesk(helpdesk)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()
