"""Logging: structlog events, JSON lines for journald, readable lines on a terminal.

Log events are snake_case facts with key/value fields. Standard-library loggers (aiohttp,
apprise) go through the same formatter. ``level``, ``logger`` and ``timestamp`` belong to the
line itself: a field of the same name given by the caller is kept as ``field_<name>`` rather
than overwritten (SLA events log their ladder level as ``ladder_level``).

Every line passes through a redactor that removes the configured secrets — whole values and the
credential parts of URLs (the password, a user name or path segment shaped like a token,
query values named like credentials or shaped like tokens) — and the password part of any
``user:password@`` it meets, so no secret reaches the journal. Host names and plain path words
(``/var/lib/sladaemon``) stay readable. A flood of one kind of line (one logger, one event) is
cut at ``FLOOD_BURST`` lines per ``FLOOD_WINDOW`` seconds; the next line of that kind after the
window is preceded by ``log_lines_suppressed`` with the count. Lines of ``CONSOLE_LOGGER`` are
messages a ``console://`` receiver delivers: never cut, and written at any log level.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

import structlog

REDACTED = "***"
FLOOD_BURST = 200  # lines of one kind ...
FLOOD_WINDOW = 10.0  # ... per this many seconds
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s/]+@")
MIN_FRAGMENT = 6  # shorter URL parts are not worth hiding (and too common to hide safely)
_TOKEN_LENGTH = 8  # a URL part at least this long mixing letters and digits is a token
_CREDENTIAL_PARAM = re.compile(
    r"(^|[_-])(token|key|apikey|secret|password|passwd|pass|pwd|auth|sig|signature)([_-]|$)",
    re.IGNORECASE,
)
RESERVED_KEYS = ("level", "logger", "timestamp")  # set on every line by the logger itself
CONSOLE_LOGGER = "sladaemon.console"  # messages of console:// receivers


def looks_like_token(text: str) -> bool:
    """Whether a URL part reads as a generated credential: letters and digits mixed, or a long
    run of upper- and lower-case letters (``AbCdEfGhIjKlMnOp``), never a word or a name."""
    if len(text) < _TOKEN_LENGTH:
        return False
    if any(c.isdigit() for c in text) and any(c.isalpha() for c in text):
        return True
    return (
        len(text) >= 2 * _TOKEN_LENGTH and text.isalpha() and not (text.islower() or text.isupper())
    )


def secret_fragments(secret: str) -> set[str]:
    """The secret itself plus the parts of a URL that are credentials: the password, a user
    name without password, path segments and query values that look like tokens, and query
    values named like credentials (``token=``, ``key=``, ``api_key=``)."""
    found = {secret}
    try:
        parts = urlsplit(secret)
    except ValueError:
        return found
    if not (parts.scheme and parts.netloc):
        return found
    candidates = [unquote(parts.password or "")]
    if parts.password is None and parts.username:
        user = unquote(parts.netloc.rsplit("@", 1)[0])
        candidates += [user] if looks_like_token(user) else []
    candidates += [s for s in map(unquote, parts.path.split("/")) if looks_like_token(s)]
    for name, value in parse_qsl(parts.query):
        if _CREDENTIAL_PARAM.search(name) or looks_like_token(value):
            candidates.append(value)
    found.update(c for c in candidates if len(c) >= MIN_FRAGMENT)
    return found


class Redactor:
    """A structlog processor that scrubs secrets from every string in an event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        """Redact ``secrets`` (and their credential parts), and nothing configured before."""
        self._fragments: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Redact ``secrets`` too (a reload's new receivers; the old ones may still log)."""
        for secret in secrets:
            if secret:
                self._fragments |= secret_fragments(secret)
        # Longest first, so a whole URL is replaced before its parts.
        ordered = sorted((f for f in self._fragments if f), key=len, reverse=True)
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


def keep_callers_fields(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor, run before the line's own keys are added: a caller's ``level``,
    ``logger`` or ``timestamp`` is kept as ``field_<name>`` instead of being overwritten."""
    for key in RESERVED_KEYS:
        if key in event:
            event[f"field_{key}"] = event.pop(key)
    return event


class FloodGate:
    """Admits at most ``burst`` lines of one kind per ``window`` seconds (monotonic)."""

    def __init__(
        self,
        burst: int = FLOOD_BURST,
        window: float = FLOOD_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst, self.window, self.clock = burst, window, clock
        self._windows: dict[tuple[str, str], tuple[float, int, int]] = {}  # start, seen, dropped

    def admit(self, kind: tuple[str, str]) -> int | None:
        """None to drop the line; otherwise how many lines of its kind were dropped before it."""
        now = self.clock()
        start, seen, dropped = self._windows.get(kind, (now, 0, 0))
        if now - start >= self.window:
            start, seen = now, 0
        if seen >= self.burst:
            self._windows[kind] = (start, seen, dropped + 1)
            return None
        self._windows[kind] = (start, seen + 1, 0)
        if len(self._windows) > 10_000:  # kinds come from code, but bound them all the same
            self._windows.clear()
        return dropped


class GatedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler behind a :class:`FloodGate`."""

    def __init__(self, stream: TextIO, gate: FloodGate) -> None:
        super().__init__(stream)
        self.gate = gate

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == CONSOLE_LOGGER:  # a delivered message, not chatter: never cut
            super().emit(record)
            return
        event = record.msg.get("event", "") if isinstance(record.msg, dict) else record.msg
        dropped = self.gate.admit((record.name, str(event)))
        if dropped is None:
            return
        if dropped:
            super().emit(_suppressed(record, str(event), dropped))
        super().emit(record)


def _suppressed(record: logging.LogRecord, event: str, count: int) -> logging.LogRecord:
    """A structlog-shaped record saying ``count`` lines like ``record`` were not written."""
    summary = logging.LogRecord(record.name, logging.WARNING, "", 0, "", None, None)
    summary.msg = {
        "event": "log_lines_suppressed",
        "suppressed_event": event,
        "count": count,
        "window_s": FLOOD_WINDOW,
        "level": "warning",
        "logger": record.name,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    summary._logger = logging.getLogger(record.name)
    summary._name = "warning"
    return summary


class _Output:
    """How lines are written since ``configure_logging``: JSON, or readable text."""

    json = False


def writes_json() -> bool:
    """Whether the log is JSON lines (stdout is not a terminal, or JSON was asked for): then
    everything written to stdout must be a log line."""
    return _Output.json


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
    _Output.json = json_output
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
            keep_callers_fields,
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
    handler = GatedHandler(stream, FloodGate())
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party chatter stays at warning unless debugging.
    for noisy in ("apprise", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel("DEBUG" if level == "debug" else "WARNING")
    # A console receiver's messages are deliveries: written whatever the log level.
    logging.getLogger(CONSOLE_LOGGER).setLevel("INFO")


def get_logger(name: str = "sladaemon") -> Any:
    return structlog.stdlib.get_logger(name)
