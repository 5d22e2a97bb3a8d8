"""Ticket event logs: the normalized CSV format and importers of public helpdesk logs."""

from sladaemon.eventlog.csvlog import (
    REQUIRED_COLUMNS,
    EventLog,
    EventWriter,
    RowParser,
    format_timestamp,
    parse_timestamp,
    read_events,
)

__all__ = [
    "REQUIRED_COLUMNS",
    "EventLog",
    "EventWriter",
    "RowParser",
    "format_timestamp",
    "parse_timestamp",
    "read_events",
]
