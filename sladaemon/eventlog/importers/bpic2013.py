"""Importer of the BPI Challenge 2013 Volvo IT incident log (VINST, IBM sample form).

Source: CSV (gzip when named ``.gz``; a UTF-8 BOM is allowed) with ``SR Number, Change
Date+Time, Status, Sub Status, Activity, Activity Level, Involved ST Function Div, Involved Org
line 3, Involved ST, Involved ST 2, ST Level, SR Latest Impact, Product, Country, Owner Country,
Owner First Name, Resource``. Columns are found by name.

Mapping decisions:

* ``ticket_id`` = ``SR Number``; an incident's rows are taken in time order (file order on ties).
* ``Change Date+Time`` is ISO 8601 with an offset, converted to UTC; a timestamp without offset
  or unparsable skips the row.
* The raw status is ``Status/Sub Status``, e.g. ``Accepted/Wait - User``:

  ===================================  ========  ================================================
  status                               category  why
  ===================================  ========  ================================================
  Queued/Awaiting Assignment           open      waits on the support team, not on the customer;
                                                 open rather than new because an incident is
                                                 queued again each time it moves between tiers
  Accepted/Assigned                    open      assigned, work not started
  Accepted/In Progress                 open      the first one is the first agent response
  Accepted/Wait - User                 pending   waits on the user
  Accepted/Wait - Customer             pending   waits on the customer
  Accepted/Wait                        pending   unqualified wait, counted as waiting on the user
  Accepted/Wait - Vendor               on_hold   waits on a third party
  Accepted/Wait - Implementation       on_hold   waits on a change being implemented
  Completed/Resolved                   solved
  Completed/In Call                    solved    resolved during the call, no later closure
  Completed/Closed                     closed
  Completed/Cancelled                  closed    a cancelled incident is finished
  Unmatched/Unmatched                  open      seen only right after Resolved and before work
                                                 resumes: the resolution was rejected (reopened)
  ===================================  ========  ================================================

  Any other status skips its row with a RowIssue naming it.
* ``created``: the incident's first row, with that row's status and fields; the row is then
  applied like any other, so an incident that starts Accepted/In Progress gets ``created`` and
  ``agent_reply`` at the same instant. An incident that starts in a solved or closed status is
  created without status (new) and resolved or closed at the same instant.
* The first Accepted/In Progress is the first agent response (``agent_reply``); solved and
  closed statuses give ``resolved`` / ``closed``; any other status after one of them gives
  ``reopened`` (incidents do come back after Completed/Closed in this log); other changes give
  ``status_changed``. Rows repeating the status and fields (another resource, same state) are
  dropped.
* Fields: priority = ``SR Latest Impact`` (Low/Medium/High/Major); queue = ``ST Level``, the
  support tier (L1, L2, L3, L2/L3); no channel. Extra columns: involved_st (``Involved ST``, the
  support team), org_line (``Involved Org line 3``), product, country. A row that only moves the
  incident to another tier or team becomes ``status_changed`` with the unchanged status. Owner
  and resource columns describe who acted, not the incident, and are not imported.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from sladaemon.errors import RowIssue
from sladaemon.eventlog.csvlog import open_text
from sladaemon.eventlog.importers.base import (
    TicketTimeline,
    column_indexes,
    source_errors,
    ticket_rows,
)
from sladaemon.model import StatusCategory, TicketEvent

IN_PROGRESS = "Accepted/In Progress"

STATUS_CATEGORIES: Mapping[str, StatusCategory] = MappingProxyType(
    {
        "Queued/Awaiting Assignment": StatusCategory.OPEN,
        "Accepted/Assigned": StatusCategory.OPEN,
        IN_PROGRESS: StatusCategory.OPEN,
        "Accepted/Wait - User": StatusCategory.PENDING,
        "Accepted/Wait - Customer": StatusCategory.PENDING,
        "Accepted/Wait": StatusCategory.PENDING,
        "Accepted/Wait - Vendor": StatusCategory.ON_HOLD,
        "Accepted/Wait - Implementation": StatusCategory.ON_HOLD,
        "Completed/Resolved": StatusCategory.SOLVED,
        "Completed/In Call": StatusCategory.SOLVED,
        "Completed/Closed": StatusCategory.CLOSED,
        "Completed/Cancelled": StatusCategory.CLOSED,
        "Unmatched/Unmatched": StatusCategory.OPEN,
    }
)

# Output field -> source column.
FIELD_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "priority": "SR Latest Impact",
        "queue": "ST Level",
        "involved_st": "Involved ST",
        "org_line": "Involved Org line 3",
        "product": "Product",
        "country": "Country",
    }
)
NUMBER, CHANGED_AT, STATUS, SUB_STATUS = "SR Number", "Change Date+Time", "Status", "Sub Status"


class _Row(NamedTuple):
    line: int
    at: datetime
    status: str
    fields: dict[str, str]


def parse_offset_timestamp(text: str) -> datetime:
    """ISO 8601 with an offset -> aware UTC datetime."""
    text = text.strip()
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"unparsable timestamp {text!r}") from None
    if at.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return at.astimezone(UTC)


class Bpic2013Importer:
    """The BPIC 2013 Volvo incident log: ``Status/Sub Status`` as raw status."""

    name: str = "bpic2013"
    extra_columns: tuple[str, ...] = tuple(
        c for c in FIELD_COLUMNS if c not in ("priority", "queue")
    )
    status_map: Mapping[str, StatusCategory] = STATUS_CATEGORIES

    def read(self, path: Path, issues: list[RowIssue]) -> Iterator[TicketEvent]:
        for ticket_id, rows in self._rows_by_incident(path, issues).items():
            rows.sort(key=lambda r: (r.at, r.line))
            first = rows[0]
            initial = first.status
            if self.status_map[initial].is_done:
                initial = ""
            timeline = TicketTimeline(
                ticket_id,
                self.status_map,
                at=first.at,
                line=first.line,
                status=initial,
                fields=first.fields,
            )
            yield timeline.created
            for row in rows:
                event = timeline.apply(
                    row.at, row.line, row.status, row.fields, response=row.status == IN_PROGRESS
                )
                if event is not None:
                    yield event

    def _rows_by_incident(self, path: Path, issues: list[RowIssue]) -> dict[str, list[_Row]]:
        incidents: dict[str, list[_Row]] = {}
        with source_errors(path), open_text(path) as stream:
            reader = csv.reader(stream)
            columns = [NUMBER, CHANGED_AT, STATUS, SUB_STATUS, *FIELD_COLUMNS.values()]
            index = column_indexes(reader, columns, path)
            field_index = [(name, index[column]) for name, column in FIELD_COLUMNS.items()]
            rows = ticket_rows(reader, index, NUMBER, issues, id_label="SR Number")
            for line, number, row in rows:
                status = f"{row[index[STATUS]].strip()}/{row[index[SUB_STATUS]].strip()}"
                if status not in self.status_map:
                    issues.append(RowIssue(line, f"unknown status {status!r}"))
                    continue
                try:
                    at = parse_offset_timestamp(row[index[CHANGED_AT]])
                except ValueError as exc:
                    issues.append(RowIssue(line, str(exc)))
                    continue
                fields = {name: row[i].strip() for name, i in field_index}
                incidents.setdefault(number, []).append(_Row(line, at, status, fields))
        return incidents
