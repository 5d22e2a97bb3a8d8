"""The error tree. Every error says whether retrying the same operation can help."""

from __future__ import annotations

from dataclasses import dataclass


class SladaemonError(Exception):
    retryable: bool = False


class CalendarError(SladaemonError, ValueError):
    """A calendar cannot answer: bad definition or no business time where one is needed."""


class NoBusinessTimeError(CalendarError):
    """The calendar has no business time within the search horizon (never loop forever)."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, located by YAML path and line."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(SladaemonError):
    """The config is invalid; ``issues`` lists every problem found, in file order."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.file, i.line or 0, i.path))
        super().__init__("\n".join(str(i) for i in self.issues))


@dataclass(frozen=True, slots=True)
class RowIssue:
    """A row of an event file that was skipped, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class EventLogError(SladaemonError):
    """An event file cannot be used (unreadable, bad header, or bad rows under --strict)."""

    def __init__(self, file: str, issues: list[RowIssue] | None = None, message: str = "") -> None:
        self.file = file
        self.issues = issues or []
        lines = [f"{file}: {message}"] if message else []
        lines += [f"{file}:{i.line}: {i.message}" for i in self.issues]
        super().__init__("\n".join(lines))


class StateLockedError(SladaemonError):
    """Another process runs a daemon (or ``once``) on the same state file."""


class StateFileError(SladaemonError):
    """The state file cannot be used (damaged, not a database); the message says what to do."""


class ListenError(SladaemonError):
    """The HTTP endpoints (``daemon.http.listen``) cannot listen: the port is taken, or the
    address is not this host's."""


class AckSetupError(SladaemonError):
    """``ack`` cannot reach a running daemon: the config gives no way (``ack.api_tokens``)."""
