"""The live web board, as config: ``board:`` at the top level (off unless ``enabled``).

People sign in with an account of ``board.accounts`` (an argon2 hash of the password, made by
``sladaemon board-password``), or through a reverse proxy that authenticates them and passes
their name in ``user_header`` — taken only from the addresses in ``trusted_proxies``. Each
account has a role: ``viewer`` reads, ``responder`` also acknowledges and silences.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from sladaemon.config.durations import DAY, MINUTE, Duration, within
from sladaemon.config.models import HttpConfig, StrictModel, _custom

Role = Literal["viewer", "responder"]
ARGON2_PREFIX = "$argon2"


class BoardAccount(StrictModel):
    password_hash: SecretStr = Field(description="argon2 hash (sladaemon board-password)")
    role: Role = "viewer"

    @field_validator("password_hash")
    @classmethod
    def _argon2(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(ARGON2_PREFIX):
            raise _custom(
                "password_hash",
                "password_hash is an argon2 hash ($argon2id$...): make one with "
                "`sladaemon board-password`",
            )
        return value


class BoardConfig(StrictModel):
    enabled: bool = False
    listen: str = Field("127.0.0.1:9466", description="host:port of the board")
    accounts: dict[str, BoardAccount] = Field({}, description="name: password_hash, role")
    trusted_proxies: list[str] = Field(
        [], description="addresses (or networks) of reverse proxies whose user header is trusted"
    )
    user_header: str = Field("X-Remote-User", description="the proxy's header naming the user")
    proxy_roles: dict[str, Role] = Field(
        {}, description="roles of users signed in by the proxy (others: proxy_default_role)"
    )
    proxy_default_role: Role = "viewer"
    session_ttl: Annotated[Duration, within(MINUTE, 30 * DAY)] = Field(
        timedelta(hours=12), description="a session ends this long after sign-in"
    )
    secure_cookies: bool | None = Field(
        None,
        description="mark the session cookie Secure (default: when the request came over TLS "
        "or the proxy says X-Forwarded-Proto: https)",
    )
    login_rate: float = Field(
        0.2, gt=0, le=100, description="sign-in attempts a second per client address"
    )
    page_size: int = Field(100, ge=10, le=1000, description="rows of the board's first page")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return HttpConfig._host_port(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise _custom("address", f"{text!r} is not an address or network") from None
        return value

    @model_validator(mode="after")
    def _someone_can_sign_in(self) -> BoardConfig:
        if self.enabled and not self.accounts and not self.trusted_proxies:
            raise _custom(
                "board",
                "the board is enabled but nobody can sign in: add accounts or trusted_proxies",
            )
        return self
