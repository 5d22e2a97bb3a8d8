"""What a run did, told when Ctrl-C stops the daemon: tickets seen, breaches, messages sent,
where the state is, and the commands that read that state next (``explain`` on a ticket the
daemon still followed, breached if one was, and ``report``).

The figures are read once the daemon has stopped and flushed its state: tickets from the KPI
facts in the state file (what ``report`` counts), breaches and messages from this run's
metrics. ``explain`` and ``report`` default to the instant the daemon's clock stopped at when
it was simulated, so the commands suggested here show what the run did.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import Counter

from sladaemon.calendar import to_us
from sladaemon.daemon.app import App
from sladaemon.model import MetricState, TicketKey
from sladaemon.report.ledger import KpiLedger
from sladaemon.sla.engine import TicketReplay
from sladaemon.store.sqlite import StateStore


@dataclass(frozen=True)
class RunSummary:
    config: Path
    state: Path
    stopped_at: datetime  # where a simulated clock stopped, or the real time
    simulated: bool
    tickets: int  # tickets with KPI facts in the state file
    open_tickets: int  # not solved or closed when the clock stopped
    breaches: int  # this run
    messages_sent: int  # this run: notifications a receiver accepted
    example: TicketKey | None  # a ticket worth explaining


def summarize(app: App, config: Path) -> RunSummary:
    """The summary of a stopped ``app`` started from ``config``."""
    store = StateStore(app.config.daemon.state)
    try:
        simulated_at = store.simulated_time()
    finally:
        store.close()
    now = simulated_at or datetime.now(UTC)  # what report and explain take
    ledger = KpiLedger(app.config.daemon.state)
    try:
        tickets = len(ledger)
        backlog = ledger.report(now - timedelta(seconds=1), now).backlog  # as report counts it
    finally:
        ledger.close()
    return RunSummary(
        config=config,
        state=app.config.daemon.state,
        stopped_at=now,
        simulated=simulated_at is not None,
        tickets=tickets,
        open_tickets=backlog,
        breaches=_total(app.metrics.breaches),
        messages_sent=_total(app.metrics.escalations_sent),
        example=example_ticket(app.tickets.replays, now),
    )


def example_ticket(replays: Mapping[TicketKey, TicketReplay], now: datetime) -> TicketKey | None:
    """Of the tickets the daemon follows, one that ``explain`` shows breached at ``now`` (the
    one breached last), or else the one breached last, or else the oldest."""
    ranked: list[tuple[tuple[bool, int], TicketKey]] = []
    for key, replay in replays.items():
        if not replay.events:
            continue
        breaches = [
            c.breached_at
            for clock in replay.clocks
            for c in clock.cycles
            if c.breached_at is not None
        ]
        rank = (True, max(breaches)) if breaches else (False, -to_us(replay.events[0].at))
        ranked.append((rank, key))
    ranked.sort(reverse=True)
    for (breached, _), key in ranked:
        if not breached:
            break
        states = replays[key].evaluate(now).metrics.values()
        if any(st.state is MetricState.BREACHED for st in states):
            return key
    return ranked[0][1] if ranked else None


def format_summary(s: RunSummary) -> str:
    config = shlex.quote(str(s.config))
    clock = " (simulated clock)" if s.simulated else ""
    lines = [
        "",
        f"Stopped at {s.stopped_at:%a %Y-%m-%d %H:%M} UTC{clock}.",
        f"  tickets seen   {s.tickets} ({s.open_tickets} still open)",
        f"  SLA breaches   {s.breaches}",
        f"  messages sent  {s.messages_sent}",
        f"  state          {s.state}",
        "Try next:",
    ]
    if s.example is not None:
        source, ticket = s.example
        lines.append(
            f"  sladaemon explain --config {config} --source {shlex.quote(source)} "
            f"{shlex.quote(ticket)}"
        )
    lines += [
        f"  sladaemon report --config {config}",
        f"  sladaemon report --config {config} --format html --out report.html",
    ]
    return "\n".join(lines)


def _total(counter: Counter) -> int:
    """The sum of a counter over all its labels."""
    return int(
        sum(
            sample.value
            for metric in counter.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
    )
