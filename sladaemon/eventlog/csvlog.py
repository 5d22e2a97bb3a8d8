"""The normalized ticket-event CSV: the import format for history and the live ``csv`` source.

Header (any order; extra columns become ticket fields)::

    ticket_id,timestamp,event,status,priority,channel,queue

``timestamp`` is ISO 8601 with an offset or ``Z``. ``event`` is one of the ``EventKind`` values.
Files need not be sorted. Bad rows are reported with their line number and skipped; under
``strict`` any bad row rejects the whole file.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import IO

from sladaemon.errors import EventLogError, RowIssue
from sladaemon.model import EMPTY_FIELDS, EventKind, StatusCategory, TicketEvent
from sladaemon.statuses import StatusMap

REQUIRED_COLUMNS = ("ticket_id", "timestamp", "event", "status", "priority", "channel", "queue")
FIELD_COLUMNS = ("priority", "channel", "queue")
_KINDS = {k.value: k for k in EventKind}


@dataclass
class EventLog:
    """Events grouped by ticket (each list in time order), and the rows that were skipped."""

    tickets: dict[str, list[TicketEvent]] = field(default_factory=dict)
    issues: list[RowIssue] = field(default_factory=list)
    unknown_statuses: set[str] = field(default_factory=set)

    @property
    def event_count(self) -> int:
        return sum(len(v) for v in self.tickets.values())

    def time_ordered(self) -> list[TicketEvent]:
        events = [e for evs in self.tickets.values() for e in evs]
        events.sort(key=lambda e: (e.at, e.line))
        return events


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 with an offset or Z -> aware UTC datetime. Naive timestamps are refused."""
    text = text.strip()
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"unparsable timestamp {text!r} (use ISO 8601 with offset)") from None
    if t.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset (add Z or +hh:mm)")
    return t.astimezone(UTC)


def open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


class RowParser:
    """Turns CSV rows into TicketEvents, one row at a time (shared with the live csv source)."""

    def __init__(self, header: Sequence[str], statuses: StatusMap) -> None:
        columns = [c.strip() for c in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ValueError(
                f"header lacks {', '.join(missing)} (expected {','.join(REQUIRED_COLUMNS)})"
            )
        self.columns = columns
        self.statuses = statuses
        self._index = {c: i for i, c in enumerate(columns)}
        self._extra = [(c, i) for i, c in enumerate(columns) if c not in REQUIRED_COLUMNS and c]

    def parse(self, row: Sequence[str], line: int) -> TicketEvent:
        """Raises ValueError with a reason when the row is unusable."""
        if len(row) < len(self.columns):
            raise ValueError(f"expected {len(self.columns)} columns, found {len(row)}")
        idx = self._index
        ticket_id = row[idx["ticket_id"]].strip()
        if not ticket_id:
            raise ValueError("missing ticket_id")
        stamp = row[idx["timestamp"]]
        if not stamp.strip():
            raise ValueError("missing timestamp")
        at = parse_timestamp(stamp)
        kind_text = row[idx["event"]].strip().lower()
        kind = _KINDS.get(kind_text)
        if kind is None:
            if not kind_text:
                raise ValueError("missing event")
            raise ValueError(f"unknown event {kind_text!r} (one of {', '.join(_KINDS)})")
        status = sys.intern(row[idx["status"]].strip())
        category: StatusCategory | None = self.statuses(status) if status else None
        # Field values repeat across tickets (priorities, channels, queues): share them.
        fields = {c: sys.intern(v) for c in FIELD_COLUMNS if (v := row[idx[c]].strip())}
        for name, i in self._extra:
            value = row[i].strip()
            if value:
                fields[name] = sys.intern(value)
        return TicketEvent(
            ticket_id=sys.intern(ticket_id),
            at=at,
            kind=kind,
            status=status,
            category=category,
            fields=MappingProxyType(fields) if fields else EMPTY_FIELDS,
            line=line,
        )


def read_events(
    path: Path | str, statuses: StatusMap | None = None, *, strict: bool = False
) -> EventLog:
    """Read a normalized event file (plain or .gz). Raises EventLogError if it is unusable."""
    path = Path(path)
    statuses = statuses or StatusMap()
    try:
        with open_text(path) as stream:
            log = parse_stream(stream, statuses, str(path))
    except OSError as exc:
        raise EventLogError(str(path), message=f"cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error, EOFError, gzip.BadGzipFile) as exc:
        raise EventLogError(str(path), message=f"not a readable CSV file: {exc}") from None
    if strict and log.issues:
        raise EventLogError(str(path), log.issues, f"{len(log.issues)} bad rows (--strict)")
    return log


def parse_stream(stream: Iterable[str], statuses: StatusMap, name: str = "<stream>") -> EventLog:
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise EventLogError(name, message="empty file (no header)") from None
    try:
        parser = RowParser(header, statuses)
    except ValueError as exc:
        raise EventLogError(name, message=str(exc)) from None
    log = EventLog()
    for row in reader:
        line = reader.line_num
        if not row or not any(cell.strip() for cell in row):
            continue
        try:
            event = parser.parse(row, line)
        except ValueError as exc:
            log.issues.append(RowIssue(line, str(exc)))
            continue
        log.tickets.setdefault(event.ticket_id, []).append(event)
    _order_and_check(log)
    log.unknown_statuses = set(statuses.unknown)
    return log


def _order_and_check(log: EventLog) -> None:
    """Sort each ticket's events; drop events before ``created`` and tickets without it."""
    for ticket_id in list(log.tickets):
        events = sorted(log.tickets[ticket_id], key=_created_first)
        created = next((e for e in events if e.kind is EventKind.CREATED), None)
        if created is None:
            for e in events:
                log.issues.append(RowIssue(e.line, f"ticket {ticket_id!r} has no created row"))
            del log.tickets[ticket_id]
            continue
        kept: list[TicketEvent] = []
        for e in events:
            if e.at < created.at:
                log.issues.append(
                    RowIssue(e.line, f"event of ticket {ticket_id!r} before its created row")
                )
            elif e.kind is EventKind.CREATED and e is not created:
                log.issues.append(RowIssue(e.line, f"second created row for {ticket_id!r}"))
            else:
                kept.append(e)
        log.tickets[ticket_id] = kept
    log.issues.sort(key=lambda i: i.line)


def _created_first(e: TicketEvent) -> tuple[datetime, int, int]:
    # At equal timestamps the created row goes first, then file order.
    return (e.at, 0 if e.kind is EventKind.CREATED else 1, e.line)


# ---------------------------------------------------------------------------- writing


def format_timestamp(t: datetime) -> str:
    t = t.astimezone(UTC)
    text = t.isoformat(timespec="microseconds" if t.microsecond else "seconds")
    return text.replace("+00:00", "Z")


class EventWriter:
    """Writes TicketEvents as normalized CSV rows; ``extra_columns`` follow the fixed ones."""

    def __init__(self, stream: IO[str], extra_columns: Sequence[str] = ()) -> None:
        self._writer = csv.writer(stream, lineterminator="\n")
        self._extra = list(extra_columns)
        self._writer.writerow([*REQUIRED_COLUMNS, *self._extra])
        self.rows = 0

    def write(self, event: TicketEvent) -> None:
        f = event.fields
        self._writer.writerow(
            [
                event.ticket_id,
                format_timestamp(event.at),
                event.kind.value,
                event.status,
                f.get("priority", ""),
                f.get("channel", ""),
                f.get("queue", ""),
                *(f.get(c, "") for c in self._extra),
            ]
        )
        self.rows += 1

    def write_all(self, events: Iterable[TicketEvent]) -> int:
        for e in events:
            self.write(e)
        return self.rows
