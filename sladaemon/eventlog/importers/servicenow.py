"""Importer of the ServiceNow "incident management process enriched event log" (UCI #498).

Source: the CSV inside a zip (read as a stream, never extracted; a plain or ``.gz`` CSV is read
too), one audit row per incident update with ``number, incident_state, ..., opened_at,
sys_updated_at, contact_type, category, impact, urgency, priority, assignment_group,
assigned_to, resolved_at, ...``. Columns are found by name; ``?`` means missing.

Mapping decisions:

* ``ticket_id`` = ``number``; an incident's rows are taken in ``sys_updated_at`` order (file
  order on ties, since the stamps have minute resolution).
* Timestamps ``d/m/YYYY HH:MM`` carry no zone and are read as UTC. A row whose
  ``sys_updated_at`` or ``opened_at`` is missing or unparsable is skipped.
* ``created`` is at ``opened_at``, status ``New``, with the fields of the incident's first row;
  each row is then an update at its ``sys_updated_at``. A few incidents have updates stamped
  before ``opened_at`` (the opening time was edited); those events are moved to the created
  instant rather than dropped, so their status changes are kept.
* ``incident_state`` is the raw status: New (new); Active (open); Awaiting User Info and
  Awaiting Evidence (pending: wait on the caller); Awaiting Vendor and Awaiting Problem
  (on_hold: wait on a vendor or on problem management); Resolved (solved); Closed (closed). Any
  other state (the log has ``-100``) skips its row with a RowIssue naming it.
* The first row in state Active is the first agent response (``agent_reply``); Resolved gives
  ``resolved`` and Closed ``closed``; any other state after them ``reopened``; other state or
  field changes ``status_changed``; rows changing neither (most audit rows) are dropped.
* Resolution instant: when a row moves into Resolved, ``resolved_at`` is used if it lies
  between the previous event and the row's own update, else the row's ``sys_updated_at``.
  ``resolved_at`` holds the incident's *last* resolution, so for the first resolution of a
  reopened incident it lies after the reopen, and for other incidents it is never earlier than
  the row (in this log it is equal, or the time of a later re-save while already Resolved);
  using it then would contradict the audit trail's own order.
* Fields: priority = ``priority`` ("1 - Critical" ... "4 - Low"); channel = ``contact_type``;
  queue = ``assignment_group``. Extra columns: assignee (``assigned_to``), impact, urgency,
  category, made_sla. ``made_sla`` is an outcome label that only turns false on the Closed row;
  it is imported as data, not as an SLA signal. A row that only changes fields (reassignment,
  new priority) becomes ``status_changed`` with the unchanged state.
* The log is a prefix of a larger export, cut in the middle of its final incident. The final
  incident of the file (the one on its last row) is therefore dropped, each of its rows with a
  RowIssue, unless that last row is in state Closed.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import IO, NamedTuple

from sladaemon.errors import EventLogError, RowIssue
from sladaemon.eventlog.csvlog import open_text
from sladaemon.eventlog.importers.base import (
    TicketTimeline,
    column_indexes,
    source_errors,
    ticket_rows,
)
from sladaemon.model import StatusCategory, TicketEvent

MISSING = "?"
NEW, ACTIVE, RESOLVED, CLOSED = "New", "Active", "Resolved", "Closed"

STATUS_CATEGORIES: Mapping[str, StatusCategory] = MappingProxyType(
    {
        NEW: StatusCategory.NEW,
        ACTIVE: StatusCategory.OPEN,
        "Awaiting User Info": StatusCategory.PENDING,
        "Awaiting Evidence": StatusCategory.PENDING,
        "Awaiting Vendor": StatusCategory.ON_HOLD,
        "Awaiting Problem": StatusCategory.ON_HOLD,
        RESOLVED: StatusCategory.SOLVED,
        CLOSED: StatusCategory.CLOSED,
    }
)

# Output field -> source column.
FIELD_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "priority": "priority",
        "channel": "contact_type",
        "queue": "assignment_group",
        "assignee": "assigned_to",
        "impact": "impact",
        "urgency": "urgency",
        "category": "category",
        "made_sla": "made_sla",
    }
)
NUMBER, STATE, OPENED_AT, UPDATED_AT, RESOLVED_AT = (
    "number",
    "incident_state",
    "opened_at",
    "sys_updated_at",
    "resolved_at",
)


class _Row(NamedTuple):
    line: int
    at: datetime
    opened_at: datetime
    resolved_at: datetime | None
    state: str
    fields: dict[str, str]


class _TimestampParser:
    """``d/m/YYYY HH:MM[:SS]`` read as UTC; each distinct text is parsed once."""

    def __init__(self) -> None:
        self._parsed: dict[str, datetime] = {}

    def __call__(self, text: str) -> datetime:
        parsed = self._parsed.get(text)
        if parsed is None:
            parsed = self._parsed[text] = self._parse(text)
        return parsed

    @staticmethod
    def _parse(text: str) -> datetime:
        try:
            day_text, clock_text = text.strip().split(" ")
            day, month, year = (int(part) for part in day_text.split("/"))
            hour, minute, *rest = (int(part) for part in clock_text.split(":"))
            second = rest[0] if len(rest) == 1 else 0
            if len(rest) > 1:
                raise ValueError
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            raise ValueError(f"unparsable timestamp {text!r} (expected d/m/YYYY HH:MM)") from None


def _open_log(path: Path, stack: ExitStack) -> IO[str]:
    """The log's CSV text: the (single) ``.csv`` member of a zip, or a plain / gzip CSV."""
    if path.suffix.lower() != ".zip":
        return stack.enter_context(open_text(path))
    archive = stack.enter_context(zipfile.ZipFile(path))
    members = [n for n in archive.namelist() if n.lower().endswith(".csv")]
    if len(members) != 1:
        found = ", ".join(members) or "none"
        raise EventLogError(str(path), message=f"expected one .csv in the zip, found {found}")
    binary = stack.enter_context(archive.open(members[0]))
    return stack.enter_context(io.TextIOWrapper(binary, encoding="utf-8-sig", newline=""))


class ServiceNowImporter:
    """The ServiceNow incident audit log: ``incident_state`` as raw status."""

    name: str = "servicenow"
    extra_columns: tuple[str, ...] = tuple(
        c for c in FIELD_COLUMNS if c not in ("priority", "channel", "queue")
    )
    status_map: Mapping[str, StatusCategory] = STATUS_CATEGORIES

    def read(self, path: Path, issues: list[RowIssue]) -> Iterator[TicketEvent]:
        for ticket_id, rows in self._rows_by_incident(path, issues).items():
            rows.sort(key=lambda r: (r.at, r.line))
            first = rows[0]
            timeline = TicketTimeline(
                ticket_id,
                self.status_map,
                at=first.opened_at,
                line=first.line,
                status=NEW,
                fields=first.fields,
            )
            yield timeline.created
            for row in rows:
                at = row.at
                if (
                    row.state == RESOLVED
                    and timeline.status != RESOLVED
                    and row.resolved_at is not None
                    and timeline.last_at <= row.resolved_at <= at
                ):
                    at = row.resolved_at
                event = timeline.apply(
                    at, row.line, row.state, row.fields, response=row.state == ACTIVE
                )
                if event is not None:
                    yield event

    def _rows_by_incident(self, path: Path, issues: list[RowIssue]) -> dict[str, list[_Row]]:
        incidents: dict[str, list[_Row]] = {}
        parse_time = _TimestampParser()
        final_number, final_state = "", ""
        with source_errors(path), ExitStack() as stack:
            reader = csv.reader(_open_log(path, stack))
            columns = [NUMBER, STATE, OPENED_AT, UPDATED_AT, RESOLVED_AT, *FIELD_COLUMNS.values()]
            index = column_indexes(reader, columns, path)
            field_index = [(name, index[column]) for name, column in FIELD_COLUMNS.items()]
            i_state = index[STATE]
            i_opened, i_updated, i_resolved = (
                index[OPENED_AT],
                index[UPDATED_AT],
                index[RESOLVED_AT],
            )
            rows = ticket_rows(
                reader, index, NUMBER, issues, id_label="incident number", missing=MISSING
            )
            for line, number, row in rows:
                state = row[i_state].strip()
                final_number, final_state = number, state
                if state not in self.status_map:
                    issues.append(RowIssue(line, f"unknown incident_state {state!r}"))
                    continue
                try:
                    at = _required_time(parse_time, row[i_updated], UPDATED_AT)
                    opened_at = _required_time(parse_time, row[i_opened], OPENED_AT)
                    resolved_text = _value(row[i_resolved])
                    resolved_at = parse_time(resolved_text) if resolved_text else None
                except ValueError as exc:
                    issues.append(RowIssue(line, str(exc)))
                    continue
                fields = {name: _value(row[i]) for name, i in field_index}
                row_values = _Row(line, at, opened_at, resolved_at, state, fields)
                incidents.setdefault(number, []).append(row_values)
        if final_number and final_state != CLOSED:
            for row_values in incidents.pop(final_number, []):
                issues.append(
                    RowIssue(
                        row_values.line,
                        f"incident {final_number} is cut off at the end of the file "
                        f"(last row {final_state!r}, not Closed); dropped",
                    )
                )
        return incidents


def _value(cell: str) -> str:
    cell = cell.strip()
    return "" if cell == MISSING else cell


def _required_time(parse_time: _TimestampParser, cell: str, column: str) -> datetime:
    text = _value(cell)
    if not text:
        raise ValueError(f"missing {column}")
    return parse_time(text)
