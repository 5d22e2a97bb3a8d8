"""Silences: for a while, notifications whose labels match every matcher of a silence are not
sent. Alertmanager's semantics: a silence is pending before ``starts_at``, active until
``ends_at`` (or until someone expires it), then expired. Pure: ``now`` is always given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sladaemon.durations import format_duration, parse_period
from sladaemon.matchers import Matcher, MatcherError, matches_all, parse_matchers

State = Literal["pending", "active", "expired"]
STATES: tuple[State, ...] = ("active", "pending", "expired")
SHORTEST = timedelta(minutes=1)
LONGEST = timedelta(days=30)
RETENTION = timedelta(days=5)  # how long an expired silence is kept (and listed)
MAX_MATCHERS = 32
MAX_TEXT = 500  # characters of a comment, a name, a matcher


class SilenceError(ValueError):
    """A silence that cannot be made: the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    expired_at: datetime | None = None
    expired_by: str = ""

    def describe(self) -> str:
        """What the audit trail says held a notification."""
        return f"silence {self.id} by {self.created_by}: {self.comment}"

    @property
    def ended_at(self) -> datetime:
        """When it stops (or stopped) silencing."""
        if self.expired_at is not None and self.expired_at < self.ends_at:
            return self.expired_at
        return self.ends_at

    def state(self, now: datetime) -> State:
        if now >= self.ended_at:
            return "expired"
        return "pending" if now < self.starts_at else "active"

    def silences(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.state(now) == "active" and matches_all(list(self.matchers), labels)


def silencing(
    silences: Iterable[Silence], labels: Mapping[str, str], now: datetime
) -> Silence | None:
    """The first active silence all of whose matchers match ``labels``, or None."""
    return next((s for s in silences if s.silences(labels, now)), None)


def matchers_of(texts: Sequence[str]) -> tuple[Matcher, ...]:
    """Matchers given one or more to a text (``queue=billing``, ``{a="b", c=~"d"}``)."""
    try:
        found = tuple(m for text in texts for m in parse_matchers(text))
    except MatcherError as exc:
        raise SilenceError(str(exc)) from None
    if not found:
        raise SilenceError('give a matcher, e.g. queue=billing or priority=~"low|normal"')
    if len(found) > MAX_MATCHERS:
        raise SilenceError(f"at most {MAX_MATCHERS} matchers")
    if all(m.matches({}) for m in found):
        raise SilenceError(
            "at least one matcher must not match the empty string (such a silence would "
            "silence everything)"
        )
    return found


def new_silence(
    id: str,
    matchers: Sequence[Matcher],
    *,
    now: datetime,
    ends_at: datetime,
    created_by: str,
    comment: str,
    starts_at: datetime | None = None,
) -> Silence:
    """A checked silence: it ends in the future, lasts between SHORTEST and LONGEST, and says
    who made it and why."""
    starts = max(now, starts_at) if starts_at is not None else now
    if any(t.tzinfo is None for t in (now, ends_at, starts)):
        raise SilenceError("give times with a timezone (e.g. 2026-03-01T18:00:00+01:00)")
    if not matchers:
        raise SilenceError("give at least one matcher")
    if ends_at <= now:
        raise SilenceError(f"the end {ends_at.isoformat()} is not in the future")
    length = ends_at - starts
    if not SHORTEST <= length <= LONGEST:
        raise SilenceError(
            f"a silence lasts from {_days(SHORTEST)} to {_days(LONGEST)}, not {_days(length)}"
        )
    if not comment.strip():
        raise SilenceError("give a comment: why the notifications are silenced")
    for what, text in (("comment", comment), ("name", created_by)):
        if len(text) > MAX_TEXT:
            raise SilenceError(f"the {what} is longer than {MAX_TEXT} characters")
    if not created_by.strip():
        raise SilenceError("give who silences (--by)")
    return Silence(id, tuple(matchers), starts, ends_at, created_by, comment.strip(), now)


def expired(silence: Silence, now: datetime, by: str) -> Silence:
    """``silence`` expired by hand at ``now``; raises SilenceError when it has ended already."""
    if silence.state(now) == "expired":
        raise SilenceError(f"silence {silence.id} has expired already")
    return Silence(
        silence.id, silence.matchers, silence.starts_at, silence.ends_at, silence.created_by,
        silence.comment, silence.created_at, now, by,
    )  # fmt: skip


def silence_from_request(body: Mapping[str, object], *, silence_id: str, now: datetime) -> Silence:
    """A silence from what the API and the CLI take: ``matchers`` (a list of texts), ``for``
    (e.g. ``2h``, ``3d``) or ``ends_at`` (ISO 8601 with an offset), optionally ``starts_at``,
    ``comment`` and ``created_by``."""
    texts = body.get("matchers")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise SilenceError('"matchers" is a list of texts such as "queue=billing"')
    if any(len(t) > MAX_TEXT for t in texts):
        raise SilenceError(f"a matcher is longer than {MAX_TEXT} characters")
    fields = {k: body.get(k) for k in ("for", "ends_at", "starts_at", "comment", "created_by")}
    if any(v is not None and not isinstance(v, str) for v in fields.values()):
        raise SilenceError(f"{', '.join(fields)} are texts")
    matchers = matchers_of(texts)
    starts_at = _instant(fields["starts_at"], "starts_at")
    lasting, ends_at = fields["for"], _instant(fields["ends_at"], "ends_at")
    if (lasting is None) == (ends_at is None):
        raise SilenceError("give either how long (for, e.g. 2h) or until when (ends_at)")
    if lasting is not None:
        try:
            ends_at = max(now, starts_at or now) + parse_period(lasting)
        except ValueError as exc:
            raise SilenceError(str(exc)) from None
    assert ends_at is not None
    return new_silence(
        silence_id, matchers, now=now, ends_at=ends_at, starts_at=starts_at,
        created_by=str(fields["created_by"] or ""), comment=str(fields["comment"] or ""),
    )  # fmt: skip


def silence_json(silence: Silence, now: datetime) -> dict[str, object]:
    """A silence as the API and ``silence list --json`` show it."""
    return {
        "id": silence.id,
        "matchers": [str(m) for m in silence.matchers],
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ended_at.isoformat(),
        "created_by": silence.created_by,
        "comment": silence.comment,
        "created_at": silence.created_at.isoformat(),
        "expired_by": silence.expired_by or None,
        "state": silence.state(now),
    }


def _instant(text: object, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise SilenceError(f"{name}: {text!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise SilenceError(f"{name}: {text!r} has no UTC offset (add Z or +hh:mm)")
    return at.astimezone(UTC)


def _days(length: timedelta) -> str:
    days, rest = divmod(int(length.total_seconds()), 86400)
    return f"{days}d" if days and not rest else format_duration(length)
