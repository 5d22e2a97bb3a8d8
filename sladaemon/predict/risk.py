"""The probability that each of many running cycles misses its target, computed at once.

In: ``CycleColumns`` (cycles, each at an instant). Out: a ``CycleRisk`` with, per cycle, its
business elapsed time, deadline, ``ReasonCode`` and probability of breach

    P = calibration(exp(-(H(T) - H(e)) × W))

where ``H`` is the cumulative hazard of the cycle's survival group at elapsed ``e`` and target
``T``, and ``W`` the hour-of-week factor of its policy × metric (``ServiceProfiles``), clipped
to ``WEEK_LIMITS``. A probability exists only where the code is ``KNOWN``; it is finite and
never above ``MAX_PROBABILITY``. Nothing here changes the columns or the model it reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sladaemon.calendar import BusinessCalendar
from sladaemon.predict.calibration import MAX_PROBABILITY, Calibration
from sladaemon.predict.columns import (
    NOT_SET,
    US,
    Bools,
    CycleColumns,
    Floats,
    Ints,
    Registry,
    calendar_groups,
)
from sladaemon.predict.results import ReasonCode
from sladaemon.predict.survival import SurvivalModel
from sladaemon.predict.weekly import (
    HOURS_PER_WEEK,
    cumulative,
    integrate,
    rates,
    week_position,
)

Int8s = npt.NDArray[np.int8]

MIN_REACHED = 5.0  # cycles that ran as long as the target before its probabilities count
WEEK_LIMITS = (0.1, 10.0)
MIN_PROFILE_SERVICES = 20.0  # decayed services before a policy's hour-of-week profile counts


@dataclass(frozen=True)
class CycleRisk:
    cycles: CycleColumns
    elapsed: Ints  # business time used at each cycle's instant
    deadline: Ints  # NOT_SET: paused, or past its target
    code: Int8s  # ReasonCode values
    probability: Floats  # calibrated; NaN unless KNOWN
    raw: Floats  # before calibration
    history: Floats  # from the group's history alone
    week_factor: Floats  # W (1 where unknown)


@dataclass(frozen=True)
class ServiceProfiles:
    """Per policy × metric, as of the last refresh: services per hour of the local week, their
    running sum, the rate over an average business hour, the zone's UTC offset, and whether
    enough services were seen for the profile to count."""

    rates: Floats
    cumulated: Floats
    business_rate: Floats
    offset_s: Floats
    profiled: Bools

    @classmethod
    def none(cls) -> ServiceProfiles:
        return cls(
            np.zeros((0, HOURS_PER_WEEK)),
            np.zeros((0, HOURS_PER_WEEK + 1)),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, np.bool_),
        )

    @classmethod
    def measure(cls, now_us: int, registry: Registry) -> ServiceProfiles:
        """The profiles of every policy × metric of ``registry`` at ``now_us`` (at least one)."""
        counts = registry.policy_services.counts_at(now_us)
        zones = np.array([pair.zone for pair in registry.policy_metrics], np.int64)
        per_hour = rates(counts, registry.exposure_hours(now_us, zones))
        share = np.stack([pair.open_share for pair in registry.policy_metrics])
        with np.errstate(divide="ignore", invalid="ignore"):
            business = (per_hour * share).sum(axis=1) / np.maximum(share.sum(axis=1), 1e-12)
        return cls(
            rates=per_hour,
            cumulated=cumulative(per_hour),
            business_rate=business,
            offset_s=registry.utc_offsets_s(now_us, zones),
            profiled=(counts.sum(axis=1) >= MIN_PROFILE_SERVICES) & (business > 0),
        )

    def week_factor(
        self, policy_metric: Ints, now: Ints, deadline: Ints, business_left_s: Floats
    ) -> Floats:
        """W: the service expected from ``now`` to ``deadline`` (wall clock) over the service
        of an average ``business_left_s``; 1 where the policy × metric has no profile."""
        factor = np.ones(policy_metric.size)
        known = policy_metric < self.profiled.size
        known[known] &= self.profiled[policy_metric[known]]
        if not known.any():
            return factor
        chosen = policy_metric[known]
        offset = self.offset_s[chosen]
        expected = integrate(
            self.rates,
            self.cumulated,
            chosen,
            week_position(now[known], offset),
            week_position(deadline[known], offset),
        )
        usual = self.business_rate[chosen] * business_left_s[known] / 3600.0
        ratio = np.divide(expected, usual, out=np.ones(chosen.size), where=usual > 0)
        factor[known] = np.clip(ratio, *WEEK_LIMITS)
        return factor


def business_elapsed(cycles: CycleColumns, calendars: list[BusinessCalendar]) -> Ints:
    """Business time each cycle has used at its instant."""
    elapsed = cycles.elapsed_at_since.copy()
    for calendar_id, rows in calendar_groups(cycles.calendar, cycles.since != NOT_SET):
        elapsed[rows] += calendars[calendar_id].elapsed_many(cycles.since[rows], cycles.now[rows])
    return elapsed


class RiskModel:
    """The risk maths over the model as it stands: the life tables, the hour-of-week service
    profiles (replaced by ``refresh_profiles``) and the calibration."""

    def __init__(
        self, survival: SurvivalModel, calibration: Calibration, registry: Registry
    ) -> None:
        self.survival = survival
        self.calibration = calibration
        self.registry = registry
        self.profiles = ServiceProfiles.none()

    def refresh_profiles(self, now_us: int) -> None:
        if self.registry.policy_metrics:
            self.profiles = ServiceProfiles.measure(now_us, self.registry)

    def evaluate(self, cycles: CycleColumns, min_history: int) -> CycleRisk:
        if cycles.slots.size == 0:
            nothing = np.zeros(0)
            empty = cycles.elapsed_at_since
            return CycleRisk(
                cycles, empty, empty, np.zeros(0, np.int8), nothing, nothing, nothing, nothing
            )
        n = cycles.slots.size
        running = cycles.since != NOT_SET
        # Elapsed time and deadline here, not in a helper: freeing this loop's 300,000-row
        # temporaries before the arrays below are made lets the allocator hand memory back
        # and fault it in again, which cost a tenth of every tick.
        elapsed = cycles.elapsed_at_since.copy()
        deadline = np.full(n, NOT_SET, np.int64)
        for calendar_id, rows in calendar_groups(cycles.calendar, running):
            calendar = self.registry.calendars[calendar_id]
            elapsed[rows] += calendar.elapsed_many(cycles.since[rows], cycles.now[rows])
            left = cycles.target[rows] - cycles.elapsed_at_since[rows]
            ahead = left >= 0
            if cycles.deadline is not None:  # kept by observe while the clock is unchanged
                deadline[rows[ahead]] = cycles.deadline[rows[ahead]]
            else:
                deadline[rows[ahead]] = calendar.add_many(cycles.since[rows[ahead]], left[ahead])
        code = self._codes(cycles, running, elapsed, deadline, min_history)
        ok = code == ReasonCode.KNOWN.value
        history = np.full(n, np.nan)
        week = np.ones(n)
        probability = np.full(n, np.nan)
        raw = np.full(n, np.nan)
        if ok.any():
            idx = np.flatnonzero(ok)
            group = cycles.group[idx]
            target_s = cycles.target[idx] / US
            elapsed_s = elapsed[idx] / US
            survival = self.survival
            hazard_left = survival.cumulative(group, target_s) - survival.cumulative(
                group, elapsed_s
            )
            hazard_left = np.maximum(hazard_left, 0.0)
            history[idx] = np.exp(-hazard_left)
            week[idx] = self.profiles.week_factor(
                cycles.policy_metric[idx], cycles.now[idx], deadline[idx], target_s - elapsed_s
            )
            raw[idx] = np.exp(-hazard_left * week[idx])
            calibrated = self.calibration.apply(cycles.policy_metric[idx], raw[idx])
            probability[idx] = np.minimum(calibrated, MAX_PROBABILITY)  # never certain
        code[ok & ~np.isfinite(probability)] = ReasonCode.TOO_LITTLE_HISTORY.value
        return CycleRisk(cycles, elapsed, deadline, code, probability, raw, history, week)

    def _codes(
        self,
        cycles: CycleColumns,
        running: Bools,
        elapsed: Ints,
        deadline: Ints,
        min_history: int,
    ) -> Int8s:
        """Why each cycle gets no probability; KNOWN where it gets one."""
        n = cycles.slots.size
        code = np.full(n, ReasonCode.KNOWN.value, np.int8)
        code[~running] = ReasonCode.PAUSED.value
        code[running & ((elapsed > cycles.target) | (deadline == NOT_SET))] = (
            ReasonCode.BREACHED.value
        )
        finished = self.survival.root_finished
        in_table = cycles.group < finished.size
        enough = np.zeros(n, np.bool_)
        enough[in_table] = finished[cycles.group[in_table]] >= min_history
        code[(code == ReasonCode.KNOWN.value) & ~enough] = ReasonCode.TOO_LITTLE_HISTORY.value
        check = np.flatnonzero(code == ReasonCode.KNOWN.value)
        if check.size:
            reached = self.survival.reached(cycles.group[check], cycles.target[check] / US)
            code[check[reached < MIN_REACHED]] = ReasonCode.TARGET_RARELY_REACHED.value
        return code

    def expected_met(self, risk: CycleRisk, i: int) -> int | None:
        """When cycle ``i`` is met with even odds (the median of its time to met, at the pace
        ``W`` sets); None when that lies beyond what the history ever saw."""
        cycles = risk.cycles
        factor = float(risk.week_factor[i])
        group = int(cycles.group[i])
        elapsed = np.array([risk.elapsed[i] / US])
        start = float(self.survival.cumulative(np.array([group]), elapsed)[0])
        seconds = self.survival.time_at(group, start + math.log(2.0) / max(factor, 1e-9))
        if seconds is None:
            return None
        calendar = self.registry.calendars[int(cycles.calendar[i])]
        left = max(0, int(seconds * US) - int(cycles.elapsed_at_since[i]))
        return calendar.add_us(int(cycles.since[i]), left)
