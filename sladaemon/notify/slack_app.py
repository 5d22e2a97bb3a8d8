"""Posting to Slack as our own app through its Web API (``slack_sdk``): the sender of
``slack-app://CHANNEL`` targets.

``chat.postMessage`` sends a message (slack_blocks.py: title, body, the buttons of a chain's
message); ``chat.update`` rewrites it after a click. Retries are the outbox's: the client
itself never retries. Slack's answers map onto delivery outcomes: rate limited (429, with
``Retry-After``), a 5xx or Slack's own internal errors are tried again, and so is a request
that got no answer in time (flagged: it may have been posted); anything else — ``invalid_auth``,
``channel_not_found``, ``not_in_channel``… — is permanent, with Slack's error string.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from sladaemon.notify.message import Notification
from sladaemon.notify.outcome import DeliveryOutcome
from sladaemon.notify.slack_blocks import message_blocks, message_text, outcome_blocks

SLACK_API = "https://slack.com/api/"
MAX_RETRY_AFTER = 3600.0  # seconds: a longer Retry-After is read as this
# Slack's error strings for a failure on its side, worth another attempt.
_PASSING = {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}


class SlackApp:
    """The Slack app of ``daemon.slack``: its bot token, the Web API's URL, a timeout."""

    def __init__(self, token: str, api_url: str = SLACK_API, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._client = AsyncWebClient(
            token=token,
            base_url=api_url,
            timeout=max(1, round(timeout + 1)),  # ours ends first: no answer is "maybe sent"
            retry_handlers=[],
        )

    async def send(self, channel: str, message: Notification) -> DeliveryOutcome:
        """Post ``message`` to a channel (or a user: a direct message)."""
        return await self._call(
            "chat.postMessage",
            channel=channel,
            text=message_text(message),
            blocks=message_blocks(message),
            unfurl_links=False,
            unfurl_media=False,
        )

    async def update_acknowledged(
        self,
        channel: str,
        ts: str,
        text: str,
        blocks: Sequence[Mapping[str, Any]] = (),
        keep_buttons: bool = False,
    ) -> DeliveryOutcome:
        """Rewrite the message ``ts``: its ``blocks`` (as Slack sent them with the click)
        without the buttons (unless ``keep_buttons``), plus ``text``, e.g. "Acknowledged by
        alice at … via slack"."""
        return await self._call(
            "chat.update",
            channel=channel,
            ts=ts,
            text=text,
            blocks=outcome_blocks(blocks, text, keep_buttons),
        )

    async def _call(self, method: str, **params: Any) -> DeliveryOutcome:
        call = self._client.api_call(method, json=params)
        try:
            await asyncio.wait_for(call, timeout=self.timeout)
        except TimeoutError:
            error = f"slack {method}: no answer within {self.timeout:g}s"
            return DeliveryOutcome(False, error=error, maybe_sent=True)
        except SlackApiError as exc:
            return slack_error(
                method, exc.response.status_code, exc.response.data, exc.response.headers
            )
        except aiohttp.ClientConnectorError as exc:  # never reached Slack: not sent
            return DeliveryOutcome(False, error=f"slack {method}: cannot connect ({exc.os_error})")
        except aiohttp.ClientError as exc:
            error = f"slack {method}: {type(exc).__name__}"
            return DeliveryOutcome(False, error=error, maybe_sent=True)
        return DeliveryOutcome(True)


def slack_error(method: str, status: int, data: Any, headers: Mapping[str, str]) -> DeliveryOutcome:
    """The outcome of a call Slack answered with an error."""
    said = data.get("error") if isinstance(data, dict) else None
    error = f"slack {method}: {said or f'HTTP {status}'}"
    if status == 429 or said == "ratelimited":
        return DeliveryOutcome(False, error=error, retry_after=_retry_after(headers))
    if status >= 500 or said in _PASSING:
        return DeliveryOutcome(False, error=error, maybe_sent=said == "request_timeout")
    return DeliveryOutcome(False, retryable=False, error=error)


def _retry_after(headers: Mapping[str, str]) -> float:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "")
    try:
        seconds = float(value)
    except ValueError:
        return 0.0
    return min(max(0.0, seconds), MAX_RETRY_AFTER) if seconds == seconds else 0.0
