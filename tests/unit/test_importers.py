"""Importers of public helpdesk logs: mapping rules on inline fixtures, then the real logs."""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sladaemon.errors import EventLogError, RowIssue
from sladaemon.eventlog import read_events
from sladaemon.eventlog.importers import IMPORTERS, Importer, convert
from sladaemon.model import EventKind, StatusCategory, TicketEvent
from sladaemon.statuses import StatusMap
from tests.conftest import shared_path


def read(fmt: str, path: Path) -> tuple[list[TicketEvent], list[RowIssue]]:
    issues: list[RowIssue] = []
    events = list(IMPORTERS[fmt].read(path, issues))
    return events, issues


def story(events: list[TicketEvent], ticket_id: str) -> list[tuple[str, str]]:
    """(event kind, raw status) of one ticket, in order."""
    return [(e.kind.value, e.status) for e in events if e.ticket_id == ticket_id]


def of(events: list[TicketEvent], ticket_id: str) -> list[TicketEvent]:
    return [e for e in events if e.ticket_id == ticket_id]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def write_gz(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    return path


def write_zip(path: Path, text: str, member: str = "incident_event_log.csv") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, text)
    return path


# ---------------------------------------------------------------------------- helpdesk-italian

HELPDESK_HEADER = (
    "Case ID,Activity,Resource,Complete Timestamp,Variant,Variant index,Variant,seriousness,"
    "customer,product,responsible_section,seriousness_2,service_level,service_type,"
    "support_section,workgroup"
)


def helpdesk_row(
    case: str, activity: str, stamp: str, seriousness_2: str = "Value 1", customer: str = "C1"
) -> str:
    # Both Variant columns are filled with different values: only the first is ever looked up.
    return (
        f"{case},{activity},Value 9,{stamp},Variant 3,3,Variant 99,Value 1,{customer},P1,R1,"
        f"{seriousness_2},SL1,ST1,Section 1,WG1"
    )


def helpdesk_log(tmp_path: Path, *rows: str) -> Path:
    return write_gz(tmp_path / "helpdesk.csv.gz", "\n".join([HELPDESK_HEADER, *rows]) + "\n")


def test_helpdesk_ticket_lifecycle(tmp_path: Path) -> None:
    path = helpdesk_log(
        tmp_path,
        helpdesk_row("Case 1", "Assign seriousness", "2012/10/09 14:50:17.000"),
        helpdesk_row("Case 1", "Take in charge ticket", "2012/10/09 14:51:01.000"),
        helpdesk_row("Case 1", "Wait", "2012/10/10 09:00:00.000"),
        helpdesk_row("Case 1", "Take in charge ticket", "2012/10/11 09:00:00.000"),
        helpdesk_row("Case 1", "Take in charge ticket", "2012/10/11 10:00:00.000"),
        helpdesk_row("Case 1", "Resolve ticket", "2012/10/12 09:00:00.000"),
        helpdesk_row("Case 1", "Resolve ticket", "2012/10/12 09:30:00.000"),
        helpdesk_row("Case 1", "Take in charge ticket", "2012/10/15 09:00:00.000"),
        helpdesk_row("Case 1", "Resolve ticket", "2012/10/16 09:00:00.000"),
        helpdesk_row("Case 1", "Closed", "2012/11/16 09:00:00.000"),
    )
    events, issues = read("helpdesk-italian", path)
    assert issues == []
    assert story(events, "Case 1") == [
        ("created", "New"),
        ("agent_reply", "In Progress"),
        ("status_changed", "Waiting"),
        ("status_changed", "In Progress"),  # back from Wait: not a first response again
        ("resolved", "Resolved"),  # the repeated take-in-charge and resolve are dropped
        ("reopened", "In Progress"),
        ("resolved", "Resolved"),
        ("closed", "Closed"),
    ]
    categories = [e.category for e in events]
    assert categories[:3] == [StatusCategory.NEW, StatusCategory.OPEN, StatusCategory.PENDING]
    # Europe/Rome: summer time (UTC+2) in October, winter time (UTC+1) from the last Sunday.
    assert events[0].at == utc(2012, 10, 9, 12, 50, 17)
    assert events[1].at == utc(2012, 10, 9, 12, 51, 1)
    assert events[-1].at == utc(2012, 11, 16, 8, 0, 0)
    assert [e.line for e in events] == [2, 3, 4, 5, 7, 9, 10, 11]
    assert dict(events[0].fields) == {
        "priority": "Value 1",
        "queue": "Section 1",
        "customer": "C1",
        "product": "P1",
        "responsible_section": "R1",
        "service_level": "SL1",
        "service_type": "ST1",
        "workgroup": "WG1",
    }


def test_helpdesk_field_change_and_first_row_response(tmp_path: Path) -> None:
    path = helpdesk_log(
        tmp_path,
        helpdesk_row("Case 2", "Assign seriousness", "2012/04/03 08:55:38.000"),
        helpdesk_row("Case 2", "Assign seriousness", "2012/04/03 09:00:00.000", "Value 2"),
        helpdesk_row("Case 2", "Assign seriousness", "2012/04/03 09:10:00.000", "Value 2"),
        helpdesk_row("Case 3", "Take in charge ticket", "2012/04/04 10:00:00.000"),
    )
    events, _ = read("helpdesk-italian", path)
    changed = of(events, "Case 2")[1]
    assert (changed.kind, changed.status) == (EventKind.STATUS_CHANGED, "New")
    assert changed.fields["priority"] == "Value 2"
    assert len(of(events, "Case 2")) == 2  # the third row changes nothing
    created, reply = of(events, "Case 3")
    assert (created.kind, reply.kind) == (EventKind.CREATED, EventKind.AGENT_REPLY)
    assert created.at == reply.at == utc(2012, 4, 4, 8, 0, 0)


def test_helpdesk_anomaly_holds_and_tracker_verdicts_are_notes(tmp_path: Path) -> None:
    path = helpdesk_log(
        tmp_path,
        helpdesk_row("Case 4", "Assign seriousness", "2011/04/13 15:24:54.000"),
        helpdesk_row("Case 4", "Take in charge ticket", "2011/04/13 15:25:35.000"),
        helpdesk_row("Case 4", "Create SW anomaly", "2011/05/03 07:25:49.000"),
        helpdesk_row("Case 4", "Resolve ticket", "2011/05/18 08:37:33.000"),
        helpdesk_row("Case 4", "RESOLVED", "2011/05/18 10:45:13.000", customer="Other"),
        helpdesk_row("Case 4", "Closed", "2011/06/02 08:37:59.000"),
        helpdesk_row("Case 4", "VERIFIED", "2011/06/08 17:05:32.000", customer="Other"),
    )
    events, issues = read("helpdesk-italian", path)
    assert issues == []
    assert story(events, "Case 4") == [
        ("created", "New"),
        ("agent_reply", "In Progress"),
        ("status_changed", "Anomaly reported"),
        ("resolved", "Resolved"),
        ("internal_note", ""),  # the bug tracker's verdict does not reopen the ticket
        ("closed", "Closed"),
        ("internal_note", ""),
    ]
    assert events[2].category is StatusCategory.ON_HOLD
    assert {e.fields["customer"] for e in events} == {"C1"}


def test_helpdesk_bad_rows_are_skipped_with_line_numbers(tmp_path: Path) -> None:
    path = helpdesk_log(
        tmp_path,
        helpdesk_row("Case 5", "Assign seriousness", "2012/04/03 08:55:38.000"),
        helpdesk_row("Case 5", "Wait", "2012-04-03T09:00:00"),
        helpdesk_row("", "Wait", "2012/04/03 09:00:00.000"),
        helpdesk_row("Case 5", "Escalate to Mars", "2012/04/03 09:00:00.000"),
        "Case 5,Wait",
        helpdesk_row("Case 5", "Resolve ticket", "2012/04/03 10:00:00"),
    )
    events, issues = read("helpdesk-italian", path)
    assert [i.line for i in issues] == [3, 4, 5, 6]
    assert "unparsable timestamp '2012-04-03T09:00:00'" in issues[0].message
    assert issues[1].message == "missing Case ID"
    assert issues[2].message == "unknown activity 'Escalate to Mars'"
    assert issues[3].message.startswith("expected 16 columns")
    assert story(events, "Case 5") == [("created", "New"), ("resolved", "Resolved")]


# ---------------------------------------------------------------------------- bpic2013

BPIC_HEADER = (
    "\ufeffSR Number,Change Date+Time,Status,Sub Status,Activity,Activity Level,"
    "Involved ST Function Div,Involved Org line 3,Involved ST,Involved ST 2,ST Level,"
    "SR Latest Impact,Product,Country,Owner Country,Owner First Name,Resource"
)


def bpic_row(
    number: str, stamp: str, status: str, sub: str, level: str = "L1", owner: str = "Anne"
) -> str:
    team = {"L1": "V30", "L2": "V13 2nd", "L3": "V5 3rd"}[level]
    return (
        f"{number},{stamp},{status},{sub},{status}-{sub},{status}-{sub}-{level},A2_4,Org line A2,"
        f"{team},{team.split()[0]},{level},Medium,PROD582,fr,France,{owner},fr-{owner}"
    )


def bpic_log(tmp_path: Path, *rows: str) -> Path:
    return write_gz(tmp_path / "incidents.csv.gz", "\r\n".join([BPIC_HEADER, *rows]) + "\r\n")


def test_bpic_incident_lifecycle(tmp_path: Path) -> None:
    n = "1-364285768"
    path = bpic_log(
        tmp_path,
        bpic_row(n, "2010-03-31T15:59:42+01:00", "Accepted", "In Progress"),
        bpic_row(n, "2010-03-31T16:00:56+01:00", "Accepted", "In Progress", owner="Eric"),
        bpic_row(n, "2010-03-31T16:45:48+01:00", "Queued", "Awaiting Assignment", "L2"),
        bpic_row(n, "2010-04-06T15:44:07+01:00", "Accepted", "In Progress", "L2"),
        bpic_row(n, "2010-04-06T15:50:00+01:00", "Accepted", "Wait - User", "L2"),
        bpic_row(n, "2010-04-07T09:00:00+01:00", "Accepted", "Wait - Vendor", "L2"),
        bpic_row(n, "2010-04-08T09:00:00+01:00", "Completed", "Resolved", "L2"),
        bpic_row(n, "2010-04-08T10:00:00+01:00", "Unmatched", "Unmatched", "L2"),
        bpic_row(n, "2010-04-08T11:00:00+01:00", "Completed", "Resolved", "L2"),
        bpic_row(n, "2010-04-20T10:00:00+01:00", "Completed", "Closed", "L2"),
        bpic_row(n, "2010-04-21T10:00:00+01:00", "Accepted", "In Progress", "L2"),
        bpic_row(n, "2010-04-21T11:00:00+01:00", "Completed", "Cancelled", "L2"),
    )
    events, issues = read("bpic2013", path)
    assert issues == []
    assert story(events, n) == [
        ("created", "Accepted/In Progress"),
        ("agent_reply", "Accepted/In Progress"),  # taken up as it was logged
        ("status_changed", "Queued/Awaiting Assignment"),  # same-state row by Eric dropped
        ("status_changed", "Accepted/In Progress"),
        ("status_changed", "Accepted/Wait - User"),
        ("status_changed", "Accepted/Wait - Vendor"),
        ("resolved", "Completed/Resolved"),
        ("reopened", "Unmatched/Unmatched"),  # the resolution was rejected
        ("resolved", "Completed/Resolved"),
        ("closed", "Completed/Closed"),
        ("reopened", "Accepted/In Progress"),
        ("closed", "Completed/Cancelled"),
    ]
    assert events[0].at == events[1].at == utc(2010, 3, 31, 14, 59, 42)
    queued = events[2]
    assert queued.category is StatusCategory.OPEN  # waits on the support team, not the user
    assert (queued.fields["queue"], queued.fields["involved_st"]) == ("L2", "V13 2nd")
    assert [e.category for e in events[4:6]] == [StatusCategory.PENDING, StatusCategory.ON_HOLD]
    assert dict(events[0].fields) == {
        "priority": "Medium",
        "queue": "L1",
        "involved_st": "V30",
        "org_line": "Org line A2",
        "product": "PROD582",
        "country": "fr",
    }


def test_bpic_tier_change_alone_is_a_status_changed_event(tmp_path: Path) -> None:
    n = "1-1"
    path = bpic_log(
        tmp_path,
        bpic_row(n, "2012-05-02T10:00:00+01:00", "Queued", "Awaiting Assignment", "L1"),
        bpic_row(n, "2012-05-02T10:05:00+01:00", "Queued", "Awaiting Assignment", "L2"),
    )
    events, _ = read("bpic2013", path)
    assert story(events, n) == [
        ("created", "Queued/Awaiting Assignment"),
        ("status_changed", "Queued/Awaiting Assignment"),
    ]
    assert events[1].fields["queue"] == "L2"


def test_bpic_incident_completed_on_its_first_row(tmp_path: Path) -> None:
    path = bpic_log(tmp_path, bpic_row("1-2", "2012-05-02T10:00:00+01:00", "Completed", "In Call"))
    events, _ = read("bpic2013", path)
    assert story(events, "1-2") == [("created", ""), ("resolved", "Completed/In Call")]
    assert events[0].category is None  # no status: the reader implies new


def test_bpic_bad_rows_are_skipped_with_line_numbers(tmp_path: Path) -> None:
    path = bpic_log(
        tmp_path,
        bpic_row("1-3", "2012-05-02T10:00:00+01:00", "Accepted", "In Progress"),
        bpic_row("1-3", "2012-05-02T11:00:00", "Accepted", "Wait - User"),
        bpic_row("1-3", "yesterday", "Accepted", "Wait - User"),
        bpic_row("", "2012-05-02T11:00:00+01:00", "Accepted", "Wait - User"),
        bpic_row("1-3", "2012-05-02T11:00:00+01:00", "Accepted", "Sleeping"),
    )
    events, issues = read("bpic2013", path)
    assert issues == [
        RowIssue(3, "timestamp '2012-05-02T11:00:00' has no UTC offset"),
        RowIssue(4, "unparsable timestamp 'yesterday'"),
        RowIssue(5, "missing SR Number"),
        RowIssue(6, "unknown status 'Accepted/Sleeping'"),
    ]
    assert len(events) == 2


# ---------------------------------------------------------------------------- servicenow

SERVICENOW_COLUMNS = [
    "number", "incident_state", "active", "reassignment_count", "reopen_count", "sys_mod_count",
    "made_sla", "caller_id", "opened_by", "opened_at", "sys_created_by", "sys_created_at",
    "sys_updated_by", "sys_updated_at", "contact_type", "location", "category", "subcategory",
    "u_symptom", "cmdb_ci", "impact", "urgency", "priority", "assignment_group", "assigned_to",
    "knowledge", "u_priority_confirmation", "notify", "problem_id", "rfc", "vendor", "caused_by",
    "closed_code", "resolved_by", "resolved_at", "closed_at",
]  # fmt: skip


def servicenow_row(
    number: str,
    state: str,
    updated: str,
    *,
    opened: str = "1/3/2016 09:00",
    resolved: str = "?",
    **columns: str,
) -> str:
    values = dict.fromkeys(SERVICENOW_COLUMNS, "?")
    values.update(
        number=number,
        incident_state=state,
        made_sla="true",
        opened_at=opened,
        sys_updated_at=updated,
        contact_type="Phone",
        category="Category 55",
        impact="2 - Medium",
        urgency="2 - Medium",
        priority="3 - Moderate",
        assignment_group="Group 56",
        resolved_at=resolved,
    )
    values.update(columns)
    return ",".join(values[c] for c in SERVICENOW_COLUMNS)


def servicenow_log(tmp_path: Path, *rows: str) -> Path:
    text = "\n".join([",".join(SERVICENOW_COLUMNS), *rows]) + "\n"
    return write_zip(tmp_path / "incident_event_log.zip", text)


def test_servicenow_incident_lifecycle(tmp_path: Path) -> None:
    group = {"assignment_group": "Group 24"}
    taken = {**group, "assigned_to": "Resolver 1"}
    high = {**taken, "priority": "2 - High"}
    path = servicenow_log(
        tmp_path,
        servicenow_row("INC1", "New", "1/3/2016 09:05"),
        servicenow_row("INC1", "New", "1/3/2016 09:06"),
        servicenow_row("INC1", "Active", "1/3/2016 09:30", **group),
        servicenow_row("INC1", "Awaiting User Info", "1/3/2016 10:00", **taken),
        servicenow_row("INC1", "Active", "2/3/2016 10:00", **taken),
        servicenow_row("INC1", "Active", "2/3/2016 10:30", **taken),
        servicenow_row("INC1", "Active", "2/3/2016 11:00", **high),
        servicenow_row("INC1", "Resolved", "3/3/2016 12:00", resolved="3/3/2016 11:58", **high),
        servicenow_row("INC1", "Active", "4/3/2016 08:00", resolved="4/3/2016 09:00", **high),
        servicenow_row("INC1", "Resolved", "4/3/2016 09:00", resolved="4/3/2016 09:00", **high),
        servicenow_row("INC1", "Closed", "9/3/2016 09:00", made_sla="false", **high),
    )
    events, issues = read("servicenow", path)
    assert issues == []
    assert story(events, "INC1") == [
        ("created", "New"),
        ("agent_reply", "Active"),
        ("status_changed", "Awaiting User Info"),
        ("status_changed", "Active"),
        ("status_changed", "Active"),  # priority raised, state unchanged
        ("resolved", "Resolved"),
        ("reopened", "Active"),
        ("resolved", "Resolved"),
        ("closed", "Closed"),
    ]
    created, reply, waiting, _, raised, resolved, *_ = events
    assert created.at == utc(2016, 3, 1, 9, 0)  # opened_at, read as UTC
    assert reply.at == utc(2016, 3, 1, 9, 30)
    assert reply.fields["queue"] == "Group 24"
    assert waiting.category is StatusCategory.PENDING
    assert waiting.fields["assignee"] == "Resolver 1"
    assert "assignee" not in created.fields  # "?" is missing
    assert raised.fields["priority"] == "2 - High"
    assert raised.line == 8  # line 7 changed nothing
    assert resolved.at == utc(2016, 3, 3, 11, 58)  # resolved_at, before the row's update
    assert events[-1].fields["made_sla"] == "false"
    assert dict(created.fields) == {
        "priority": "3 - Moderate",
        "channel": "Phone",
        "queue": "Group 56",
        "impact": "2 - Medium",
        "urgency": "2 - Medium",
        "category": "Category 55",
        "made_sla": "true",
    }


def test_servicenow_resolved_at_of_a_later_resolution_is_not_used(tmp_path: Path) -> None:
    # resolved_at holds the last resolution: for the first one it lies after the reopen.
    path = servicenow_log(
        tmp_path,
        servicenow_row("INC2", "Active", "1/3/2016 09:30", resolved="5/3/2016 10:00"),
        servicenow_row("INC2", "Resolved", "2/3/2016 10:00", resolved="5/3/2016 10:00"),
        servicenow_row("INC2", "Active", "3/3/2016 10:00", resolved="5/3/2016 10:00"),
        servicenow_row("INC2", "Resolved", "5/3/2016 10:00", resolved="5/3/2016 10:00"),
        servicenow_row("INC2", "Closed", "10/3/2016 10:00", resolved="5/3/2016 10:00"),
    )
    events, _ = read("servicenow", path)
    resolutions = [e.at for e in events if e.kind is EventKind.RESOLVED]
    assert resolutions == [utc(2016, 3, 2, 10, 0), utc(2016, 3, 5, 10, 0)]


def test_servicenow_update_before_opening_is_moved_to_created(tmp_path: Path) -> None:
    opened = "29/2/2016 09:41"
    path = servicenow_log(
        tmp_path,
        servicenow_row("INC3", "Active", "29/2/2016 07:14", opened=opened),
        servicenow_row("INC3", "Awaiting User Info", "29/2/2016 09:45", opened=opened),
        servicenow_row("INC3", "Closed", "8/3/2016 10:00", opened=opened),
    )
    events, issues = read("servicenow", path)
    assert issues == []
    assert story(events, "INC3")[:2] == [("created", "New"), ("agent_reply", "Active")]
    assert events[0].at == events[1].at == utc(2016, 2, 29, 9, 41)


def test_servicenow_drops_the_cut_off_final_incident(tmp_path: Path) -> None:
    path = servicenow_log(
        tmp_path,
        servicenow_row("INC4", "New", "1/3/2016 09:05"),
        servicenow_row("INC4", "Closed", "6/3/2016 09:05"),
        servicenow_row("INC5", "New", "13/5/2016 11:49", opened="13/5/2016 11:49"),
        servicenow_row("INC5", "Active", "13/5/2016 11:50", opened="13/5/2016 11:49"),
    )
    events, issues = read("servicenow", path)
    assert {e.ticket_id for e in events} == {"INC4"}
    assert [i.line for i in issues] == [4, 5]
    assert "INC5 is cut off" in issues[0].message


def test_servicenow_keeps_a_final_incident_that_is_closed(tmp_path: Path) -> None:
    path = servicenow_log(
        tmp_path,
        servicenow_row("INC6", "Active", "1/3/2016 09:05"),
        servicenow_row("INC6", "Closed", "6/3/2016 09:05"),
    )
    events, issues = read("servicenow", path)
    assert issues == []
    assert story(events, "INC6")[-1] == ("closed", "Closed")


def test_servicenow_bad_rows_are_skipped_with_line_numbers(tmp_path: Path) -> None:
    path = servicenow_log(
        tmp_path,
        servicenow_row("INC7", "New", "1/3/2016 09:05"),
        servicenow_row("INC7", "Active", "2016-03-01 09:06"),
        servicenow_row("INC7", "Active", "31/2/2016 09:06"),
        servicenow_row("INC7", "Active", "?"),
        servicenow_row("INC7", "Active", "1/3/2016 09:07", opened="?"),
        servicenow_row("?", "Active", "1/3/2016 09:07"),
        servicenow_row("INC7", "-100", "1/3/2016 09:07"),
        servicenow_row("INC7", "Closed", "6/3/2016 09:05"),
    )
    events, issues = read("servicenow", path)
    assert [(i.line, i.message) for i in issues] == [
        (3, "unparsable timestamp '2016-03-01 09:06' (expected d/m/YYYY HH:MM)"),
        (4, "unparsable timestamp '31/2/2016 09:06' (expected d/m/YYYY HH:MM)"),
        (5, "missing sys_updated_at"),
        (6, "missing opened_at"),
        (7, "missing incident number"),
        (8, "unknown incident_state '-100'"),
    ]
    assert story(events, "INC7") == [("created", "New"), ("closed", "Closed")]


def test_servicenow_zip_without_one_csv_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "log.zip", "hello", member="readme.txt")
    with pytest.raises(EventLogError, match=r"expected one \.csv in the zip, found none"):
        read("servicenow", path)


# ---------------------------------------------------------------------------- unusable input

_bpic_rows = [
    bpic_row(f"1-{i}", "2012-05-02T10:00:00+01:00", "Queued", "Awaiting Assignment")
    for i in range(2000)
]
_bpic_gzip = gzip.compress("\n".join([BPIC_HEADER, *_bpic_rows]).encode())
TRUNCATED_BPIC = _bpic_gzip[: len(_bpic_gzip) // 2]  # the header is intact, the rows are not


@pytest.mark.parametrize(
    ("fmt", "name", "content", "message"),
    [
        ("helpdesk-italian", "h.csv.gz", b"plain text, not gzip\n", "not a gzip file"),
        ("bpic2013", "b.csv.gz", gzip.compress(b""), r"empty file \(no header\)"),
        ("bpic2013", "b.csv.gz", gzip.compress(b"\xff\xfe\x00junk"), "not UTF-8 text"),
        ("bpic2013", "b.csv.gz", TRUNCATED_BPIC, "truncated or corrupt compressed file"),
        ("servicenow", "s.zip", b"PK but not really a zip", "not a zip file"),
        (
            "helpdesk-italian",
            "h.csv",
            b"Case ID,Activity,Timestamp\n",
            "header lacks 'Complete Timestamp', 'seriousness_2'",
        ),
        ("servicenow", "s.csv", HELPDESK_HEADER.encode(), "header lacks 'number'"),
    ],
)
def test_unusable_source_raises_event_log_error(
    tmp_path: Path, fmt: str, name: str, content: bytes, message: str
) -> None:
    src = tmp_path / name
    src.write_bytes(content)
    with pytest.raises(EventLogError, match=message) as caught:
        convert(fmt, src, tmp_path / "out.csv")
    assert caught.value.file == str(src)
    assert not (tmp_path / "out.csv").exists()


def test_missing_source_raises_event_log_error(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match="cannot read: No such file or directory"):
        convert("bpic2013", tmp_path / "absent.csv.gz", tmp_path / "out.csv")


def test_unknown_format_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'zendesk'.*helpdesk-italian, bpic2013, servicenow"):
        convert("zendesk", tmp_path / "x.csv", tmp_path / "out.csv")


# ---------------------------------------------------------------------------- convert


def test_convert_writes_sorted_rows_the_reader_accepts(tmp_path: Path) -> None:
    src = servicenow_log(
        tmp_path,
        servicenow_row("INC9", "New", "2/3/2016 09:05", opened="2/3/2016 09:00"),
        servicenow_row("INC9", "Closed", "8/3/2016 09:05", opened="2/3/2016 09:00"),
        # Out of time order within the incident: the output is sorted all the same.
        servicenow_row("INC8", "Closed", "7/3/2016 09:05"),
        servicenow_row("INC8", "Active", "1/3/2016 09:30"),
        servicenow_row("INC8", "-100", "1/3/2016 09:31"),
        servicenow_row("INC8", "Closed", "7/3/2016 09:06"),
    )
    dst = tmp_path / "events.csv.gz"
    report = convert("servicenow", src, dst)
    assert (report.events, report.tickets) == (5, 2)
    assert report.skipped == [RowIssue(6, "unknown incident_state '-100'")]

    with gzip.open(dst, "rt", encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == [
        *("ticket_id", "timestamp", "event", "status", "priority", "channel", "queue"),
        *("assignee", "impact", "urgency", "category", "made_sla"),
    ]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        ("INC8", "2016-03-01T09:00:00Z", "created"),
        ("INC8", "2016-03-01T09:30:00Z", "agent_reply"),
        ("INC8", "2016-03-07T09:05:00Z", "closed"),
        ("INC9", "2016-03-02T09:00:00Z", "created"),
        ("INC9", "2016-03-08T09:05:00Z", "closed"),
    ]
    log = read_events(dst, StatusMap(IMPORTERS["servicenow"].status_map))
    assert log.issues == []
    assert log.unknown_statuses == set()
    assert log.tickets["INC8"][1].category is StatusCategory.OPEN


@pytest.mark.parametrize("importer", IMPORTERS.values(), ids=IMPORTERS.keys())
def test_every_status_an_importer_can_write_is_in_its_map(importer: Importer) -> None:
    # Each status maps to its own category, not to StatusMap's fallbacks.
    statuses = StatusMap(importer.status_map)
    for raw, category in importer.status_map.items():
        assert statuses(raw) is category
    assert statuses.unknown == set()
    assert set(importer.extra_columns).isdisjoint({"priority", "channel", "queue"})


# ---------------------------------------------------------------------------- real logs

SAMPLE_TICKETS = 300


def real_log(folder: str, name: str) -> Path:
    """A public log under ../shared/data (the test is skipped when it is absent)."""
    return shared_path("data", folder, name)


def first_tickets(stream: Iterable[str], count: int) -> list[list[str]]:
    """Header and the rows of the first ``count`` tickets (whole tickets only)."""
    reader = csv.reader(stream)
    kept = [next(reader)]
    seen: set[str] = set()
    for row in reader:
        if row[0] not in seen:
            if len(seen) == count:
                break
            seen.add(row[0])
        kept.append(row)
    return kept


def csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def helpdesk_sample(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    src = real_log("helpdesk_italian", "helpdesk_events.csv.gz")
    with gzip.open(src, "rt", encoding="utf-8", newline="") as stream:
        rows = first_tickets(stream, SAMPLE_TICKETS)
    return write_gz(tmp_path / "helpdesk.csv.gz", csv_text(rows)), rows


def bpic_sample(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    src = real_log("bpic2013_volvo_incidents", "incidents.csv.gz")
    with gzip.open(src, "rt", encoding="utf-8-sig", newline="") as stream:
        rows = first_tickets(stream, SAMPLE_TICKETS)
    return write_gz(tmp_path / "incidents.csv.gz", "\ufeff" + csv_text(rows)), rows


def servicenow_sample(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    src = real_log("servicenow_incidents", "incident_event_log.zip")
    with zipfile.ZipFile(src) as archive, archive.open("incident_event_log.csv") as binary:
        rows = first_tickets(io.TextIOWrapper(binary, encoding="utf-8"), SAMPLE_TICKETS)
    return write_zip(tmp_path / "incident_event_log.zip", csv_text(rows)), rows


SAMPLES: dict[str, Callable[[Path], tuple[Path, list[list[str]]]]] = {
    "helpdesk-italian": helpdesk_sample,
    "bpic2013": bpic_sample,
    "servicenow": servicenow_sample,
}


@pytest.mark.reallogs
@pytest.mark.parametrize("fmt", SAMPLES)
def test_real_log_sample_converts_cleanly(tmp_path: Path, fmt: str) -> None:
    src, rows = SAMPLES[fmt](tmp_path)
    source_ids = {row[0] for row in rows[1:]}
    assert len(source_ids) == SAMPLE_TICKETS

    dst = tmp_path / "events.csv"
    report = convert(fmt, src, dst)
    assert report.skipped == []
    assert report.tickets == SAMPLE_TICKETS

    log = read_events(dst, StatusMap(IMPORTERS[fmt].status_map))
    assert log.issues == []
    assert log.unknown_statuses == set()
    assert set(log.tickets) == source_ids
    assert log.event_count == report.events
    kinds = {e.kind for events in log.tickets.values() for e in events}
    assert {EventKind.AGENT_REPLY, EventKind.RESOLVED, EventKind.CLOSED} <= kinds
    assert all(events[0].kind is EventKind.CREATED for events in log.tickets.values())

    with dst.open(encoding="utf-8", newline="") as stream:
        written = [(r[0], r[1]) for r in list(csv.reader(stream))[1:]]
    assert all(stamp.endswith("Z") for _, stamp in written)  # written in UTC
    assert written == sorted(written)  # same-format ISO 8601 stamps sort as text


@pytest.mark.reallogs
def test_real_helpdesk_case_1_in_rome_time(tmp_path: Path) -> None:
    src, _ = helpdesk_sample(tmp_path)
    events, _ = read("helpdesk-italian", src)
    assert [(e.kind.value, e.at.isoformat()) for e in of(events, "Case 1")] == [
        ("created", "2012-10-09T12:50:17+00:00"),
        ("agent_reply", "2012-10-09T12:51:01+00:00"),
        ("status_changed", "2012-10-12T13:02:56+00:00"),  # service_level Value 1 -> Value 2
        ("resolved", "2012-10-25T09:54:26+00:00"),
        ("closed", "2012-11-09T11:54:39+00:00"),
    ]
    assert of(events, "Case 1")[2].fields["service_level"] == "Value 2"


@pytest.mark.reallogs
def test_real_bpic_first_incident(tmp_path: Path) -> None:
    src, _ = bpic_sample(tmp_path)
    events = of(read("bpic2013", src)[0], "1-364285768")
    assert story(events, "1-364285768")[:3] == [
        ("created", "Accepted/In Progress"),
        ("agent_reply", "Accepted/In Progress"),
        ("status_changed", "Queued/Awaiting Assignment"),
    ]
    assert events[0].at == utc(2010, 3, 31, 14, 59, 42)
    assert events[2].fields["queue"] == "L3"
    assert [e.kind for e in events].count(EventKind.REOPENED) == 1
    assert events[-1].kind is EventKind.CLOSED


@pytest.mark.reallogs
def test_real_servicenow_first_incident(tmp_path: Path) -> None:
    src, _ = servicenow_sample(tmp_path)
    events = of(read("servicenow", src)[0], "INC0000045")
    assert [(e.kind.value, e.at) for e in events] == [
        ("created", utc(2016, 2, 29, 1, 16)),
        ("resolved", utc(2016, 2, 29, 8, 53)),
        ("closed", utc(2016, 3, 5, 12, 0)),
    ]


@pytest.mark.reallogs
@pytest.mark.parametrize(
    ("fmt", "parts", "tickets"),
    [
        ("helpdesk-italian", ("helpdesk_italian", "helpdesk_events.csv.gz"), 4580),
        ("bpic2013", ("bpic2013_volvo_incidents", "incidents.csv.gz"), 7554),
    ],
    ids=["helpdesk-italian", "bpic2013"],
)
def test_real_log_full_conversion(
    tmp_path: Path, fmt: str, parts: tuple[str, str], tickets: int
) -> None:
    report = convert(fmt, real_log(*parts), tmp_path / "events.csv")
    assert (report.tickets, report.skipped) == (tickets, [])
    log = read_events(tmp_path / "events.csv", StatusMap(IMPORTERS[fmt].status_map))
    assert (len(log.tickets), log.event_count, log.issues) == (tickets, report.events, [])


@pytest.mark.reallogs
def test_real_servicenow_full_conversion(tmp_path: Path) -> None:
    src = real_log("servicenow_incidents", "incident_event_log.zip")
    report = convert("servicenow", src, tmp_path / "events.csv")
    assert report.tickets == 20768  # 20,769 incidents in the file, the cut-off one dropped
    assert [(i.line, i.message.split(" (")[0]) for i in report.skipped] == [
        (115643, "unknown incident_state '-100'"),
        (115644, "unknown incident_state '-100'"),
        (119999, "incident INC0029233 is cut off at the end of the file"),
    ]
    log = read_events(tmp_path / "events.csv", StatusMap(IMPORTERS["servicenow"].status_map))
    assert log.issues == []
    # Every incident the log counts as reopened has a reopened event.
    reopened = {
        ticket
        for ticket, events in log.tickets.items()
        if any(e.kind is EventKind.REOPENED for e in events)
    }
    with zipfile.ZipFile(src) as archive, archive.open("incident_event_log.csv") as binary:
        reader = csv.DictReader(io.TextIOWrapper(binary, encoding="utf-8"))
        counted = {row["number"] for row in reader if row["reopen_count"] != "0"}
    assert "INC0029233" not in log.tickets
    assert counted <= reopened
    # INC0000137 has one audit row stamped after its resolution but counted before it.
    assert reopened - counted == {"INC0000137"}
