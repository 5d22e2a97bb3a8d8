"""Breach prediction estimators on synthetic queues with known rates, and bad input.

Tolerances are stated where the figures are checked; the random streams are seeded, so every
run sees the same numbers."""

from __future__ import annotations

import math
import random
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from sladaemon.calendar import to_us
from sladaemon.config import load_config
from sladaemon.model import EventKind, Metric, StatusCategory, TicketEvent
from sladaemon.predict.predictor import BreachPredictor
from sladaemon.predict.settings import PredictSettings
from sladaemon.predict.survival import SurvivalModel
from sladaemon.predict.weekly import (
    US_PER_HOUR,
    WeekExposure,
    WeeklyCounts,
    hour_of_week,
    hours_of_week,
    rates,
)
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.policy import SlaPolicy

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)
FOUR_WEEKS_US = 28 * 86_400 * 1_000_000
ALWAYS = '{timezone: UTC, hours: {mon-sun: "00:00-24:00"}}'
OFFICE = '{timezone: UTC, hours: {mon-fri: "09:00-17:00"}}'


def policies(tmp_path: Path, calendar: str, targets: str) -> tuple[SlaPolicy, ...]:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            calendars:
              desk: {calendar}
            policies:
              - name: support
                calendar: desk
                targets: {targets}
                escalation: [{{at: predicted}}]
            """
        )
    )
    return load_config(path, environ={}).policies


# ---------------------------------------------------------------------------- weekly rates


def test_hour_of_week_is_local_and_monday_based() -> None:
    assert hour_of_week(to_us(MONDAY), ZoneInfo("UTC")) == 0
    # Monday 00:30 UTC is Monday 01:30 in Berlin (winter) and Sunday 19:30 in New York.
    t = to_us(MONDAY + timedelta(minutes=30))
    assert hour_of_week(t, BERLIN) == 1
    assert hour_of_week(t, ZoneInfo("America/New_York")) == 6 * 24 + 19


def test_weekly_rates_recover_known_arrival_rates_by_hour_of_week() -> None:
    """12 arrivals/h on weekdays 09-17 Berlin time, 2/h at other hours, for 12 weeks: the mean
    of the business-hour bins is within 5 % of 12 and of the other bins within 10 % of 2;
    every single business-hour bin within 35 % (a bin sees only a few decayed weeks)."""
    rng = random.Random(3)
    exposure = WeekExposure(BERLIN, FOUR_WEEKS_US)
    counts = WeeklyCounts(FOUR_WEEKS_US)
    series = counts.add_series(BERLIN)
    t = to_us(MONDAY)
    end = to_us(MONDAY + timedelta(weeks=12))
    exposure.advance(t)
    while t < end:  # thinning: candidates at the highest rate, kept at rate(t) / 12
        t += int(rng.expovariate(12.0) * US_PER_HOUR)
        local = hour_of_week(t, BERLIN)
        business = local < 5 * 24 and 9 <= local % 24 < 17
        if t < end and (business or rng.random() < 2.0 / 12.0):
            counts.observe(series, t)
    exposure.advance(end)
    per_hour = rates(counts.counts_at(end), exposure.hours_at(end)[None, :])[0]
    business_bins = [d * 24 + h for d in range(5) for h in range(9, 17)]
    other_bins = sorted(set(range(168)) - set(business_bins))
    assert np.mean(per_hour[business_bins]) == pytest.approx(12.0, rel=0.05)
    assert np.mean(per_hour[other_bins]) == pytest.approx(2.0, rel=0.10)
    assert np.all(np.abs(per_hour[business_bins] / 12.0 - 1.0) < 0.35)


def test_exposure_survives_a_clock_gap_of_years_without_looping_forever() -> None:
    exposure = WeekExposure(BERLIN, FOUR_WEEKS_US)
    exposure.advance(to_us(MONDAY))
    exposure.advance(to_us(MONDAY + timedelta(weeks=1)))
    exposure.advance(to_us(MONDAY + timedelta(weeks=300)))
    hours = exposure.hours_at(to_us(MONDAY + timedelta(weeks=300)))
    assert np.all(np.isfinite(hours))
    # A long stretch with a four-week half-life: on average each bin holds the mean lifetime
    # of a weight, 4 / ln 2 ≈ 5.77 hours.
    assert hours.mean() == pytest.approx(4.0 / math.log(2.0), rel=0.01)


# ---------------------------------------------------------------------------- survival


def test_life_table_recovers_exponential_times_counting_open_cycles_as_censored() -> None:
    """Times to met are exponential with a mean of 2 business hours; each cycle is watched
    until a random instant in 0..6 h, so the long ones are often still open. Counted as
    censored, the open ones give S(1h), S(3h), S(5h) within 0.03 of the truth."""
    rng = np.random.default_rng(11)
    model = SurvivalModel([3 * 3600.0], FOUR_WEEKS_US)
    group = model.group("first_response", "support", "normal", "desk")
    durations = rng.exponential(2 * 3600.0, 4000)
    watched = rng.uniform(0.0, 6 * 3600.0, 4000)
    open_elapsed = []
    for duration, until in zip(durations, watched, strict=True):
        if duration <= until:
            model.add_finished(group, float(duration))
        else:
            open_elapsed.append(until)
    assert len(open_elapsed) > 800, "the test needs a good share of censored cycles"
    model.refresh(0, np.full(len(open_elapsed), group, np.int64), np.array(open_elapsed))
    for hours in (1.0, 3.0, 5.0):
        estimate = math.exp(-model.cumulative(np.array([group]), np.array([hours * 3600]))[0])
        assert estimate == pytest.approx(math.exp(-hours / 2.0), abs=0.03)


def test_finished_cycles_weigh_by_their_age_not_by_when_they_were_loaded() -> None:
    # A daemon restarting reads weeks of history at once: a cycle met a half-life ago must
    # count half as much as one met just now.
    model = SurvivalModel([], FOUR_WEEKS_US)
    group = model.group("first_response", "support", "normal", "desk")
    model.add_finished(group, 60.0, ended_us=FOUR_WEEKS_US)
    model.add_finished(group, 60.0, ended_us=0)
    model.refresh(FOUR_WEEKS_US, np.zeros(0, np.int64), np.zeros(0))
    assert model.leaf_finished[group] == pytest.approx(1.5)
    model.refresh(2 * FOUR_WEEKS_US, np.zeros(0, np.int64), np.zeros(0))
    assert model.leaf_finished[group] == pytest.approx(0.75)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe"])
def test_hours_of_week_at_once_match_one_by_one_across_dst(zone: str) -> None:
    # Every 7 minutes over a year: both DST changes, and zones with half-hour offsets and a
    # half-hour DST shift.
    tz = ZoneInfo(zone)
    instants = np.arange(to_us(MONDAY), to_us(MONDAY + timedelta(days=366)), 7 * 60 * 1_000_000)
    expected = [hour_of_week(int(t), tz) for t in instants]
    assert hours_of_week(instants, tz).tolist() == expected


def test_remembering_in_bulk_counts_exactly_what_one_by_one_counts() -> None:
    rng = np.random.default_rng(11)
    ended = np.sort(rng.integers(0, 3 * FOUR_WEEKS_US, 500))
    durations = rng.exponential(3 * 3600.0, 500)
    one, bulk = (
        SurvivalModel([3 * 3600.0], FOUR_WEEKS_US),
        SurvivalModel([3 * 3600.0], FOUR_WEEKS_US),
    )
    g1, g2 = (m.group("resolution", "support", "normal", "desk") for m in (one, bulk))
    counts_one, counts_bulk = WeeklyCounts(FOUR_WEEKS_US), WeeklyCounts(FOUR_WEEKS_US)
    r1, r2 = counts_one.add_series(BERLIN), counts_bulk.add_series(BERLIN)
    for d, e in zip(durations, ended, strict=True):
        one.add_finished(g1, float(d), int(e))
        counts_one.observe(r1, int(e))
    bulk.add_finished_many(g2, durations, ended)
    counts_bulk.observe_many(r2, ended)
    now = 3 * FOUR_WEEKS_US
    for model in (one, bulk):
        model.refresh(now, np.zeros(0, np.int64), np.zeros(0))
    assert np.allclose(one.cum_hazard, bulk.cum_hazard)
    assert one.leaf_finished == pytest.approx(bulk.leaf_finished)
    assert np.allclose(counts_one.counts_at(now), counts_bulk.counts_at(now))


def test_a_sparse_queue_leans_on_its_policy() -> None:
    """A queue with two fast cycles does not claim everything is met within minutes: with
    PRIOR_CYCLES of its parent's evidence it stays close to the policy's figure."""
    model = SurvivalModel([], FOUR_WEEKS_US)
    busy = model.group("resolution", "support", "normal", "busy")
    sparse = model.group("resolution", "support", "normal", "sparse")
    rng = np.random.default_rng(5)
    for duration in rng.exponential(8 * 3600.0, 500):
        model.add_finished(busy, float(duration))
    model.add_finished(sparse, 60.0)
    model.add_finished(sparse, 120.0)
    model.refresh(0, np.zeros(0, np.int64), np.zeros(0))
    at = np.array([8 * 3600.0])
    policy_level = math.exp(-model.cumulative(np.array([busy]), at)[0])
    sparse_level = math.exp(-model.cumulative(np.array([sparse]), at)[0])
    assert sparse_level == pytest.approx(policy_level, abs=0.1)


# ---------------------------------------------------------------------------- the predictor


def simulate(
    predictor: BreachPredictor,
    policies: tuple[SlaPolicy, ...],
    weeks: int,
    arrivals_per_hour: float,
    response_mean_h: float,
    seed: int = 7,
    fields: dict[str, str] | None = None,
) -> Iterator[int]:
    """Poisson arrivals answered after exponential times, fed to the predictor in time order
    with a tick every 15 minutes; yields the instant of each tick."""
    rng = random.Random(seed)
    events: list[TicketEvent] = []
    t = MONDAY
    end = MONDAY + timedelta(weeks=weeks)
    n = 0
    given = {"priority": "normal", "queue": "desk"} if fields is None else fields
    while t < end:
        t += timedelta(hours=rng.expovariate(arrivals_per_hour))
        n += 1
        tid = f"T{n}"
        events.append(TicketEvent(tid, t, EventKind.CREATED, "new", StatusCategory.NEW, given))
        reply = t + timedelta(hours=rng.expovariate(1.0 / response_mean_h))
        events.append(TicketEvent(tid, reply, EventKind.AGENT_REPLY, "open", StatusCategory.OPEN))
    events.sort(key=lambda e: (e.at, e.kind is not EventKind.CREATED))
    replays: dict[str, TicketReplay] = {}
    tick = to_us(MONDAY)
    for event in events:
        at = to_us(event.at)
        if at >= to_us(end):
            break
        while tick + 15 * 60 * 1_000_000 <= at:
            tick += 15 * 60 * 1_000_000
            predictor.tick(tick, queues=False)
            yield tick
        replay = replays.setdefault(event.ticket_id, TicketReplay(event.ticket_id, policies))
        replay.feed(event)
        predictor.observe(("desk", event.ticket_id), replay, at)


def open_ticket(
    predictor: BreachPredictor,
    policies: tuple[SlaPolicy, ...],
    ticket: str,
    at_us: int,
    fields: dict[str, str] | None = None,
) -> TicketReplay:
    replay = TicketReplay(ticket, policies)
    at = datetime.fromtimestamp(at_us / 1e6, UTC)
    replay.feed(TicketEvent(ticket, at, EventKind.CREATED, "new", StatusCategory.NEW, fields or {}))
    predictor.observe(("desk", ticket), replay, at_us)
    return replay


def test_forecast_recovers_known_arrival_and_service_rates(tmp_path: Path) -> None:
    """A 24/7 queue with 6 arrivals/h answered after 20 minutes on average: after four weeks
    the forecast's arrivals and throughput are within 15 % of 6/h, and a first response with a
    1 h target at elapsed 0 breaches with probability exp(-3) ≈ 0.05 (within 0.05)."""
    pols = policies(
        tmp_path, '{timezone: UTC, hours: {mon-sun: "00:00-24:00"}}', "{first_response: 1h}"
    )
    predictor = BreachPredictor(pols, PredictSettings(min_history=30))
    last = 0
    for now in simulate(predictor, pols, weeks=4, arrivals_per_hour=6.0, response_mean_h=1 / 3):
        last = now
    result = predictor.tick(last + 1, queues=True)
    assert result.alerts == []  # nobody is forecast to miss: no queue alert
    (forecast,) = predictor.forecasts
    assert forecast.unknown == ""
    assert forecast.arrivals_per_hour == pytest.approx(6.0, rel=0.15)
    assert forecast.throughput_per_hour == pytest.approx(6.0, rel=0.15)
    assert forecast.trend == "steady"
    fresh = [a for a in predictor.assess(last + 1) if a.probability is not None]
    assert fresh, "open tickets get a probability"
    gid = predictor.survival.group("first_response", "support", "normal", "desk")
    history = math.exp(-predictor.survival.cumulative(np.array([gid]), np.array([3600.0]))[0])
    assert history == pytest.approx(math.exp(-3.0), abs=0.05)


def test_risk_rises_with_elapsed_time_and_a_late_ticket_is_warned_before_its_deadline(
    tmp_path: Path,
) -> None:
    """Answers take 40 minutes on average against a 1 h target with a 20 minute lead. A ticket
    still waiting after 35 minutes is warned at its last call — exactly 20 minutes before its
    deadline — and the warning says why, with a finite probability."""
    pols = policies(
        tmp_path, '{timezone: UTC, hours: {mon-sun: "00:00-24:00"}}', "{first_response: 1h}"
    )
    settings = PredictSettings(
        min_history=30, threshold=0.5, early=0.99, lead=timedelta(minutes=20)
    )
    predictor = BreachPredictor(pols, settings)
    warned = []
    last = 0
    for now in simulate(predictor, pols, weeks=2, arrivals_per_hour=3.0, response_mean_h=2 / 3):
        last = now
    # A ticket that will not be answered: judged at its creation, then at its last call.
    created = last + 60 * 1_000_000
    open_ticket(predictor, pols, "LATE", created, {"priority": "normal", "queue": "desk"})
    warned += predictor.judge_fresh()
    assert not [p for p in warned if p.key == ("desk", "LATE")], "not at creation: P < early"
    call = created + 40 * 60 * 1_000_000
    assert predictor.next_call_us is not None and predictor.next_call_us <= call
    warned += predictor.last_calls(call)
    (late,) = [p for p in warned if p.key == ("desk", "LATE")]
    assert late.at_us == call
    assert late.deadline_us - late.at_us == 20 * 60 * 1_000_000
    assert 0.5 <= late.probability < 1.0
    assert late.metric is Metric.FIRST_RESPONSE
    assert "nan" not in late.reason.lower()
    if late.model == "life tables":
        assert "went past 1h" in late.reason
    else:  # the boosted model learnt from the history above: its reasons are its own
        assert late.model == "boosted" and "20m of business time left" in late.reason


# ---------------------------------------------------------------------------- bad input


def test_no_history_means_unknown_with_a_reason_never_a_guess(tmp_path: Path) -> None:
    pols = policies(
        tmp_path, '{timezone: UTC, hours: {mon-fri: "09:00-17:00"}}', "{first_response: 4h}"
    )
    predictor = BreachPredictor(pols, PredictSettings())
    replay = TicketReplay("T1", pols)
    replay.feed(TicketEvent("T1", MONDAY + 10 * HOUR, EventKind.CREATED, "new", StatusCategory.NEW))
    predictor.observe(("desk", "T1"), replay, to_us(MONDAY + 10 * HOUR))
    result = predictor.tick(to_us(MONDAY + 11 * HOUR))
    assert result.predictions == [] and result.alerts == []
    (assessment,) = predictor.assess(to_us(MONDAY + 11 * HOUR))
    assert assessment.probability is None
    assert assessment.reason == (
        "unknown: 0 finished first_response cycles of policy support in the history, "
        "predictions need 30"
    )
    (forecast,) = predictor.forecasts
    assert forecast.unknown == "no first responses seen yet in queue support"
    assert forecast.trend == "unknown"


def test_missing_priority_and_queue_fall_back_to_the_policy(tmp_path: Path) -> None:
    """Tickets without priority, channel or queue are grouped under the policy's name with
    priority '(none)' and still get probabilities once there is history."""
    pols = policies(
        tmp_path, '{timezone: UTC, hours: {mon-sun: "00:00-24:00"}}', "{first_response: 1h}"
    )
    predictor = BreachPredictor(pols, PredictSettings(min_history=10))
    last = 0
    for now in simulate(predictor, pols, 1, 3.0, 0.5, fields={}):
        last = now
    assert ("first_response", "support", "(none)", "support") in predictor.survival.leaf_keys
    open_ticket(predictor, pols, "NEW", last)
    (fresh,) = [a for a in predictor.assess(last) if a.key == ("desk", "NEW")]
    assert fresh.probability is not None and 0.0 < fresh.probability < 1.0


def test_weekends_holidays_and_a_long_gap_in_history_degrade_gracefully(tmp_path: Path) -> None:
    """A weekday calendar with holidays; history, then nothing for two years, then a new
    ticket: no exception, no NaN; the old history has faded below min_history, so the new
    ticket's risk is unknown and says so."""
    pols = policies(
        tmp_path,
        '{timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}, holidays: {country: DE}}',
        "{first_response: 4h, resolution: 16h}",
    )
    predictor = BreachPredictor(pols, PredictSettings(min_history=20))
    last = 0
    for now in simulate(predictor, pols, 3, 2.0, 3.0):
        last = now
    assert any(a.probability is not None for a in predictor.assess(last))
    later = last + 2 * 365 * 86_400 * 1_000_000
    open_ticket(predictor, pols, "NEW", later)
    predictor.tick(later + 60_000_000, queues=True)
    fresh = [a for a in predictor.assess(later + 60_000_000) if a.key == ("desk", "NEW")]
    assert fresh and all(a.probability is None for a in fresh)
    assert all(a.reason.startswith("unknown:") for a in fresh)
    for forecast in predictor.forecasts:
        assert all(math.isfinite(v) for _, v in forecast.forecast)
        assert math.isfinite(forecast.arrivals_per_hour)
