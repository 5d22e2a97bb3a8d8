"""HTTP calls to the Zendesk Support API, on top of ``HelpdeskHttp`` (which does the retrying).

Authentication is an API token (HTTP Basic ``{email}/token:{token}``) when an email is
configured, else an OAuth access token (``Authorization: Bearer``). Incremental exports are
limited to 10 requests a minute and the search export to 100, so those requests wait for a
free slot in a rolling one-minute window before they are sent.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from sladaemon.config.models import ZendeskSourceConfig
from sladaemon.sources.base import SourceError
from sladaemon.sources.http import HelpdeskHttp
from sladaemon.sources.zendesk.payloads import (
    AuditsPage,
    CursorPage,
    GroupsPage,
    SearchPage,
    TicketEventsPage,
    TicketExportPage,
    TicketsPage,
    UsersPage,
)

INCREMENTAL_EXPORTS_PER_MINUTE = 10
SEARCH_EXPORTS_PER_MINUTE = 100
EXPORT_INCLUDE = "users,groups,organizations,slas"
EVENTS_PAGE_SIZE = 1000  # the export's maximum
SHOW_MANY_LIMIT = 100  # ids per show_many request
LIST_PAGE_SIZE = 100
SEARCH_PAGE_SIZE_LIMIT = 100
MAX_LIST_PAGES = 1000  # a safety stop for following next pages

Page = TypeVar("Page", bound=BaseModel)
ListPage = TypeVar("ListPage", bound=CursorPage)


class RequestPacer:
    """At most ``limit`` requests in any ``window`` seconds: ``slot`` waits for a free one."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._sent: deque[float] = deque()

    async def slot(self) -> None:
        while True:
            now = time.monotonic()
            while self._sent and now - self._sent[0] >= self.window:
                self._sent.popleft()
            if len(self._sent) < self.limit:
                self._sent.append(now)
                return
            await asyncio.sleep(self._sent[0] + self.window - now)


class ZendeskClient:
    def __init__(self, cfg: ZendeskSourceConfig) -> None:
        base = cfg.url.rstrip("/")
        if base.endswith("/api/v2"):
            base = base[: -len("/api/v2")]
        token = cfg.token.get_secret_value() if cfg.token is not None else ""
        self.configured = bool(token)
        headers: dict[str, str] = {}
        if cfg.email:
            headers["Authorization"] = token_basic_auth(cfg.email, token)
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = HelpdeskHttp(
            base,
            headers=headers,
            timeout=cfg.timeout.total_seconds(),
        )
        self.export_pacer = RequestPacer(INCREMENTAL_EXPORTS_PER_MINUTE)
        self.search_pacer = RequestPacer(SEARCH_EXPORTS_PER_MINUTE)

    @property
    def requests(self) -> int:
        return self.http.requests

    async def close(self) -> None:
        await self.http.close()

    # ------------------------------------------------------------------ incremental exports

    async def ticket_export(
        self, *, cursor: str | None, start_time: int | None, per_page: int
    ) -> TicketExportPage:
        """One page of the cursor-based incremental ticket export."""
        params: dict[str, Any] = {"per_page": per_page, "include": EXPORT_INCLUDE}
        if cursor:
            params["cursor"] = cursor
        else:
            params["start_time"] = start_time
        await self.export_pacer.slot()
        return await self._get("/api/v2/incremental/tickets/cursor.json", params, TicketExportPage)

    async def ticket_events(self, start_time: int) -> TicketEventsPage:
        """One page of the time-based incremental ticket event export, with comments."""
        params = {
            "start_time": start_time,
            "include": "comment_events",
            "per_page": EVENTS_PAGE_SIZE,
        }
        await self.export_pacer.slot()
        return await self._get("/api/v2/incremental/ticket_events.json", params, TicketEventsPage)

    # ------------------------------------------------------------------ other endpoints

    async def ticket_audits(self, ticket_id: int) -> list[Any]:
        """Every audit of one ticket (cursor pagination)."""
        return await self._all_pages(
            f"/api/v2/tickets/{ticket_id}/audits.json", AuditsPage, lambda p: p.audits
        )

    async def groups(self) -> list[Any]:
        return await self._all_pages("/api/v2/groups.json", GroupsPage, lambda p: p.groups)

    async def users(self, ids: Iterable[int]) -> list[Any]:
        found: list[Any] = []
        for chunk in _chunks(ids):
            page = await self._get("/api/v2/users/show_many.json", {"ids": chunk}, UsersPage)
            found.extend(page.users)
        return found

    async def tickets(self, ids: Iterable[int]) -> list[Any]:
        """The tickets of ``ids`` that still exist (``show_many`` leaves the others out)."""
        found: list[Any] = []
        for chunk in _chunks(ids):
            page = await self._get("/api/v2/tickets/show_many.json", {"ids": chunk}, TicketsPage)
            found.extend(page.tickets)
        return found

    async def open_tickets(self, after: str | None, page_size: int) -> SearchPage:
        """One page of the search export of tickets with a status before solved."""
        params: dict[str, Any] = {
            "query": "status<solved",
            "filter[type]": "ticket",
            "page[size]": min(page_size, SEARCH_PAGE_SIZE_LIMIT),
        }
        if after:
            params["page[after]"] = after
        await self.search_pacer.slot()
        return await self._get("/api/v2/search/export.json", params, SearchPage)

    # ------------------------------------------------------------------ plumbing

    async def _all_pages(
        self, path: str, model: type[ListPage], items: Callable[[ListPage], list[Any]]
    ) -> list[Any]:
        """Every item of a list endpoint, following cursor or offset pagination."""
        found: list[Any] = []
        params: Mapping[str, Any] | None = {"page[size]": LIST_PAGE_SIZE}
        for _ in range(MAX_LIST_PAGES):
            page = await self._get(path, params, model)
            found.extend(items(page))
            cursor, next_url = page.next_request()
            if cursor:
                params = {"page[size]": LIST_PAGE_SIZE, "page[after]": cursor}
            elif next_url:
                path, params = next_url, None
            else:
                break
        return found

    async def _get(self, path: str, params: Mapping[str, Any] | None, model: type[Page]) -> Page:
        response = await self.http.get_json(path, params)
        try:
            return model.model_validate(response.data if response.data is not None else {})
        except ValidationError as exc:
            where = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "body"
            raise SourceError(
                f"GET {path}: unexpected response ({where}: {exc.errors()[0]['msg']})"
            ) from None


def token_basic_auth(email: str, token: str) -> str:
    """The ``Authorization`` header of Zendesk's API-token authentication."""
    credentials = f"{email}/token:{token}".encode()
    return f"Basic {base64.b64encode(credentials).decode()}"


def _chunks(ids: Iterable[int]) -> list[str]:
    unique = sorted(set(ids))
    return [
        ",".join(str(i) for i in unique[n : n + SHOW_MANY_LIMIT])
        for n in range(0, len(unique), SHOW_MANY_LIMIT)
    ]
