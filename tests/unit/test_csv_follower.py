"""The CSV follower against hostile files: over-long lines, huge fields, stray quotes, sparse
holes and copytruncate rotation. A bad row never takes its neighbours, and nothing stalls."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from sladaemon.config.models import CsvSourceConfig
from sladaemon.sources.base import PollResult
from sladaemon.sources.csv.source import MAX_READ, CsvSource

HEADER = "ticket_id,timestamp,event,status,priority,channel,queue\n"
NOW = datetime(2024, 1, 8, 12, 0, tzinfo=UTC)


def row(ticket: str) -> str:
    return f"{ticket},2024-01-08T09:00:00Z,created,new,normal,email,support\n"


def follower(path: Path, cursor: object = None) -> CsvSource:
    cfg = CsvSourceConfig.model_validate({"type": "csv", "path": str(path)})
    return CsvSource("desk", cfg, cursor)


async def drain(source: CsvSource, limit: int = 100) -> PollResult:
    """Poll until nothing more is waiting; everything found, in order."""
    found = PollResult()
    for _ in range(limit):
        result = await source.poll(NOW)
        found.events += result.events
        found.issues += result.issues
        found.cursor = result.cursor
        if not result.more:
            return found
    raise AssertionError(f"still more after {limit} polls")


async def test_a_line_longer_than_a_read_is_skipped_and_the_follower_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(HEADER + row("A") + "B," + "x" * (2 * MAX_READ) + "\n" + row("C"))
    found = await drain(follower(path))
    assert [e.ticket_id for e in found.events] == ["A", "C"]
    assert [(i.line, "longer than" in i.message) for i in found.issues] == [(3, True)]
    assert [e.line for e in found.events] == [2, 4]


async def test_a_huge_field_or_a_stray_quote_spoils_its_own_line_only(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    huge = "H," + "2024-01-08T09:00:00Z,created,new,normal,email," + "q" * 200_000 + "\n"
    stray = 'S,2024-01-08T09:00:00Z,created,"new,normal,email,support\n'
    tickets = [f"T{n}" for n in range(20)]
    path.write_text(HEADER + huge + stray + "".join(row(t) for t in tickets))
    found = await drain(follower(path))
    assert [e.ticket_id for e in found.events] == tickets
    assert [(i.line, i.message.split(":")[0]) for i in found.issues] == [
        (2, "unreadable row"),  # a field over csv's 128 KiB limit: sizes are bounded
        (3, "unbalanced quote"),
    ]


async def test_a_quoted_field_may_span_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    spanning = 'M,2024-01-08T09:00:00Z,created,new,normal,email,"support\nand more"\n'
    path.write_text(HEADER + spanning + row("N"))
    found = await drain(follower(path))
    assert [(e.ticket_id, e.fields.get("queue")) for e in found.events] == [
        ("M", "support\nand more"),
        ("N", "support"),
    ]


async def test_copytruncate_rotation_is_noticed_even_when_the_file_grew_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(HEADER + row("OLD1") + row("OLD2"))
    source = follower(path)
    first = await drain(source)
    assert [e.ticket_id for e in first.events] == ["OLD1", "OLD2"]
    with path.open("r+") as f:  # rotated by copytruncate, and written to again before a poll
        f.truncate(0)
        f.write(HEADER + row("NEW1") + row("NEW2") + row("NEW3"))
    second = await drain(follower(path, first.cursor))  # as after a restart, too
    assert [e.ticket_id for e in second.events] == ["NEW1", "NEW2", "NEW3"]
    with path.open("r+") as f:
        f.truncate(0)
        f.write(HEADER + row("NEXT1") + row("NEXT2") + row("NEXT3") + row("NEXT4"))
    third = await drain(source)
    assert [e.ticket_id for e in third.events] == ["NEXT1", "NEXT2", "NEXT3", "NEXT4"]


async def test_a_sparse_hole_is_skipped_and_rows_after_it_are_read(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(HEADER + row("BEFORE"))
    source = follower(path)
    assert [e.ticket_id for e in (await drain(source)).events] == ["BEFORE"]
    with path.open("r+b") as f:
        f.seek(0, os.SEEK_END)
        f.truncate(f.tell() + 5 * MAX_READ)  # a hole of zeros, no newline
    with path.open("a") as f:
        f.write("\n" + row("AFTER"))
    found = await drain(source)
    assert [e.ticket_id for e in found.events] == ["AFTER"]
    assert len(found.issues) == 1 and "longer than" in found.issues[0].message
