"""Importer of the Italian software company's helpdesk log ("Helpdesk", 4TU / Mendeley Data).

Source: CSV (gzip when named ``.gz``) with ``Case ID, Activity, Resource, Complete Timestamp,
Variant, Variant index, Variant, seriousness, customer, product, responsible_section,
seriousness_2, service_level, service_type, support_section, workgroup``. Columns are found by
name; the repeated ``Variant`` column is not used.

Mapping decisions:

* ``ticket_id`` = ``Case ID``; a case's rows are taken in time order (file order on ties).
* ``Complete Timestamp`` (``YYYY/MM/DD hh:mm:ss.000``) has no zone: it is read as Europe/Rome
  wall-clock time and converted to UTC. A reading in the repeated autumn hour takes the first
  (summer-time) instant; one in the skipped spring hour takes the pre-transition offset
  (``zoneinfo`` fold=0). An unparsable timestamp skips the row.
* The log records activities, not statuses, so the importer names the statuses:

  ==========================================  ============================  ===========
  activity                                    status                        category
  ==========================================  ============================  ===========
  Assign seriousness, Insert ticket           (unchanged; sets fields)
  Take in charge ticket                       ``In Progress``               open
  Wait                                        ``Waiting``                   pending
  Create SW anomaly                           ``Anomaly reported``          on_hold
  Resolve SW anomaly                          ``In Progress``               open
  Require upgrade                             ``Upgrade required``          on_hold
  Schedule intervention                       ``Intervention scheduled``    on_hold
  Resolve ticket                              ``Resolved``                  solved
  Closed                                      ``Closed``                    closed
  VERIFIED, RESOLVED, INVALID, DUPLICATE      ``internal_note``, no status
  ==========================================  ============================  ===========

  An anomaly, an upgrade or an intervention waits on the development team or on a scheduled
  date, not on the customer, hence on_hold. The upper-case activities are the bug tracker's
  verdicts on a software anomaly, not ticket statuses, so they never reopen a ticket; their
  attribute values describe the anomaly record and are ignored (the note carries the ticket's).
* ``created``: the case's first row, status ``New`` (new), with that row's fields. The first row
  is then applied like any other, so a case whose first row is "Take in charge ticket" gets
  ``created`` and ``agent_reply`` at the same instant.
* The first "Take in charge ticket" is the first agent response (``agent_reply``); later ones are
  ``status_changed`` back to ``In Progress`` (e.g. after Wait), or dropped when nothing changed.
* Resolve ticket → ``resolved``; Closed → ``closed``; any other status after Resolved or Closed →
  ``reopened``. A repeated Resolve ticket or Closed is dropped unless a field changed.
* Fields: priority = ``seriousness_2``; queue = ``support_section`` (the support section handling
  the case); no channel. Extra columns: customer, product, responsible_section, service_level,
  service_type, workgroup. A row that only changes a field (e.g. a new seriousness_2 on Assign
  seriousness) becomes ``status_changed`` with the unchanged status. ``seriousness`` (a single
  value), ``Resource`` (who performed the activity) and the variant columns are not imported.
* An unknown activity skips its row with a RowIssue naming it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sladaemon.errors import RowIssue
from sladaemon.eventlog.csvlog import open_text
from sladaemon.eventlog.importers.base import (
    TicketTimeline,
    column_indexes,
    source_errors,
    ticket_rows,
)
from sladaemon.model import StatusCategory, TicketEvent

LOCAL_ZONE = ZoneInfo("Europe/Rome")

NEW = "New"
IN_PROGRESS = "In Progress"
WAITING = "Waiting"
ANOMALY_REPORTED = "Anomaly reported"
UPGRADE_REQUIRED = "Upgrade required"
INTERVENTION_SCHEDULED = "Intervention scheduled"
RESOLVED = "Resolved"
CLOSED = "Closed"

TAKE_IN_CHARGE = "Take in charge ticket"

# Activity -> the status it puts the ticket in (None: status unchanged).
ACTIVITY_STATUS: Mapping[str, str | None] = MappingProxyType(
    {
        "Assign seriousness": None,
        "Insert ticket": None,
        TAKE_IN_CHARGE: IN_PROGRESS,
        "Wait": WAITING,
        "Create SW anomaly": ANOMALY_REPORTED,
        "Resolve SW anomaly": IN_PROGRESS,
        "Require upgrade": UPGRADE_REQUIRED,
        "Schedule intervention": INTERVENTION_SCHEDULED,
        "Resolve ticket": RESOLVED,
        "Closed": CLOSED,
    }
)
# The bug tracker's verdicts on a software anomaly: work on the ticket, not a status.
NOTE_ACTIVITIES = frozenset({"VERIFIED", "RESOLVED", "INVALID", "DUPLICATE"})

# Output field -> source column.
FIELD_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "priority": "seriousness_2",
        "queue": "support_section",
        "customer": "customer",
        "product": "product",
        "responsible_section": "responsible_section",
        "service_level": "service_level",
        "service_type": "service_type",
        "workgroup": "workgroup",
    }
)
CASE, ACTIVITY, TIMESTAMP = "Case ID", "Activity", "Complete Timestamp"


class _Row(NamedTuple):
    line: int
    at: datetime
    activity: str
    fields: dict[str, str]


def parse_local_timestamp(text: str) -> datetime:
    """``YYYY/MM/DD hh:mm:ss[.fff]`` in Europe/Rome -> aware UTC datetime."""
    text = text.strip()
    for pattern in ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S"):
        try:
            naive = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return naive.replace(tzinfo=LOCAL_ZONE).astimezone(UTC)
    raise ValueError(f"unparsable timestamp {text!r} (expected YYYY/MM/DD hh:mm:ss.000)")


class HelpdeskItalianImporter:
    """The Italian helpdesk log: activities mapped to named statuses (see module docstring)."""

    name: str = "helpdesk-italian"
    extra_columns: tuple[str, ...] = tuple(
        c for c in FIELD_COLUMNS if c not in ("priority", "queue")
    )
    status_map: Mapping[str, StatusCategory] = MappingProxyType(
        {
            NEW: StatusCategory.NEW,
            IN_PROGRESS: StatusCategory.OPEN,
            WAITING: StatusCategory.PENDING,
            ANOMALY_REPORTED: StatusCategory.ON_HOLD,
            UPGRADE_REQUIRED: StatusCategory.ON_HOLD,
            INTERVENTION_SCHEDULED: StatusCategory.ON_HOLD,
            RESOLVED: StatusCategory.SOLVED,
            CLOSED: StatusCategory.CLOSED,
        }
    )

    def read(self, path: Path, issues: list[RowIssue]) -> Iterator[TicketEvent]:
        for ticket_id, rows in self._rows_by_case(path, issues).items():
            rows.sort(key=lambda r: (r.at, r.line))
            first = rows[0]
            timeline = TicketTimeline(
                ticket_id,
                self.status_map,
                at=first.at,
                line=first.line,
                status=NEW,
                fields=first.fields,
            )
            yield timeline.created
            for row in rows:
                if row.activity in NOTE_ACTIVITIES:
                    yield timeline.note(row.at, row.line)
                    continue
                event = timeline.apply(
                    row.at,
                    row.line,
                    ACTIVITY_STATUS[row.activity],
                    row.fields,
                    response=row.activity == TAKE_IN_CHARGE,
                )
                if event is not None:
                    yield event

    def _rows_by_case(self, path: Path, issues: list[RowIssue]) -> dict[str, list[_Row]]:
        cases: dict[str, list[_Row]] = {}
        with source_errors(path), open_text(path) as stream:
            reader = csv.reader(stream)
            index = column_indexes(
                reader, [CASE, ACTIVITY, TIMESTAMP, *FIELD_COLUMNS.values()], path
            )
            field_index = [(name, index[column]) for name, column in FIELD_COLUMNS.items()]
            for line, case, row in ticket_rows(reader, index, CASE, issues, id_label="Case ID"):
                activity = row[index[ACTIVITY]].strip()
                if activity not in ACTIVITY_STATUS and activity not in NOTE_ACTIVITIES:
                    issues.append(RowIssue(line, f"unknown activity {activity!r}"))
                    continue
                try:
                    at = parse_local_timestamp(row[index[TIMESTAMP]])
                except ValueError as exc:
                    issues.append(RowIssue(line, str(exc)))
                    continue
                fields = {name: row[i].strip() for name, i in field_index}
                cases.setdefault(case, []).append(_Row(line, at, activity, fields))
        return cases
