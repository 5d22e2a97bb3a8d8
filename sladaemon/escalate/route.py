"""The Router: what happened → who is told, posted to the outbox.

Inputs are fired SLA events (ladder levels, met-late metrics, predicted breaches), queue
alerts, operator alerts and scheduled reports; each becomes one notification per receiver,
posted with its key (``outbox.sla_key`` for SLA events). The rules, in order:

* every SLA event is counted; those that notify are logged as ``sla_<kind>``;
* an SLA event older than ``daemon.catch_up`` is not sent (after an outage, a step of the
  system clock, or on a first start against an old backlog): it is counted, logged and told to
  the operator — unless it was reached before monitoring of its source began: those go into one
  summary per receiver once the source's first sync is done (``overdue_at_start``, see
  escalate/overdue.py);
* ladder levels and predictions go to the targets of their level (``notify`` of the event),
  resolved when the level is reached (escalate/targets.py), and start the level's escalation
  chain (``chain``, escalate/chain_runner.py); a met metric ends its chains;
* a metric met after its breach goes to the receivers with ``send_resolved`` that were told of
  that cycle's breach or escalation;
* queue alerts go to ``predict.queue_alerts``, operator alerts to ``daemon.operator``, reports
  to their ``receiver`` list, in HTML for URLs that render it (``format: auto``).

A Router belongs to one config: a reload builds a new one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sladaemon.calendar import from_us, span_us, to_us
from sladaemon.config import Config
from sladaemon.config.models import ReportConfig
from sladaemon.escalate.book import Fired
from sladaemon.escalate.chain_runner import ChainRunner
from sladaemon.escalate.chain_store import AuditEntry
from sladaemon.escalate.group_runner import GroupRunner
from sladaemon.escalate.labels import sla_labels
from sladaemon.escalate.outbox import Outbox, cycle_prefix, sla_key
from sladaemon.escalate.overdue import OverdueAtStart
from sladaemon.escalate.rate_caps import RateCaps
from sladaemon.escalate.routing import RouteTree
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import NotificationKind, SlaEventKind
from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.notify.message import iso, notification_kind, operator_payload, sla_payload
from sladaemon.predict.results import QueueAlert
from sladaemon.report.kpi import KpiReport
from sladaemon.report.render import as_html, as_table

ALERTING = frozenset(
    {
        SlaEventKind.WARNING,
        SlaEventKind.BREACH,
        SlaEventKind.ESCALATION,
        SlaEventKind.PREDICTED_BREACH,
    }
)
SKIP_ALERT_EVERY = 60.0  # seconds between operator messages about skipped SLA events
_MET = frozenset({SlaEventKind.MET, SlaEventKind.MET_LATE})
# What a receiver with send_resolved must have been told before it hears of the late met.
_TOLD_OF_BREACH = (NotificationKind.BREACH.value, NotificationKind.ESCALATION.value)


@dataclass(frozen=True)
class CappedRoute:
    """The digest of what a receiver's rate cap held: sent when its window has room."""

    receiver: str
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta = timedelta(days=3650)  # held messages are sent once
    mute_calendars: tuple[str, ...] = ()
    active_calendars: tuple[str, ...] = ()


@dataclass(eq=False)
class Router:
    config: Config
    outbox: Outbox
    notifier: AppriseNotifier
    metrics: DaemonMetrics
    overdue: OverdueAtStart = field(default_factory=OverdueAtStart)  # outlives reloads
    chains: ChainRunner | None = None  # escalation chains and target resolution
    groups: GroupRunner | None = None  # digests of what the routing tree (``route:``) routes
    caps: RateCaps = field(default_factory=RateCaps)  # per receiver; outlives reloads

    def __post_init__(self) -> None:
        self.log = get_logger("sladaemon.route")
        route = self.config.settings.route
        self.tree = RouteTree.from_config(route) if route is not None else None
        self._skipped_since_alert = 0
        self._skip_alerted_at = -SKIP_ALERT_EVERY

    def sla_events(self, fired: Iterable[Fired], now: datetime) -> None:
        horizon = now - self.config.daemon.catch_up
        skipped: list[Fired] = []
        with self.outbox.batch():
            for f in fired:
                self._count(f)
                if f.event.kind in _MET:  # however old
                    self._met(f)
                at_start = self.overdue.take(f, horizon)
                if f.event.kind in ALERTING or f.event.kind is SlaEventKind.MET_LATE:
                    if f.event.at < horizon:
                        self.metrics.sla_events_skipped.labels(f.source).inc()
                        if not at_start:
                            skipped.append(f)
                        continue
                    self._log(f)
                e = f.event
                if self.tree is not None and e.kind in ALERTING:
                    self._route(f)
                    continue
                receivers = self._receivers(f)
                if receivers and e.kind in ALERTING and self._silenced(f, receivers):
                    receivers = {}
                chain = self.chains is not None and e.kind in ALERTING and e.details.get("chain")
                if receivers or chain:
                    key = sla_key(f.source, e)
                    payload = sla_payload(key, f.source, e, self._link(f.source, e.ticket_id))
                    for due, names in receivers.items():
                        names = self._within_caps(f, key, payload, due, names)
                        self.outbox.post(key, notification_kind(e), payload, due, names)
                    if chain and self.chains is not None:
                        self.chains.start(f.source, e, key, payload)
            if skipped:
                self._skipped(skipped, now)

    def _met(self, f: Fired) -> None:
        """A metric's cycle was met: its chains end, its items in groups stop firing."""
        e = f.event
        if self.chains is not None:
            self.chains.met(f.source, e.ticket_id, e.metric, e.cycle, e.at)
        if self.groups is not None:
            self.groups.resolve_items(cycle_prefix(f.source, e.ticket_id, e.metric, e.cycle))

    def _within_caps(
        self, f: Fired, key: str, payload: Mapping[str, Any], due: datetime, names: list[str]
    ) -> list[str]:
        """The receivers whose rate cap has room; the others get the message in their
        ``rate_limited`` digest, sent when their window has room again."""
        if self.groups is None:
            return names
        kept = []
        now_us = to_us(due)
        for name in names:
            cfg = self.config.receivers.get(name)
            cap = cfg.rate_limit if cfg is not None else None
            per_us = span_us(cap.per) if cap else 0
            if cap is None or self.caps.allow(name, cap.count, per_us, now_us):
                kept.append(name)
                continue
            wait = timedelta(microseconds=max(0, self.caps.free_at(name, per_us, now_us) - now_us))
            route = CappedRoute(name, wait, cap.per)
            labels = {"receiver": name, "rate_limited": "true"}
            self.groups.take(route, "rate_limited", labels, key, payload, self._labels(f), due)
            self.metrics.rate_limited.labels(name).inc()
        return kept

    def _labels(self, f: Fired) -> dict[str, str]:
        e = f.event
        replay = self.chains.replays.get((f.source, e.ticket_id)) if self.chains else None
        fields = replay.fields if replay is not None else {}
        return sla_labels(f.source, e, notification_kind(e), fields)

    def _silenced(self, f: Fired, receivers: Mapping[datetime, list[str]]) -> bool:
        """Without a routing tree, a level's message a silence matches is not sent (counted
        and logged); there is no group to hold it for later."""
        book = self.groups.silences if self.groups is not None else None
        if book is None:
            return False
        silence = book.silencing(self._labels(f), f.event.at)
        if silence is None:
            return False
        for names in receivers.values():
            for name in names:
                self.metrics.notifications_silenced.labels(name).inc()
        self.log.info("sla_event_silenced", ticket=f.event.ticket_id, silence=silence.id)
        if self.chains is not None:  # the audit trail (``explain``) says which silence
            why = silence.describe()
            told = ", ".join(n for names in receivers.values() for n in names)
            key, at = sla_key(f.source, f.event), to_us(f.event.at)
            entry = AuditEntry(key, at, "silenced", "", told, why)
            self.chains.store.note(f.source, f.event.ticket_id, entry)
        return True

    def _route(self, f: Fired) -> None:
        """With a routing tree: the event's labels pick its routes; each takes it into a group
        (sent as digests, escalate/grouping.py). A level's chain starts as without a tree."""
        assert self.tree is not None
        e = f.event
        key = sla_key(f.source, e)
        payload = sla_payload(key, f.source, e, self._link(f.source, e.ticket_id))
        labels = self._labels(f)
        if self.groups is not None:
            for match in self.tree.match(labels):
                group_labels = match.group_labels(labels)
                group_key = match.group_key(labels)
                self.groups.take(match, group_key, group_labels, key, payload, labels, e.at)
        if self.chains is not None and e.details.get("chain"):
            self.chains.start(f.source, e, key, payload)

    def _skipped(self, skipped: list[Fired], now: datetime) -> None:
        """SLA events too old to send are never dropped silently: logged each time, and told
        to the operator (at most once a minute, with the count since the last message)."""
        first = min(skipped, key=lambda f: f.event.at)
        self.log.warning(
            "sla_events_skipped",
            count=len(skipped),
            oldest=first.event.at.isoformat(),
            ticket=first.event.ticket_id,
            catch_up_s=self.config.daemon.catch_up.total_seconds(),
        )
        self._skipped_since_alert += len(skipped)
        if time.monotonic() - self._skip_alerted_at < SKIP_ALERT_EVERY:
            return
        self._skip_alerted_at = time.monotonic()
        count, self._skipped_since_alert = self._skipped_since_alert, 0
        self.operator(
            "sla_events_skipped",
            first.source,
            f"{count} SLA events older than daemon.catch_up were not sent (the oldest: ticket "
            f"{first.event.ticket_id} {first.event.metric.value} at {iso(first.event.at)}): "
            "downtime, a step of the system clock or a first start on an old backlog",
            now.timestamp(),
        )

    def overdue_at_start(self, source: str, now: datetime) -> None:
        """Once the first sync of ``source`` is done: one summary per receiver of the tickets
        that were already past a ladder level when its monitoring began; logged and counted."""
        summary = self.overdue.summarize(source)
        if summary is None or not summary.reached:
            return
        receivers = sorted(summary.receivers)
        self.metrics.overdue_at_start.labels(source).inc(len(summary.reached))
        self.log.warning(
            "overdue_at_start",
            source=source,
            tickets=len(summary.reached),
            per_metric=summary.per_metric(),
            most_overdue=summary.examples(),
            receivers=receivers,
            since=iso(summary.since),
        )

        def payload_for(receiver: str, target: int) -> Mapping[str, Any]:
            return summary.payload(receiver, now, lambda ticket: self._link(source, ticket))

        self.outbox.post(
            summary.key, NotificationKind.OVERDUE_AT_START, payload_for, now, receivers
        )

    def queue_alerts(self, alerts: Iterable[QueueAlert]) -> None:
        receivers = self.config.predict.queue_alerts
        with self.outbox.batch():
            for alert in alerts:
                self.metrics.queue_alerts.labels(alert.source, alert.queue).inc()
                self.log.info(
                    "queue_alert",
                    source=alert.source,
                    queue=alert.queue,
                    will_miss=alert.will_miss,
                    summary=alert.summary,
                )
                at = from_us(alert.at_us)
                payload = {
                    "id": alert.key,
                    "kind": NotificationKind.QUEUE.value,
                    "summary": alert.summary,
                    "at": iso(at),
                    "source": alert.source,
                    "queue": alert.queue,
                    "will_miss": alert.will_miss,
                }
                self.outbox.post(alert.key, NotificationKind.QUEUE, payload, at, receivers)

    def operator(self, kind: str, subject: str, summary: str, since: float) -> None:
        """Tell the operator receiver (if any) about the daemon itself; one message per
        ``kind``, ``subject`` and ``since``."""
        receiver = self.config.daemon.operator
        if receiver is None:
            return
        stamp = datetime.fromtimestamp(since, UTC)
        key = f"operator/{kind}/{subject}/{stamp.isoformat()}"
        payload = operator_payload(key, summary, stamp, subject=subject)
        self.outbox.post(key, NotificationKind.OPERATOR, payload, stamp, [receiver])

    def report(self, cfg: ReportConfig, due: datetime, report: KpiReport) -> None:
        key = f"report/{cfg.key}/{iso(due)}"
        title = f"Support KPIs {cfg.key}: {report.start:%Y-%m-%d} to {report.end:%Y-%m-%d}"
        payloads: dict[str, Mapping[str, Any]] = {}

        def payload_for(receiver: str, target: int) -> Mapping[str, Any]:
            fmt = cfg.format
            if fmt == "auto":
                fmt = "html" if self.notifier.prefers_html(receiver, target) else "text"
            if fmt not in payloads:
                body = as_html(report) if fmt == "html" else as_table(report)
                payloads[fmt] = {
                    "id": key,
                    "kind": NotificationKind.REPORT.value,
                    "title": title,
                    "body": body,
                    "format": fmt,
                    "at": iso(due),
                }
            return payloads[fmt]

        self.outbox.post(key, NotificationKind.REPORT, payload_for, due, cfg.receiver)

    def _count(self, f: Fired) -> None:
        e = f.event
        self.metrics.sla_events.labels(f.source, e.policy, e.metric.value, e.kind.value).inc()
        if e.kind is SlaEventKind.BREACH:
            self.metrics.breaches.labels(f.source, e.policy, e.metric.value).inc()
        elif e.kind is SlaEventKind.PREDICTED_BREACH:
            self.metrics.predicted_breaches.labels(f.source, e.policy, e.metric.value).inc()

    def _log(self, f: Fired) -> None:
        e = f.event
        self.log.info(
            f"sla_{e.kind.value}",
            source=f.source,
            ticket=e.ticket_id,
            policy=e.policy,
            metric=e.metric.value,
            ladder_level=e.level,  # `level` is the log line's own (info, warning, ...)
            cycle=e.cycle,
            at=e.at.isoformat(),
            deadline=e.deadline.isoformat() if e.deadline else None,
        )

    def _receivers(self, f: Fired) -> dict[datetime, list[str]]:
        """The receivers of an SLA event by when they are sent to: its level's targets,
        resolved now (a person in quiet hours later)."""
        e = f.event
        if e.kind in ALERTING:
            targets = tuple(e.details.get("notify", ()))
            if self.chains is None or not targets:
                return {e.at: list(targets)} if targets else {}
            by_due: dict[datetime, list[str]] = {}
            for r in self.chains.resolve(f.source, e.ticket_id, targets, e.at).recipients:
                due = max(e.at, r.not_before) if r.not_before else e.at
                by_due.setdefault(due, []).append(r.receiver)
            return by_due
        if e.kind is not SlaEventKind.MET_LATE:
            return {}
        told = self.outbox.receivers_told(f.source, e.ticket_id, e.metric, e.cycle, _TOLD_OF_BREACH)
        receivers = self.config.receivers
        resolved = [r for r in told if r in receivers and receivers[r].send_resolved]
        return {e.at: resolved} if resolved else {}

    def _link(self, source: str, ticket_id: str) -> str | None:
        cfg = self.config.sources.get(source)
        template = cfg.ticket_url if cfg else None
        return template.replace("{ticket_id}", quote(ticket_id, safe="")) if template else None
