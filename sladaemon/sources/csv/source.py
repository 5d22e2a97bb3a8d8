"""The normalized event CSV as a source.

Follow mode reads the lines appended since the last poll (a partial last line waits for the
next poll), resuming after a restart from the byte offset saved with the events; a file that
shrinks or is replaced is read again from the start. Replay mode (``speed``) reads the whole
file once and releases its events as the daemon's clock — started at the first event and
running ``speed`` times faster than real time — passes them.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import datetime
from pathlib import Path

from sladaemon.config.models import CsvSourceConfig
from sladaemon.errors import EventLogError, RowIssue
from sladaemon.eventlog import RowParser, read_events
from sladaemon.model import TicketEvent
from sladaemon.sources.base import PollResult, SourceError
from sladaemon.statuses import StatusMap

MAX_READ = 1024 * 1024  # bytes per poll; when more is waiting the daemon polls again at once


class CsvSource:
    def __init__(self, name: str, cfg: CsvSourceConfig, cursor: object = None) -> None:
        self.name = name
        self.cfg = cfg
        self.path = Path(cfg.path)
        self.statuses = StatusMap(cfg.statuses)
        self.replay = cfg.speed is not None
        self.persistent = not self.replay
        self._offset = 0
        self._line = 1
        self._inode: int | None = None
        self._parser: RowParser | None = None
        self._pending: list[TicketEvent] = []
        self._loaded = False
        if isinstance(cursor, dict) and not self.replay:
            self._offset = int(cursor.get("offset", 0))
            self._line = int(cursor.get("line", 1))
            self._inode = cursor.get("inode")

    def first_instant(self) -> datetime | None:
        """For replays: the time of the first event in the file (where the clock starts)."""
        self._load_replay()
        return self._pending[0].at if self._pending else None

    async def poll(self, now: datetime) -> PollResult:
        if self.replay:
            self._load_replay()
            n = 0
            while n < len(self._pending) and self._pending[n].at <= now:
                n += 1
            released, self._pending = self._pending[:n], self._pending[n:]
            return PollResult(events=released)
        return self._follow()

    async def close(self) -> None:
        return None

    def _load_replay(self) -> None:
        if self._loaded:
            return
        try:
            log = read_events(self.path, self.statuses)
        except EventLogError as exc:
            raise SourceError(str(exc), retryable=True) from None
        self._pending = log.time_ordered()
        self._loaded = True

    def _follow(self) -> PollResult:
        try:
            with self.path.open("rb") as stream:
                info = os.fstat(stream.fileno())
                if self._inode is not None and (
                    info.st_ino != self._inode or info.st_size < self._offset
                ):
                    self._offset, self._line, self._parser = 0, 1, None  # replaced or truncated
                self._inode = info.st_ino
                if self._parser is None:
                    self._parser = self._read_header(stream)
                    if self._offset == 0:
                        self._offset = stream.tell()
                        self._line = 2
                stream.seek(self._offset)
                chunk = stream.read(MAX_READ)
        except FileNotFoundError:
            raise SourceError(f"{self.path} does not exist") from None
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror}") from None
        end = chunk.rfind(b"\n") + 1  # only complete lines
        result = PollResult(more=len(chunk) == MAX_READ and end > 0)
        if end:
            text = chunk[:end].decode("utf-8", errors="replace")
            first_line = self._line
            for k, row in enumerate(csv.reader(io.StringIO(text))):
                line = first_line + k
                if not row or not any(cell.strip() for cell in row):
                    continue
                try:
                    result.events.append(self._parser.parse(row, line))
                except ValueError as exc:
                    result.issues.append(RowIssue(line, str(exc)))
            self._line = first_line + text.count("\n")
            self._offset += end
        result.cursor = {"offset": self._offset, "line": self._line, "inode": self._inode}
        result.unknown_statuses = set(self.statuses.unknown)
        return result

    def _read_header(self, stream: io.BufferedReader) -> RowParser:
        stream.seek(0)
        header = stream.readline()
        if not header.endswith(b"\n"):
            raise SourceError(f"{self.path}: no complete header line yet")
        row = next(csv.reader([header.decode("utf-8-sig", errors="replace")]), [])
        try:
            return RowParser(row, self.statuses)
        except ValueError as exc:
            raise SourceError(f"{self.path}: {exc}", retryable=True) from None
