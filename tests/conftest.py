"""Shared fixtures: where the public ticket logs and business-time vectors live, and HTTP
waits recorded instead of slept.

A test whose file under ../shared is absent is skipped, saying which file; with
``SLADAEMON_REQUIRE_SHARED=1`` (.ci/run sets it) it fails instead, so that a missing checkout of
../shared cannot pass CI unnoticed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Generator
from pathlib import Path

import pytest

import sladaemon.sources.http as http_module

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SLADAEMON_SHARED", ROOT.parent / "shared"))
REQUIRE_SHARED = os.environ.get("SLADAEMON_REQUIRE_SHARED") == "1"
REQUIRED = "SLADAEMON_REQUIRE_SHARED=1 requires it"


def shared_path(*parts: str) -> Path:
    """A file under ../shared; when it is absent, the test is skipped (or, required, fails)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = f"{path} is not present (public ticket logs live beside the project)"
        if REQUIRE_SHARED:
            pytest.fail(f"{reason}; {REQUIRED}")
        pytest.skip(reason)
    return path


@pytest.fixture
def shared() -> Path:
    return SHARED


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """With SLADAEMON_REQUIRE_SHARED=1, a skip whose reason names a path under ../shared (a
    ``skipif`` on a missing vectors file, say) is a failure."""
    report = yield
    skipped = report.longrepr
    reason = skipped[2] if isinstance(skipped, tuple) else str(skipped)
    if REQUIRE_SHARED and report.skipped and str(SHARED) in reason:
        report.outcome = "failed"
        report.longrepr = f"{reason}; {REQUIRED}"
    return report


class RecordedWaits:
    """Stands in for asyncio in sources/http.py: every wait is noted, none is slept."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def sleep(self, delay: float) -> None:
        self.seconds.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
def http_waits(monkeypatch: pytest.MonkeyPatch) -> RecordedWaits:
    """The waits HelpdeskHttp makes (Retry-After, backoff, rate-limit pacing), not slept."""
    recorded = RecordedWaits()
    monkeypatch.setattr(http_module, "asyncio", recorded)
    return recorded
