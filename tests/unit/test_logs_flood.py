"""The log's flood gate: a burst of one kind of line is cut, and the cut is reported."""

from __future__ import annotations

import io
import json
import logging

from sladaemon import logs
from sladaemon.logs import FloodGate, GatedHandler, configure_logging, get_logger


def test_the_gate_admits_a_burst_per_window_and_then_reports_what_it_dropped() -> None:
    now = [0.0]
    gate = FloodGate(burst=3, window=10.0, clock=lambda: now[0])
    kind = ("sladaemon.http", "connection_failed")
    assert [gate.admit(kind) for _ in range(5)] == [0, 0, 0, None, None]
    now[0] = 1.0
    assert gate.admit(("sladaemon.http", "another_event")) == 0  # each kind on its own
    now[0] = 9.9
    assert gate.admit(kind) is None
    now[0] = 10.0
    assert gate.admit(kind) == 3  # the first line of the next window carries the count
    now[0] = 10.1
    assert gate.admit(kind) == 0


def test_a_flood_through_the_logger_is_cut_and_summed_up() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream, json_output=True)
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, GatedHandler)
    now = [0.0]
    handler.gate.clock = lambda: now[0]
    log = get_logger("sladaemon.test")
    for n in range(logs.FLOOD_BURST + 50):
        log.warning("flooding", n=n)
    log.info("something_else")
    now[0] = logs.FLOOD_WINDOW + 1.0
    log.warning("flooding", n=-1)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    events = [line["event"] for line in lines]
    assert events.count("flooding") == logs.FLOOD_BURST + 1
    assert "something_else" in events
    (summary,) = [line for line in lines if line["event"] == "log_lines_suppressed"]
    assert summary["count"] == 50 and summary["suppressed_event"] == "flooding"
    assert summary["level"] == "warning" and events[-2:] == ["log_lines_suppressed", "flooding"]
