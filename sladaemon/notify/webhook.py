"""sladaemon's own JSON webhook: ``webhook+https://host/path`` (or ``webhook+http://``) posts
the whole notification as JSON, not only a title and a message as apprise's ``json://`` does:

    {"id", "kind", "title", "body", "data": {... the notification's payload ...}}

``data`` is everything sladaemon knows of the notification: for an SLA event its ticket, link,
policy, metric, level and deadline; for a digest its group labels and every item. A 2xx answer
is a delivery; 429 and 5xx are tried again (Retry-After honoured), other answers fail at once,
and no answer in time may have been a delivery (the retry is flagged a possible duplicate).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from sladaemon.notify.message import Notification
from sladaemon.notify.outcome import DeliveryOutcome

SCHEMES = ("webhook+http://", "webhook+https://")
MAX_RETRY_AFTER = 3600.0  # seconds: a longer Retry-After is read as this


def is_webhook(url: str) -> bool:
    return url.strip().lower().startswith(SCHEMES)


def webhook_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip().removeprefix("webhook+"))
    except ValueError:
        return "webhook URL: malformed"
    if not parts.hostname:
        return "webhook URL: no host (webhook+https://host/path)"
    return None


def describe_webhook(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.hostname or ''}"


def webhook_body(message: Notification) -> dict[str, Any]:
    return {
        "id": message.id,
        "kind": message.kind.value,
        "title": message.title,
        "body": message.body,
        "data": dict(message.data),
    }


async def post_webhook(url: str, message: Notification, timeout: float) -> DeliveryOutcome:
    """One POST of ``message`` to ``url``."""
    target = url.strip().removeprefix("webhook+")
    label = describe_webhook(url)
    body = json.dumps(webhook_body(message), default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "sladaemon"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(target, data=body, headers=headers) as answer,
        ):
            status = answer.status
            retry_after = _retry_after(answer.headers.get("Retry-After"))
    except TimeoutError:
        return DeliveryOutcome(
            False, error=f"{label} did not answer within {timeout:g}s", maybe_sent=True
        )
    except aiohttp.ClientError as exc:
        return DeliveryOutcome(False, error=f"{label}: {type(exc).__name__}")
    if 200 <= status < 300:
        return DeliveryOutcome(True)
    retryable = status == 429 or status >= 500
    error = f"{label} answered HTTP {status}"
    return DeliveryOutcome(False, retryable=retryable, error=error, retry_after=retry_after)


def _retry_after(value: str | None) -> float:
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value else 0.0
    except ValueError:
        return 0.0
