"""HTTP calls to Jira Cloud and Jira Service Management, on top of HelpdeskHttp (the one place
that retries, honours Retry-After and paces by the X-RateLimit-* headers).

Auth: HTTP Basic ``email:api_token``; a token without an email is sent as an OAuth 2.0 bearer
token. Endpoints:

* ``POST /rest/api/3/search/jql``: JQL search, ``nextPageToken`` paging (absent on the last
  page), ``fields``, ``expand=changelog``, ``properties``;
* ``POST /rest/api/3/changelog/bulkfetch``: changelogs of up to 1000 issues, filtered by field;
* ``POST /rest/api/3/issue/bulkfetch``: up to 100 issues by id (missing ones are simply absent);
* ``GET /rest/api/3/issue/{key}/comment``: the comments a search result did not carry;
* ``GET /rest/servicedeskapi/request/{key}/sla``: SLAs when the site has no SLA fields to search;
* ``GET /rest/api/3/myself``, ``/field``, ``/status``: time zone, field ids, status categories.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from sladaemon.config.models import JiraSourceConfig
from sladaemon.sources.base import SourceError
from sladaemon.sources.http import HelpdeskHttp
from sladaemon.sources.jira.payloads import (
    BulkChangelogPage,
    BulkIssues,
    ChangeHistory,
    CommentPage,
    CommentPayload,
    FieldInfo,
    Myself,
    SearchPage,
    SlaPage,
    SlaValue,
    StatusInfo,
    UserRef,
    describe_error,
)

SEARCH = "/rest/api/3/search/jql"
CHANGELOG_BULK = "/rest/api/3/changelog/bulkfetch"
ISSUE_BULK = "/rest/api/3/issue/bulkfetch"
CHANGELOG_BATCH = 1000  # issues per changelog bulk fetch
ISSUE_BATCH = 100  # issues per issue bulk fetch
ID_PAGE = 5000  # a search asking for ids only gets pages this large
COMMENT_PAGE = 100
SLA_PAGE = 50

Model = TypeVar("Model", bound=BaseModel)


class JiraClient:
    def __init__(self, cfg: JiraSourceConfig) -> None:
        token = cfg.token.get_secret_value() if cfg.token is not None else ""
        self.has_credentials = bool(token)
        headers = {"Authorization": _authorization(cfg.email, token)} if token else {}
        self.http = HelpdeskHttp(cfg.url, headers=headers, timeout=cfg.timeout.total_seconds())

    @property
    def requests(self) -> int:
        return self.http.requests

    async def close(self) -> None:
        await self.http.close()

    # ------------------------------------------------------------------ site

    async def myself(self) -> Myself:
        response = await self.http.get_json("/rest/api/3/myself")
        return _parse(Myself, response.data, "myself")

    async def fields(self) -> list[FieldInfo]:
        response = await self.http.get_json("/rest/api/3/field")
        return _parse_list(FieldInfo, response.data, "field list")

    async def user(self, account_id: str) -> UserRef | None:
        """``GET /rest/api/3/user?accountId=``; None when there is no such user."""
        try:
            response = await self.http.get_json("/rest/api/3/user", {"accountId": account_id})
        except SourceError as exc:
            if _not_found(exc):
                return None
            raise
        return _parse(UserRef, response.data, f"user {account_id}")

    async def statuses(self) -> list[StatusInfo]:
        response = await self.http.get_json("/rest/api/3/status")
        return _parse_list(StatusInfo, response.data, "status list")

    # ------------------------------------------------------------------ search

    async def search(
        self,
        jql: str,
        *,
        fields: Sequence[str],
        max_results: int,
        token: str | None = None,
        expand: str | None = None,
        properties: Sequence[str] = (),
    ) -> tuple[SearchPage, datetime | None]:
        """One page of a JQL search and the server's time when it answered."""
        body: dict[str, Any] = {"jql": jql, "fields": list(fields), "maxResults": max_results}
        if token:
            body["nextPageToken"] = token
        if expand:
            body["expand"] = expand
        if properties:
            body["properties"] = list(properties)
        response = await self.http.request("POST", SEARCH, json_body=body)
        return _parse(SearchPage, response.data, "search"), server_time(response.headers)

    async def issue_ids(self, jql: str) -> tuple[set[str], datetime | None]:
        """The ids of every issue ``jql`` finds (large pages: ids only)."""
        found: set[str] = set()
        token: str | None = None
        answered_at: datetime | None = None
        while True:
            page, at = await self.search(jql, fields=["id"], max_results=ID_PAGE, token=token)
            answered_at = answered_at or at
            for item in page.issues:
                if isinstance(item, dict) and item.get("id") is not None:
                    found.add(str(item["id"]))
            if page.last:
                return found, answered_at
            token = page.next_page_token

    # ------------------------------------------------------------------ batches

    async def changelogs(
        self, issue_ids: Iterable[str], field_ids: Sequence[str]
    ) -> dict[str, list[ChangeHistory]]:
        """Complete changelogs (only items of ``field_ids``) by issue id."""
        found: dict[str, list[ChangeHistory]] = {}
        ids = list(dict.fromkeys(issue_ids))
        for start in range(0, len(ids), CHANGELOG_BATCH):
            batch = ids[start : start + CHANGELOG_BATCH]
            for issue_id in batch:
                found.setdefault(issue_id, [])
            token: str | None = None
            while True:
                body: dict[str, Any] = {
                    "issueIdsOrKeys": batch,
                    "fieldIds": list(field_ids),
                    "maxResults": 1000,
                }
                if token:
                    body["nextPageToken"] = token
                response = await self.http.request("POST", CHANGELOG_BULK, json_body=body)
                page = _parse(BulkChangelogPage, response.data, "changelog bulk fetch")
                for entry in page.issue_change_logs:
                    found.setdefault(entry.issue_id, []).extend(entry.change_histories)
                if not page.next_page_token:
                    break
                token = page.next_page_token
        return found

    async def issues_by_id(
        self,
        issue_ids: Iterable[str],
        *,
        fields: Sequence[str],
        expand: str | None = None,
        properties: Sequence[str] = (),
    ) -> tuple[BulkIssues, datetime | None]:
        """Issues by id, 100 per request. Deleted issues and those the user may no longer see
        are absent; ``issue_errors`` lists the ones Jira could not return this time."""
        merged = BulkIssues()
        answered_at: datetime | None = None
        ids = list(dict.fromkeys(issue_ids))
        for start in range(0, len(ids), ISSUE_BATCH):
            body: dict[str, Any] = {
                "issueIdsOrKeys": ids[start : start + ISSUE_BATCH],
                "fields": list(fields),
            }
            if expand:
                body["expand"] = [expand]
            if properties:
                body["properties"] = list(properties)
            response = await self.http.request("POST", ISSUE_BULK, json_body=body)
            page = _parse(BulkIssues, response.data, "issue bulk fetch")
            merged.issues.extend(page.issues)
            merged.issue_errors.extend(page.issue_errors)
            answered_at = answered_at or server_time(response.headers)
        return merged, answered_at

    async def comments(self, key: str) -> list[CommentPayload]:
        """Every comment of an issue, oldest first."""
        found: list[CommentPayload] = []
        path = f"/rest/api/3/issue/{quote(key, safe='')}/comment"
        while True:
            params = {"startAt": len(found), "maxResults": COMMENT_PAGE, "orderBy": "created"}
            try:
                response = await self.http.get_json(path, params)
            except SourceError as exc:
                if _not_found(exc):  # deleted since the search: the next poll sees it gone
                    return found
                raise
            page = _parse(CommentPage, response.data, f"comments of {key}")
            found.extend(page.comments)
            if not page.comments or page.complete:
                return found

    async def request_slas(self, key: str) -> list[SlaValue]:
        """A request's SLA metrics from the Service Management API."""
        found: list[SlaValue] = []
        path = f"/rest/servicedeskapi/request/{quote(key, safe='')}/sla"
        while True:
            try:
                response = await self.http.get_json(path, {"start": len(found), "limit": SLA_PAGE})
            except SourceError as exc:
                if _not_found(exc):  # not (or no longer) a service request
                    return found
                raise
            page = _parse(SlaPage, response.data, f"SLAs of {key}")
            found.extend(page.values)
            if page.is_last_page or not page.values:
                return found


def _authorization(email: str | None, token: str) -> str:
    if not email:
        return f"Bearer {token}"
    return "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode("ascii")


# ---------------------------------------------------------------------------- JQL


def jql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def jql_time(at: datetime, zone: ZoneInfo) -> str:
    """A JQL date literal (minute resolution, read by Jira in the API user's zone) for an instant
    at or before ``at``. A wall time that occurs twice (DST ending) is stepped back until it is
    unambiguous, so neither reading can start the window late."""
    local = at.astimezone(zone).replace(second=0, microsecond=0)
    while _ambiguous(local, zone):
        local = (local - timedelta(minutes=30)).astimezone(zone)
    return local.strftime("%Y/%m/%d %H:%M")


def _ambiguous(local: datetime, zone: ZoneInfo) -> bool:
    wall = local.replace(tzinfo=None)
    return (
        wall.replace(tzinfo=zone, fold=0).utcoffset()
        != wall.replace(tzinfo=zone, fold=1).utcoffset()
    )


def server_time(headers: Mapping[str, str]) -> datetime | None:
    value = next((v for k, v in headers.items() if k.lower() == "date"), None)
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _not_found(exc: SourceError) -> bool:
    return exc.status == 404


def _parse(model: type[Model], data: Any, what: str) -> Model:
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise SourceError(f"{what}: unexpected answer ({describe_error(exc)})") from None


def _parse_list(model: type[Model], data: Any, what: str) -> list[Model]:
    if not isinstance(data, list):
        raise SourceError(f"{what}: expected a list, got {type(data).__name__}")
    found = []
    for item in data:
        try:
            found.append(model.model_validate(item))
        except ValidationError:
            continue  # one odd entry does not spoil the catalog
    return found
