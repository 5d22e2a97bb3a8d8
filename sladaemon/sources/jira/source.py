"""Jira Service Management Cloud as a polled source.

JQL has no change cursor, so the checkpoint is a server value: the largest ``updated`` of the
issues read in a finished pass. Each poll searches
``<filter> AND updated >= "<checkpoint - overlap>" ORDER BY updated ASC`` (minute resolution, in
the API user's time zone from ``/rest/api/3/myself``; at least 5 minutes of overlap for the
minute resolution and the search index lag) and follows ``nextPageToken``. Issues whose
``updated`` was already processed are skipped, so an unchanged helpdesk costs one search. The
first pass reads the open requests (``statusCategory != Done``); passes longer than a few pages
continue in the next poll (``more=True``) from the last ``updated`` read.

Comments, the recent changelog, the request type, the SLA fields and the channel property come
with the search results; a changelog or comment list the search cut short is completed in bulk
(``/changelog/bulkfetch``) or, for comments, per issue. Every ``reconcile_every`` the poll
re-reads the site catalog, lists the ids of all open requests, fetches by id the tracked open
tickets missing from it (absent: ``closed`` "deleted"; still open elsewhere or under another
key: ``closed`` "moved"; Done: their history) and the open ones never seen, and widens the
change window to ``reconcile_every`` to catch updates the index showed late.

A failing request (after HelpdeskHttp's retries) makes the poll raise; nothing of that poll is
kept, so the next one starts from the same place.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from sladaemon.config.models import JiraSourceConfig
from sladaemon.errors import RowIssue
from sladaemon.logs import get_logger
from sladaemon.sources.base import PollResult, SourceError
from sladaemon.sources.channels import ChannelMap
from sladaemon.sources.jira.client import JiraClient, jql_string, jql_time
from sladaemon.sources.jira.mapping import (
    ASSIGNEE_FIELD,
    DEFAULT_CHANNELS,
    PRIORITY_FIELD,
    STATUS_FIELD,
    JiraStatuses,
    MappingContext,
    SiteCatalog,
    TicketMemory,
    account_ids,
    gone_event,
    map_issue,
    sla_metric,
    to_ms,
    user_identity,
)
from sladaemon.sources.jira.payloads import (
    ChangeHistory,
    CommentPayload,
    IssuePayload,
    SlaValue,
    describe_error,
)
from sladaemon.sources.people import BoundedCache

ISSUE_FIELDS = (
    "summary",
    "status",
    "priority",
    "created",
    "updated",
    "reporter",
    "assignee",
    "project",
    "issuetype",
    "comment",
)
CHANNEL_PROPERTY = "request.channel.type"
PAGES_PER_POLL = 5
MIN_OVERLAP = timedelta(minutes=5)
KEEP_DONE = timedelta(days=7)  # Done tickets are remembered this long (late comments)
CURSOR_VERSION = 1
MAX_REMEMBERED_SKIPS = 10_000
REQUEST_TYPE_SCHEMA = "sd-customerrequesttype"
SLA_SCHEMA = "sd-servicelevelagreement"

_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)

log = get_logger("sladaemon.sources.jira")


@dataclass
class SyncState:
    """Where polling stands; saved as the cursor."""

    catalog: SiteCatalog | None = None
    initial: bool = True  # the first pass over the open requests is not finished
    initial_started_ms: int | None = None  # server time when that pass began
    checkpoint_ms: int | None = None  # every change with an earlier `updated` was read
    resume_ms: int | None = None  # a pass cut short continues from this `updated`
    reconciled_at: datetime | None = None
    tickets: dict[str, TicketMemory] = field(default_factory=dict)

    def to_cursor(self) -> dict[str, Any]:
        return {
            "v": CURSOR_VERSION,
            "catalog": self.catalog.to_json() if self.catalog else None,
            "initial": self.initial,
            "initial_started_ms": self.initial_started_ms,
            "checkpoint_ms": self.checkpoint_ms,
            "resume_ms": self.resume_ms,
            "reconciled_at": self.reconciled_at.isoformat() if self.reconciled_at else None,
            "tickets": {key: memory.to_json() for key, memory in self.tickets.items()},
        }

    @classmethod
    def from_cursor(cls, cursor: object) -> Self:
        """The state a cursor describes; a missing or unreadable cursor starts afresh."""
        if not isinstance(cursor, dict) or cursor.get("v") != CURSOR_VERSION:
            return cls()
        try:
            tickets = {}
            for key, data in (cursor.get("tickets") or {}).items():
                memory = TicketMemory.from_json(data)
                if memory is not None:
                    tickets[str(key)] = memory
            state = cls(
                catalog=SiteCatalog.from_json(cursor.get("catalog")),
                initial=bool(cursor.get("initial", True)),
                initial_started_ms=_int_or_none(cursor.get("initial_started_ms")),
                checkpoint_ms=_int_or_none(cursor.get("checkpoint_ms")),
                resume_ms=_int_or_none(cursor.get("resume_ms")),
                reconciled_at=_time_or_none(cursor.get("reconciled_at")),
                tickets=tickets,
            )
        except (AttributeError, TypeError, ValueError):
            return cls()
        if not state.initial and state.checkpoint_ms is None:
            state.initial = True
        return state


class _TicketChanges:
    """Ticket memories changed by a poll, kept apart until the poll succeeds."""

    def __init__(self, base: dict[str, TicketMemory]) -> None:
        self.base = base
        self.changed: dict[str, TicketMemory | None] = {}
        self.skipped_rows: set[str] = set()  # unreadable items reported by this poll
        self._by_id: dict[str, str] | None = None

    def get(self, key: str) -> TicketMemory | None:
        return self.changed[key] if key in self.changed else self.base.get(key)

    def items(self) -> Iterator[tuple[str, TicketMemory]]:
        for key, memory in self.base.items():
            if key not in self.changed:
                yield key, memory
        for key, changed in self.changed.items():
            if changed is not None:
                yield key, changed

    def key_of(self, issue_id: str) -> str | None:
        if self._by_id is None:
            self._by_id = {memory.issue_id: key for key, memory in self.items()}
        return self._by_id.get(issue_id)

    def remember(self, key: str, memory: TicketMemory) -> None:
        self.changed[key] = memory
        if self._by_id is not None:
            self._by_id[memory.issue_id] = key

    def forget(self, key: str) -> None:
        memory = self.get(key)
        self.changed[key] = None
        if memory is not None and self._by_id is not None:
            self._by_id.pop(memory.issue_id, None)

    def apply(self) -> None:
        for key, memory in self.changed.items():
            if memory is None:
                self.base.pop(key, None)
            else:
                self.base[key] = memory


class JiraSource:
    def __init__(self, name: str, cfg: JiraSourceConfig, cursor: object = None) -> None:
        self.name = name
        self.cfg = cfg
        self.persistent = True
        self.client = JiraClient(cfg)
        self.statuses = JiraStatuses(cfg.statuses)
        self.channels = ChannelMap(DEFAULT_CHANNELS, cfg.channels)
        self._people: BoundedCache[str] = BoundedCache()  # account id -> email, else name
        self.state = SyncState.from_cursor(cursor)
        self.overlap = max(cfg.overlap, MIN_OVERLAP)
        self._filters = _filters(cfg)
        self._reported_zones: set[str] = set()
        self._skipped_rows: set[str] = set()

    @property
    def requests(self) -> int:
        """HTTP requests made so far."""
        return self.client.requests

    async def close(self) -> None:
        await self.client.close()

    async def poll(self, now: datetime) -> PollResult:
        if not self.client.has_credentials:
            raise SourceError(
                f"jira source {self.name}: no API token (set email and token or token_file)",
                retryable=False,
            )
        state = self.state
        result = PollResult()
        changes = _TicketChanges(state.tickets)
        reconcile = self._reconcile_due(now)
        catalog = state.catalog
        if catalog is None or reconcile:
            catalog = await self._load_catalog()
        context = MappingContext(catalog, self.statuses, self.channels, self._people)
        progress = _Progress.of(state)
        if reconcile:
            await self._reconcile(context, changes, result, now)
            progress.reconciled_at = now
        result.more = await self._read_changes(context, changes, result, progress, now, reconcile)

        dirty = bool(changes.changed) or catalog != state.catalog or progress.differs(state)
        changes.apply()
        if len(self._skipped_rows) > MAX_REMEMBERED_SKIPS:
            self._skipped_rows.clear()
        self._skipped_rows |= changes.skipped_rows
        state.catalog = catalog
        progress.store(state)
        result.cursor = state.to_cursor() if dirty else None
        result.unknown_statuses = set(self.statuses.unknown)
        self.channels.log_unknown(log, self.name)
        return result

    # ------------------------------------------------------------------ reading changes

    async def _read_changes(
        self,
        context: MappingContext,
        changes: _TicketChanges,
        result: PollResult,
        progress: _Progress,
        now: datetime,
        widen: bool,
    ) -> bool:
        """Read the next pages of the current pass; True when the pass was cut short."""
        zone = self._zone(context.catalog)
        since_ms: int | None
        if progress.initial or progress.resume_ms is not None:
            since_ms = progress.resume_ms  # the first pass starts without a lower bound
        else:
            window = max(self.overlap, self.cfg.reconcile_every) if widen else self.overlap
            assert progress.checkpoint_ms is not None
            since_ms = progress.checkpoint_ms - int(window.total_seconds() * 1000)
        jql = self._jql(since_ms, zone, open_only=progress.initial)
        since_literal = jql_time(_from_ms(since_ms), zone) if since_ms is not None else None
        token: str | None = None
        newest: int | None = None
        pages = 0
        while True:
            page, answered_at = await self.client.search(
                jql,
                fields=self._fields(context.catalog),
                max_results=self.cfg.page_size,
                token=token,
                expand="changelog",
                properties=[CHANNEL_PROPERTY],
            )
            if progress.initial and progress.initial_started_ms is None:
                progress.initial_started_ms = to_ms(answered_at or now)
            newest = _max(newest, await self._take(page.issues, context, changes, result))
            pages += 1
            if page.last:
                break
            token = page.next_page_token
            moved_on = newest is not None and (
                since_literal is None or jql_time(_from_ms(newest), zone) != since_literal
            )
            if pages >= PAGES_PER_POLL and moved_on:
                progress.resume_ms = newest
                return True
        if progress.initial:
            progress.initial = False
            progress.checkpoint_ms = progress.initial_started_ms
            progress.reconciled_at = now  # the first pass read every open request
        else:
            progress.checkpoint_ms = _max(progress.checkpoint_ms, newest)
        progress.resume_ms = None
        return False

    async def _take(
        self,
        raw_issues: Iterable[Any],
        context: MappingContext,
        changes: _TicketChanges,
        result: PollResult,
    ) -> int | None:
        """Map the issues whose ``updated`` is new; returns the largest ``updated`` seen."""
        newest: int | None = None
        fresh: list[tuple[IssuePayload, TicketMemory | None]] = []
        for raw in raw_issues:
            try:
                issue = IssuePayload.model_validate(raw)
                updated_ms = to_ms(issue.updated_at)
            except ValidationError as exc:
                self._skip(raw, describe_error(exc), changes, result)
                continue
            except ValueError as exc:
                self._skip(raw, str(exc), changes, result)
                continue
            newest = _max(newest, updated_ms)
            previous = changes.get(issue.key)
            if previous is not None and previous.updated_ms == updated_ms:
                continue
            if previous is None:
                old_key = changes.key_of(issue.id)
                if old_key is not None and old_key != issue.key:
                    result.events.append(gone_event(old_key, issue.updated_at, "moved"))
                    changes.forget(old_key)
            fresh.append((issue, previous))
        if not fresh:
            return newest

        histories = await self._complete_changelogs(fresh, context.catalog)
        await self._learn_assignees(fresh, histories)
        comments = await self._complete_comments(fresh)
        slas = await self._request_slas(fresh, context.catalog)
        for issue, previous in fresh:
            try:
                mapped = map_issue(
                    issue,
                    context,
                    previous=previous,
                    histories=histories.get(issue.id),
                    comments=comments.get(issue.key),
                    slas=slas.get(issue.key) or issue.slas(list(context.catalog.sla_fields)),
                )
            except ValueError as exc:
                self._skip(issue.model_dump(mode="json"), str(exc), changes, result)
                continue
            result.events.extend(mapped.events)
            changes.remember(issue.key, mapped.memory)
        return newest

    def _skip(self, raw: object, reason: str, changes: _TicketChanges, result: PollResult) -> None:
        """Report an unreadable item once, not at every poll whose window holds it."""
        mark = hashlib.sha1(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
        if mark in self._skipped_rows or mark in changes.skipped_rows:
            return
        changes.skipped_rows.add(mark)
        result.issues.append(RowIssue(0, f"ticket {_raw_key(raw)}: {reason}"))

    async def _learn_assignees(
        self,
        fresh: list[tuple[IssuePayload, TicketMemory | None]],
        histories: dict[str, list[ChangeHistory]],
    ) -> None:
        """Emails of the accounts assignee changes name: current assignees tell their own;
        the others are read once each (``GET /user``), named by display name when hidden."""
        wanted: set[str] = set()
        for issue, _ in fresh:
            assignee = issue.fields.assignee
            if assignee is not None and assignee.account_id:
                self._people.put(assignee.account_id, user_identity(assignee))
            embedded = issue.changelog.histories if issue.changelog else []
            wanted |= account_ids(histories.get(issue.id) or embedded)
        for account_id in sorted(wanted - self._people.keys()):
            user = await self.client.user(account_id)
            # "" (gone): the changelog's display name stands in, and it is not asked again
            self._people.put(account_id, user_identity(user) if user is not None else "")

    async def _complete_changelogs(
        self, fresh: list[tuple[IssuePayload, TicketMemory | None]], catalog: SiteCatalog
    ) -> dict[str, list[ChangeHistory]]:
        """Full changelogs (one bulk request per 1000 issues) for issues whose search result
        carried only the most recent part, when that part does not reach what was processed."""
        wanted = [issue.id for issue, previous in fresh if _changelog_short(issue, previous)]
        if not wanted:
            return {}
        field_ids = [STATUS_FIELD, PRIORITY_FIELD, ASSIGNEE_FIELD]
        if catalog.request_type_field:
            field_ids.append(catalog.request_type_field)
        return await self.client.changelogs(wanted, field_ids)

    async def _complete_comments(
        self, fresh: list[tuple[IssuePayload, TicketMemory | None]]
    ) -> dict[str, list[CommentPayload]]:
        """All comments of issues whose search result did not carry them all (per issue: Jira
        has no bulk comment endpoint)."""
        found: dict[str, list[CommentPayload]] = {}
        for issue, _ in fresh:
            page = issue.fields.comment
            if page is None or not page.complete:
                found[issue.key] = await self.client.comments(issue.key)
        return found

    async def _request_slas(
        self, fresh: list[tuple[IssuePayload, TicketMemory | None]], catalog: SiteCatalog
    ) -> dict[str, list[SlaValue]]:
        """SLAs from the Service Management API, only on sites whose SLA fields could not be
        found (one request per changed open request)."""
        if catalog.sla_fields:
            return {}
        found: dict[str, list[SlaValue]] = {}
        for issue, _ in fresh:
            status = issue.fields.status
            done = (
                status is not None
                and status.status_category is not None
                and (status.status_category.key == "done")
            )
            if not done and issue.request_type(catalog.request_type_field):
                found[issue.key] = await self.client.request_slas(issue.key)
        return found

    # ------------------------------------------------------------------ reconciliation

    def _reconcile_due(self, now: datetime) -> bool:
        state = self.state
        if state.initial or state.resume_ms is not None:
            return False
        last = state.reconciled_at
        return last is None or now - last >= self.cfg.reconcile_every

    async def _reconcile(
        self,
        context: MappingContext,
        changes: _TicketChanges,
        result: PollResult,
        now: datetime,
    ) -> None:
        zone = self._zone(context.catalog)
        open_ids, answered_at = await self.client.issue_ids(
            self._jql(None, zone, open_only=True, ordered=False)
        )
        at = answered_at or now
        recent_ms = to_ms(at - self.overlap)
        tracked = list(changes.items())
        known_ids = {memory.issue_id for _, memory in tracked}
        vanished = [(k, m) for k, m in tracked if not m.done and m.issue_id not in open_ids]
        unseen = sorted(open_ids - known_ids)
        if vanished or unseen:
            bulk, _ = await self.client.issues_by_id(
                [m.issue_id for _, m in vanished] + unseen,
                fields=self._fields(context.catalog),
                expand="changelog",
                properties=[CHANNEL_PROPERTY],
            )
            failed = {str(e.get("id")) for e in bulk.issue_errors if isinstance(e, dict)}
            returned = {
                str(raw["id"]): raw
                for raw in bulk.issues
                if isinstance(raw, dict) and raw.get("id") is not None
            }
            to_take = [returned[i] for i in unseen if i in returned]
            for key, memory in vanished:
                raw = returned.get(memory.issue_id)
                if raw is None:
                    if memory.issue_id not in failed:
                        result.events.append(gone_event(key, at, "deleted"))
                        changes.forget(key)
                elif str(raw.get("key") or key) != key:
                    result.events.append(gone_event(key, at, "moved"))
                    changes.forget(key)
                elif _raw_done(raw):
                    to_take.append(raw)
                elif _raw_updated_ms(raw) < recent_ms:  # not an index lag: it left the filter
                    result.events.append(gone_event(key, at, "moved"))
                    changes.forget(key)
            await self._take(to_take, context, changes, result)
        forget_before = to_ms(at - KEEP_DONE)
        for key, memory in tracked:
            if memory.done and memory.updated_ms < forget_before and changes.get(key) is memory:
                changes.forget(key)

    # ------------------------------------------------------------------ site catalog

    async def _load_catalog(self) -> SiteCatalog:
        me = await self.client.myself()
        fields = await self.client.fields()
        statuses = await self.client.statuses()
        request_type_field = next(
            (
                f.id
                for f in fields
                if f.schema_ is not None
                and (
                    f.schema_.type == REQUEST_TYPE_SCHEMA or f.schema_.custom.endswith(":vp-origin")
                )
            ),
            None,
        )
        sla_fields = tuple(
            f.id
            for f in fields
            if f.schema_ is not None and f.schema_.type == SLA_SCHEMA and sla_metric(f.name)
        )
        return SiteCatalog(
            zone=me.time_zone,
            request_type_field=request_type_field,
            sla_fields=sla_fields,
            status_categories={
                s.id: s.status_category.key
                for s in statuses
                if s.status_category is not None and s.status_category.key
            },
        )

    def _zone(self, catalog: SiteCatalog) -> ZoneInfo:
        try:
            return ZoneInfo(catalog.zone)
        except (ZoneInfoNotFoundError, ValueError):
            if catalog.zone not in self._reported_zones:
                self._reported_zones.add(catalog.zone)
                log.warning("jira_time_zone_unknown", source=self.name, zone=catalog.zone)
            return ZoneInfo("UTC")

    # ------------------------------------------------------------------ queries

    def _jql(
        self, since_ms: int | None, zone: ZoneInfo, *, open_only: bool, ordered: bool = True
    ) -> str:
        clauses = list(self._filters)
        if open_only:
            clauses.append("statusCategory != Done")
        if since_ms is not None:
            clauses.append(f'updated >= "{jql_time(_from_ms(since_ms), zone)}"')
        jql = " AND ".join(clauses)
        return f"{jql} ORDER BY updated ASC" if ordered else jql

    @staticmethod
    def _fields(catalog: SiteCatalog) -> list[str]:
        extra = [catalog.request_type_field] if catalog.request_type_field else []
        return [*ISSUE_FIELDS, *extra, *catalog.sla_fields]


@dataclass
class _Progress:
    """The scalar part of the sync state, changed by a poll and stored when it succeeds."""

    initial: bool
    initial_started_ms: int | None
    checkpoint_ms: int | None
    resume_ms: int | None
    reconciled_at: datetime | None

    @classmethod
    def of(cls, state: SyncState) -> _Progress:
        return cls(
            state.initial,
            state.initial_started_ms,
            state.checkpoint_ms,
            state.resume_ms,
            state.reconciled_at,
        )

    def differs(self, state: SyncState) -> bool:
        return self != _Progress.of(state)

    def store(self, state: SyncState) -> None:
        state.initial = self.initial
        state.initial_started_ms = self.initial_started_ms
        state.checkpoint_ms = self.checkpoint_ms
        state.resume_ms = self.resume_ms
        state.reconciled_at = self.reconciled_at


def _filters(cfg: JiraSourceConfig) -> list[str]:
    """The configured JQL (its own ORDER BY dropped: polling orders by ``updated``) and the
    watched projects."""
    clauses = []
    jql = _ORDER_BY.split(cfg.jql or "", maxsplit=1)[0].strip()
    if jql:
        clauses.append(f"({jql})")
    if cfg.queues:
        clauses.append(f"project in ({', '.join(jql_string(q) for q in cfg.queues)})")
    return clauses


def _changelog_short(issue: IssuePayload, previous: TicketMemory | None) -> bool:
    changelog = issue.changelog
    if changelog is None:
        return True
    if changelog.complete:
        return False
    if previous is None or not changelog.histories:
        return True
    oldest = min(h.created for h in changelog.histories)
    return to_ms(oldest) > previous.updated_ms


def _raw_key(raw: object) -> str:
    if isinstance(raw, dict):
        return str(raw.get("key") or raw.get("id") or "?")
    return "?"


def _raw_fields(raw: dict[str, Any]) -> dict[str, Any]:
    fields = raw.get("fields")
    return fields if isinstance(fields, dict) else {}


def _raw_done(raw: dict[str, Any]) -> bool:
    status = _raw_fields(raw).get("status")
    category = status.get("statusCategory") if isinstance(status, dict) else None
    return isinstance(category, dict) and category.get("key") == "done"


def _raw_updated_ms(raw: dict[str, Any]) -> int:
    try:
        return to_ms(IssuePayload.model_validate(raw).updated_at)
    except (ValidationError, ValueError):
        return 0


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _int_or_none(value: object) -> int | None:
    if not isinstance(value, int | float | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _time_or_none(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
