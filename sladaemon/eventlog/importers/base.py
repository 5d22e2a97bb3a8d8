"""What every importer shares: the Importer protocol, source-file error handling, the header
check, and the timeline rules that turn rows into a ticket's events."""

from __future__ import annotations

import csv
import gzip
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from sladaemon.errors import EventLogError, RowIssue
from sladaemon.model import EventKind, StatusCategory, TicketEvent


@dataclass
class ImportReport:
    """What a conversion wrote, and the source rows it skipped (with line numbers and reasons)."""

    events: int
    tickets: int
    skipped: list[RowIssue] = field(default_factory=list)


class Importer(Protocol):
    """Reads one public log format as normalized ticket events."""

    name: str
    extra_columns: tuple[str, ...]  # ticket-field columns written after the fixed ones
    status_map: Mapping[str, StatusCategory]  # category of every raw status the importer writes

    def read(self, path: Path, issues: list[RowIssue]) -> Iterator[TicketEvent]:
        """Events of every ticket, each ticket's in time order starting with ``created``.

        Malformed rows are appended to ``issues`` and skipped; an unusable file raises
        ``EventLogError``.
        """
        ...


# ---------------------------------------------------------------------------- reading sources


@contextmanager
def source_errors(path: Path) -> Iterator[None]:
    """Turn the ways a source file can be unreadable into ``EventLogError``."""
    name = str(path)
    try:
        yield
    except gzip.BadGzipFile:
        raise EventLogError(name, message="not a gzip file") from None
    except zipfile.BadZipFile:
        raise EventLogError(name, message="not a zip file") from None
    except (EOFError, zlib.error) as exc:
        raise EventLogError(name, message=f"truncated or corrupt compressed file: {exc}") from None
    except UnicodeDecodeError:
        raise EventLogError(name, message="not UTF-8 text") from None
    except csv.Error as exc:
        raise EventLogError(name, message=f"not a readable CSV file: {exc}") from None
    except OSError as exc:
        raise EventLogError(name, message=f"cannot read: {exc.strerror or exc}") from None


def column_indexes(
    reader: Iterator[list[str]], columns: Sequence[str], path: Path
) -> dict[str, int]:
    """Read the header row and locate ``columns`` (first occurrence of a repeated name)."""
    header = next(reader, None)
    if header is None:
        raise EventLogError(str(path), message="empty file (no header)")
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        index.setdefault(name.strip(), i)
    missing = [c for c in columns if c not in index]
    if missing:
        raise EventLogError(
            str(path),
            message=f"not the expected log: header lacks {', '.join(repr(c) for c in missing)}",
        )
    return {c: index[c] for c in columns}


# ---------------------------------------------------------------------------- ticket timeline


class TicketTimeline:
    """The events of one ticket, built from its rows in time order.

    ``created`` comes from the ticket's first row, with the status and fields the importer
    chose for it. Each row passed to ``apply`` (the first one too) becomes at most one event:

    * ``resolved`` / ``closed`` when it moves into a solved / closed status;
    * ``reopened`` when it moves from a solved or closed status into any other;
    * ``agent_reply`` for the ticket's first response row (even when the status is unchanged);
    * ``status_changed`` for any other status change, or with the unchanged status when only
      fields changed;
    * nothing when it changes neither status nor fields.

    Every event carries the ticket's current fields; a value turning empty is ignored (the
    normalized format cannot clear a field). No event precedes ``created``: an earlier row is
    moved to the created instant.
    """

    def __init__(
        self,
        ticket_id: str,
        status_map: Mapping[str, StatusCategory],
        *,
        at: datetime,
        line: int,
        status: str,
        fields: Mapping[str, str],
    ) -> None:
        self.ticket_id = ticket_id
        self.status = status
        self.fields: Mapping[str, str] = MappingProxyType({k: v for k, v in fields.items() if v})
        self.responded = False
        self.last_at = at
        self._status_map = status_map
        self.created = self._event(EventKind.CREATED, at, line)

    def apply(
        self,
        at: datetime,
        line: int,
        status: str | None,
        fields: Mapping[str, str],
        *,
        response: bool = False,
    ) -> TicketEvent | None:
        """The event for one row; ``status`` None keeps the current status."""
        fields_changed = self._merge_fields(fields)
        first_response = response and not self.responded
        self.responded = self.responded or response
        if status is None or status == self.status:
            if first_response:
                kind = EventKind.AGENT_REPLY
            elif fields_changed:
                kind = EventKind.STATUS_CHANGED
            else:
                return None
        else:
            previous = self._category(self.status)
            self.status = status
            category = self._category(status)
            if category is StatusCategory.SOLVED:
                kind = EventKind.RESOLVED
            elif category is StatusCategory.CLOSED:
                kind = EventKind.CLOSED
            elif previous is not None and previous.is_done:
                kind = EventKind.REOPENED
            elif first_response:
                kind = EventKind.AGENT_REPLY
            else:
                kind = EventKind.STATUS_CHANGED
        return self._event(kind, at, line)

    def note(self, at: datetime, line: int) -> TicketEvent:
        """An ``internal_note``: work recorded on the ticket; status and fields stay as they are."""
        return self._event(EventKind.INTERNAL_NOTE, at, line, status="")

    def _merge_fields(self, fields: Mapping[str, str]) -> bool:
        current = self.fields
        if all(current.get(k) == v for k, v in fields.items() if v):
            return False
        merged = dict(current)
        merged.update((k, v) for k, v in fields.items() if v)
        self.fields = MappingProxyType(merged)
        return True

    def _category(self, status: str) -> StatusCategory | None:
        return self._status_map[status] if status else None

    def _event(
        self, kind: EventKind, at: datetime, line: int, status: str | None = None
    ) -> TicketEvent:
        if kind is not EventKind.CREATED:
            at = max(at, self.created.at)
        self.last_at = max(at, self.last_at)
        status = self.status if status is None else status
        return TicketEvent(
            ticket_id=self.ticket_id,
            at=at,
            kind=kind,
            status=status,
            category=self._category(status),
            fields=self.fields,
            line=line,
        )


class CsvReader(Protocol):
    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


def ticket_rows(
    reader: CsvReader,
    index: Mapping[str, int],
    id_column: str,
    issues: list[RowIssue],
    *,
    id_label: str,
    missing: str = "",
) -> Iterator[tuple[int, str, list[str]]]:
    """(line, ticket id, row) for every row with all columns and an id. Blank rows are passed
    over; short rows and rows without an id (``missing`` marks an empty cell) are reported."""
    width = max(index.values()) + 1
    i_id = index[id_column]
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < width:
            issues.append(RowIssue(line, f"expected {width} columns, found {len(row)}"))
            continue
        ticket_id = row[i_id].strip()
        if not ticket_id or ticket_id == missing:
            issues.append(RowIssue(line, f"missing {id_label}"))
            continue
        yield line, ticket_id, row
