"""The GroupRunner: notifications routed by the routing tree (``route:``) gather in groups and
go out as digests at the group's instants (escalate/grouping.py has the timing).

Groups live in the state file (``groups``: the group as JSON, written whenever it changes),
so a restart neither loses a group waiting for its ``group_wait`` nor repeats a message: each
message is posted under its own key before the group notes it as sent. A group's message is
held while its route is muted (``mute_time_intervals``: a calendar is open;
``active_time_intervals``: no calendar is open) and goes out when that ends. A met metric
stops its items firing, and so does an acknowledged chain of the same metric. At a flush,
items a silence matches or an inhibition rule holds (escalate/inhibition.py: against every
firing item of every group and the daemon's ``extra_sources``) are held, unsent, and go out
if that ends while they still fire.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Protocol

from sladaemon.calendar import BusinessCalendar, from_us, span_us, to_us
from sladaemon.clock import Clock, run_at_instants
from sladaemon.escalate.chain_store import AuditEntry, ChainStore
from sladaemon.escalate.grouping import Digest, Group, Item, digest_payload
from sladaemon.escalate.inhibition import Inhibition, Inhibitor
from sladaemon.escalate.outbox import Outbox
from sladaemon.escalate.silence_store import SilenceBook
from sladaemon.escalate.targets import Resolution
from sladaemon.escalate.timers import TimerQueue
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics
from sladaemon.model import NotificationKind
from sladaemon.notify.message import iso
from sladaemon.store.sqlite import StateStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
"""
# source, ticket, targets, at -> who
Resolve = Callable[[str, str, Sequence[str], datetime], Resolution]


class RouteSettings(Protocol):
    """What a group needs of the route that made it (escalate/routing.py's RouteMatch)."""

    @property
    def receiver(self) -> str: ...
    @property
    def group_wait(self) -> timedelta: ...
    @property
    def group_interval(self) -> timedelta: ...
    @property
    def repeat_interval(self) -> timedelta: ...
    @property
    def mute_calendars(self) -> Sequence[str]: ...
    @property
    def active_calendars(self) -> Sequence[str]: ...


class GroupRunner:
    def __init__(
        self,
        store: StateStore,
        outbox: Outbox,
        clock: Clock,
        metrics: DaemonMetrics,
        resolve: Resolve,
        silences: SilenceBook | None = None,
        audit: ChainStore | None = None,
        extra_sources: Callable[[], list[dict[str, str]]] = list,
    ) -> None:
        self._db: sqlite3.Connection = store.connection
        self._db.executescript(SCHEMA)
        self.outbox = outbox
        self.clock = clock
        self.metrics = metrics
        self.resolve = resolve
        self.silences = silences
        self.audit = audit  # the tickets' audit trail (shared with the escalation chains)
        self.inhibitor = Inhibitor()
        self.extra_sources = extra_sources  # inhibiting alerts besides the firing items
        self.log = get_logger("sladaemon.groups")
        self.groups: dict[str, Group] = {}
        self.mutes: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self.calendars: Mapping[str, BusinessCalendar] = {}
        self.timers: TimerQueue[str] = TimerQueue()
        self.wake = asyncio.Event()
        self.resume()

    def use(
        self, calendars: Mapping[str, BusinessCalendar], inhibitor: Inhibitor | None = None
    ) -> None:
        self.calendars = calendars
        self.inhibitor = inhibitor or Inhibitor()
        self.wake.set()

    def resume(self) -> None:
        for key, state in self._db.execute("SELECT key, state FROM groups"):
            group, mutes = _load(json.loads(state))
            self.groups[key], self.mutes[key] = group, mutes
            self.timers.schedule(key, group.next_us)

    # ------------------------------------------------------------------ taking items

    def take(
        self,
        route: RouteSettings,
        group_key: str,
        group_labels: Mapping[str, str],
        item_key: str,
        payload: Mapping[str, Any],
        labels: Mapping[str, str],
        at: datetime,
    ) -> None:
        """An item for the group ``group_key`` of ``route`` (one per receiver)."""
        key = f"group/{route.receiver}/{group_key}"
        group = self.groups.get(key)
        if group is None:
            group = Group(
                key,
                route.receiver,
                dict(group_labels),
                span_us(route.group_wait),
                span_us(route.group_interval),
                span_us(route.repeat_interval),
                to_us(at),
            )
            self.groups[key] = group
            self.mutes[key] = (tuple(route.mute_calendars), tuple(route.active_calendars))
        if group.add(Item(item_key, dict(payload), to_us(at), labels=dict(labels))):
            self.metrics.grouped.labels(route.receiver).inc()
            self._save(group)
            self.timers.schedule(key, group.next_us)
            self.wake.set()

    def resolve_items(self, prefix: str) -> None:
        """Items whose key starts with ``prefix`` (a metric's cycle) stop firing."""
        for group in self.groups.values():
            changed = [k for k in group.items if k.startswith(prefix) and group.resolve(k)]
            if changed:
                self._save(group)

    # ------------------------------------------------------------------ sending

    async def run(self) -> None:
        await run_at_instants(
            self.clock,
            self.wake,
            self.timers.next_at,
            lambda: self.fire_due(to_us(self.clock.now())),
        )

    def fire_due(self, now_us: int) -> None:
        due = self.timers.pop_due(now_us)
        if not due:
            return
        inhibition = self._inhibition()  # what fires now: once for every group due
        for key, _ in due:
            group = self.groups.get(key)
            if group is not None:
                self._flush(group, now_us, inhibition)

    def _flush(self, group: Group, now_us: int, inhibition: Inhibition) -> None:
        muted_until = self._held_until(group, now_us)
        if muted_until is not None:
            group.next_us = muted_until
            self._save(group)
            self.timers.schedule(group.key, muted_until)
            self.metrics.muted.labels(group.receiver).inc()
            return
        was = {k for k, i in group.items.items() if i.silenced}
        why: dict[str, tuple[str, str]] = {}  # item key -> (silenced | inhibited, by what)

        def held(item: Item) -> bool:  # an inhibited item is held as a silenced one is
            silence = (
                self.silences.silencing(item.labels, from_us(now_us)) if self.silences else None
            )
            rule = inhibition.inhibited(item.labels) if silence is None else None
            if silence is not None:
                why[item.key] = ("silenced", silence.describe())
            elif rule is not None:
                why[item.key] = ("inhibited", rule.name)
            return item.key in why

        digest = group.due(now_us, held)
        newly = [i for k, i in group.items.items() if i.silenced and k not in was]
        inhibited = {i.key: why[i.key][1] for i in newly if why[i.key][0] == "inhibited"}
        silenced = {i.key: why[i.key][1] for i in newly if why[i.key][0] == "silenced"}
        if inhibited:
            self.metrics.notifications_inhibited.labels(group.receiver).inc(len(inhibited))
            self.log.info("group_items_inhibited", group=group.key, items=inhibited)
            for key, rule in inhibited.items():
                self._note(key, now_us, "inhibited", group.receiver, f"rule {rule}")
        if silenced:
            self.metrics.notifications_silenced.labels(group.receiver).inc(len(silenced))
            self.log.info("group_items_silenced", group=group.key, items=list(silenced))
            for key, silence in silenced.items():
                self._note(key, now_us, "silenced", group.receiver, silence)
        if digest is not None:
            self._send(group, digest, now_us)
        if group.done:
            self._forget(group)
            return
        self._save(group)
        self.timers.schedule(group.key, group.next_us)

    def _send(self, group: Group, digest: Digest, now_us: int) -> None:
        at = from_us(now_us)
        items = digest.firing if digest.repeat else digest.new
        source, ticket = _ticket_of(items[0].key)
        found = self.resolve(source, ticket, [group.receiver], at)
        receivers = [r.receiver for r in found.recipients]
        payload = digest_payload(group, digest, iso(at))
        self.outbox.post(group.message_key(digest.number), NotificationKind.GROUP, payload, at,
                         receivers)  # fmt: skip
        if not self.outbox.flush():
            return  # the state file refuses writes: tried again at the group's next instant
        group.sent(digest, now_us)
        self.log.info(
            "group_sent",
            group=group.key,
            message=digest.number,
            items=len(items),
            repeat=digest.repeat,
            to=receivers,
        )

    def _inhibition(self) -> Inhibition:
        """The inhibitor against what fires now: every firing item of every group, and the
        daemon's own alerts (a stale source, a queue forecast)."""
        if not self.inhibitor.rules:
            return self.inhibitor.against(())
        items = [i.labels for g in self.groups.values() for i in g.items.values() if i.firing]
        return self.inhibitor.against([*items, *self.extra_sources()])

    def _note(self, item_key: str, now_us: int, action: str, receiver: str, why: str) -> None:
        """The audit trail (``explain``) says what held the item."""
        if self.audit is not None:
            source, ticket = _ticket_of(item_key)
            entry = AuditEntry(item_key, now_us, action, "", receiver, why)
            self.audit.note(source, ticket, entry)

    def _held_until(self, group: Group, now_us: int) -> int | None:
        """While the group's route is muted: when that ends (µs); else None."""
        mute, active = self.mutes.get(group.key, ((), ()))
        at = from_us(now_us)
        open_mutes = [c for n in mute if (c := self.calendars.get(n)) and c.is_open(at)]
        if open_mutes:
            return max(to_us(c.next_change(at)) for c in open_mutes)
        actives = [c for n in active if (c := self.calendars.get(n))]
        if actives and not any(c.is_open(at) for c in actives):
            return min(to_us(c.next_open(at)) for c in actives)
        return None

    def _save(self, group: Group) -> None:
        state = json.dumps(_dump(group, self.mutes.get(group.key, ((), ()))))
        with self._db:
            self._db.execute(
                "INSERT INTO groups (key, state) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET state = excluded.state",
                (group.key, state),
            )

    def _forget(self, group: Group) -> None:
        self.groups.pop(group.key, None)
        self.mutes.pop(group.key, None)
        self.timers.schedule(group.key, None)
        with self._db:
            self._db.execute("DELETE FROM groups WHERE key = ?", (group.key,))


def _ticket_of(item_key: str) -> tuple[str, str]:
    source, ticket, *_ = item_key.split("/")
    return source, ticket


def _dump(group: Group, mutes: tuple[tuple[str, ...], tuple[str, ...]]) -> dict[str, Any]:
    data = asdict(group)
    data["mutes"] = [list(mutes[0]), list(mutes[1])]
    return data


def _load(data: dict[str, Any]) -> tuple[Group, tuple[tuple[str, ...], tuple[str, ...]]]:
    mute, active = data.pop("mutes", [[], []])
    items = {k: Item(**v) for k, v in data.pop("items").items()}
    return Group(items=items, **data), (tuple(mute), tuple(active))
