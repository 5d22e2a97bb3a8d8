"""``ZendeskSource``: a Zendesk account, synced incrementally into TicketEvents.

Each poll:

1. Reads the cursor-based incremental ticket export from the saved ``after_cursor`` (the first
   run starts at now − 5 min; a cursor ``{"start_time": <epoch>}`` backfills from that instant)
   until ``end_of_stream`` — at most a few pages a poll. An unchanged account costs this one
   request.
2. When tickets changed, reads the incremental ticket event export (audits with their comments)
   from the last processed instant minus ``overlap`` up to the newest change in that batch, and
   maps each changed ticket's audits to events. Audits of tickets that are not in the batch yet
   (changed again in the last minute) wait in memory until their ticket comes. A ticket first
   seen that was created before the event stream's coverage gets its history from its own
   audits (one request each, at most ``AUDIT_FETCHES_PER_POLL`` a poll).
3. Every ``reconcile_every``, once the export is caught up: lists the open tickets
   (``search/export``, ``status<solved``) to pick up tickets never seen (history from their
   audits) and updates that were lost, then looks up known tickets missing from that list with
   ``tickets/show_many``: a ticket gone is closed as ``deleted``, one closed by a merge as
   ``merged``.

Both exports hide the last minute and allow 10 requests a minute: incremental requests wait for
a slot of that budget, and one poll makes at most ``INCREMENTAL_REQUESTS_PER_POLL``; whatever is
left is picked up by the next poll (``more=True``).

The cursor holds the export's ``after_cursor``, the event stream position and the known open
tickets with their status. It moves only past what was processed: a poll that fails changes
nothing, and a batch is committed only once all its tickets are out.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from sladaemon.config.models import ZendeskSourceConfig
from sladaemon.errors import RowIssue
from sladaemon.logs import get_logger
from sladaemon.model import StatusCategory, TicketEvent
from sladaemon.sources.base import PollResult, SourceError
from sladaemon.sources.channels import ChannelMap
from sladaemon.sources.people import person_identity
from sladaemon.sources.zendesk.client import ZendeskClient
from sladaemon.sources.zendesk.mapping import (
    DEFAULT_CHANNELS,
    DEFAULT_STATUSES,
    Directory,
    TicketMapper,
    UnmappableTicket,
    needs_role,
)
from sladaemon.sources.zendesk.payloads import (
    Audit,
    Named,
    Ticket,
    TicketExportPage,
    User,
)
from sladaemon.sources.zendesk.state import (
    ExportBatch,
    KnownTicket,
    Reconciliation,
    SyncPass,
    SyncState,
    int_or_none,
)
from sladaemon.statuses import StatusMap

INITIAL_LOOKBACK = timedelta(minutes=5)
EXPORT_PAGE_SIZE = 1000  # the export's own default, used unless page_size is configured
EXPORT_PAGES_PER_POLL = 3
INCREMENTAL_REQUESTS_PER_POLL = 8
AUDIT_FETCHES_PER_POLL = 100
SEARCH_PAGES_PER_POLL = 20
SOLVED_RECHECK_AFTER = timedelta(days=7)  # Zendesk closes solved tickets after 4 days by default
RECONCILE_RETRY = timedelta(minutes=5)
_ID_FIELDS = ("group_id", "assignee_id")  # audit changes naming a group or a user


class ZendeskSource:
    persistent = True

    def __init__(self, name: str, cfg: ZendeskSourceConfig, cursor: object = None) -> None:
        self.name = name
        self.cfg = cfg
        self.client = ZendeskClient(cfg)
        self.statuses = StatusMap({**DEFAULT_STATUSES, **cfg.statuses})
        self.channels = ChannelMap(DEFAULT_CHANNELS, cfg.channels)
        self.directory = Directory()
        self.mapper = TicketMapper(self.statuses, self.channels, self.directory)
        self.log = get_logger("sladaemon.sources.zendesk")
        self._state = SyncState.from_cursor(cursor)
        if self._state.events_from is None:
            self._state.events_from = self._state.start_time
        self._coverage_start = self._state.events_from  # the event stream has all after this
        self._batch: ExportBatch | None = None
        self._waiting: dict[str, dict[int, Audit]] = {}  # audits of tickets not in a batch yet
        self._emitted: dict[str, set[str]] = {}
        self._reconciliation: Reconciliation | None = None
        self._caught_up = False
        self._last_export = 0.0
        self._reconcile_failing = False
        self._reconcile_retry_at = 0.0

    # ------------------------------------------------------------------ the Source protocol

    async def poll(self, now: datetime) -> PollResult:
        if not self.client.configured:
            raise SourceError(
                f"source {self.name}: no API token (token or token_file)", retryable=False
            )
        state = self._state
        if state.export is None and state.start_time is None:
            state.start_time = int((now - INITIAL_LOOKBACK).timestamp())
        if state.events_from is None:
            state.events_from = self._coverage_start = state.start_time
        work = SyncPass(state.known, self._reconciliation)
        more = False
        work.caught_up = self._caught_up and self._batch is None
        if self._batch is not None or self._export_due():
            more = await self._sync_export(work)
        if work.caught_up:
            if work.reconciliation is None and self._reconcile_due(now):
                work.reconciliation = Reconciliation(started_at=now)
            if work.reconciliation is not None:
                more = await self._reconcile_safely(work, now) or more
        self._commit(work)
        return PollResult(
            events=work.events,
            issues=work.issues,
            cursor=self.cursor(),
            unknown_statuses=set(self.statuses.unknown),
            more=more,
            remaining=self._remaining() if more else None,
        )

    @property
    def requests(self) -> int:
        """HTTP requests made so far."""
        return self.client.requests

    async def close(self) -> None:
        await self.client.close()

    def _remaining(self) -> int | None:
        """Tickets known to be still waiting: the rest of the export's last batch, and the open
        tickets a reconciliation listed and has not loaded yet. None while the export has pages
        left or a reconciliation is still listing (neither tells a count)."""
        batch = self._batch
        if (batch is None and not self._caught_up) or (batch and not batch.end_of_stream):
            return None
        waiting = len(batch.tickets) if batch is not None else 0
        run = self._reconciliation
        if run is not None:
            if not run.listed:
                return None
            waiting += len(run.backlog)
        return waiting

    def cursor(self) -> dict[str, Any]:
        """Where the next poll (or the next run) resumes: the state, with the event stream
        position moved back to the oldest audit still waiting for a known ticket."""
        events_from = self._state.events_from
        for ticket_id, audits in self._waiting.items():
            if ticket_id in self._state.known:
                for audit in audits.values():
                    if audit.created_at is not None:
                        at = int(audit.created_at.timestamp())
                        events_from = at if events_from is None else min(events_from, at)
        return replace(self._state, events_from=events_from).to_cursor()

    # ------------------------------------------------------------------ the ticket export

    def _export_due(self) -> bool:
        """Always, except between the polls of a reconciliation (``more``), at most once per
        ``poll_interval``."""
        if self._reconciliation is None:
            return True
        return time.monotonic() - self._last_export >= self.cfg.poll_interval.total_seconds()

    async def _sync_export(self, work: SyncPass) -> bool:
        """Read and process the export; True when more is waiting."""
        work.caught_up = False
        if self._batch is None:
            self._batch = await self._read_export(work)
            self._last_export = time.monotonic()
        batch = self._batch
        if batch.tickets:
            if not batch.events_read:
                await self._read_events(batch, work)
                if not batch.events_read:
                    return True
            await self._process_batch(batch, work)
            if len(work.processed) < len(batch.tickets):
                return True
        work.caught_up = batch.end_of_stream
        return not batch.end_of_stream

    async def _read_export(self, work: SyncPass) -> ExportBatch:
        tickets: dict[str, Ticket] = {}
        issues: list[RowIssue] = []
        cursor = self._state.export
        pages = 0
        while True:
            page = await self.client.ticket_export(
                cursor=cursor,
                start_time=None if cursor else self._state.start_time,
                per_page=self._export_page_size(),
            )
            work.incremental_requests += 1
            pages += 1
            self._absorb(page)
            for raw in page.tickets:
                ticket = _parse_ticket(raw, issues)
                if ticket is None:
                    continue
                ticket_id = str(ticket.id)
                earlier = tickets.pop(ticket_id, None)
                if earlier is not None and _epoch(earlier.changed_at) > _epoch(ticket.changed_at):
                    ticket = earlier
                tickets[ticket_id] = ticket
            cursor = page.after_cursor or cursor
            end = page.end_of_stream is not False
            if (
                end
                or pages >= EXPORT_PAGES_PER_POLL
                or work.incremental_requests >= INCREMENTAL_REQUESTS_PER_POLL - 1
            ):
                break
        window_end = self._state.events_from
        assert window_end is not None
        newest = max((_epoch(t.changed_at) for t in tickets.values()), default=window_end)
        overlap = int(self.cfg.overlap.total_seconds())
        return ExportBatch(
            tickets=tickets,
            issues=issues,
            after_cursor=cursor,
            end_of_stream=end,
            newest=newest,
            events_next=max(0, window_end - overlap),
        )

    async def _read_events(self, batch: ExportBatch, work: SyncPass) -> None:
        """Read the ticket event export up to the batch's newest change. Audits of tickets in
        the batch, and newer audits of other tickets, wait in memory until their ticket is
        processed; re-read older audits of other tickets are already done."""
        window_end = self._state.events_from
        assert window_end is not None
        while not batch.events_read:
            if work.incremental_requests >= INCREMENTAL_REQUESTS_PER_POLL:
                return
            start = batch.events_next
            page = await self.client.ticket_events(start)
            work.incremental_requests += 1
            for raw in page.ticket_events:
                audit = _parse_audit(raw, batch.issues)
                if audit is None or audit.created_at is None:
                    continue
                ticket_id = str(audit.ticket_id)
                if ticket_id in batch.tickets or audit.created_at.timestamp() > window_end:
                    self._waiting.setdefault(ticket_id, {})[audit.id] = audit
            end = page.end_time
            if page.end_of_stream is not False or end is None or end > batch.newest:
                batch.events_read = True
            else:
                batch.events_next = end if end > start else start + 1

    async def _process_batch(self, batch: ExportBatch, work: SyncPass) -> None:
        chosen: list[Ticket] = []
        for ticket_id, ticket in batch.tickets.items():
            first_seen = ticket_id not in work.known
            if first_seen and ticket_id not in batch.audits and self._needs_own_audits(ticket):
                if work.audit_fetches >= AUDIT_FETCHES_PER_POLL:
                    break
                batch.audits[ticket_id] = await self._fetch_audits(ticket, work)
            chosen.append(ticket)
        await self._complete_directory(work, chosen, batch.audits)
        for ticket in chosen:
            ticket_id = str(ticket.id)
            if ticket_id in batch.audits:
                fetched = batch.audits[ticket_id]
                if fetched is None:  # gone meanwhile
                    work.consumed.add(ticket_id)
                else:
                    self._apply(ticket, work, own_audits=fetched)
            else:
                self._apply(ticket, work)
            work.processed.append(ticket_id)
        if len(work.processed) == len(batch.tickets):
            work.issues.extend(batch.issues)

    def _before_coverage(self, ticket: Ticket) -> bool:
        """Whether the ticket's history began before the event stream's coverage."""
        assert self._coverage_start is not None
        return ticket.created_at is None or ticket.created_at.timestamp() <= self._coverage_start

    def _needs_own_audits(self, ticket: Ticket) -> bool:
        """A ticket first seen whose history began before the event stream's coverage, and
        which is still active (done ones are not worth the request)."""
        if not self._before_coverage(ticket):
            return False
        category = self.statuses(ticket.status) if ticket.status else None
        return category is None or not category.is_done

    # ------------------------------------------------------------------ one ticket

    def _apply(self, ticket: Ticket, work: SyncPass, own_audits: list[Audit] | None = None) -> None:
        """Turn one ticket snapshot (and its audits) into events, into ``work``."""
        ticket_id = str(ticket.id)
        known = work.known.get(ticket_id)
        waiting = list(self._waiting.get(ticket_id, {}).values())
        work.consumed.add(ticket_id)
        changed = _epoch(ticket.updated_at or ticket.changed_at)
        try:
            if known is None:
                category = self.statuses(ticket.status) if ticket.status else None
                if category is StatusCategory.CLOSED or not self._watched(ticket):
                    return
                if own_audits is None and self._before_coverage(ticket):
                    return  # already solved when first seen: not worth its audits
                audits = own_audits if own_audits is not None else waiting
                mapped = self.mapper.first_seen(ticket, audits)
                correct = True
            else:
                mapped = self.mapper.update(ticket, waiting, known.status)
                correct = changed >= known.updated
            last_at = mapped.events[-1].at if mapped.events else None
            settled = self.mapper.settle(ticket, mapped.status, correct=correct, not_before=last_at)
        except UnmappableTicket as exc:
            work.issues.append(RowIssue(0, f"ticket {ticket_id}: {exc}"))
            return
        self._emit(work, ticket_id, [*mapped.events, *settled.events])
        status = settled.status
        work.known[ticket_id] = KnownTicket(status, max(changed, known.updated if known else 0))
        if status and self.statuses(status) is StatusCategory.CLOSED:
            work.known.pop(ticket_id, None)
            work.closed.add(ticket_id)

    def _apply_snapshot(self, ticket: Ticket, work: SyncPass) -> None:
        """A snapshot of a known ticket without its audits (reconciliation): correct its status
        when it is newer than what is known yet old enough that the export has passed it — a
        lost update. Newer changes are left to the export, which brings their audits."""
        ticket_id = str(ticket.id)
        known = work.known.get(ticket_id)
        changed = _epoch(ticket.updated_at or ticket.changed_at)
        window_end = self._state.events_from
        assert window_end is not None
        if known is None or changed <= known.updated or changed > window_end:
            return
        settled = self.mapper.settle(ticket, known.status, correct=True, not_before=None)
        self._emit(work, ticket_id, settled.events)
        work.known[ticket_id] = KnownTicket(settled.status, changed)
        if settled.status and self.statuses(settled.status) is StatusCategory.CLOSED:
            work.known.pop(ticket_id, None)
            work.closed.add(ticket_id)

    def _emit(self, work: SyncPass, ticket_id: str, events: list[TicketEvent]) -> None:
        before = self._emitted.get(ticket_id, set())
        fresh = work.emitted.setdefault(ticket_id, set())
        for event in events:
            if event.event_id and (event.event_id in before or event.event_id in fresh):
                continue
            fresh.add(event.event_id)
            work.events.append(event)

    def _watched(self, ticket: Ticket) -> bool:
        if not self.cfg.queues:
            return True
        names = {q.strip().lower() for q in self.cfg.queues}
        queue = self.mapper.queue(ticket.group_id)
        return queue is not None and (queue.lower() in names or str(ticket.group_id) in names)

    # ------------------------------------------------------------------ reconciliation

    def _reconcile_due(self, now: datetime) -> bool:
        if now.timestamp() < self._reconcile_retry_at:
            return False
        reconciled_at = self._state.reconciled_at
        if reconciled_at is None:
            return True
        return now.timestamp() - reconciled_at >= self.cfg.reconcile_every.total_seconds()

    async def _reconcile_safely(self, work: SyncPass, now: datetime) -> bool:
        """A reconciliation step whose failure does not hold up the export: what it did so far
        stands, the rest starts over a few minutes later."""
        try:
            more = await self._reconcile(work, now)
        except SourceError as exc:
            work.reconciliation = None
            self._reconcile_retry_at = (now + RECONCILE_RETRY).timestamp()
            if not self._reconcile_failing:
                self.log.warning("reconciliation_failed", source=self.name, error=str(exc))
                self._reconcile_failing = True
            return False
        if self._reconcile_failing and not more:
            self.log.info("reconciliation_recovered", source=self.name)
            self._reconcile_failing = False
        return more

    async def _reconcile(self, work: SyncPass, now: datetime) -> bool:
        """One step of the reconciliation; True while it is not finished."""
        run = work.reconciliation
        assert run is not None
        if not await self._list_open_tickets(work, run):
            return True
        if not run.checked:
            await self._look_up_unlisted(work, run, now)
            run.checked = True
        if not await self._read_backlog(work, run):
            return True
        work.reconciliation = None
        work.reconciled_at = run.started_at.timestamp()
        return False

    async def _list_open_tickets(self, work: SyncPass, run: Reconciliation) -> bool:
        """Go on listing the open tickets, at most ``SEARCH_PAGES_PER_POLL`` pages: known ones
        correct lost updates, unknown active ones join the backlog. True once listed."""
        pages = 0
        while not run.listed:
            if pages >= SEARCH_PAGES_PER_POLL:
                return False
            page = await self.client.open_tickets(run.search_after, self.cfg.page_size)
            pages += 1
            found = _search_tickets(page.results, work.issues)
            await self._complete_groups(work, {t.group_id for t in found if t.group_id})
            self._note_listed(work, run, found)
            run.search_after = page.next_request()[0]
            run.listed = run.search_after is None
        return True

    def _note_listed(self, work: SyncPass, run: Reconciliation, found: list[Ticket]) -> None:
        """Take in one page of open tickets: a known one may bring a lost update, an unknown
        one that is watched and active waits in the backlog for its audits."""
        waiting = {str(t.id) for t in run.backlog}
        for ticket in found:
            ticket_id = str(ticket.id)
            run.seen.add(ticket_id)
            if ticket_id in work.known:
                self._apply_snapshot(ticket, work)
            elif ticket_id not in waiting and self._watched(ticket):
                category = self.statuses(ticket.status) if ticket.status else None
                if category is None or not category.is_done:
                    run.backlog.append(ticket)

    async def _look_up_unlisted(self, work: SyncPass, run: Reconciliation, now: datetime) -> None:
        """Look up the known tickets the listing did not show (see ``_recheck``): one gone is
        closed as vanished, one still there is corrected from its snapshot."""
        missing = [tid for tid, known in work.known.items() if self._recheck(tid, known, run, now)]
        snapshots: dict[str, Ticket] = {}
        for raw in await self.client.tickets(int(tid) for tid in missing):
            ticket = _parse_ticket(raw, work.issues)
            if ticket is not None:
                snapshots[str(ticket.id)] = ticket
        for ticket_id in missing:
            snapshot = snapshots.get(ticket_id)
            if snapshot is None:
                self._emit(work, ticket_id, [self.mapper.vanished(ticket_id, now)])
                work.known.pop(ticket_id, None)
                work.closed.add(ticket_id)
            else:
                self._apply_snapshot(snapshot, work)

    async def _read_backlog(self, work: SyncPass, run: Reconciliation) -> bool:
        """Load the listed tickets never seen, with their history from their own audits, at
        most ``AUDIT_FETCHES_PER_POLL`` a poll. True once the backlog is empty."""
        while run.backlog:
            ticket = run.backlog[0]
            ticket_id = str(ticket.id)
            if ticket_id not in work.known:
                if work.audit_fetches >= AUDIT_FETCHES_PER_POLL:
                    return False
                audits = await self._fetch_audits(ticket, work)
                if audits is not None:
                    await self._complete_directory(work, [ticket], {ticket_id: audits})
                    self._apply(ticket, work, own_audits=audits)
            run.backlog.pop(0)
        return True

    def _recheck(
        self, ticket_id: str, known: KnownTicket, run: Reconciliation, now: datetime
    ) -> bool:
        """Whether a known ticket needs looking up: active but not among the open tickets, or
        solved for longer than Zendesk usually takes to close it."""
        if ticket_id in run.seen:
            return False
        category = self.statuses(known.status) if known.status else None
        if category is StatusCategory.SOLVED:
            return now.timestamp() - known.updated > SOLVED_RECHECK_AFTER.total_seconds()
        return True

    # ------------------------------------------------------------------ lookups

    async def _fetch_audits(self, ticket: Ticket, work: SyncPass) -> list[Audit] | None:
        """All audits of one ticket; None when the ticket no longer exists."""
        work.audit_fetches += 1
        try:
            raws = await self.client.ticket_audits(ticket.id)
        except SourceError as exc:
            if exc.status == 404:
                return None
            raise
        audits = []
        for raw in raws:
            if isinstance(raw, dict):
                raw.setdefault("ticket_id", ticket.id)
            audit = _parse_audit(raw, work.issues)
            if audit is not None:
                audits.append(audit)
        return audits

    async def _complete_directory(
        self,
        work: SyncPass,
        tickets: list[Ticket],
        own_audits: dict[str, list[Audit] | None],
    ) -> None:
        """Fetch the group names, user roles and assignee emails the mapping of ``tickets``
        needs (the export's side-loaded users usually hold the assignees already)."""
        groups = {t.group_id for t in tickets if t.group_id is not None}
        assignees = {t.assignee_id for t in tickets if t.assignee_id is not None}
        authors: set[int] = set()
        for ticket in tickets:
            ticket_id = str(ticket.id)
            audits = own_audits.get(ticket_id) or list(self._waiting.get(ticket_id, {}).values())
            for audit in audits:
                for event in audit.events:
                    if event.kind in ("Create", "Change") and event.field_name in _ID_FIELDS:
                        into = groups if event.field_name == "group_id" else assignees
                        for value in (event.value, event.previous_value):
                            found = int_or_none(value)
                            if found is not None:
                                into.add(found)
                    author = needs_role(event, audit, ticket.requester_id)
                    if author is not None and author not in self.directory.roles:
                        authors.add(author)
        await self._complete_groups(work, groups)
        unknown = {a for a in assignees if a not in self.directory.people}
        if authors or unknown:
            for raw in await self.client.users(authors | unknown):
                self._absorb_user(raw)
            for author in authors:
                self.directory.roles.setdefault(author, "")  # unknown: counted as an agent
            for assignee in unknown - self.directory.people.keys():
                self.directory.people.put(assignee, str(assignee))  # gone: known by its id

    async def _complete_groups(self, work: SyncPass, groups: set[int]) -> None:
        """Load the group list (once a poll) when a group's name is not known yet."""
        if groups - self.directory.groups.keys() and not work.groups_fetched:
            work.groups_fetched = True
            for raw in await self.client.groups():
                self._absorb_named(raw, self.directory.groups)

    def _absorb(self, page: TicketExportPage) -> None:
        for raw in page.users:
            self._absorb_user(raw)
        for raw in page.groups:
            self._absorb_named(raw, self.directory.groups)
        for raw in page.organizations:
            self._absorb_named(raw, self.directory.organizations)

    def _absorb_user(self, raw: Any) -> None:
        try:
            user = User.model_validate(raw)
        except ValidationError:
            return
        self.directory.roles[user.id] = (user.role or "").lower()
        identity = person_identity(user.email, user.name)
        if identity:
            self.directory.people.put(user.id, identity)

    def _absorb_named(self, raw: Any, into: dict[int, str]) -> None:
        try:
            item = Named.model_validate(raw)
        except ValidationError:
            return
        if item.name:
            into[item.id] = item.name

    def _export_page_size(self) -> int:
        return self.cfg.page_size if "page_size" in self.cfg.model_fields_set else EXPORT_PAGE_SIZE

    # ------------------------------------------------------------------ commit

    def _commit(self, work: SyncPass) -> None:
        state = self._state
        state.known = work.known
        for ticket_id, ids in work.emitted.items():
            if ids:
                self._emitted.setdefault(ticket_id, set()).update(ids)
        for ticket_id in work.consumed | work.closed:
            self._waiting.pop(ticket_id, None)
        for ticket_id in work.closed:
            self._emitted.pop(ticket_id, None)
        batch = self._batch
        if batch is not None and (work.processed or not batch.tickets):
            for ticket_id in work.processed:
                del batch.tickets[ticket_id]
            if not batch.tickets:
                state.export = batch.after_cursor
                assert state.events_from is not None
                state.events_from = max(state.events_from, batch.newest)
                self._caught_up = work.caught_up
                self._batch = None
                if not work.processed:
                    work.issues.extend(batch.issues)
        self._reconciliation = work.reconciliation
        if work.reconciled_at is not None:
            state.reconciled_at = work.reconciled_at
        self.channels.log_unknown(self.log, self.name)


def _parse_ticket(raw: Any, issues: list[RowIssue]) -> Ticket | None:
    try:
        return Ticket.model_validate(raw)
    except ValidationError as exc:
        issues.append(RowIssue(0, f"ticket {_raw_id(raw)}: {_reason(exc)}"))
        return None


def _search_tickets(results: list[Any], issues: list[RowIssue]) -> list[Ticket]:
    """The tickets among search results (other result types are passed over)."""
    found: list[Ticket] = []
    for raw in results:
        if isinstance(raw, dict) and raw.get("result_type") not in (None, "ticket"):
            continue
        ticket = _parse_ticket(raw, issues)
        if ticket is not None:
            found.append(ticket)
    return found


def _parse_audit(raw: Any, issues: list[RowIssue]) -> Audit | None:
    try:
        audit = Audit.model_validate(raw)
    except ValidationError as exc:
        ticket = raw.get("ticket_id", "?") if isinstance(raw, dict) else "?"
        issues.append(RowIssue(0, f"ticket {ticket}: audit {_raw_id(raw)}: {_reason(exc)}"))
        return None
    if audit.ticket_id is None or audit.created_at is None:
        missing = "ticket_id" if audit.ticket_id is None else "created_at"
        issues.append(
            RowIssue(0, f"ticket {audit.ticket_id or '?'}: audit {audit.id}: no {missing}")
        )
        return None
    return audit


def _raw_id(raw: Any) -> str:
    if isinstance(raw, dict) and raw.get("id") is not None:
        return str(raw["id"])
    return "?"


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _epoch(at: datetime | None) -> int:
    return int(at.timestamp()) if at is not None else 0
