"""The normalized event CSV as a source.

Follow mode reads the lines appended since the last poll (a partial last line waits for the
next poll), resuming after a restart from the byte offset saved with the events. A file that
was replaced (another inode), shrank, or was truncated and grew again before the next poll
(copytruncate rotation: the bytes before the offset are not the ones read) is read again from
the start, and the restart is logged. A bad row never takes its neighbours: each record is
parsed on its own (a stray quote spoils its own line only), a line longer than ``MAX_READ`` is
skipped with a reason, and the follower goes on after it. Replay mode (``speed``) reads the
whole file once and releases its events as the daemon's clock — started at the first event and
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
from sladaemon.logs import get_logger
from sladaemon.model import TicketEvent
from sladaemon.sources.base import PollResult, SourceError
from sladaemon.statuses import StatusMap

MAX_READ = 1024 * 1024  # bytes per poll; when more is waiting the daemon polls again at once
MAX_RECORD_LINES = 20  # lines a quoted field may span before its quote counts as stray
FINGERPRINT = 64  # bytes before the offset that must still be there on the next poll


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
        self._fingerprint = ""  # hex of the FINGERPRINT bytes before the offset
        self._skipping = False  # inside a line longer than MAX_READ
        self.log = get_logger("sladaemon.sources.csv")
        if isinstance(cursor, dict) and not self.replay:
            self._offset = int(cursor.get("offset", 0))
            self._line = int(cursor.get("line", 1))
            self._inode = cursor.get("inode")
            self._fingerprint = str(cursor.get("fingerprint", ""))
            self._skipping = bool(cursor.get("skipping", False))

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
                self._check_same_file(stream)
                if self._parser is None:
                    self._parser = self._read_header(stream)
                    if self._offset == 0:
                        self._offset = stream.tell()
                        self._line = 2
                stream.seek(self._offset)
                chunk = stream.read(MAX_READ)
                result = self._take(chunk, self._parser)
                stream.seek(max(0, self._offset - FINGERPRINT))
                self._fingerprint = stream.read(min(self._offset, FINGERPRINT)).hex()
        except FileNotFoundError:
            raise SourceError(f"{self.path} does not exist") from None
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror}") from None
        result.cursor = {
            "offset": self._offset,
            "line": self._line,
            "inode": self._inode,
            "fingerprint": self._fingerprint,
            "skipping": self._skipping,
        }
        result.unknown_statuses = set(self.statuses.unknown)
        return result

    def _check_same_file(self, stream: io.BufferedReader) -> None:
        """Start over when the file is not the one the offset belongs to."""
        info = os.fstat(stream.fileno())
        why = ""
        if self._inode is not None and info.st_ino != self._inode:
            why = "replaced"
        elif info.st_size < self._offset:
            why = "truncated"
        elif self._fingerprint:
            stream.seek(max(0, self._offset - FINGERPRINT))
            if stream.read(min(self._offset, FINGERPRINT)).hex() != self._fingerprint:
                why = "truncated and written again"
        if why:
            self.log.warning("event_file_restarted", source=self.name, path=str(self.path), why=why)
            self._offset, self._line, self._parser = 0, 1, None
            self._fingerprint, self._skipping = "", False
        self._inode = info.st_ino

    def _take(self, chunk: bytes, parser: RowParser) -> PollResult:
        """The events of the complete lines of ``chunk``; moves the offset past them."""
        result = PollResult()
        start = 0
        if self._skipping:  # the rest of an over-long line
            newline = chunk.find(b"\n")
            if newline < 0:
                self._offset += len(chunk)
                result.more = len(chunk) == MAX_READ
                return result
            start = newline + 1
            self._skipping = False
            self._line += 1
        end = chunk.rfind(b"\n") + 1  # only complete lines
        if end == 0 and len(chunk) == MAX_READ:  # a line longer than we read: skip it
            result.issues.append(RowIssue(self._line, f"line longer than {MAX_READ} bytes"))
            self._skipping = True
            self._offset += len(chunk)
            result.more = True
            return result
        if end > start:
            text = chunk[start:end].decode("utf-8", errors="replace")
            self._rows(text.split("\n")[:-1], parser, result)
            self._line += text.count("\n")
        self._offset += max(end, start)
        result.more = len(chunk) == MAX_READ
        return result

    def _rows(self, lines: list[str], parser: RowParser, result: PollResult) -> None:
        """Parse each record on its own; a quoted field may span a few lines."""
        i = 0
        while i < len(lines):
            j, record = i, lines[i]
            while record.count('"') % 2 and j + 1 < len(lines) and j - i < MAX_RECORD_LINES:
                j += 1
                record += "\n" + lines[j]
            line = self._line + i
            if record.count('"') % 2:
                result.issues.append(RowIssue(line, "unbalanced quote"))
                i += 1
                continue
            i = j + 1
            try:
                row = next(csv.reader([record]), [])
            except csv.Error as exc:
                result.issues.append(RowIssue(line, f"unreadable row: {exc}"))
                continue
            if not row or not any(cell.strip() for cell in row):
                continue
            try:
                result.events.append(parser.parse(row, line))
            except ValueError as exc:
                result.issues.append(RowIssue(line, str(exc)))

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
