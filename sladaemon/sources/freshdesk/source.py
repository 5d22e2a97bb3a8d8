"""FreshdeskSource: incremental polling of ``/api/v2/tickets`` with a persisted cursor.

Each poll reads the tickets updated since the checkpoint (the latest ``updated_at`` fully
processed) minus ``overlap``, oldest change first. After a page the next request starts again at
``updated_since`` = the page's last ``updated_at`` (Freshdesk compares with ``>=``): the
300-page restart rule applied at every page, so tickets that change while a long listing runs
never shift an unread ticket out of view. Only a run of tickets sharing one ``updated_at``
longer than a page follows the ``Link`` pages. A poll reads at most ``pages_per_poll`` pages and
says ``more`` when the listing goes on; the cursor holds where it stands.

The cursor also remembers the tickets the daemon holds (delivered and not closed) with the
``updated_at`` delivered, and recently closed ones: a ticket read again unchanged (overlap,
reconciliation) is skipped, and a ticket only the reconciliation can find gone is known.
Every ``reconcile_every`` the poll re-reads the changes since the previous reconciliation (lost
updates), lists ``filter=deleted`` and ``filter=spam`` (held tickets there are closed with status
``deleted``/``spam``), refreshes group and status names, and re-reads a few held tickets one by
one in rotation (one that answers 404 vanished: closed with status ``deleted``).

Nothing is committed until the poll succeeds: a poll that fails part way raises, and the next
one starts from the same cursor.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Self

from sladaemon.config.models import FreshdeskSourceConfig
from sladaemon.errors import RowIssue
from sladaemon.logs import get_logger
from sladaemon.model import StatusCategory
from sladaemon.sources.base import PollResult, SourceError
from sladaemon.sources.channels import ChannelMap
from sladaemon.sources.freshdesk.client import MAX_PAGE, MAX_PER_PAGE, FreshdeskClient, TicketPage
from sladaemon.sources.freshdesk.mapping import (
    CLOSED,
    DEFAULT_CHANNELS,
    StatusCategories,
    Vocabulary,
    closed_event,
    iso,
    status_changed_at,
    ticket_events,
)
from sladaemon.sources.freshdesk.payloads import (
    FreshdeskTicket,
    parse_agent,
    parse_groups,
    parse_status_names,
    parse_ticket,
    parse_tickets,
    parse_timestamp,
)
from sladaemon.sources.people import BoundedCache, person_identity

INITIAL_LOOKBACK = timedelta(days=30)  # Freshdesk's own window when updated_since is absent
PAGES_PER_POLL = 10
POLL_SECONDS = 60.0  # a slow (rate-limited) poll stops early with ``more``: progress is kept
VERIFY_PER_RECONCILE = 10
CURSOR_VERSION = 1


class PassKind(StrEnum):
    CHANGES = "changes"  # the normal listing
    DELETED = "deleted"  # filter=deleted
    SPAM = "spam"  # filter=spam
    VERIFY = "verify"  # held tickets read one by one


@dataclass
class Pass:
    """One listing in progress: ``updated_since`` and page of the next request."""

    kind: PassKind
    since: datetime | None = None
    page: int = 1
    initial: bool = False  # the first sync: tickets already solved or closed are not loaded

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind.value, "page": self.page}
        if self.since is not None:
            data["since"] = iso(self.since)
        if self.initial:
            data["initial"] = True
        return data

    @classmethod
    def from_json(cls, data: Any) -> Pass:
        since = parse_timestamp(data.get("since"))
        kind = PassKind(data["kind"])
        if since is None and kind is not PassKind.VERIFY:
            raise ValueError("a listing without updated_since")
        return cls(kind, since, max(1, int(data.get("page", 1))), bool(data.get("initial")))


@dataclass
class SyncState:
    """Everything the cursor holds. Ticket maps: id -> ``updated_at`` delivered (epoch ms)."""

    checkpoint: datetime | None = None
    reconciled_at: datetime | None = None  # daemon time of the last reconciliation
    reconciled_through: datetime | None = None  # the checkpoint it started from
    passes: list[Pass] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)
    closed: dict[str, int] = field(default_factory=dict)
    verify_after: int = 0

    def copy(self) -> SyncState:
        return replace(
            self,
            passes=[replace(p) for p in self.passes],
            held=dict(self.held),
            closed=dict(self.closed),
        )

    def to_cursor(self) -> dict[str, Any]:
        def stamp(moment: datetime | None) -> str | None:
            return iso(moment) if moment is not None else None

        return {
            "version": CURSOR_VERSION,
            "checkpoint": stamp(self.checkpoint),
            "reconciled_at": stamp(self.reconciled_at),
            "reconciled_through": stamp(self.reconciled_through),
            "passes": [p.to_json() for p in self.passes],
            "held": self.held,
            "closed": self.closed,
            "verify_after": self.verify_after,
        }

    @classmethod
    def from_cursor(cls, cursor: object) -> Self:
        """The state a cursor describes; a missing or unreadable cursor starts afresh."""
        if not isinstance(cursor, dict) or cursor.get("version") != CURSOR_VERSION:
            return cls()
        try:
            return cls(
                checkpoint=parse_timestamp(cursor.get("checkpoint")),
                reconciled_at=parse_timestamp(cursor.get("reconciled_at")),
                reconciled_through=parse_timestamp(cursor.get("reconciled_through")),
                passes=[Pass.from_json(p) for p in cursor.get("passes") or []],
                held={str(k): int(v) for k, v in (cursor.get("held") or {}).items()},
                closed={str(k): int(v) for k, v in (cursor.get("closed") or {}).items()},
                verify_after=int(cursor.get("verify_after") or 0),
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            return cls()


class FreshdeskSource:
    """Freshdesk tickets as TicketEvents (see the module docstring for the sync)."""

    persistent = True
    pages_per_poll = PAGES_PER_POLL

    def __init__(self, name: str, cfg: FreshdeskSourceConfig, cursor: object = None) -> None:
        self.name = name
        self.cfg = cfg
        self.log = get_logger("sladaemon.sources.freshdesk")
        api_key = cfg.token.get_secret_value().strip() if cfg.token is not None else ""
        self._has_key = bool(api_key)
        self.client = FreshdeskClient(cfg.url, api_key, timeout=cfg.timeout.total_seconds())
        self._state = SyncState.from_cursor(cursor)
        self._statuses = StatusCategories(cfg.statuses)
        self._channels = ChannelMap(DEFAULT_CHANNELS, cfg.channels)
        self._queues = {q.strip().lower() for q in cfg.queues if q.strip()}
        self._per_page = min(cfg.page_size, MAX_PER_PAGE)
        self._vocabulary: Vocabulary | None = None
        self._looked_up: set[tuple[str, int]] = set()  # unnamed groups/statuses already sought
        self._agents: BoundedCache[int] = BoundedCache()  # agent id -> email, read once each
        self._reported: set[str] = set()  # issues already reported (overlapping reads repeat)
        self._names_warned = False

    @property
    def requests(self) -> int:
        """HTTP requests made so far."""
        return self.client.requests

    async def close(self) -> None:
        await self.client.close()

    async def poll(self, now: datetime) -> PollResult:
        if not self._has_key:
            raise SourceError(
                f"source {self.name}: no API key (set token or token_file)", retryable=False
            )
        work = self._state.copy()
        result = PollResult()
        refresh_names = self._vocabulary is None
        if not work.passes:
            work.passes, reconciling = self._schedule(work, now)
            if reconciling:
                refresh_names = True
                self._looked_up.clear()  # names not found before get another chance
        pages, named = 0, False  # named: names were (re)loaded in this poll
        started = time.monotonic()
        while (
            work.passes
            and pages < self.pages_per_poll
            and time.monotonic() - started < POLL_SECONDS
        ):
            current = work.passes[0]
            pages += 1
            if current.kind is PassKind.VERIFY:
                if refresh_names:
                    await self._load_vocabulary()
                    refresh_names, named = False, True
                await self._verify(work, result, now)
                work.passes.pop(0)
                continue
            assert current.since is not None
            page = await self.client.tickets(
                since=current.since,
                page=current.page,
                per_page=self._per_page,
                filter_name=None if current.kind is PassKind.CHANGES else current.kind.value,
            )
            if refresh_names:  # after the first answer: bad credentials cost one request
                await self._load_vocabulary()
                refresh_names, named = False, True
            tickets, issues = parse_tickets(page.items)
            self._report(result, issues)
            unnamed = self._unnamed(tickets) - self._looked_up
            if unnamed and not named:
                await self._load_vocabulary()
                named = True
            self._looked_up |= unnamed
            await self._complete_agents(tickets)
            for ticket in tickets:
                if current.kind is PassKind.CHANGES:
                    self._take(ticket, work, result, initial=current.initial, since=current.since)
                else:
                    self._remove(ticket.ticket_id, ticket.updated, current.kind.value, work, result)
            self._advance(work, current, tickets, page)
        result.more = bool(work.passes)
        self._prune(work)
        self._state = work
        self._reported |= {issue.message for issue in result.issues}
        result.cursor = work.to_cursor()
        result.unknown_statuses = set(self._statuses.unknown)
        self._channels.log_unknown(self.log, self.name)
        return result

    # ------------------------------------------------------------------ listing

    def _schedule(self, work: SyncState, now: datetime) -> tuple[list[Pass], bool]:
        """The passes of a new round, and whether it reconciles."""
        overlap = self.cfg.overlap
        if work.checkpoint is None:
            work.reconciled_at = work.reconciled_at or now
            return [Pass(PassKind.CHANGES, now - INITIAL_LOOKBACK, initial=True)], False
        due = work.reconciled_at is None or now - work.reconciled_at >= self.cfg.reconcile_every
        if not due:
            return [Pass(PassKind.CHANGES, work.checkpoint - overlap)], False
        start = min(work.reconciled_through or work.checkpoint, work.checkpoint) - overlap
        work.reconciled_at, work.reconciled_through = now, work.checkpoint
        passes = [Pass(kind, start) for kind in (PassKind.CHANGES, PassKind.DELETED, PassKind.SPAM)]
        return [*passes, Pass(PassKind.VERIFY)], True

    def _advance(
        self, work: SyncState, current: Pass, tickets: list[FreshdeskTicket], page: TicketPage
    ) -> None:
        assert current.since is not None
        latest = max((t.updated_at for t in tickets if t.updated_at is not None), default=None)
        if current.kind is PassKind.CHANGES and latest is not None:
            work.checkpoint = max(work.checkpoint or latest, latest)
        if not page.has_next or len(page.items) < self._per_page:
            if current.kind is PassKind.CHANGES and work.checkpoint is None:
                work.checkpoint = current.since
            if current.initial:  # the first reconciliation re-reads from here
                work.reconciled_through = work.checkpoint
            work.passes.pop(0)
            return
        if latest is not None and latest > current.since:
            current.since, current.page = latest, 1
        else:  # a run of equal updated_at longer than a page: follow the pages
            current.page += 1
        if current.page > MAX_PAGE:
            self.log.warning(
                "freshdesk_page_cap",
                source=self.name,
                updated_at=iso(current.since),
                skipped_to=iso(current.since + timedelta(seconds=1)),
            )
            current.since, current.page = current.since + timedelta(seconds=1), 1

    def _prune(self, work: SyncState) -> None:
        """Forget closed tickets no listing can return again."""
        starts = [p.since for p in work.passes if p.since is not None]
        if work.checkpoint is not None:
            starts.append(work.checkpoint - self.cfg.overlap)
        if work.reconciled_through is not None:
            starts.append(work.reconciled_through - self.cfg.overlap)
        if not starts or not work.closed:
            return
        horizon = _ms(min(starts) - timedelta(minutes=1))
        work.closed = {t: stamp for t, stamp in work.closed.items() if stamp >= horizon}

    # ------------------------------------------------------------------ tickets

    def _take(
        self,
        ticket: FreshdeskTicket,
        work: SyncState,
        result: PollResult,
        *,
        initial: bool = False,
        since: datetime | None = None,
    ) -> None:
        """Deliver a ticket snapshot unless it was delivered already or is not ours."""
        tid, stamp = ticket.ticket_id, _ms(ticket.updated)
        if ticket.deleted or ticket.spam:
            self._remove(tid, ticket.updated, "deleted" if ticket.deleted else "spam", work, result)
            return
        held = work.held.get(tid)
        if held is not None and stamp <= held:
            return
        if held is None and stamp <= work.closed.get(tid, -1):
            return
        vocabulary = self._names()
        if not self._watched(ticket, vocabulary):
            self._remove(tid, ticket.updated, "unwatched", work, result)
            return
        category = StatusCategory.OPEN
        if ticket.status is not None:
            category = self._statuses(ticket.status, vocabulary.status_name(ticket.status))
        if held is None and category.is_done:
            # Not ours and finished: load it only when it finished unseen within the window
            # read (created and solved between two polls); remember it was seen either way.
            seen = tid in work.closed
            if seen or initial or since is None or status_changed_at(ticket) < since:
                work.closed[tid] = max(stamp, work.closed.get(tid, stamp))
                return
        events = ticket_events(ticket, vocabulary, self._statuses)
        if held is not None:  # what came before the snapshot delivered last is known already
            cutoff = _from_ms(held) - self.cfg.overlap
            events = [e for e in events if e.at >= cutoff]
        result.events.extend(events)
        if category is StatusCategory.CLOSED:
            work.held.pop(tid, None)
            work.closed[tid] = stamp
        else:
            work.held[tid] = stamp
            work.closed.pop(tid, None)

    def _remove(
        self, tid: str, at: datetime, status: str, work: SyncState, result: PollResult
    ) -> None:
        """Close a held ticket that left the helpdesk's view."""
        held = work.held.pop(tid, None)
        if held is None:
            return
        moment = max(at, _from_ms(held))
        result.events.append(closed_event(tid, moment, status))
        work.closed[tid] = max(held, _ms(at))

    async def _verify(self, work: SyncState, result: PollResult, now: datetime) -> None:
        """Re-read a few held tickets one by one, in rotation: finds vanished tickets."""
        ids = sorted(work.held, key=_id_order)
        batch = [t for t in ids if _id_order(t) > work.verify_after][:VERIFY_PER_RECONCILE]
        batch += [t for t in ids if t not in batch][: VERIFY_PER_RECONCILE - len(batch)]
        for tid in batch:
            raw = await self.client.ticket(tid)
            if raw is None:
                self._remove(tid, now, "deleted", work, result)
                continue
            try:
                ticket = parse_ticket(raw)
            except ValueError as exc:
                self._report(result, [RowIssue(0, f"ticket {tid}: {exc}")])
                continue
            await self._complete_agents([ticket])
            self._take(ticket, work, result)
        work.verify_after = _id_order(batch[-1]) if batch else 0

    def _watched(self, ticket: FreshdeskTicket, vocabulary: Vocabulary) -> bool:
        if not self._queues:
            return True
        if ticket.group_id is None:
            return False
        names = {str(ticket.group_id), vocabulary.queue(ticket.group_id).lower()}
        return not names.isdisjoint(self._queues)

    def _report(self, result: PollResult, issues: Iterable[RowIssue]) -> None:
        """Add issues not reported by an earlier poll (overlapping reads meet them again)."""
        this_poll = {issue.message for issue in result.issues}
        for issue in issues:
            if issue.message not in self._reported and issue.message not in this_poll:
                this_poll.add(issue.message)
                result.issues.append(issue)

    # ------------------------------------------------------------------ names

    def _names(self) -> Vocabulary:
        if self._vocabulary is None:
            self._vocabulary = Vocabulary(agent_names=self._agents, channels=self._channels)
        return self._vocabulary

    async def _complete_agents(self, tickets: list[FreshdeskTicket]) -> None:
        """Read the assigned agents not known yet, one request each; an agent that cannot be
        read is named by its id (and not asked for again)."""
        wanted = {t.responder_id for t in tickets if t.responder_id is not None}
        for agent_id in sorted(wanted - self._agents.keys()):
            agent = parse_agent(await self.client.agent(agent_id))
            contact = agent.contact if agent is not None else None
            identity = person_identity(contact.email, contact.name) if contact else ""
            self._agents.put(agent_id, identity or str(agent_id))

    async def _load_vocabulary(self) -> None:
        """Group and custom status names (ids stay in use when the key may not read them)."""
        previous = self._names()
        groups = await self._optional(self.client.groups(), "groups")
        fields = await self._optional(self.client.ticket_fields(), "ticket_fields")
        self._vocabulary = Vocabulary(
            status_names=parse_status_names(fields)
            if fields is not None
            else previous.status_names,
            group_names=parse_groups(groups) if groups is not None else previous.group_names,
            agent_names=self._agents,
            channels=self._channels,
        )

    def _unnamed(self, tickets: list[FreshdeskTicket]) -> set[tuple[str, int]]:
        """Groups and custom statuses the tickets mention that have no name yet."""
        vocabulary = self._names()
        groups = {t.group_id for t in tickets if t.group_id is not None}
        statuses = {t.status for t in tickets if t.status is not None and t.status > CLOSED}
        return {("group", g) for g in groups if g not in vocabulary.group_names} | {
            ("status", s) for s in statuses if s not in vocabulary.status_names
        }

    async def _optional(self, call: Awaitable[list[Any]], what: str) -> list[Any] | None:
        try:
            found: list[Any] = await call
        except SourceError as exc:
            if exc.retryable:
                raise
            if not self._names_warned:
                self._names_warned = True
                self.log.warning(
                    "freshdesk_names_unavailable", source=self.name, endpoint=what, error=str(exc)
                )
            return None
        return found


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _from_ms(stamp: int) -> datetime:
    return datetime.fromtimestamp(stamp / 1000, UTC)


def _id_order(ticket_id: str) -> int:
    return int(ticket_id) if ticket_id.isdigit() else 0
