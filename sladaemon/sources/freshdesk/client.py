"""Freshdesk API v2 calls on top of the shared ``HelpdeskHttp`` (which does every retry).

Auth is HTTP Basic with the API key as user name and ``X`` as password. Lists answer with a bare
JSON array; a ``Link: <...>; rel="next"`` header says another page exists.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sladaemon.sources.base import SourceError
from sladaemon.sources.freshdesk.mapping import iso
from sladaemon.sources.http import HelpdeskHttp

API_PREFIX = "/api/v2"
MAX_PER_PAGE = 100
MAX_PAGE = 300  # Freshdesk refuses deeper pages: restart with a later updated_since instead


@dataclass(frozen=True, slots=True)
class TicketPage:
    items: list[Any]
    has_next: bool


class FreshdeskClient:
    def __init__(self, url: str, api_key: str, *, timeout: float) -> None:
        base = url.rstrip("/").removesuffix(API_PREFIX)
        self.http = HelpdeskHttp(
            f"{base}{API_PREFIX}",
            headers={"Authorization": basic_auth(api_key)},
            timeout=timeout,
        )

    @property
    def requests(self) -> int:
        return self.http.requests

    async def tickets(
        self, *, since: datetime, page: int, per_page: int, filter_name: str | None = None
    ) -> TicketPage:
        """One page of tickets updated at or after ``since``, oldest change first, with stats."""
        params = {
            "updated_since": iso(since),
            "order_by": "updated_at",
            "order_type": "asc",
            "per_page": str(min(per_page, MAX_PER_PAGE)),
            "page": str(page),
            "include": "stats",
        }
        if filter_name:
            params["filter"] = filter_name
        response = await self.http.get_json("tickets", params)
        if not isinstance(response.data, list):
            raise SourceError(f"GET tickets: expected a JSON array, got {_shape(response.data)}")
        return TicketPage(response.data, has_next_page(response.headers))

    async def ticket(self, ticket_id: str) -> Any | None:
        """One ticket with stats; None when Freshdesk no longer has it (404)."""
        try:
            response = await self.http.get_json(f"tickets/{ticket_id}", {"include": "stats"})
        except SourceError as exc:
            if _is_not_found(exc):
                return None
            raise
        return response.data

    async def groups(self) -> list[Any]:
        """Every group (id, name, ...), following the pages."""
        return await self._all("groups")

    async def agent(self, agent_id: int) -> Any | None:
        """One agent (``contact.email``); None when Freshdesk has no such agent (404) or the
        key may not read agents (403)."""
        try:
            response = await self.http.get_json(f"agents/{agent_id}")
        except SourceError as exc:
            if exc.status in (403, 404):
                return None
            raise
        return response.data

    async def ticket_fields(self) -> list[Any]:
        response = await self.http.get_json("ticket_fields")
        return response.data if isinstance(response.data, list) else []

    async def close(self) -> None:
        await self.http.close()

    async def _all(self, path: str) -> list[Any]:
        found: list[Any] = []
        for page in range(1, MAX_PAGE + 1):
            response = await self.http.get_json(
                path, {"per_page": str(MAX_PER_PAGE), "page": str(page)}
            )
            if not isinstance(response.data, list):
                break
            found.extend(response.data)
            if not has_next_page(response.headers) or len(response.data) < MAX_PER_PAGE:
                break
        return found


def basic_auth(api_key: str) -> str:
    """The ``Authorization`` value: the API key as user name, ``X`` as password."""
    return "Basic " + base64.b64encode(f"{api_key}:X".encode()).decode("ascii")


def has_next_page(headers: Mapping[str, str]) -> bool:
    """Whether a ``Link`` header offers ``rel="next"``."""
    link = next((v for k, v in headers.items() if k.lower() == "link"), "")
    for part in link.split(","):
        params = [p.strip().lower().replace('"', "") for p in part.split(";")[1:]]
        if "rel=next" in params:
            return True
    return False


def _is_not_found(exc: SourceError) -> bool:
    return exc.status == 404


def _shape(data: object) -> str:
    if data is None:
        return "an empty body"
    return type(data).__name__
