"""Zammad REST calls on top of HelpdeskHttp (which does every retry).

Auth is a personal access token: ``Authorization: Token token=<token>``. Search pages are
``page``/``per_page`` offsets with no total and no next link: a short page is the last one.
Articles and history exist only per ticket; Zammad has no batched form of either.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from sladaemon.config.models import ZammadSourceConfig
from sladaemon.sources.base import SourceError
from sladaemon.sources.http import HelpdeskHttp, Response

API = "/api/v1"
MAX_PER_PAGE = 200  # tickets/search caps per_page here
_HTTP_STATUS = re.compile(r": HTTP (\d{3})\b")


class TicketUnreachable(Exception):
    """A ticket answered 404 (deleted) or 403 (no longer readable with this token)."""

    def __init__(self, ticket_id: int, status: int) -> None:
        super().__init__(f"ticket {ticket_id}: HTTP {status}")
        self.ticket_id = ticket_id
        self.status = status


class ZammadClient:
    def __init__(self, cfg: ZammadSourceConfig) -> None:
        headers = {}
        if cfg.token is not None:
            headers["Authorization"] = f"Token token={cfg.token.get_secret_value()}"
        base = re.sub(r"/api/v1/?$", "", cfg.url.rstrip("/"))
        self.http = HelpdeskHttp(
            base,
            headers=headers,
            timeout=cfg.timeout.total_seconds(),
        )
        self.server_date: datetime | None = None  # the Date header of the latest answer

    @property
    def requests(self) -> int:
        return self.http.requests

    async def search_tickets(self, query: str, *, sort_by: str, page: int, per_page: int) -> Any:
        params = {
            "query": query,
            "sort_by": sort_by,
            "order_by": "asc",
            "page": page,
            "per_page": min(per_page, MAX_PER_PAGE),
            "expand": "true",
        }
        data = self._note(await self.http.get_json(f"{API}/tickets/search", params))
        if not isinstance(data, list):
            raise SourceError(
                f"GET {API}/tickets/search: expected a list of tickets, got "
                f"{type(data).__name__} (is Elasticsearch configured in Zammad?)"
            )
        return data

    async def ticket(self, ticket_id: int) -> Any:
        return await self._per_ticket(ticket_id, f"{API}/tickets/{ticket_id}", {"expand": "true"})

    async def articles(self, ticket_id: int) -> Any:
        return await self._per_ticket(
            ticket_id, f"{API}/ticket_articles/by_ticket/{ticket_id}", {"expand": "true"}
        )

    async def history(self, ticket_id: int) -> Any:
        return await self._per_ticket(ticket_id, f"{API}/ticket_history/{ticket_id}", None)

    async def user(self, user_id: int) -> Any:
        """One user; None when it is gone or not readable with this token."""
        try:
            return self._note(await self.http.get_json(f"{API}/users/{user_id}", None))
        except SourceError as exc:
            if http_status(exc) in (403, 404):
                return None
            raise

    async def close(self) -> None:
        await self.http.close()

    async def _per_ticket(self, ticket_id: int, path: str, params: dict[str, str] | None) -> Any:
        try:
            return self._note(await self.http.get_json(path, params))
        except SourceError as exc:
            status = http_status(exc)
            if status in (403, 404):
                raise TicketUnreachable(ticket_id, status) from None
            raise

    def _note(self, response: Response) -> Any:
        date = next((v for k, v in response.headers.items() if k.lower() == "date"), None)
        if date:
            with contextlib.suppress(TypeError, ValueError):
                self.server_date = parsedate_to_datetime(date)
        return response.data


def http_status(exc: SourceError) -> int | None:
    """The HTTP status a permanent SourceError reports, if any."""
    if exc.retryable:
        return None
    match = _HTTP_STATUS.search(str(exc))
    return int(match.group(1)) if match else None
