"""ZammadSource: incremental sync through ticket search, with overlap and reconciliation.

Zammad has no change cursor, so the checkpoint is the newest ``updated_at`` fully processed.
Each poll searches ``updated_at >= checkpoint - overlap`` sorted ascending (the overlap covers
Elasticsearch's indexing lag). Pages are walked by keyset: every request asks for page 1 from
the newest ``updated_at`` seen so far, one ticket more than ``page_size`` so the boundary ticket
it re-reads costs nothing, which makes the walk immune to offset pages shifting while tickets
change. Only when a whole page shares one timestamp does the walk step to page 2 of the same
boundary.

The cursor remembers, per ticket still open (and per recently closed one), the ``updated_at``
processed, its article count, a fingerprint of its state/priority/group, its deadlines and the
newest article and history ids turned into events. So a ticket re-read by the overlap costs
nothing, articles are fetched only when the article count moved, the history only when state,
priority, group or owner moved, and only what is newer is emitted. Owners are named by email:
the users a history answer brings along (``assets``) are kept in a bounded cache, and a user
still unknown is read once (``GET /users/{id}``). A ticket seen for the first time —
or again after it was closed, when the daemon has already let it go — is emitted with its whole
history. The cursor is returned only when it changed.

The first sync reads the open tickets only, a few pages per poll (``more``). Every
``reconcile_every`` the open tickets are listed in full: tickets the search no longer returns are
fetched one by one (404 -> closed as deleted, 403 -> closed as moved) and updates the change
feed missed are processed. Nothing is kept from a poll that fails: the next one starts from the
same cursor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

from sladaemon.config.models import ZammadSourceConfig
from sladaemon.errors import RowIssue
from sladaemon.logs import get_logger
from sladaemon.model import StatusCategory
from sladaemon.sources.base import PollResult
from sladaemon.sources.channels import ChannelMap
from sladaemon.sources.people import BoundedCache, person_identity
from sladaemon.sources.zammad.client import MAX_PER_PAGE, TicketUnreachable, ZammadClient
from sladaemon.sources.zammad.mapping import (
    DEFAULT_CHANNELS,
    DELETED,
    MOVED,
    Seen,
    TicketDetails,
    deadline_values,
    epoch_ms,
    iso_utc,
    owner_ids,
    ticket_closed,
    ticket_events,
    ticket_fingerprint,
    zammad_statuses,
)
from sladaemon.sources.zammad.payloads import (
    ZammadArticle,
    ZammadHistoryEntry,
    ZammadTicket,
    ZammadUser,
    history_entries,
    history_users,
    parse_items,
    ticket_label,
)

CURSOR_VERSION = 1
PAGES_PER_POLL = 5  # search pages per poll while catching up; then ``more`` asks for another
DETAIL_CONCURRENCY = 8  # article/history requests in flight at once
VERIFY_PER_POLL = 50  # vanished tickets looked up one by one per poll
RECONCILE_MAX_PAGES = 2000  # a server that never ends a listing is not believed
# State types new (1), open (2), pending reminder (3) and pending action (4): seeded ids.
OPEN_STATE_TYPES = "state.state_type_id:(1 OR 2 OR 3 OR 4)"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TrackedTicket:
    """What was processed of a ticket: its ``updated_at``, the newest article and history ids
    turned into events, and fingerprints of the rest."""

    updated_ms: int
    fingerprint: int
    article_count: int  # -1: unknown
    open: bool
    article_id: int = 0
    history_id: int = 0
    deadlines: tuple[int, ...] = (0, 0, 0)

    def to_json(self) -> list[int]:
        head = [self.updated_ms, self.fingerprint, self.article_count, int(self.open)]
        return [*head, self.article_id, self.history_id, *self.deadlines]

    @classmethod
    def from_json(cls, values: Sequence[object]) -> TrackedTicket:
        v = [int(x) for x in values]  # type: ignore[call-overload]
        return cls(v[0], v[1], v[2], bool(v[3]), v[4], v[5], tuple(v[6:9]))

    def seen(self) -> Seen:
        return Seen(
            _from_ms(self.updated_ms),
            self.article_id,
            self.history_id,
            self.deadlines,
            self.fingerprint,
        )


@dataclass
class SyncState:
    """Everything the cursor holds."""

    checkpoint: datetime | None = None  # newest updated_at fully processed
    resume_from: datetime | None = None  # where an unfinished walk continues
    resume_page: int = 1
    catching_up: bool = False
    initial_done: bool = False
    sync_started: datetime | None = None  # server time when the first sync began
    reconciled_at: datetime | None = None
    tickets: dict[int, TrackedTicket] = field(default_factory=dict)
    to_verify: list[int] = field(default_factory=list)

    def copy(self) -> SyncState:
        return replace(self, tickets=dict(self.tickets), to_verify=list(self.to_verify))

    def to_cursor(self) -> dict[str, Any]:
        return {
            "v": CURSOR_VERSION,
            "checkpoint": _stamp(self.checkpoint),
            "resume_from": _stamp(self.resume_from),
            "resume_page": self.resume_page,
            "catching_up": self.catching_up,
            "initial_done": self.initial_done,
            "sync_started": _stamp(self.sync_started),
            "reconciled_at": _stamp(self.reconciled_at),
            "tickets": {str(k): t.to_json() for k, t in self.tickets.items()},
            "verify": self.to_verify,
        }

    @classmethod
    def from_cursor(cls, cursor: object) -> Self:
        """The state a cursor describes; a missing or unreadable cursor starts afresh."""
        if not isinstance(cursor, dict) or cursor.get("v") != CURSOR_VERSION:
            return cls()
        try:
            return cls(
                checkpoint=_moment(cursor.get("checkpoint")),
                resume_from=_moment(cursor.get("resume_from")),
                resume_page=max(1, int(cursor.get("resume_page", 1))),
                catching_up=bool(cursor.get("catching_up")),
                initial_done=bool(cursor.get("initial_done")),
                sync_started=_moment(cursor.get("sync_started")),
                reconciled_at=_moment(cursor.get("reconciled_at")),
                tickets={
                    int(k): TrackedTicket.from_json(v)
                    for k, v in dict(cursor.get("tickets") or {}).items()
                },
                to_verify=[int(t) for t in cursor.get("verify") or []],
            )
        except (TypeError, ValueError, IndexError):
            return cls()


@dataclass
class KeysetWalk:
    """Search pages in ``field`` order, each request starting at the newest value seen."""

    field: str
    terms: tuple[str, ...]
    boundary: datetime | None
    page: int = 1
    newest: datetime | None = None
    done: bool = False

    def query(self) -> str:
        terms = list(self.terms)
        if self.boundary is not None:
            terms.append(f"{self.field}:>={_escaped(iso_utc(self.boundary))}")
        return " AND ".join(terms)


@dataclass
class _Poll:
    state: SyncState
    now: datetime
    result: PollResult


@dataclass(frozen=True, slots=True)
class _Plan:
    ticket: ZammadTicket
    known: TrackedTicket | None
    first_seen: bool


class ZammadSource:
    def __init__(self, name: str, cfg: ZammadSourceConfig, cursor: object = None) -> None:
        self.name = name
        self.cfg = cfg
        self.persistent = True
        self.statuses = zammad_statuses(cfg.statuses)
        self.channels = ChannelMap(DEFAULT_CHANNELS, cfg.channels)
        self.client = ZammadClient(cfg)
        self.page_size = max(1, min(cfg.page_size, MAX_PER_PAGE - 1))
        self.pages_per_poll = PAGES_PER_POLL
        self._overlap = cfg.overlap
        self._queues = {q.strip().lower() for q in cfg.queues if q.strip()}
        self._group_terms: tuple[str, ...] = ()
        if cfg.queues:
            names = " OR ".join(_quoted(q) for q in cfg.queues)
            self._group_terms = (f"group.name:({names})",)
        self._state = SyncState.from_cursor(cursor)
        self._cursor: dict[str, Any] | None = None
        self._log = get_logger("sladaemon.sources.zammad")
        self._people: BoundedCache[int] = BoundedCache()  # user id -> email, else login

    async def poll(self, now: datetime) -> PollResult:
        run = _Poll(self._state.copy(), now, PollResult())
        if not run.state.initial_done:
            await self._initial_sync(run)
        else:
            await self._follow_changes(run)
            if not run.result.more and self._reconcile_due(run):
                await self._reconcile(run)
            await self._verify_missing(run)
        self._forget_old_closed(run.state)
        self._state = run.state
        cursor = run.state.to_cursor()
        if cursor != self._cursor:  # unchanged: nothing to persist
            run.result.cursor = self._cursor = cursor
        run.result.unknown_statuses = set(self.statuses.unknown)
        self.channels.log_unknown(self._log, self.name)
        return run.result

    @property
    def requests(self) -> int:
        """HTTP requests made so far."""
        return self.client.requests

    async def close(self) -> None:
        await self.client.close()

    # ------------------------------------------------------------------ phases

    async def _initial_sync(self, run: _Poll) -> None:
        """Open tickets by ``updated_at``, a few pages per poll."""
        state = run.state
        terms = (OPEN_STATE_TYPES, *self._group_terms)
        walk = KeysetWalk("updated_at", terms, state.resume_from, state.resume_page)
        for _ in range(self.pages_per_poll):
            tickets = await self._next_page(walk, run)
            if state.sync_started is None:
                state.sync_started = self.client.server_date or run.now
            await self._process(run, tickets, window_start=None)
            if walk.done:
                break
        if walk.done:
            state.checkpoint = state.sync_started or walk.newest or run.now
            state.initial_done, state.catching_up = True, False
            state.resume_from, state.resume_page = None, 1
            state.reconciled_at = run.now
        else:
            state.resume_from, state.resume_page = walk.boundary, walk.page
            run.result.more = True

    async def _follow_changes(self, run: _Poll) -> None:
        """Tickets updated since the checkpoint, minus the overlap."""
        state = run.state
        checkpoint = state.checkpoint or run.now
        window_start = checkpoint - self._overlap
        if state.catching_up and state.resume_from is not None:
            walk = KeysetWalk("updated_at", (), state.resume_from, state.resume_page)
        else:
            walk = KeysetWalk("updated_at", (), window_start)
        for _ in range(self.pages_per_poll):
            tickets = await self._next_page(walk, run)
            await self._process(run, tickets, window_start)
            if walk.done:
                break
        if walk.newest is not None and walk.newest > checkpoint:
            checkpoint = walk.newest
        state.checkpoint = checkpoint
        state.catching_up = not walk.done
        if walk.done:
            state.resume_from, state.resume_page = None, 1
        else:
            state.resume_from, state.resume_page = walk.boundary, walk.page
            run.result.more = True

    def _reconcile_due(self, run: _Poll) -> bool:
        last = run.state.reconciled_at
        return last is None or run.now < last or run.now - last >= self.cfg.reconcile_every

    async def _reconcile(self, run: _Poll) -> None:
        """All open tickets: catch lost updates, queue the vanished ones for a lookup."""
        state = run.state
        walk = KeysetWalk("created_at", (OPEN_STATE_TYPES, *self._group_terms), None)
        listed: set[int] = set()
        for _ in range(RECONCILE_MAX_PAGES):
            tickets = await self._next_page(walk, run)
            listed.update(t.id for t in tickets)
            await self._process(run, tickets, window_start=None)
            if walk.done:
                break
        if walk.done:  # only a complete listing tells which tickets vanished
            missing = {tid for tid, t in state.tickets.items() if t.open and tid not in listed}
            state.to_verify = sorted(set(state.to_verify) | missing)
        state.reconciled_at = run.now

    async def _verify_missing(self, run: _Poll) -> None:
        """Look up, one by one, open tickets the open-ticket search no longer returned."""
        state = run.state
        pending = [t for t in state.to_verify if (k := state.tickets.get(t)) and k.open]
        batch, state.to_verify = pending[:VERIFY_PER_POLL], pending[VERIFY_PER_POLL:]
        if not batch:
            return
        answers = await _bounded(
            (self._lookup(ticket_id) for ticket_id in batch), DETAIL_CONCURRENCY
        )
        found: list[ZammadTicket] = []
        for ticket_id, answer in zip(batch, answers, strict=True):
            if isinstance(answer, TicketUnreachable):
                self._unreachable(run, ticket_id, answer.status, run.now)
                continue
            tickets, issues = parse_items([answer], ZammadTicket, ticket_label)
            found.extend(tickets)
            run.result.issues.extend(issues)
        await self._process(run, found, window_start=None)

    # ------------------------------------------------------------------ tickets

    async def _next_page(self, walk: KeysetWalk, run: _Poll) -> list[ZammadTicket]:
        per_page = self.page_size + 1
        raw = await self.client.search_tickets(
            walk.query(), sort_by=walk.field, page=walk.page, per_page=per_page
        )
        tickets, issues = parse_items(raw, ZammadTicket, ticket_label)
        run.result.issues.extend(issues)
        values = [v for t in tickets if (v := getattr(t, walk.field)) is not None]
        top = max(values, default=None)
        if top is not None and (walk.newest is None or top > walk.newest):
            walk.newest = top
        if len(raw) < per_page:
            walk.done = True
        elif top is not None and (walk.boundary is None or top > walk.boundary):
            walk.boundary, walk.page = top, 1
        else:
            walk.page += 1  # a whole page on one timestamp: step past it
        return tickets

    async def _process(
        self, run: _Poll, tickets: Sequence[ZammadTicket], window_start: datetime | None
    ) -> None:
        """Decide per ticket what to fetch, fetch it, and turn it into events."""
        state = run.state
        newest: dict[int, ZammadTicket] = {}
        for ticket in tickets:
            seen = newest.get(ticket.id)
            if seen is None or ticket.updated_at > seen.updated_at:
                newest[ticket.id] = ticket
        plans: list[_Plan] = []
        for ticket in newest.values():
            known = state.tickets.get(ticket.id)
            updated_ms = epoch_ms(ticket.updated_at)
            if known is not None and updated_ms <= known.updated_ms:
                continue  # already processed (overlap), or an older copy from the index
            if not self._watched(ticket):
                if known is not None and known.open:
                    run.result.events.append(
                        ticket_closed(ticket.id, ticket.updated_at, MOVED, f"moved:{updated_ms}")
                    )
                state.tickets[ticket.id] = self._tracked(ticket, is_open=False)
                continue
            first_seen = known is None or not known.open
            if first_seen and self._closed(ticket):
                opened_late = window_start is not None and ticket.opened_at >= window_start
                if not opened_late:  # closed before we ever saw it open: nothing to follow
                    state.tickets[ticket.id] = self._tracked(ticket, is_open=False)
                    continue
            plans.append(_Plan(ticket, known, first_seen))
        outcomes = await _bounded((self._details(p) for p in plans), DETAIL_CONCURRENCY)
        await self._complete_people(outcomes)
        for plan, outcome in zip(plans, outcomes, strict=True):
            ticket = plan.ticket
            if isinstance(outcome, TicketUnreachable):
                self._unreachable(run, ticket.id, outcome.status, ticket.updated_at)
                continue
            details, issues = outcome
            run.result.issues.extend(issues)
            known = None if plan.first_seen else plan.known
            run.result.events.extend(
                ticket_events(
                    details,
                    statuses=self.statuses,
                    channels=self.channels,
                    seen=None if known is None else known.seen(),
                    people={i: self._people.get(i) or str(i) for i in owner_ids(details)},
                )
            )
            article_id = max((a.id for a in details.articles or ()), default=0)
            history_id = max((h.id or 0 for h in details.history or ()), default=0)
            if known is not None:
                article_id = max(article_id, known.article_id)
                history_id = max(history_id, known.history_id)
            state.tickets[ticket.id] = self._tracked(
                ticket,
                is_open=not self._closed(ticket),
                article_id=article_id,
                history_id=history_id,
            )

    async def _details(
        self, plan: _Plan
    ) -> tuple[TicketDetails, list[RowIssue]] | TicketUnreachable:
        ticket, known = plan.ticket, plan.known
        if plan.first_seen or known is None:
            want_articles = ticket.article_count != 0
            want_history = True
        else:
            want_articles = (
                ticket.article_count is None or ticket.article_count != known.article_count
            )
            want_history = ticket_fingerprint(ticket) != known.fingerprint
        issues: list[RowIssue] = []
        articles: list[ZammadArticle] | None = [] if plan.first_seen else None
        history: list[ZammadHistoryEntry] | None = None
        label = f"ticket {ticket.id}"
        try:
            if want_articles:
                raw = await self.client.articles(ticket.id)
                articles, problems = parse_items(
                    raw, ZammadArticle, lambda a: f"{label}: article {_entry_id(a)}"
                )
                issues += problems
            if want_history:
                answer = await self.client.history(ticket.id)
                for user in history_users(answer):
                    self._remember(user)
                raw = history_entries(answer)
                history, problems = parse_items(
                    raw, ZammadHistoryEntry, lambda h: f"{label}: history entry {_entry_id(h)}"
                )
                issues += problems
        except TicketUnreachable as unreachable:
            return unreachable
        return TicketDetails(ticket, articles, history), issues

    async def _complete_people(
        self, outcomes: Sequence[tuple[TicketDetails, list[RowIssue]] | TicketUnreachable]
    ) -> None:
        """Read the owners not known yet; one that cannot be read is named by its login (when
        it is a ticket's current owner) or its id."""
        logins: dict[int, str] = {}
        wanted: set[int] = set()
        for outcome in outcomes:
            if isinstance(outcome, TicketUnreachable):
                continue
            details = outcome[0]
            ticket = details.ticket
            if ticket.owner_id is not None and ticket.owner:
                logins[ticket.owner_id] = ticket.owner.strip().lower()
            wanted |= {i for i in owner_ids(details) if i not in self._people}
        ordered = sorted(wanted)
        answers = await _bounded((self.client.user(i) for i in ordered), DETAIL_CONCURRENCY)
        for user_id, raw in zip(ordered, answers, strict=True):
            users, _ = parse_items([raw] if raw is not None else [], ZammadUser, str)
            if users:
                self._remember(users[0])
            else:
                self._people.put(user_id, logins.get(user_id) or str(user_id))

    def _remember(self, user: ZammadUser) -> None:
        identity = person_identity(user.email, user.login)
        if identity:
            self._people.put(user.id, identity)

    async def _lookup(self, ticket_id: int) -> Any:
        try:
            return await self.client.ticket(ticket_id)
        except TicketUnreachable as unreachable:
            return unreachable

    def _unreachable(self, run: _Poll, ticket_id: int, status: int, at: datetime) -> None:
        known = run.state.tickets.pop(ticket_id, None)
        if known is not None and known.open:
            reason = DELETED if status == 404 else MOVED
            run.result.events.append(
                ticket_closed(ticket_id, at, reason, f"gone:{known.updated_ms}")
            )

    def _watched(self, ticket: ZammadTicket) -> bool:
        return not self._queues or (ticket.group or "").strip().lower() in self._queues

    def _closed(self, ticket: ZammadTicket) -> bool:
        state = ticket.state_name
        return state is not None and self.statuses(state) is StatusCategory.CLOSED

    def _tracked(
        self, ticket: ZammadTicket, *, is_open: bool, article_id: int = 0, history_id: int = 0
    ) -> TrackedTicket:
        count = ticket.article_count
        return TrackedTicket(
            epoch_ms(ticket.updated_at),
            ticket_fingerprint(ticket),
            -1 if count is None else count,
            is_open,
            article_id,
            history_id,
            deadline_values(ticket),
        )

    def _forget_old_closed(self, state: SyncState) -> None:
        """Closed tickets are kept only while the overlap can still re-read them."""
        if state.checkpoint is None:
            return
        horizon = epoch_ms(state.checkpoint - self._overlap)
        state.tickets = {
            tid: t for tid, t in state.tickets.items() if t.open or t.updated_ms >= horizon
        }


async def _bounded(calls: Iterable[Awaitable[T]], limit: int) -> list[T]:
    """Run ``calls`` with at most ``limit`` at once; the first failure cancels the rest."""
    gate = asyncio.Semaphore(limit)

    async def gated(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(gated(call)) for call in calls]
    except BaseExceptionGroup as failures:
        raise _first_leaf(failures) from None
    return [task.result() for task in tasks]


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _entry_id(entry: object) -> object:
    return entry.get("id", "?") if isinstance(entry, dict) else "?"


def _escaped(term: str) -> str:
    """A query_string term with its colons escaped (a timestamp, for a range query)."""
    return term.replace(":", "\\:")


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _stamp(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment is not None else None


def _moment(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
