"""Importers that turn public helpdesk logs into the normalized ticket-event CSV.

Each importer reads one log format and yields ``TicketEvent``s; ``convert`` writes them with
``EventWriter``, sorted by ticket and time. The formats differ in how a row says what happened,
but they share one timeline rule set (``TicketTimeline`` in ``base``): the first row creates the
ticket, each row becomes at most one event, and rows that change nothing are dropped.
"""

from __future__ import annotations

import contextlib
import gzip
from pathlib import Path
from typing import IO

from sladaemon.errors import EventLogError, RowIssue
from sladaemon.eventlog.csvlog import EventWriter
from sladaemon.eventlog.importers.base import Importer, ImportReport
from sladaemon.eventlog.importers.bpic2013 import Bpic2013Importer
from sladaemon.eventlog.importers.helpdesk_italian import HelpdeskItalianImporter
from sladaemon.eventlog.importers.servicenow import ServiceNowImporter

IMPORTERS: dict[str, Importer] = {
    importer.name: importer
    for importer in (HelpdeskItalianImporter(), Bpic2013Importer(), ServiceNowImporter())
}


def convert(fmt: str, src: Path, dst: Path | IO[str]) -> ImportReport:
    """Convert ``src`` in format ``fmt`` to a normalized event CSV at ``dst`` (gzip if ``.gz``;
    or an open text stream).

    Raises ValueError for an unknown format and EventLogError when ``src`` is unusable or ``dst``
    cannot be written. ``dst`` is only opened once the whole source has been read.
    """
    importer = IMPORTERS.get(fmt)
    if importer is None:
        raise ValueError(f"unknown log format {fmt!r} (one of {', '.join(IMPORTERS)})")
    src = Path(src)
    issues: list[RowIssue] = []
    # Stable sort: within a ticket the importer's order (created first) decides ties.
    events = sorted(importer.read(src, issues), key=lambda e: (e.ticket_id, e.at))
    issues.sort(key=lambda issue: issue.line)
    try:
        with _open_output(dst) as stream:
            EventWriter(stream, importer.extra_columns).write_all(events)
    except OSError as exc:
        raise EventLogError(str(dst), message=f"cannot write: {exc.strerror or exc}") from None
    tickets = len({e.ticket_id for e in events})
    return ImportReport(events=len(events), tickets=tickets, skipped=issues)


def _open_output(dst: Path | IO[str]) -> contextlib.AbstractContextManager[IO[str]]:
    if not isinstance(dst, str | Path):
        return contextlib.nullcontext(dst)
    path = Path(dst)
    if path.suffix == ".gz":
        return gzip.open(path, "wt", encoding="utf-8", newline="")
    return path.open("w", encoding="utf-8", newline="")


__all__ = ["IMPORTERS", "ImportReport", "Importer", "convert"]
