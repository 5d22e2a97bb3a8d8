"""Tickets already past a ladder level when monitoring of their source began.

The first sync of a source brings tickets whose levels were reached long before; those older
than ``daemon.catch_up`` are not sent one by one (see route.py). They are collected here
instead, and once the first sync is done each receiver those levels would have gone to gets
one summary: how many tickets, how many per metric, the most overdue few with their links.
A cycle met before monitoring began is not counted. The summary's key,
``overdue_at_start/<source>/<when monitoring began>``, is stable: a restart or a re-poll never
sends it twice.

Monitoring of a source begins at its first start with no stored cursor (not when the state
file was lost and created afresh: that is told to the operator). Pure: the Router hands in
SLA events and takes out the summary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sladaemon.escalate.book import Fired
from sladaemon.model import Metric, NotificationKind, SlaEvent, SlaEventKind
from sladaemon.notify.message import iso

EXAMPLES = 5  # tickets named in a summary, the most overdue first
_LADDER = frozenset({SlaEventKind.WARNING, SlaEventKind.BREACH, SlaEventKind.ESCALATION})
_MET = frozenset({SlaEventKind.MET, SlaEventKind.MET_LATE})

# ticket id -> metric -> the furthest level it had reached
Reached = dict[str, dict[Metric, SlaEvent]]


@dataclass
class _Watch:
    since: datetime | None  # None: nothing to sum up (monitored before, or the state was lost)
    summarized: bool
    reached: Reached = field(default_factory=dict)
    # (ticket, metric) -> the receivers of every level its cycle had reached
    told: dict[tuple[str, Metric], set[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class OverdueSummary:
    source: str
    since: datetime
    reached: Reached  # every ticket past a level
    receivers: dict[str, Reached]  # the tickets each receiver would have been told of

    @property
    def key(self) -> str:
        return f"overdue_at_start/{self.source}/{iso(self.since)}"

    def per_metric(self, reached: Reached | None = None) -> dict[str, int]:
        """Tickets past a level, per metric."""
        counts = Counter(m.value for metrics in (reached or self.reached).values() for m in metrics)
        return dict(sorted(counts.items()))

    def examples(self, reached: Reached | None = None) -> list[str]:
        """The most overdue tickets first (earliest deadline or level instant)."""
        tickets = reached or self.reached
        return sorted(tickets, key=lambda t: (_earliest(tickets[t]), t))[:EXAMPLES]

    def payload(
        self, receiver: str, at: datetime, link: Callable[[str], str | None]
    ) -> dict[str, object]:
        """The message to ``receiver``: title and a body listing its tickets."""
        reached = self.receivers[receiver]
        count = len(reached)
        title = (
            f"{count:,} ticket{'s' if count != 1 else ''} of {self.source} "
            f"{'were' if count != 1 else 'was'} already past a ladder level when monitoring "
            "began"
        )
        lines = [
            f"{title} ({iso(self.since)}). Levels reached before are not sent one by one; "
            "the levels reached from now on are.",
            "per metric: " + ", ".join(f"{m} {n:,}" for m, n in self.per_metric(reached).items()),
            "most overdue:",
        ]
        for ticket in self.examples(reached):
            where = f" {url}" if (url := link(ticket)) else ""
            levels = ", ".join(
                f"{m.value} {e.level or e.kind.value}" for m, e in sorted(reached[ticket].items())
            )
            lines.append(f"  ticket {ticket}{where}: {levels}")
        if count > EXAMPLES:
            lines.append(f"  and {count - EXAMPLES:,} more")
        lines += [
            f"each ticket: sladaemon explain --source {self.source} <ticket>; "
            f"the SLA state of all: /metrics (sladaemon_sla_clocks) and sladaemon report",
            f"at: {iso(at)}",
            f"id: {self.key}",
        ]
        return {
            "id": self.key,
            "kind": NotificationKind.OVERDUE_AT_START.value,
            "title": title,
            "body": "\n".join(lines),
            "at": iso(at),
            "source": self.source,
        }


class OverdueAtStart:
    """Per source: when monitoring began, and what its tickets had reached by then."""

    def __init__(self) -> None:
        self._watches: dict[str, _Watch] = {}

    def watch(self, source: str, since: datetime | None, summarized: bool) -> None:
        self._watches[source] = _Watch(since, summarized)

    def forget(self, source: str) -> None:
        self._watches.pop(source, None)

    def began(self, source: str) -> datetime | None:
        """When monitoring of ``source`` began, if that is known."""
        watch = self._watches.get(source)
        return watch.since if watch is not None else None

    def pending(self, source: str) -> bool:
        """Monitoring of ``source`` began and its summary is still to be made."""
        watch = self._watches.get(source)
        return watch is not None and watch.since is not None and not watch.summarized

    def take(self, fired: Fired, horizon: datetime) -> bool:
        """Whether ``fired`` happened before monitoring of its source began, while the summary
        is still to be made. Levels older than ``horizon`` (too old to send) are collected; a
        cycle met before monitoring began is struck out."""
        watch = self._watches.get(fired.source)
        e = fired.event
        if watch is None or watch.since is None or watch.summarized or e.at >= watch.since:
            return False
        if e.kind in _MET:
            metrics = watch.reached.get(e.ticket_id, {})
            if (done := metrics.get(e.metric)) is not None and done.cycle == e.cycle:
                del metrics[e.metric]
                del watch.told[(e.ticket_id, e.metric)]
                if not metrics:
                    del watch.reached[e.ticket_id]
        elif e.kind in _LADDER and e.at < horizon:
            metrics = watch.reached.setdefault(e.ticket_id, {})
            if (earlier := metrics.get(e.metric)) is None or earlier.cycle != e.cycle:
                watch.told[(e.ticket_id, e.metric)] = set()
            metrics[e.metric] = e
            watch.told[(e.ticket_id, e.metric)].update(e.details.get("notify", ()))
        return True

    def summarize(self, source: str) -> OverdueSummary | None:
        """The summary of ``source`` (None when there is none to make); from now on its
        events go their usual way."""
        watch = self._watches.get(source)
        if watch is None or watch.since is None or watch.summarized:
            return None
        watch.summarized = True
        reached, told = watch.reached, watch.told
        watch.reached, watch.told = {}, {}
        receivers: dict[str, Reached] = {}
        for ticket, metrics in reached.items():
            for metric, event in metrics.items():
                for receiver in sorted(told[(ticket, metric)]):
                    receivers.setdefault(receiver, {}).setdefault(ticket, {})[metric] = event
        return OverdueSummary(source, watch.since, reached, receivers)


def _earliest(metrics: dict[Metric, SlaEvent]) -> datetime:
    return min(e.deadline or e.at for e in metrics.values())
