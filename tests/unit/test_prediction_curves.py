"""Breach prediction as a curve: outcomes from real replays, the fixed and predicted rules,
the split in time, equal precision, the page and the command's output."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sladaemon.calendar import to_us
from sladaemon.cli import main
from sladaemon.config import Config, load_config
from sladaemon.model import EventKind, Metric, SlaEvent, SlaEventKind, StatusCategory, TicketEvent
from sladaemon.predict.backtest import MetricKey, Trace
from sladaemon.predict.curves import (
    FRACTIONS,
    PROBABILITIES,
    CurvePoint,
    CurveReport,
    Outcomes,
    collect_outcomes,
    curve_html,
    equal_precision,
    format_curves,
    measure_curves,
)
from sladaemon.sla.engine import TicketReplay

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
DEMO_EVENTS = ROOT / "sladaemon" / "data" / "demo-events.csv"

K = EventKind
S = StatusCategory
CONFIG = """
calendars:
  office: {timezone: UTC, hours: {mon-fri: "09:00-17:00"}}
policies:
  - name: support
    calendar: office
    targets: {first_response: 4h, resolution: 8h}
"""
MON = datetime(2024, 1, 8, tzinfo=UTC)  # a Monday
HOUR = 3600.0
FR, RES = Metric.FIRST_RESPONSE.value, Metric.RESOLUTION.value


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=hour, minutes=minute)


def us(day: int, hour: int, minute: int = 0) -> int:
    return to_us(at(day, hour, minute))


def ev(ticket: str, t: datetime, kind: EventKind, category: S | None = None) -> TicketEvent:
    return TicketEvent(ticket, t, kind, category=category)


# Paused: first response met after 1 h (25 %); resolution 1 h on Monday, pending until Tuesday
# 09:00, then running: 8 h reached Tuesday 16:00.
PAUSED = [
    ev("P", at(0, 9), K.CREATED),
    ev("P", at(0, 10), K.AGENT_REPLY, S.PENDING),
    ev("P", at(1, 9), K.CUSTOMER_REPLY),
]
# Overnight: created Monday 15:00, never answered: first response breaches Tuesday 11:00,
# resolution Tuesday 15:00.
OVERNIGHT = [ev("N", at(0, 15), K.CREATED)]
# Met: first response at 60 % of its target, resolution at 2.5 h of 8 h.
MET = [
    ev("M", at(0, 9), K.CREATED),
    ev("M", at(0, 11, 24), K.AGENT_REPLY),
    ev("M", at(0, 11, 30), K.RESOLVED),
]
# Still running at the end: its outcome is unknown.
RUNNING = [ev("R", at(3, 11), K.CREATED)]
# Late in the history, both metrics met.
LATE = [
    ev("L", at(2, 10), K.CREATED),
    ev("L", at(2, 10, 30), K.AGENT_REPLY),
    ev("L", at(2, 11), K.RESOLVED),
]
UNTIL = at(3, 12)


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = Path(tmp_path_factory.mktemp("cfg")) / "c.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    return load_config(path, environ={})


def replayed(
    cfg: Config, histories: Sequence[Sequence[TicketEvent]], until: datetime
) -> dict[str, TicketReplay]:
    """Each history fed to a replay and evaluated at ``until``, as the backtest does."""
    replays = {}
    for events in histories:
        replay = TicketReplay(events[0].ticket_id, cfg.policies)
        for event in events:
            replay.feed(event)
        replay.evaluate(until)
        replays[replay.ticket_id] = replay
    return replays


@pytest.fixture(scope="module")
def outcomes(cfg: Config) -> Outcomes:
    return collect_outcomes(
        replayed(cfg, [PAUSED, OVERNIGHT, MET, RUNNING, LATE], UNTIL), to_us(UNTIL)
    )


def column(f: float) -> int:
    return round(f * 100) - 30


def report_of(
    outcomes: Outcomes,
    traces: Mapping[MetricKey, Trace] | None = None,
    predictions: Sequence[SlaEvent] = (),
    first_us: int | None = None,
) -> CurveReport:
    """Split 60 % of the way through the history's span (the cycles' own split is tested
    apart)."""
    first = us(0, 9) if first_us is None else first_us
    end = to_us(UNTIL)
    split = first + round(0.6 * (end - first))
    return measure_curves(outcomes, traces or {}, predictions, first, end, split)


# ---------------------------------------------------------------------------- outcomes


def test_known_outcomes_only_with_their_breach_instants(outcomes: Outcomes) -> None:
    assert set(outcomes.keys) == {(t, m, 0) for t in ("P", "N", "M", "L") for m in (FR, RES)}, (
        "the running ticket's metrics are left out"
    )
    assert outcomes.outcome(("N", FR, 0)).breached_us == us(1, 11)
    assert outcomes.outcome(("N", RES, 0)).breached_us == us(1, 15)
    assert outcomes.outcome(("P", RES, 0)).breached_us == us(1, 16)
    met = outcomes.outcome(("M", FR, 0))
    assert met.breached_us is None and met.reached_us == ()
    assert met.elapsed_us == round(2.4 * HOUR * 1e6) and met.target_us == round(4 * HOUR * 1e6)
    assert outcomes.approximate == 0


def test_instants_at_fractions_skip_pauses_and_closed_hours(outcomes: Outcomes) -> None:
    paused = outcomes.outcome(("P", RES, 0))
    # 1 h on Monday, then 3 h from Tuesday 09:00 for 4 h; 2.4 h: Tuesday 10:24.
    assert paused.reached_us[column(0.5)] == us(1, 12)
    assert paused.reached_us[column(0.3)] == us(1, 10, 24)
    overnight = outcomes.outcome(("N", FR, 0))
    # 2 h are reached at Monday's closing, 3 h at Tuesday 10:00.
    assert overnight.reached_us[column(0.5)] == us(0, 17)
    assert overnight.reached_us[column(0.75)] == us(1, 10)


def test_a_reopened_resolution_does_not_count_the_time_it_was_solved(cfg: Config) -> None:
    """Solved Monday 15:00 after 6 h, reopened Tuesday 09:00: the 2 h left run out at 11:00;
    6.4 h were reached 24 min after the reopen, not at Monday 15:24."""
    events = [
        ev("O", at(0, 9), K.CREATED),
        ev("O", at(0, 10), K.AGENT_REPLY),
        ev("O", at(0, 15), K.RESOLVED),
        ev("O", at(1, 9), K.REOPENED),
    ]
    found = collect_outcomes(replayed(cfg, [events], at(1, 12)), us(1, 12))
    reopened = found.outcome(("O", RES, 0))
    assert reopened.breached_us == us(1, 11)
    assert reopened.reached_us[column(0.5)] == us(0, 13)
    assert reopened.reached_us[column(0.8)] == us(1, 9, 24)
    assert found.approximate == 0


# ---------------------------------------------------------------------------- fixed rule


def test_fixed_rule_alerts_precision_recall_and_leads(outcomes: Outcomes) -> None:
    tune = report_of(outcomes).group("tune", FR)
    assert tune is not None and (tune.outcomes, tune.breaches) == (3, 1)
    at_60, at_61 = tune.fixed[column(0.6)], tune.fixed[column(0.61)]
    assert (at_60.alerts, at_60.precision, at_60.recall) == (2, 0.5, 1.0), "60 % warns M too"
    assert (at_61.alerts, at_61.precision) == (1, 1.0)
    at_50 = tune.fixed[column(0.5)]
    assert at_50.median_business_lead_s == 2 * HOUR
    assert at_50.median_wall_lead_s == 18 * HOUR, "Monday 17:00 to Tuesday 11:00"

    everything = report_of(outcomes).group("tune")
    assert everything is not None and everything.breaches == 3
    at_30 = everything.fixed[column(0.3)]
    assert (at_30.alerts, at_30.warned_breaches) == (5, 3), "M's resolution at 31 % warned"
    assert everything.fixed[column(0.32)].alerts == 4
    assert everything.fixed[column(0.5)].median_business_lead_s == 4 * HOUR
    # At 75 % every breach is warned at least 1 h ahead (N's first response exactly 1 h);
    # at 80 % N's first response is warned 48 min ahead.
    assert everything.fixed[column(0.75)].warned_1h == 3
    at_80 = everything.fixed[column(0.8)]
    assert at_80.warned_1h == 2
    assert at_80.share_1h_of_breaches == pytest.approx(2 / 3)
    assert at_80.share_1h_of_warned == pytest.approx(2 / 3)


def test_by_default_the_report_part_is_the_last_40_percent_of_the_cycles(
    outcomes: Outcomes,
) -> None:
    # Eight cycles: P, M (Monday 09:00), N (Monday 15:00), L (Wednesday 10:00), two each; the
    # fifth in time order starts the report part, whatever stray instant stretches the span.
    report = measure_curves(outcomes, {}, (), us(-300, 9), to_us(UNTIL))
    assert report.split_us == us(0, 15)
    tune, late = report.group("tune"), report.group("report")
    assert tune is not None and late is not None
    assert (tune.outcomes, late.outcomes) == (4, 4)


def test_the_split_puts_late_cycles_in_the_report_part(outcomes: Outcomes) -> None:
    report = report_of(outcomes)
    # 60 % of Monday 09:00 .. Thursday 12:00 (75 h) is 45 h: Wednesday 06:00.
    assert report.split_us == us(2, 6)
    tune, late = report.group("tune"), report.group("report")
    assert tune is not None and late is not None
    assert (tune.outcomes, late.outcomes, late.breaches) == (6, 2, 0)
    assert {g.metric for g in report.groups if g.part == "report"} == {"all", FR, RES}


# ---------------------------------------------------------------------------- predictor


def test_the_predictor_warns_at_the_first_score_at_or_above_each_threshold(
    outcomes: Outcomes,
) -> None:
    traces: dict[MetricKey, Trace] = {
        ("N", FR, 0): [
            (us(0, 16), 0.2, round(3 * HOUR * 1e6)),
            (us(1, 9, 30), 0.6, round(1.5 * HOUR * 1e6)),
        ],
        ("M", FR, 0): [(us(0, 10), 0.4, round(3 * HOUR * 1e6))],
    }
    group = report_of(outcomes, traces).group("tune", FR)
    assert group is not None
    by_theta = {p.threshold: p for p in group.predicted}
    assert len(group.predicted) == len(PROBABILITIES)
    low = by_theta[0.1]
    assert (low.alerts, low.warned_breaches) == (2, 1)
    assert low.median_business_lead_s == 3 * HOUR
    assert low.median_wall_lead_s == 19 * HOUR, "Monday 16:00 to Tuesday 11:00"
    middle = by_theta[0.3]
    assert (middle.alerts, middle.precision) == (2, 0.5)
    assert middle.median_wall_lead_s == 1.5 * HOUR
    assert (by_theta[0.6].alerts, by_theta[0.6].precision) == (1, 1.0), "0.6 is at 0.6"
    high = by_theta[0.61]
    assert (high.alerts, high.warned_breaches, high.recall) == (0, 0, 0.0)
    assert high.precision is None and high.median_business_lead_s is None


def test_the_operating_point_is_the_predicted_breach_events(outcomes: Outcomes) -> None:
    def predicted(ticket: str, when: datetime, left_h: float) -> SlaEvent:
        details = {"business_left_us": round(left_h * HOUR * 1e6), "probability": 0.5}
        return SlaEvent(
            ticket, "support", Metric.FIRST_RESPONSE, SlaEventKind.PREDICTED_BREACH, when,
            at(1, 11), "predicted", 0, details,
        )  # fmt: skip

    events = [
        predicted("N", at(1, 9, 30), 1.5),
        predicted("M", at(0, 10), 3.0),
        predicted("R", at(3, 11, 30), 3.5),  # its outcome is unknown: not counted
    ]
    group = report_of(outcomes, predictions=events).group("tune", FR)
    assert group is not None
    op = group.operating
    assert (op.alerts, op.warned_breaches, op.precision) == (2, 1, 0.5)
    assert (op.median_business_lead_s, op.median_wall_lead_s) == (1.5 * HOUR, 1.5 * HOUR)
    # Precision 0.5 is that of the fixed rule from 30 % to 60 %: the first of them, 30 %, has
    # 70 % of 4 h left.
    eq = group.operating_vs_fixed
    assert eq is not None and eq.clamped is None
    assert eq.fraction == pytest.approx(0.3)
    assert eq.median_business_lead_s == pytest.approx(2.8 * HOUR)
    assert eq.lead_ratio == pytest.approx(1.5 / 2.8)
    assert eq.recall_ratio == 1.0


# ---------------------------------------------------------------------------- equal precision


def point(threshold: float | None, alerts: int, warned: int, lead_h: float) -> CurvePoint:
    return CurvePoint(threshold, alerts, 10, warned, warned // 2, lead_h * HOUR, 2 * lead_h * HOUR)


def test_equal_precision_interpolates_between_the_bracketing_fixed_points() -> None:
    fixed = [point(0.5, 10, 6, 4.0), point(0.6, 10, 8, 2.0), point(0.7, 8, 8, 1.0)]
    eq = equal_precision(point(None, 10, 7, 6.0), fixed)  # precision 0.7, recall 0.7
    assert eq is not None and eq.clamped is None
    assert eq.fraction == pytest.approx(0.55)
    assert eq.fixed_precision == pytest.approx(0.7)
    assert eq.median_business_lead_s == pytest.approx(3 * HOUR)
    assert eq.recall == pytest.approx(0.7)
    assert eq.lead_ratio == pytest.approx(2.0)
    assert eq.wall_lead_ratio == pytest.approx(2.0)
    assert eq.recall_ratio == pytest.approx(1.0)


def test_outside_the_fixed_precisions_the_nearest_end_is_taken_and_said() -> None:
    fixed = [point(0.5, 10, 6, 4.0), point(0.6, 10, 8, 2.0)]
    above = equal_precision(point(None, 10, 9, 1.0), fixed)
    assert above is not None and above.clamped == "above"
    assert (above.fraction, above.fixed_precision) == (0.6, 0.8)
    below = equal_precision(point(None, 10, 5, 1.0), fixed)
    assert below is not None and below.clamped == "below" and below.fraction == 0.5
    assert equal_precision(point(None, 0, 0, 1.0), fixed) is None, "no alert, no precision"


# ---------------------------------------------------------------------------- outputs


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []
        self.inside_svg: list[str] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.opened.append(tag)
        if tag == "svg":
            self.depth += 1
        elif self.depth:
            self.inside_svg.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.depth -= 1


def test_the_page_has_one_accessible_chart_per_metric_and_the_tables(outcomes: Outcomes) -> None:
    # A history said to start 5 days earlier: the split falls before every cycle.
    report = report_of(outcomes, first_us=us(-5, 9))
    assert report.split_us == us(0, 6)
    page = curve_html("Curves", report)
    tags = _Tags()
    tags.feed(page)
    tags.close()
    metrics = [g.metric for g in report.groups if g.part == "report"]
    assert tags.opened.count("svg") == len(metrics) == 3
    assert tags.inside_svg.count("title") == tags.inside_svg.count("desc") == 3
    assert "polyline" in tags.inside_svg, "the fixed curve is drawn"
    assert tags.opened.count("table") == len(metrics) + 1
    assert "script" not in tags.opened and "link" not in tags.opened
    assert page.startswith("<!DOCTYPE html>")


def test_the_text_and_json_carry_every_point(outcomes: Outcomes) -> None:
    report = report_of(outcomes)
    text = format_curves(report)
    assert "predicted (operating point)" in text and "fixed 75%" in text
    figures = json.loads(json.dumps(report.as_json()))
    assert len(figures["groups"]) == len(report.groups)
    first = figures["groups"][0]
    assert len(first["fixed"]) == len(FRACTIONS) and len(first["predicted"]) == len(PROBABILITIES)
    assert first["fixed"][0]["threshold"] == 0.3


def test_backtest_writes_the_curve_page_and_the_curves_in_its_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["backtest", "--config", str(DEMO_CONFIG), "--events", str(DEMO_EVENTS)]
    missing = tmp_path / "nowhere" / "curves.html"
    assert main([*args, "--curve", str(missing)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --curve") and "\n" not in error
    page = tmp_path / "curves.html"
    assert main([*args, "--curve", str(page), "--json"]) == 0
    printed = capsys.readouterr()
    assert "fixed threshold" in printed.err and "predicted (operating point)" in printed.err
    figures = json.loads(printed.out)
    assert {g["part"] for g in figures["curves"]["groups"]} == {"tune", "report"}
    assert page.read_text().count("<svg") >= 2
    assert main([*args, "--no-predict", "--curve", str(page)]) == 2
