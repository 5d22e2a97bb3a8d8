"""The iCal refresher against a calendar server running as its own process: 200 with an
ETag, then 304, then 500; the last good copy is kept (in memory and beside the state file)
and the operator is told once."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sladaemon.config import Config, load_config
from sladaemon.daemon.ical_refresh import IcalRefresher, cache_dir
from sladaemon.metrics import DaemonMetrics
from tests.fakes.calendar import ETAG
from tests.fakes.process import FakeHelpdesk

BERLIN = ZoneInfo("Europe/Berlin")
ALICE_WEEK = datetime(2026, 1, 6, 12, 0, tzinfo=BERLIN)  # alice's in the feed


@pytest.fixture
def server() -> Iterator[FakeHelpdesk]:
    fake = FakeHelpdesk("calendar")
    try:
        yield fake
    finally:
        fake.stop()


def config(tmp_path: Path, feed: str) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            people:
              alice: {{email: alice@example.com}}
              bob: {{email: bob@example.com}}
              carol: {{email: carol@example.com}}
              dave: {{email: dave@example.com}}
            schedules:
              l1: {{timezone: Europe/Berlin, ical: {{{feed}, refresh: 1m}}}}
            daemon: {{state: {tmp_path / "state.sqlite"}}}
            """
        )
    )
    return load_config(path, environ={})


class Alerts(list[tuple[str, str, str]]):
    def __call__(self, kind: str, subject: str, summary: str, since: float) -> None:
        self.append((kind, subject, summary))


def on_call(cfg: Config, at: datetime) -> str | None:
    answer = cfg.roster.on_call("l1", at)
    return answer.person if answer else None


async def test_the_last_good_copy_is_kept_and_the_operator_told_once(
    tmp_path: Path, server: FakeHelpdesk
) -> None:
    cfg = config(tmp_path, f"url: '{server.url}/feed.ics'")
    feed = cfg.settings.schedules["l1"].ical
    assert feed is not None
    alerts, metrics = Alerts(), DaemonMetrics()
    refresher = IcalRefresher(cfg, metrics, alerts)
    assert on_call(cfg, ALICE_WEEK) is None  # nothing known yet

    await refresher.refresh("l1", feed)  # 200 with an ETag
    assert on_call(cfg, ALICE_WEEK) == "alice"
    assert (cache_dir(tmp_path / "state.sqlite") / "l1.ics").exists()

    await refresher.refresh("l1", feed)  # 304
    log = server.control("stats")["log"]
    assert [r["if_none_match"] for r in log] == [None, ETAG]
    assert on_call(cfg, ALICE_WEEK) == "alice"

    server.control("status", {"status": 500})
    await refresher.refresh("l1", feed)
    await refresher.refresh("l1", feed)
    assert on_call(cfg, ALICE_WEEK) == "alice"
    assert [a[0] for a in alerts] == ["ical_fetch_failed"]
    assert "HTTP 500" in alerts[0][2] and "last good copy" in alerts[0][2]
    failures = metrics.registry.get_sample_value(
        "sladaemon_ical_fetch_failures_total", {"schedule": "l1"}
    )
    assert failures == 2

    # a restart while the server is down still knows who is on call
    restarted = config(tmp_path, f"url: '{server.url}/feed.ics'")
    IcalRefresher(restarted, DaemonMetrics(), Alerts())
    assert on_call(restarted, ALICE_WEEK) == "alice"

    server.control("status", {"status": 200})
    await refresher.refresh("l1", feed)
    assert [a[0] for a in alerts] == ["ical_fetch_failed", "ical_fetch_recovered"]


async def test_an_unparsable_feed_keeps_the_last_good_one_and_a_file_is_read_when_it_changes(
    tmp_path: Path,
) -> None:
    ics = tmp_path / "oncall.ics"
    fixture = Path(__file__).parents[1] / "fixtures" / "ical" / "rotation.ics"
    ics.write_bytes(fixture.read_bytes())
    cfg = config(tmp_path, f"file: '{ics}'")
    feed = cfg.settings.schedules["l1"].ical
    assert feed is not None
    alerts = Alerts()
    refresher = IcalRefresher(cfg, DaemonMetrics(), alerts)
    await refresher.refresh("l1", feed)
    assert on_call(cfg, ALICE_WEEK) == "alice"

    ics.write_bytes(fixture.read_bytes().replace(b"SUMMARY:Alice", b"SUMMARY:Dave"))
    os.utime(ics, (1e9, 1e9))  # a new modification time
    await refresher.refresh("l1", feed)
    assert on_call(cfg, ALICE_WEEK) == "dave"

    ics.write_bytes(b"<html>oops</html>")
    os.utime(ics, (2e9, 2e9))
    await refresher.refresh("l1", feed)
    assert on_call(cfg, ALICE_WEEK) == "dave"
    assert [a[0] for a in alerts] == ["ical_fetch_failed"]
