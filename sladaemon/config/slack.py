"""``daemon.slack``: the Slack app sladaemon posts as (Web API, Block Kit buttons).

The bot token (``xoxb-…``, scope ``chat:write``) posts and updates messages; button clicks
arrive either at ``POST /slack/interactions`` (signed with the app's signing secret) or, with
``socket_mode: true``, over a websocket the app token (``xapp-…``) opens — no public URL then.
Each secret may be given as ``<name>_file``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from sladaemon.config.base import STRICT, _custom, _secret_from_file
from sladaemon.config.durations import ABOVE_ZERO, MINUTE, Duration, within

SLACK_API = "https://slack.com/api/"


class SlackConfig(BaseModel):
    model_config = STRICT

    token: SecretStr = Field(description="bot token, xoxb-…")
    signing_secret: SecretStr | None = Field(
        None, description="the app's signing secret: verifies button clicks (not socket mode)"
    )
    api_url: str = Field(SLACK_API, description="the Web API's base URL")
    timeout: Annotated[Duration, within(ABOVE_ZERO, MINUTE)] = timedelta(seconds=10)
    socket_mode: bool = Field(False, description="receive clicks over a websocket, not HTTP")
    app_token: SecretStr | None = Field(None, description="app-level token, xapp-… (socket mode)")

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        for name in ("token", "signing_secret", "app_token"):
            data = _secret_from_file(data, name)
        return data

    @field_validator("token")
    @classmethod
    def _bot_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("xox"):
            raise _custom("token", "a Slack bot token starts with 'xoxb-'")
        return value

    @field_validator("app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise _custom("token", "a Slack app-level token starts with 'xapp-'")
        return value

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise _custom("url", f"invalid URL {value!r} (use e.g. {SLACK_API})")
        return value.rstrip("/") + "/"

    @model_validator(mode="after")
    def _how_clicks_arrive(self) -> SlackConfig:
        if self.socket_mode and self.app_token is None:
            raise _custom("slack", "socket_mode needs app_token (an app-level token, xapp-…)")
        if not self.socket_mode and self.signing_secret is None:
            raise _custom(
                "slack",
                "signing_secret is needed to verify button clicks (or use socket_mode with "
                "app_token)",
            )
        return self

    def secrets(self) -> set[str]:
        """What the log must never show."""
        given = (self.token, self.signing_secret, self.app_token)
        return {s.get_secret_value() for s in given if s is not None and s.get_secret_value()}
