"""Escalation chains and acknowledgement, as config: ``chains:`` at the top level, a ladder
level's ``chain: NAME``, and ``daemon.ack`` (the signed links, the API and its tokens).

A chain is a list of steps — ``{notify: [targets]}`` or ``{wait: 15m}`` — run ``loops`` times,
until someone acknowledges it or its metric is met. Targets are resolved when a step is sent
(escalate/targets.py): ``receiver:NAME`` (or plain ``NAME``), ``person:NAME``,
``oncall:SCHEDULE``, ``ticket:assignee``, ``ticket:group``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from sladaemon.config.durations import MINUTE, SECOND, WEEK, YEAR, Duration, within
from sladaemon.config.models import StrictModel, _custom, _one_or_many, _secret_from_file
from sladaemon.model import TICKET_TARGETS, split_target

MAX_STEPS = 50
MIN_SECRET = 16  # characters of the signing secret of ack links


def _target(value: object) -> object:
    if not isinstance(value, str):
        return value
    kind, name = split_target(value)
    if not name:
        raise _custom("target", f"target {value!r} names nobody ({kind}:NAME)")
    if kind == "ticket" and name not in TICKET_TARGETS:
        raise _custom(
            "target", f"unknown ticket target {value!r} (ticket:assignee or ticket:group)"
        )
    return value


Target = Annotated[str, BeforeValidator(_target)]
Targets = Annotated[list[Target], BeforeValidator(_one_or_many)]


class ChainStepConfig(StrictModel):
    notify: Targets | None = Field(None, description="targets paged by this step")
    wait: Annotated[Duration, within(SECOND, WEEK)] | None = Field(
        None, description="time before the next step"
    )

    @model_validator(mode="after")
    def _one_of(self) -> ChainStepConfig:
        if (self.notify is None) == (self.wait is None):
            raise _custom("chain_step", "a step is either {notify: [...]} or {wait: DURATION}")
        if self.notify is not None and not self.notify:
            raise _custom("chain_step", "notify names no target")
        return self


class ChainConfig(StrictModel):
    steps: list[ChainStepConfig] = Field(min_length=1, max_length=MAX_STEPS)
    loops: int = Field(1, ge=1, le=100, description="how often the steps run while unacked")
    ack_timeout: Annotated[Duration, within(MINUTE, WEEK)] = Field(
        timedelta(minutes=30),
        description="an ack lapses after this if the metric still breaches and nobody replied",
    )

    @model_validator(mode="after")
    def _pages_someone(self) -> ChainConfig:
        if not any(s.notify for s in self.steps):
            raise _custom("chain", "the chain notifies nobody: add a {notify: [...]} step")
        if self.loops > 1 and self.steps[-1].wait is None:
            raise _custom(
                "chain",
                "a chain that loops must end with a {wait: ...} step, or its last and first "
                "steps would page at the same instant",
            )
        return self


class AckConfig(StrictModel):
    """Acknowledgement: signed links in every chain message, the page and API that take them."""

    public_url: str = Field(
        description="where people reach the ack page, e.g. https://sla.example.com"
    )
    listen: str | None = Field(
        None, description="host:port of the ack page and API (default: daemon.http.listen)"
    )
    secret: SecretStr = Field(description="signs ack links (or secret_file)")
    link_ttl: Annotated[Duration, within(MINUTE, YEAR)] = Field(
        timedelta(days=7), description="how long an ack link works"
    )
    api_tokens: list[SecretStr] = Field([], description="bearer tokens of POST /api/v1/acks")
    rate: float = Field(5.0, gt=0, le=1000, description="requests a second per client address")

    @model_validator(mode="before")
    @classmethod
    def _from_files(cls, data: Any) -> Any:
        data = _secret_from_file(data, "secret")
        return _secret_from_file(data, "api_tokens", as_lines=True)

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) > 2000:
            raise _custom("url", f"public_url must be an http(s) URL, not {value!r}")
        return value.rstrip("/")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _custom("listen", f"invalid listen address {value!r} (use host:port)")
        return value

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MIN_SECRET:
            raise _custom("secret", f"the ack secret needs at least {MIN_SECRET} characters")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _tokens_long_enough(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(len(t.get_secret_value()) < MIN_SECRET for t in value):
            raise _custom("secret", f"an API token needs at least {MIN_SECRET} characters")
        return value
