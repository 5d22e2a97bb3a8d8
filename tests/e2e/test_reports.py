"""Scheduled KPI reports from the real daemon process to real receivers on 127.0.0.1: the HTML
page by email (SMTP), the text table to a webhook; once, across a restart. And the KPI metrics
on /metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.conftest import Receivers, free_port, wait_until_outbox_drained
from tests.e2e.daemon_process import DaemonProcess, EventFile, http_get


def test_a_due_report_reaches_email_as_html_and_a_webhook_as_text_once(
    tmp_path: Path, receivers: Receivers, daemons: list[DaemonProcess]
) -> None:
    smtp, hook, sentinel = receivers.smtp(), receivers.webhook(), receivers.webhook("sentinel")
    events = EventFile(tmp_path / "events.csv")
    now = datetime.now(UTC)
    events.add("R1", "created", "new", at=now - timedelta(hours=3))
    events.add("R1", "agent_reply", "open", at=now - timedelta(hours=3, minutes=-10))
    events.add("R2", "created", "new", at=now - timedelta(hours=2))
    # Due this very minute: a report first seen within catch_up of its instant goes out at once.
    every = f"daily {now:%H:%M}"
    port = free_port()
    config = f"""
calendars:
  utc: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}
receivers:
  leads: {{urls: ["{smtp.url}", "{hook.url}"], timeout: 5s}}
  sentinel: {{urls: ["{sentinel.url}"], timeout: 5s}}
policies:
  - name: desk
    calendar: utc
    targets: {{first_response: 1h}}
sources:
  desk: {{type: csv, path: {events.path}, poll_interval: 1s}}
reports:
  - {{name: daily-kpis, every: "{every}", calendar: utc, period: 7d, receiver: leads}}
daemon:
  state: {tmp_path / "state.sqlite"}
  log_level: debug
  http: {{listen: "127.0.0.1:{port}"}}
"""
    daemon = DaemonProcess(tmp_path, config)
    daemons.append(daemon)
    daemon.start()
    [mail] = smtp.wait_for(1, timeout=30)
    [posted] = hook.wait_for(1, timeout=30)
    title = mail["subject"]
    assert title.startswith("Support KPIs daily-kpis: ")
    page = mail["html"]
    assert page.startswith("<!DOCTYPE html>") and "<svg" not in page and "<style" not in page
    assert "Previous period" in page and "Compared with" in page, "trends against the week before"
    assert "SLA compliance" in page
    assert "Support KPIs" in mail["body"], "a text part for mail readers without HTML"
    message = posted["body"]
    assert message["title"] == title
    text = message["message"]
    assert "tickets created         2 (0.3 a day)" in text
    assert "SLA compliance (target >= 95%)" in text and "<svg" not in text
    [queued] = daemon.wait_for_log("report_queued")
    assert queued["report"] == "daily-kpis"

    status, metrics = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert 'sladaemon_kpi_new_tickets{channel="email"} 2.0' in metrics
    assert "sladaemon_kpi_backlog_tickets 2.0" in metrics
    assert 'sladaemon_reports_generated_total{report="daily-kpis"} 1.0' in metrics

    daemon.stop()
    # The restart brings a new report, due this minute too: when it has arrived, the same pass
    # has looked at daily-kpis, and a drained outbox means a second copy would be here now.
    restarted = config.replace(
        "reports:\n",
        f'reports:\n  - {{name: sentinel, every: "daily {datetime.now(UTC):%H:%M}", '
        "calendar: utc, period: 1d, receiver: sentinel}\n",
    )
    again = DaemonProcess(tmp_path, restarted)
    daemons.append(again)
    again.start()
    again.wait_for_log("daemon_started", count=2)  # the log file is shared with the first run
    sentinel.wait_for(1, timeout=30)
    wait_until_outbox_drained(tmp_path / "state.sqlite")
    assert len(smtp.messages()) == 1 and len(hook.messages()) == 1, "sent once"
