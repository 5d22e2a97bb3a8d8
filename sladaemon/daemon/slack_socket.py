"""Slack clicks over Socket Mode (``daemon.slack.socket_mode``): for a daemon Slack cannot reach.

``slack_sdk``'s aiohttp Socket Mode client opens the websocket (``apps.connections.open`` with
the app-level token, then the URL it answers), reconnects when Slack asks it to or the
connection drops, and hands over each envelope. A click is acted on as one from the HTTP route
(slack_interactions.py) and its envelope acknowledged once the ack desk has recorded it: an
envelope that could not be recorded is left unacknowledged, so Slack delivers it again.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from sladaemon.daemon.slack_interactions import SlackClicks


class SlackSocket:
    """The Socket Mode connection: ``start`` connects, ``stop`` closes."""

    def __init__(self, app_token: str, api_url: str, clicks: SlackClicks) -> None:
        self.clicks = clicks
        self._client = SocketModeClient(
            app_token=app_token,
            web_client=AsyncWebClient(base_url=api_url, retry_handlers=[]),
        )
        self._client.socket_mode_request_listeners.append(self._on_request)

    async def start(self) -> None:
        await self._client.connect()  # type: ignore[no-untyped-call]
        self.clicks.log.info("slack_socket_connected")

    async def stop(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]
        await self.clicks.settle()

    async def _on_request(self, client: Any, request: SocketModeRequest) -> None:
        if request.type == "interactive" and isinstance(request.payload, dict):
            try:
                await self.clicks.act(request.payload)
            except Exception as exc:  # left unacknowledged: Slack sends it again
                self.clicks.log.error("slack_action_failed", error=f"{type(exc).__name__}: {exc}")
                return
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
