"""Logging: structlog events, JSON lines for journald, readable lines on a terminal.

Log events are snake_case facts with key/value fields. Standard-library loggers (aiohttp,
apprise) go through the same formatter. Every line passes through a redactor that removes the
configured secrets — whole values and the credential parts of URLs — and the password part of
any ``user:password@`` it meets, so no secret reaches the journal.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

import structlog

REDACTED = "***"
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s/]+@")
_MIN_FRAGMENT = 6  # shorter URL parts are not worth hiding (and too common to hide safely)


def secret_fragments(secret: str) -> set[str]:
    """The secret itself plus the parts of a URL that are credentials: user, password, path
    segments and query values long enough to be tokens."""
    found = {secret}
    try:
        parts = urlsplit(secret)
    except ValueError:
        return found
    if parts.scheme and parts.netloc:
        candidates = [parts.password or "", parts.username or ""]
        candidates += [unquote(seg) for seg in parts.path.split("/")]
        candidates += [v for _, v in parse_qsl(parts.query)]
        if parts.password is None and parts.username:
            candidates.append(parts.netloc.split("@")[0])
        found.update(c for c in candidates if len(c) >= _MIN_FRAGMENT)
    return found


class Redactor:
    """A structlog processor that scrubs secrets from every string in an event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        fragments: set[str] = set()
        for secret in secrets:
            if secret:
                fragments |= secret_fragments(secret)
        # Longest first, so a whole URL is replaced before its parts.
        ordered = sorted((f for f in fragments if f), key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(f) for f in ordered)) if ordered else None

    def scrub(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return _URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", text)

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            event[key] = self._clean(value)
        return event

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list | tuple):
            return type(value)(self._clean(v) for v in value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, BaseException):
            return self.scrub(repr(value))
        return value


REDACTOR = Redactor()


def configure_logging(
    level: str = "info",
    stream: TextIO | None = None,
    json_output: bool | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Route structlog and the standard library to one formatter on ``stream``."""
    stream = stream or sys.stdout
    if json_output is None:
        json_output = not stream.isatty()
    REDACTOR.update(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        REDACTOR,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party chatter stays at warning unless debugging.
    for noisy in ("apprise", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel("DEBUG" if level == "debug" else "WARNING")


def get_logger(name: str = "sladaemon") -> Any:
    return structlog.stdlib.get_logger(name)
