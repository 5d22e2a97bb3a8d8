"""Connector benchmark: requests per poll and sync time for 10,000 tickets, per helpdesk fake.

For each helpdesk the fake server runs as its own process on 127.0.0.1 and is bulk-loaded with
10,000 tickets (a few replies each). The connector then runs as the daemon runs it: polls until
the source reports nothing more waiting. Measured: the initial sync (requests, seconds, events),
one poll of the unchanged helpdesk (requests), and one poll after 10 new tickets (requests).
The fake counts every API request it serves.

Run ``python -m bench.connectors`` (``--quick``: 1,000 tickets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from sladaemon.config.models import SourceConfig
from sladaemon.sources.registry import build_source
from sladaemon.sources.zendesk.client import INCREMENTAL_EXPORTS_PER_MINUTE
from sladaemon.sources.zendesk.source import ZendeskSource
from tests.fakes.process import FakeHelpdesk


# How each fake expects to be called: the credentials each fake accepts.
def _helpdesks() -> dict[str, dict[str, Any]]:
    from tests.fakes import freshdesk, jira, zendesk

    return {
        "zendesk": {"type": "zendesk", "email": zendesk.AGENT_EMAIL, "token": zendesk.API_TOKEN},
        "zammad": {"type": "zammad", "token": "fake-token"},
        "freshdesk": {"type": "freshdesk", "token": freshdesk.DEFAULT_API_KEY},
        "rt": {"type": "rt", "token": "fake-token"},
        "jira": {"type": "jira", "email": jira.EMAIL, "token": jira.TOKEN},
    }


HELPDESKS = ("zendesk", "zammad", "freshdesk", "rt", "jira")
# Zendesk's export starts at a given instant: from before the bulk load, as a backfill does.
FIRST_CURSOR: dict[str, Any] = {"zendesk": {"start_time": 0}}
SOURCE_CONFIG: TypeAdapter[Any] = TypeAdapter(SourceConfig)


def _past_export_lag(fake: FakeHelpdesk) -> None:
    """Zendesk's exports hide the last minute: move the fake's clock past it."""
    if fake.helpdesk == "zendesk":
        fake.control("clock", {"advance": 120})


async def _sync(source: Any) -> tuple[int, int]:
    """Poll until nothing more is waiting; returns (events, polls)."""
    events = polls = 0
    while True:
        result = await source.poll(datetime.now(UTC))
        events += len(result.events)
        polls += 1
        if not result.more:
            return events, polls


async def bench_helpdesk(helpdesk: str, tickets: int) -> dict[str, Any]:
    fake = FakeHelpdesk(helpdesk)
    try:
        loaded = time.perf_counter()
        fake.control("bulk", {"tickets": tickets, "seed": 1})
        _past_export_lag(fake)
        load_s = time.perf_counter() - loaded
        cfg = SOURCE_CONFIG.validate_python(
            {**_helpdesks()[helpdesk], "url": fake.url, "page_size": 100, "overlap": "0s"}
        )
        source = build_source(helpdesk, cfg, FIRST_CURSOR.get(helpdesk), datetime.now(UTC))
        if isinstance(source, ZendeskSource):
            # The connector keeps Zendesk's 10 exports a minute; lifted here, on both sides, to
            # time the rest (the table notes what the limit itself costs).
            source.client.export_pacer.limit = 100_000
            fake.control("limits", {"incremental_per_minute": 100_000})
        try:
            fake.reset_stats()
            started = time.perf_counter()
            events, polls = await _sync(source)
            sync_s = time.perf_counter() - started
            sync_requests = fake.requests()
            await asyncio.sleep(1.1)  # past whole-second timestamp resolutions
            fake.reset_stats()
            await _sync(source)  # what the sync left to confirm (RT: same-second re-reads)
            settle = fake.requests()
            fake.reset_stats()
            await _sync(source)
            unchanged = fake.requests()
            fake.control("bulk", {"tickets": 10, "seed": 2, "span": 1})
            await asyncio.sleep(1.1)
            _past_export_lag(fake)
            fake.reset_stats()
            changed_events, _ = await _sync(source)
            changed = fake.requests()
        finally:
            await source.close()
    finally:
        fake.stop()
    return {
        "tickets": tickets,
        "fake_load_s": load_s,
        "sync_s": sync_s,
        "sync_requests": sync_requests,
        "sync_polls": polls,
        "sync_events": events,
        "settle_poll_requests": settle,
        "unchanged_poll_requests": unchanged,
        "ten_new_tickets_requests": changed,
        "ten_new_tickets_events": changed_events,
    }


def run(quick: bool = False, helpdesks: Sequence[str] = HELPDESKS) -> dict[str, Any]:
    tickets = 1_000 if quick else 10_000
    results: dict[str, Any] = {}
    for helpdesk in helpdesks:
        try:
            results[helpdesk] = asyncio.run(bench_helpdesk(helpdesk, tickets))
        except Exception as exc:  # one helpdesk failing must not hide the others' figures
            results[helpdesk] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.connectors", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=list(HELPDESKS))
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    results = run(args.quick, args.only)
    print(
        f"{'helpdesk':10s} {'tickets':>8s} {'sync s':>8s} {'requests':>9s} {'events':>8s} "
        f"{'settle':>7s} {'unchanged':>10s} {'+10 new':>8s}"
    )
    status = 0
    for name, r in results.items():
        if "error" in r:
            print(f"{name:10s} failed: {r['error']}")
            status = 1
            continue
        print(
            f"{name:10s} {r['tickets']:>8,} {r['sync_s']:>8.1f} {r['sync_requests']:>9,} "
            f"{r['sync_events']:>8,} {r['settle_poll_requests']:>7} "
            f"{r['unchanged_poll_requests']:>10} {r['ten_new_tickets_requests']:>8}"
        )
    zendesk = results.get("zendesk", {})
    if "sync_requests" in zendesk:
        minutes = zendesk["sync_requests"] / INCREMENTAL_EXPORTS_PER_MINUTE
        print(
            f"zendesk: at the export limit of {INCREMENTAL_EXPORTS_PER_MINUTE} requests a minute "
            f"(lifted above) the sync takes about {minutes:.0f} min"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
