"""Request Tracker 5 as a source: incremental TicketSQL polling from a LastUpdated checkpoint.

Each poll searches the tickets changed after the checkpoint (plus the watched queues), oldest
change first, following ``next_page`` for at most a few pages (``more=True`` says there is
more). Only tickets whose ``LastUpdated`` moved since they were last read have their history
fetched, in batches: one TransactionSQL search covers the new transactions of up to 100
tickets (one more page per 100 transactions). So an unchanged helpdesk costs one request
per poll, and k changed tickets cost ``ceil(k / page_size)`` searches plus about
``ceil(k / 100)`` history searches.

* Positions are ``(LastUpdated, id)`` pairs, the search's sort order: the checkpoint is the
  last ticket read, and a walk cut off after a few pages resumes right after its last
  ticket (``LastUpdated > T OR (LastUpdated >= T AND id > X)``), however many tickets share
  one second. A new walk also re-reads ``overlap`` before the checkpoint (changes that
  became visible late); what it had already read is skipped without fetching its history.
* RT dates have one-second resolution: a ticket read in the same second as its last change
  could change again without a new ``LastUpdated``, so it is read once more at the start
  of the next walk.
* A ticket seen twice in one walk was changed while the walk went on, which shifts the
  pages after it; the walk's position then falls back to the end of the page where it was
  first seen.
* First run: a sweep over the active tickets (``Status = '__Active__'``), then incremental
  polling from the moment the sweep began (so tickets resolved meanwhile are seen too).
* Nothing is committed until the whole poll succeeded: a failure raises and the next poll
  starts from the same position, with the same knowledge of each ticket.
* Every ``reconcile_every``: the ids of all active tickets are listed and compared with the
  tickets believed open. Tickets that went missing are looked up: resolved ones are read as
  usual; deleted, merged and moved-away ones (queue no longer watched) get a ``closed``
  event with status "deleted", "merged" or "moved". Active tickets never seen, or changed
  after they were read without a walk noticing, are read too.

The cursor (JSON) holds the checkpoint, a walk's resume position, the believed-open ticket
ids and the ids to re-read (as ranges), the tickets read in the overlap window (so a restart
does not fetch their history again) and the reconciliation time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from sladaemon.config.models import RequestTrackerSourceConfig
from sladaemon.errors import RowIssue
from sladaemon.logs import get_logger
from sladaemon.sources.base import PollResult, SourceError
from sladaemon.sources.channels import ChannelMap
from sladaemon.sources.people import BoundedCache
from sladaemon.sources.rt.client import (
    RequestTrackerClient,
    TicketPage,
    ticketsql_text,
    ticketsql_time,
)
from sladaemon.sources.rt.mapping import (
    DEFAULT_CHANNELS,
    DEFAULT_STATUSES,
    OWNER_CHANGES,
    MappingContext,
    TicketTrail,
    map_ticket,
    owner_identity,
    vanished_event,
)
from sladaemon.sources.rt.payloads import RtTicket, RtTransaction, parse_rt_time
from sladaemon.statuses import StatusMap

MAX_PAGES_PER_POLL = 5
HISTORY_BATCH = 100  # tickets per TransactionSQL search (about 3 KB of URL)
ID_BATCH = 100  # tickets per "id = ..." search (re-reads, reconciliation)
CURSOR_VERSION = 2


Position = tuple[datetime, int]  # (LastUpdated, ticket id): the order of every walk


@dataclass
class SyncState:
    """Where the polling stands; saved as the cursor."""

    initial: bool = True  # the first sweep over the active tickets is not finished
    checkpoint: Position | None = None  # every ticket up to here was read
    resume: Position | None = None  # a walk cut off after a few pages goes on from here
    sync_started: datetime | None = None  # server time when the first sweep began
    open_ids: set[int] = field(default_factory=set)
    recheck: set[int] = field(default_factory=set)  # read in the second of their last change
    window: dict[int, datetime] = field(default_factory=dict)  # id -> LastUpdated read
    reconciled_at: datetime | None = None

    def copy(self) -> SyncState:
        return SyncState(
            self.initial,
            self.checkpoint,
            self.resume,
            self.sync_started,
            set(self.open_ids),
            set(self.recheck),
            dict(self.window),
            self.reconciled_at,
        )

    def to_cursor(self) -> dict[str, Any]:
        return {
            "version": CURSOR_VERSION,
            "initial": self.initial,
            "checkpoint": _position_json(self.checkpoint),
            "resume": _position_json(self.resume),
            "sync_started": _iso(self.sync_started),
            "open": encode_ranges(self.open_ids),
            "recheck": encode_ranges(self.recheck),
            "window": {str(k): int(v.timestamp()) for k, v in sorted(self.window.items())},
            "reconciled_at": _iso(self.reconciled_at),
        }

    @classmethod
    def from_cursor(cls, cursor: object) -> Self:
        """The state a cursor describes; a missing or unreadable cursor starts afresh (a new
        sweep)."""
        if not isinstance(cursor, dict) or cursor.get("version") != CURSOR_VERSION:
            return cls()
        try:
            window = {
                int(k): datetime.fromtimestamp(int(v), UTC)
                for k, v in dict(cursor.get("window") or {}).items()
            }
            return cls(
                initial=bool(cursor.get("initial", True)),
                checkpoint=_position(cursor.get("checkpoint")),
                resume=_position(cursor.get("resume")),
                sync_started=parse_rt_time(cursor.get("sync_started")),
                open_ids=decode_ranges(str(cursor.get("open") or "")),
                recheck=decode_ranges(str(cursor.get("recheck") or "")),
                window=window,
                reconciled_at=parse_rt_time(cursor.get("reconciled_at")),
            )
        except (TypeError, ValueError):
            return cls()


class _Poll:
    """One poll's staged changes: committed to the source only if the poll succeeds."""

    def __init__(self, state: SyncState, trails: dict[int, TicketTrail], now: datetime) -> None:
        self.now = now
        self.state = state.copy()
        self._committed = trails
        self.trails: dict[int, TicketTrail | None] = {}
        self.result = PollResult()
        self.queues_fetched = False

    def trail(self, ticket_id: int) -> TicketTrail | None:
        if ticket_id in self.trails:
            return self.trails[ticket_id]
        return self._committed.get(ticket_id)

    def needs_history(self, ticket: RtTicket) -> bool:
        """Has the ticket changed since it was last read (or never been read)?"""
        assert ticket.last_updated is not None
        trail = self.trail(ticket.id)
        if trail is not None:
            return (
                not trail.settled
                or trail.last_updated is None
                or ticket.last_updated > trail.last_updated
            )
        read = self.state.window.get(ticket.id)
        return read is None or ticket.last_updated > read


@dataclass
class _Walk:
    """Where a walk through the search pages stands."""

    position: Position | None  # the last ticket read
    seen: set[str] = field(default_factory=set)  # ids of the items read (as RT sent them)
    first_page_of: dict[int, int] = field(default_factory=dict)  # ticket id -> page number
    page_ends: list[Position | None] = field(default_factory=list)  # position after each page
    shifted_to: Position | None = None  # the pages shifted: the walk is sure up to here only
    finished: bool = False

    def enter(self, page: TicketPage) -> None:
        """Note a page before its tickets are read: a ticket seen on an earlier page too was
        changed while the walk went on, which shifted the pages after the one it was first
        seen on."""
        number = len(self.page_ends)
        for ticket in page.tickets:
            first = self.first_page_of.setdefault(ticket.id, number)
            if first != number and self.shifted_to is None and self.page_ends[first] is not None:
                self.shifted_to = self.page_ends[first]
        self.seen.update(page.raw_ids)

    def leave(self, page: TicketPage) -> None:
        """Move past a page whose tickets were read."""
        for ticket in page.tickets:
            assert ticket.last_updated is not None
            here = (ticket.last_updated, ticket.id)
            self.position = here if self.position is None else max(self.position, here)
        self.page_ends.append(self.position)

    def end(self) -> Position | None:
        """Where the walk can go on from: its position, or the shift point when earlier."""
        if self.shifted_to is not None and self.position is not None:
            return min(self.position, self.shifted_to)
        return self.position


class RequestTrackerSource:
    persistent = True

    def __init__(
        self,
        name: str,
        cfg: RequestTrackerSourceConfig,
        cursor: object = None,
        *,
        first_backoff: float = 1.0,
        max_attempts: int = 5,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.log = get_logger("sladaemon.sources.rt")
        self._problem = ""
        if cfg.token is None and not (cfg.user and cfg.password is not None):
            self._problem = f"source {name}: RT needs a token, or a user and a password"
        self.client = RequestTrackerClient(
            cfg, first_backoff=first_backoff, max_attempts=max_attempts
        )
        self.statuses = StatusMap({**DEFAULT_STATUSES, **cfg.statuses})
        self.channels = ChannelMap(DEFAULT_CHANNELS, cfg.channels)
        self.overlap = cfg.overlap
        self._queues = {q.strip().lower() for q in cfg.queues if q.strip()}
        self._queue_names: dict[str, str] = {}
        self._user_names: BoundedCache[str] = BoundedCache()  # user id -> identity
        self._state = SyncState.from_cursor(cursor)
        self._trails: dict[int, TicketTrail] = {}
        self._reported_issues: set[str] = set()

    @property
    def requests(self) -> int:
        """HTTP requests made so far (for cost measurements)."""
        return self.client.requests

    async def close(self) -> None:
        await self.client.close()

    async def poll(self, now: datetime) -> PollResult:
        if self._problem:
            raise SourceError(self._problem, retryable=False)
        work = _Poll(self._state, self._trails, now)
        await self._sweep(work)
        if not work.state.initial and not work.result.more and self._reconcile_due(work):
            await self._reconcile(work)
        self._commit(work)
        result = work.result
        result.cursor = self._state.to_cursor()
        result.unknown_statuses = set(self.statuses.unknown)
        self.channels.log_unknown(self.log, self.name)
        return result

    # ------------------------------------------------------------------ sweep

    async def _sweep(self, work: _Poll) -> None:
        state = work.state
        if state.recheck and state.resume is None:
            ids, state.recheck = sorted(state.recheck), set()
            await self._read(work, await self._tickets_by_id(work, ids))
        page = await self.client.search_tickets(self._sweep_query(state))
        if state.initial and state.sync_started is None:
            state.sync_started = page.server_time or work.now
        walk = await self._walk(work, page, state.resume)
        if walk.finished:
            self._end_walk(state, walk, work.now)
        else:
            state.resume = walk.end()

    async def _walk(self, work: _Poll, page: TicketPage, resume: Position | None) -> _Walk:
        """Read the walk's pages from ``page`` on, at most ``MAX_PAGES_PER_POLL`` of them
        (``more`` when it is cut off there)."""
        walk = _Walk(position=resume)
        while True:
            self._note_issues(work, page.issues)
            walk.enter(page)
            await self._read(work, page.tickets)
            walk.leave(page)
            if page.next_params is None:
                walk.finished = True
                return walk
            if len(walk.page_ends) >= MAX_PAGES_PER_POLL:
                work.result.more = True
                return walk
            following = await self.client.next_tickets(page, walk.seen)
            if following is None:
                walk.finished = True
                return walk
            page = following

    def _end_walk(self, state: SyncState, walk: _Walk, now: datetime) -> None:
        """A finished walk moves the checkpoint to where it ended; the first sweep's, to when
        it began if that is earlier (all that changed since), and ends the initial sync."""
        position = walk.end()
        state.resume = None
        if state.initial:
            state.initial = False
            state.reconciled_at = now
            started = state.sync_started
            if started is not None and (position is None or started < position[0]):
                position = (started, 0)  # from when the sweep began: all that changed since
            state.checkpoint = position
        elif position is not None and (
            walk.shifted_to is not None or state.checkpoint is None or position > state.checkpoint
        ):
            state.checkpoint = position

    def _sweep_query(self, state: SyncState) -> str:
        clauses = [c for c in (self._queue_clause(),) if c]
        if state.initial:
            clauses.append("Status = '__Active__'")
        if state.resume is not None:
            clauses.append(_after(state.resume))
        elif state.checkpoint is not None:
            after = _after(state.checkpoint)
            if self.overlap > timedelta(0):
                at = state.checkpoint[0]
                late = (
                    f"(LastUpdated >= {ticketsql_time(at - self.overlap)}"
                    f" AND LastUpdated < {ticketsql_time(at)})"
                )
                after = f"({after} OR {late})"
            clauses.append(after)
        return " AND ".join(clauses) or "id > 0"

    # ------------------------------------------------------------------ reading tickets

    async def _read(self, work: _Poll, tickets: Sequence[RtTicket]) -> None:
        """Map the tickets that changed since they were last read, their histories fetched
        in batches."""
        changed = [t for t in tickets if work.needs_history(t)]
        for start in range(0, len(changed), HISTORY_BATCH):
            batch = changed[start : start + HISTORY_BATCH]
            full = [t.id for t in batch if work.trail(t.id) is None]
            since = [(t.id, trail.last_txn_id) for t in batch if (trail := work.trail(t.id))]
            histories, issues, server_time = await self.client.histories(full, since)
            self._note_issues(work, issues)
            await self._learn_queues(work, batch, histories)
            await self._learn_owners(histories)
            context = MappingContext(
                self.statuses, self.channels, self._queue_names, self._user_names
            )
            for ticket in batch:
                self._map(work, ticket, histories.get(ticket.id, []), context, server_time)

    def _map(
        self,
        work: _Poll,
        ticket: RtTicket,
        history: list[RtTransaction],
        context: MappingContext,
        server_time: datetime | None,
    ) -> None:
        assert ticket.last_updated is not None
        if not self._watched(ticket):
            if ticket.id in work.state.open_ids:
                self._vanish(work, ticket.id, ticket.last_updated, "moved")
            return
        mapped = map_ticket(ticket, history, work.trail(ticket.id), context)
        trail = mapped.trail
        trail.settled = server_time is None or server_time > ticket.last_updated
        work.result.events.extend(mapped.events)
        work.trails[ticket.id] = trail
        if trail.settled:
            work.state.window[ticket.id] = ticket.last_updated
            work.state.recheck.discard(ticket.id)
        else:
            work.state.window.pop(ticket.id, None)
            work.state.recheck.add(ticket.id)
        if trail.done:
            work.state.open_ids.discard(ticket.id)
        else:
            work.state.open_ids.add(ticket.id)

    def _vanish(self, work: _Poll, ticket_id: int, at: datetime, status: str) -> None:
        work.result.events.append(vanished_event(ticket_id, at, status))
        work.state.open_ids.discard(ticket_id)
        work.state.recheck.discard(ticket_id)
        work.state.window.pop(ticket_id, None)
        work.trails[ticket_id] = None

    async def _learn_queues(
        self, work: _Poll, tickets: Iterable[RtTicket], histories: dict[int, list[RtTransaction]]
    ) -> None:
        """Queue names for queue changes in the history (RT records the queue ids)."""
        for ticket in tickets:
            if ticket.queue is not None and ticket.queue.id and ticket.queue.name:
                self._queue_names[ticket.queue.id] = ticket.queue.name
        wanted = {
            value
            for history in histories.values()
            for txn in history
            if txn.type == "Set" and txn.field == "Queue"
            for value in (txn.old_value, txn.new_value)
            if value and value not in self._queue_names
        }
        if wanted and not work.queues_fetched:
            work.queues_fetched = True
            self._queue_names.update(await self.client.queue_names())

    async def _learn_owners(self, histories: dict[int, list[RtTransaction]]) -> None:
        """Who the owners in owner changes are (RT records user ids): one request per user
        not known yet; one RT does not give out is named by its id."""
        wanted = {
            value
            for history in histories.values()
            for txn in history
            if txn.type in OWNER_CHANGES and txn.field == "Owner"
            for value in (txn.old_value, txn.new_value)
            if value and value != "0" and value not in self._user_names
        }
        for user_id in sorted(wanted):
            user = await self.client.user(user_id)
            identity = owner_identity(user.name, user.email) if user is not None else user_id
            self._user_names.put(user_id, identity)

    # ------------------------------------------------------------------ reconciliation

    def _reconcile_due(self, work: _Poll) -> bool:
        last = work.state.reconciled_at
        if last is None or work.now < last:
            return True
        return work.now - last >= self.cfg.reconcile_every

    async def _reconcile(self, work: _Poll) -> None:
        state = work.state
        query = " AND ".join(c for c in (self._queue_clause(), "Status = '__Active__'") if c)
        active: dict[int, datetime] = {}
        seen: set[str] = set()
        page: TicketPage | None = await self.client.search_tickets(query, full=False)
        while page is not None:
            self._note_issues(work, page.issues)
            for ticket in page.tickets:
                assert ticket.last_updated is not None
                active[ticket.id] = ticket.last_updated
            seen.update(page.raw_ids)
            page = await self.client.next_tickets(page, seen)
        suspects = state.open_ids - active.keys()
        for ticket_id, last_updated in active.items():
            if state.checkpoint is not None and last_updated > state.checkpoint[0]:
                continue  # the next walk reads it
            trail = work.trail(ticket_id)
            read_at = trail.last_updated if trail is not None else None
            if ticket_id not in state.open_ids or (read_at and last_updated > read_at):
                suspects.add(ticket_id)  # never seen, or a change the sweeps missed
        if suspects:
            found = await self._tickets_by_id(work, sorted(suspects))
            await self._read(work, found)
            for ticket_id in sorted(suspects - {t.id for t in found}):
                await self._look_up_missing(work, ticket_id)
        state.reconciled_at = work.now

    async def _tickets_by_id(self, work: _Poll, ids: Sequence[int]) -> list[RtTicket]:
        """The tickets with these ids that a search still finds (deleted and merged ones
        are never found), whatever their queue or status."""
        found: list[RtTicket] = []
        for start in range(0, len(ids), ID_BATCH):
            chunk = ids[start : start + ID_BATCH]
            query = "(" + " OR ".join(f"id = {i}" for i in chunk) + ")"
            seen: set[str] = set()
            page: TicketPage | None = await self.client.search_tickets(query)
            while page is not None:
                self._note_issues(work, page.issues)
                found.extend(t for t in page.tickets if t.id in chunk)
                seen.update(page.raw_ids)
                page = await self.client.next_tickets(page, seen)
        return found

    async def _look_up_missing(self, work: _Poll, ticket_id: int) -> None:
        """A believed-open ticket no search finds: deleted, merged or out of reach."""
        ticket = await self.client.ticket(ticket_id)
        at = work.now
        if ticket is None:
            status = "deleted"
        elif ticket.id != ticket_id or ticket.merged_into is not None:
            status = "merged"
        elif ticket.status == "deleted":
            status = "deleted"
        else:
            return  # visible again: the next reconciliation looks at it
        if ticket is not None and ticket.last_updated is not None:
            at = ticket.last_updated
        trail = work.trail(ticket_id)
        if trail is not None and trail.last_updated is not None:
            at = max(at, trail.last_updated)
        if ticket_id in work.state.open_ids or trail is not None:
            self._vanish(work, ticket_id, at, status)

    # ------------------------------------------------------------------ helpers

    def _queue_clause(self) -> str:
        if not self.cfg.queues:
            return ""
        names = [ticketsql_text(q.strip()) for q in self.cfg.queues if q.strip()]
        return "(" + " OR ".join(f"Queue = {n}" for n in names) + ")"

    def _watched(self, ticket: RtTicket) -> bool:
        if not self._queues or ticket.queue is None:
            return True
        return bool({ticket.queue.id.lower(), ticket.queue_name.lower()} & self._queues)

    def _note_issues(self, work: _Poll, issues: Iterable[RowIssue]) -> None:
        """Report a skipped item once, not on every poll that sees it again."""
        noted = {i.message for i in work.result.issues}
        for issue in issues:
            if issue.message not in self._reported_issues and issue.message not in noted:
                work.result.issues.append(issue)
                noted.add(issue.message)

    def _commit(self, work: _Poll) -> None:
        self._state = state = work.state
        for ticket_id, trail in work.trails.items():
            if trail is None:
                self._trails.pop(ticket_id, None)
            else:
                self._trails[ticket_id] = trail
        self._reported_issues.update(i.message for i in work.result.issues)
        if state.checkpoint is None:
            return
        horizon = state.checkpoint[0] - self.overlap - timedelta(seconds=1)
        state.window = {k: v for k, v in state.window.items() if v >= horizon}
        for ticket_id in [
            k
            for k, t in self._trails.items()
            if t.done and (t.last_updated is None or t.last_updated < horizon)
        ]:
            del self._trails[ticket_id]


def encode_ranges(ids: Iterable[int]) -> str:
    """``{1, 2, 3, 7}`` -> ``"1-3,7"``."""
    parts: list[str] = []
    ordered = sorted(set(ids))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def decode_ranges(text: str) -> set[int]:
    ids: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        ids.update(range(int(low), int(high or low) + 1))
    return ids


def _after(position: Position) -> str:
    """TicketSQL for the tickets after ``position`` in the walk's order."""
    at, ticket_id = ticketsql_time(position[0]), position[1]
    if ticket_id <= 0:
        return f"LastUpdated >= {at}"
    return f"(LastUpdated > {at} OR (LastUpdated >= {at} AND id > {ticket_id}))"


def _position_json(position: Position | None) -> dict[str, Any] | None:
    return None if position is None else {"at": _iso(position[0]), "id": position[1]}


def _position(value: object) -> Position | None:
    if not isinstance(value, dict):
        return None
    at = parse_rt_time(value.get("at"))
    return None if at is None else (at, int(value.get("id") or 0))


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
