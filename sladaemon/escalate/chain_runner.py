"""The ChainRunner: escalation chains at their instants, and the desk that takes acks.

A ladder level with ``chain: NAME`` starts a chain (``start``, from the Router). Each page is
sent at its exact instant: its targets are resolved then (escalate/targets.py), its message is
posted to the outbox under ``<chain key>/page<n>`` with a signed ack link per person, and only
then does the chain's page counter move (escalate/chain_store.py): a crash in between re-posts
the same key, a no-op, so every page goes out once. Acks, unacks and escalations are committed
before they are answered; every page, ack and end is in the ticket's audit trail (``explain``).
A met metric ends its chains, and everyone they paged hears that it was met.

The runner outlives reloads (``use`` gives it the new config) and resumes every live chain at
start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sladaemon.calendar import from_us, span_us, to_us
from sladaemon.clock import Clock, run_at_instants
from sladaemon.config import Config
from sladaemon.escalate.acks import AckOutcome
from sladaemon.escalate.chain_store import AuditEntry, ChainStore
from sladaemon.escalate.chains import ENDED, Chain, Page, pages, still_needs_owner
from sladaemon.escalate.links import AckLinks
from sladaemon.escalate.outbox import Outbox
from sladaemon.escalate.targets import PERSON, Resolution, RosterView, resolve
from sladaemon.escalate.timers import TimerQueue
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import Metric, NotificationKind, SlaEvent, TicketKey
from sladaemon.notify.message import iso
from sladaemon.sla.engine import TicketReplay

# kind, subject, summary, since (Unix time): see Router.operator
OperatorAlert = Callable[[str, str, str, float], None]
_RESOLVED_FOR = (
    NotificationKind.WARNING.value,
    NotificationKind.BREACH.value,
    NotificationKind.ESCALATION.value,
    NotificationKind.PREDICTED_BREACH.value,
)


def chain_pages(config: Config, name: str) -> tuple[tuple[Page, ...], int]:
    """The pages of the config's chain ``name`` and its ack timeout in µs."""
    cfg = config.settings.chains[name]
    steps = [
        (tuple(s.notify) if s.notify else None, span_us(s.wait) if s.wait else 0) for s in cfg.steps
    ]
    return pages(steps, cfg.loops), span_us(cfg.ack_timeout)


class ChainRunner:
    def __init__(
        self,
        store: ChainStore,
        outbox: Outbox,
        config: Config,
        clock: Clock,
        metrics: DaemonMetrics,
        replays: Mapping[TicketKey, TicketReplay],
        operator_alert: OperatorAlert,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.clock = clock
        self.metrics = metrics
        self.replays = replays
        self.operator_alert = operator_alert
        self.log = get_logger("sladaemon.chains")
        self.live: dict[str, tuple[Chain, dict[str, Any]]] = {}
        self.timers: TimerQueue[str] = TimerQueue()
        self.wake = asyncio.Event()
        self.on_acked: list[Callable[[str], None]] = []  # told the acked metric's cycle prefix
        self.use(config)

    def use(self, config: Config) -> None:
        """Resolve targets and sign links with a reloaded config's people and settings."""
        self.config = config
        ack = config.settings.ack
        self.links = AckLinks(ack.public_url, ack.secret.get_secret_value()) if ack else None
        self.roster: RosterView | None = config.roster
        self.wake.set()

    def resume(self) -> None:
        """At start: every chain still active or acked, scheduled again."""
        for chain, payload in self.store.live():
            self._keep(chain, payload)
        if self.live:
            self.log.info("chains_resumed", chains=len(self.live))

    # ------------------------------------------------------------------ starting and paging

    def start(self, source: str, event: SlaEvent, key: str, payload: Mapping[str, Any]) -> None:
        """A ladder level with ``chain:`` was reached: start its chain (once per key)."""
        name = event.details.get("chain")
        if not name or name not in self.config.settings.chains:
            return
        chain_pages_, ack_timeout = chain_pages(self.config, name)
        chain = Chain(
            key=key,
            source=source,
            ticket_id=event.ticket_id,
            metric=event.metric,
            cycle=event.cycle,
            level=event.level or event.kind.value,
            name=name,
            pages=chain_pages_,
            ack_timeout_us=ack_timeout,
            started_us=to_us(event.at),
        )
        started = AuditEntry(key, chain.started_us, "started", "", "", f"chain {name}")
        if self.store.insert(chain, dict(payload), started):
            self.log.info("chain_started", chain=key, name=name, pages=len(chain.pages))
            self._keep(chain, dict(payload))
            self.wake.set()

    async def run(self) -> None:
        """Send pages and lapse acks at their instants, until cancelled."""
        await run_at_instants(
            self.clock,
            self.wake,
            self.timers.next_at,
            lambda: self.fire_due(to_us(self.clock.now())),
        )

    def fire_due(self, now_us: int) -> None:
        for key, _ in self.timers.pop_due(now_us):
            entry = self.live.get(key)
            if entry is None:
                continue
            chain, payload = entry
            if chain.state == "active":
                self._page(chain, payload)
            elif chain.state == "acked":
                self._lapse(chain, now_us)

    def _page(self, chain: Chain, payload: dict[str, Any]) -> None:
        page = chain.pages[chain.next_page]
        due_us = chain.due_us()
        at = from_us(due_us if due_us is not None else to_us(self.clock.now()))
        found = self.resolve(chain.source, chain.ticket_id, page.notify, at)
        key = f"{chain.key}/page{page.number + 1}"
        if not found.recipients:
            reasons = "; ".join(f"{t}: {why}" for t, why in found.unresolved)
            self.operator_alert(
                "chain_paged_nobody",
                key,
                f"page {page.number + 1} of chain {chain.name} for ticket {chain.ticket_id} "
                f"{chain.metric.value} paged nobody ({reasons})",
                at.timestamp(),
            )
        kind = NotificationKind(payload.get("kind", NotificationKind.BREACH.value))
        expires = int(at.timestamp() + self._link_ttl())
        by_due: dict[datetime, list[str]] = {}
        for r in found.recipients:
            by_due.setdefault(max(at, r.not_before) if r.not_before else at, []).append(r.receiver)

        def payload_for(receiver: str, target: int) -> Mapping[str, Any]:
            person = receiver.removeprefix(PERSON)  # who acks by this link: person or receiver
            extra: dict[str, Any] = {"id": key, "chain": chain.key, "page": page.number + 1}
            if self.links is not None:
                extra["ack_url"] = self.links.url(chain.key, person, expires)
            return payload | extra

        with self.outbox.batch():
            for due, receivers in by_due.items():
                self.outbox.post(key, kind, payload_for, due, receivers)
        if not self.outbox.flush():
            self.timers.schedule(chain.key, to_us(self.clock.now()) + 1_000_000)
            return  # the state file refuses writes: the page is tried again in a second
        audit = [
            AuditEntry(chain.key, to_us(at), "paged", r.person or r.receiver, r.receiver, r.target)
            for r in found.recipients
        ]
        paged = chain.paged()
        self.store.save(paged, audit)
        self.metrics.chain_pages.labels(chain.name).inc()
        self.log.info(
            "chain_paged",
            chain=chain.key,
            page=page.number + 1,
            of=len(chain.pages),
            to=[r.person or r.receiver for r in found.recipients],
        )
        self._keep(paged, payload)

    def resolve(
        self, source: str, ticket_id: str, targets: Sequence[str], at: datetime
    ) -> Resolution:
        """Who ``targets`` stand for at ``at`` for this ticket; what stands for nobody is
        logged and counted."""
        replay = self.replays.get((source, ticket_id))
        found = resolve(
            targets,
            replay.fields if replay is not None else {},
            at,
            self.roster,
            self.config.settings.schedules,
            self.config.settings.people,
        )
        unreachable = [r for r in found.recipients if not self.outbox.notifier.targets(r.receiver)]
        for r in unreachable:
            found.recipients.remove(r)
            found.unresolved.append(
                (
                    r.target,
                    f"{r.person or r.receiver} has no way to be reached: urls, slack "
                    "(with daemon.slack) or email (with daemon.email_url)",
                )
            )
        for target, why in found.unresolved:
            self.metrics.targets_unresolved.labels(target).inc()
            self.log.warning("target_unresolved", ticket=ticket_id, target=target, reason=why)
        return found

    def _lapse(self, chain: Chain, now_us: int) -> None:
        """An ack's time is up: the chain goes on if the ticket still needs an owner."""
        replay = self.replays.get((chain.source, chain.ticket_id))
        acked_us = chain.acked_us if chain.acked_us is not None else now_us
        if still_needs_owner(replay, chain.metric, chain.cycle, acked_us):
            after = chain.unacked(now_us)
            why = f"no reply since {chain.acked_by} acknowledged"
            entry = AuditEntry(chain.key, now_us, "ack_lapsed", chain.acked_by, "", why)
            self.metrics.chain_acks.labels("lapsed", "timeout").inc()
            self.log.warning("chain_ack_lapsed", chain=chain.key, acked_by=chain.acked_by)
        else:
            after = replace(chain, state="done")
            entry = AuditEntry(chain.key, now_us, "done", "", "", "answered or met")
        self.store.save(after, [entry])
        self._keep(after, self.live[chain.key][1])

    def _keep(self, chain: Chain, payload: dict[str, Any]) -> None:
        if chain.state in ENDED:
            self.live.pop(chain.key, None)
            self.timers.schedule(chain.key, None)
            return
        self.live[chain.key] = (chain, payload)
        self.timers.schedule(chain.key, chain.due_us())

    def _link_ttl(self) -> float:
        ack = self.config.settings.ack
        return ack.link_ttl.total_seconds() if ack else 0.0

    # ------------------------------------------------------------------ the metric is met

    def met(self, source: str, ticket_id: str, metric: Metric, cycle: int, at: datetime) -> None:
        """The metric's cycle was met: its chains end, and whoever they paged is told."""
        prefix = f"{source}/{ticket_id}/{metric.value}/{cycle}/"
        for key in [k for k in self.live if k.startswith(prefix)]:
            chain, payload = self.live[key]
            ended = chain.ended()
            self.store.save(ended, [AuditEntry(key, to_us(at), "met", "", "", "metric met")])
            self._keep(ended, payload)
            self.log.info("chain_ended", chain=key, reason="met")
            paged = self.outbox.receivers_told_key(key + "/page", _RESOLVED_FOR)
            if paged:
                resolved = payload | {
                    "id": f"{key}/resolved",
                    "kind": NotificationKind.RESOLVED.value,
                    "chain": key,
                    "at": iso(at),
                    "summary": f"ticket {ticket_id} {metric.value} was met: nobody needs to act",
                }
                self.outbox.post(f"{key}/resolved", NotificationKind.RESOLVED, resolved, at, paged)

    # ------------------------------------------------------------------ the desk (AckDesk)

    def _find(self, key: str) -> tuple[Chain, dict[str, Any]] | None:
        return self.live.get(key) or self.store.get(key)

    def _change(
        self,
        c: Chain,
        payload: dict[str, Any],
        change: Callable[[int], Chain],
        action: str,
        by: str,
        via: str,
        note: str = "",
    ) -> None:
        """Someone changed chain ``c`` (acked, unacked, escalated): saved with its audit
        entry before anyone is answered, scheduled anew, counted and logged."""
        now_us = to_us(self.clock.now())
        after = change(now_us)
        self.store.save(after, [AuditEntry(c.key, now_us, action, by, via, note)])
        self._keep(after, payload)
        self.metrics.chain_acks.labels(_COUNTED_AS[action], via).inc()
        noted = {"note": note or None} if action == "acked" else {}
        self.log.info(f"chain_{action}", chain=c.key, by=by, via=via, **noted)
        self.wake.set()

    async def acknowledge(self, chain: str, by: str, via: str, note: str = "") -> AckOutcome:
        found = self._find(chain)
        if found is None:
            return AckOutcome(False, f"no escalation chain {chain}")
        c, payload = found
        if c.state == "acked":
            at = iso(from_us(c.acked_us)) if c.acked_us is not None else "?"
            return AckOutcome(
                True, f"already acknowledged by {c.acked_by} via {c.acked_via} at {at}", (chain,)
            )
        if c.state == "met":
            return AckOutcome(False, f"ticket {c.ticket_id} {c.metric.value} was met already")
        self._change(c, payload, lambda now: c.acked(by, via, now), "acked", by, via, note)
        for told in self.on_acked:
            told(chain.rsplit("/", 1)[0] + "/")
        return AckOutcome(True, f"acknowledged by {by}", (chain,))

    async def unacknowledge(self, chain: str, by: str, via: str) -> AckOutcome:
        found = self._find(chain)
        if found is None:
            return AckOutcome(False, f"no escalation chain {chain}")
        c, payload = found
        if c.state != "acked":
            return AckOutcome(False, f"chain {chain} is not acknowledged ({c.state})")
        self._change(c, payload, c.unacked, "unacked", by, via)
        return AckOutcome(True, f"unacknowledged by {by}: the chain goes on", (chain,))

    async def escalate(self, chain: str, by: str, via: str) -> AckOutcome:
        found = self._find(chain)
        if found is None:
            return AckOutcome(False, f"no escalation chain {chain}")
        c, payload = found
        if c.state in ENDED or c.next_page >= len(c.pages):
            return AckOutcome(False, f"chain {chain} has no further step")
        self._change(c, payload, c.escalated, "escalated", by, via)
        return AckOutcome(True, f"escalated by {by}: the next step is sent now", (chain,))

    def chains_of(self, source: str | None, ticket_id: str, metric: Metric | None) -> list[Chain]:
        return [
            c
            for c in self.store.of_ticket(source, ticket_id)
            if metric is None or c.metric is metric
        ]

    async def acknowledge_ticket(
        self,
        source: str | None,
        ticket_id: str,
        metric: Metric | None,
        by: str,
        via: str,
        note: str = "",
    ) -> AckOutcome:
        """Every chain of the ticket (of one metric) that is not over, acknowledged."""
        chains = [c for c in self.chains_of(source, ticket_id, metric) if c.state != "met"]
        if not chains:
            return AckOutcome(False, f"ticket {ticket_id} has no escalation chain to acknowledge")
        return _together([await self.acknowledge(c.key, by, via, note) for c in chains])

    async def unacknowledge_ticket(
        self, source: str | None, ticket_id: str, metric: Metric | None, by: str, via: str
    ) -> AckOutcome:
        chains = [c for c in self.chains_of(source, ticket_id, metric) if c.state == "acked"]
        if not chains:
            return AckOutcome(False, f"ticket {ticket_id} has no acknowledged chain")
        return _together([await self.unacknowledge(c.key, by, via) for c in chains])


_COUNTED_AS = {"acked": "ack", "unacked": "unack", "escalated": "escalate"}  # chain_acks' action


def _together(outcomes: list[AckOutcome]) -> AckOutcome:
    """The outcome of acting on several chains of a ticket."""
    keys = tuple(k for o in outcomes for k in o.chains)
    return AckOutcome(any(o.ok for o in outcomes), "; ".join(o.message for o in outcomes), keys)
