"""The normalized event CSV: bad rows are reported with line numbers and skipped."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sladaemon.errors import EventLogError
from sladaemon.eventlog import EventWriter, read_events
from sladaemon.model import EventKind, StatusCategory
from sladaemon.statuses import StatusMap

HEADER = "ticket_id,timestamp,event,status,priority,channel,queue,organization\n"


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "events.csv"
    path.write_text(header + body)
    return path


def test_rows_are_grouped_per_ticket_in_time_order_with_extra_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "A,2024-01-08T10:00:00+01:00,agent_reply,,,,,\n"
        "A,2024-01-08T08:30:00Z,created,New,high,email,support,acme\n"
        "B,2024-01-08T09:00:00Z,created,,,,,\n",
    )
    log = read_events(path)
    assert log.issues == []
    a = log.tickets["A"]
    assert [e.kind for e in a] == [EventKind.CREATED, EventKind.AGENT_REPLY]
    assert a[1].at == datetime(2024, 1, 8, 9, 0, tzinfo=UTC), "offsets are converted to UTC"
    assert dict(a[0].fields) == {
        "priority": "high",
        "channel": "email",
        "queue": "support",
        "organization": "acme",
    }
    assert a[0].category is StatusCategory.NEW
    assert a[1].category is None, "an empty status leaves the status unchanged"


def test_assignee_and_group_columns_become_the_fields_routing_reads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "A,2024-01-08T08:30:00Z,created,new,high,email,support,ann@example.com,Tier 1\n"
        "A,2024-01-08T09:00:00Z,status_changed,,,,,bo@example.com,Tier 2\n"
        "A,2024-01-08T09:30:00Z,agent_reply,,,,,,\n",
        header="ticket_id,timestamp,event,status,priority,channel,queue,assignee,group\n",
    )
    created, reassigned, reply = read_events(path).tickets["A"]
    assert (created.fields["assignee"], created.fields["group"]) == ("ann@example.com", "Tier 1")
    assert dict(reassigned.fields) == {"assignee": "bo@example.com", "group": "Tier 2"}
    assert dict(reply.fields) == {}, "an empty cell leaves the field as it was"


def test_bad_rows_are_reported_with_their_lines_and_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "A,2024-01-08T08:30:00Z,created,,,,,\n"  # line 2
        ",2024-01-08T08:30:00Z,created,,,,,\n"  # 3: no id
        "A,yesterday,agent_reply,,,,,\n"  # 4
        "A,2024-01-08T09:30:00,agent_reply,,,,,\n"  # 5: naive
        "A,2024-01-08T09:30:00Z,phoned,,,,,\n"  # 6: unknown event
        "A,2024-01-08T09:30:00Z\n"  # 7: missing fields
        "A,2024-01-08T07:00:00Z,agent_reply,,,,,\n"  # 8: before created
        "B,2024-01-08T07:00:00Z,agent_reply,,,,,\n"  # 9: ticket without created
        "A,2024-01-08T11:00:00Z,created,,,,,\n"  # 10: second created
        "A,2024-01-08T10:00:00Z,resolved,,,,,\n",  # 11: fine
    )
    log = read_events(path)
    reasons = {i.line: i.message for i in log.issues}
    assert reasons == {
        3: "missing ticket_id",
        4: "unparsable timestamp 'yesterday' (use ISO 8601 with offset)",
        5: "timestamp '2024-01-08T09:30:00' has no UTC offset (add Z or +hh:mm)",
        6: "unknown event 'phoned' (one of created, agent_reply, customer_reply, internal_note, "
        "status_changed, resolved, closed, reopened)",
        7: "expected 8 columns, found 2",
        8: "event of ticket 'A' before its created row",
        9: "ticket 'B' has no created row",
        10: "second created row for 'A'",
    }
    assert [e.line for e in log.tickets["A"]] == [2, 11]
    with pytest.raises(EventLogError) as info:
        read_events(path, strict=True)
    assert f"{path}:3: missing ticket_id" in str(info.value)


def test_unusable_files_get_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match="cannot read"):
        read_events(tmp_path / "absent.csv")
    with pytest.raises(EventLogError, match="header lacks event, status"):
        read_events(write(tmp_path, "", header="ticket_id,timestamp,priority,channel,queue\n"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(EventLogError, match="empty file"):
        read_events(empty)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\x00")
    with pytest.raises(EventLogError):
        read_events(binary)


def test_status_mapping_configured_globs_and_defaults() -> None:
    statuses = StatusMap(
        {"Awaiting Customer": StatusCategory.PENDING, "Fixed*": StatusCategory.SOLVED}
    )
    assert statuses("awaiting customer") is StatusCategory.PENDING
    assert statuses("Fixed in release") is StatusCategory.SOLVED
    assert statuses("Waiting for vendor") is StatusCategory.PENDING
    assert statuses("on_hold") is StatusCategory.ON_HOLD
    assert statuses("Resolved") is StatusCategory.SOLVED
    assert statuses("Mystery") is StatusCategory.OPEN
    assert statuses.unknown == {"Mystery"}


def test_written_files_read_back_identically(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "A,2024-01-08T08:30:00.250000Z,created,new,high,email,support,acme\n"
        "A,2024-01-08T09:00:00Z,customer_reply,,,,,\n",
    )
    log = read_events(source)
    out = tmp_path / "copy.csv.gz"
    with gzip.open(out, "wt", encoding="utf-8", newline="") as stream:
        EventWriter(stream, ["organization"]).write_all(log.time_ordered())
    again = read_events(out)
    assert [
        (e.ticket_id, e.at, e.kind, e.status, dict(e.fields)) for e in again.time_ordered()
    ] == [(e.ticket_id, e.at, e.kind, e.status, dict(e.fields)) for e in log.time_ordered()]
