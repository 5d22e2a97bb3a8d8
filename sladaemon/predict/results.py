"""What the predictor hands out: predictions, assessments, queue forecasts and queue alerts.

Plain values, built by the predictor and never changed after: instants are integer µs since
the epoch, probabilities lie in 0..1, and no float field holds a NaN or an infinity (``finite``
turns them into 0). ``ReasonCode`` says why a running metric has a probability or none; the
predictor keeps it per open cycle in an int8 column, so its values are small integers.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from sladaemon.model import Metric, TicketKey


class ReasonCode(enum.IntEnum):
    """Why a running metric has a probability of breach (``KNOWN``), or why it has none.

    Against a numpy column compare with ``.value``: the member itself would promote the int8
    column to int64 (15 times slower on 300,000 rows)."""

    KNOWN = 0
    PAUSED = 1  # the clock is paused
    BREACHED = 2  # already breached: no deadline ahead
    TOO_LITTLE_HISTORY = 3  # fewer than min_history finished cycles of its policy × metric
    TARGET_RARELY_REACHED = 4  # too few cycles of its group have run as long as the target


@dataclass(frozen=True, slots=True)
class Prediction:
    """A running metric judged likely to breach while its deadline is still ``lead`` away."""

    key: TicketKey
    metric: Metric
    cycle: int
    at_us: int
    probability: float
    deadline_us: int
    expected_met_us: int | None  # median of the time to met; None: beyond what was ever seen
    queue: str
    position: int  # 1 = longest waiting of its queue and metric
    backlog: int
    reason: str
    history_probability: float  # from the group's history alone
    week_factor: float  # W: service expected before the deadline, relative to usual
    calibration: float  # the correction learnt from outcomes (1: none yet)
    business_left_us: int = 0  # business time left on the metric's clock
    threshold: float | None = None  # the threshold in force (with ``precision``)
    model: str = "life tables"  # what judged it: "boosted" or "life tables"
    threshold_why: str = ""  # how the threshold in force was chosen

    def details(self) -> dict[str, Any]:
        return {
            "probability": self.probability,
            "history_probability": self.history_probability,
            "week_factor": self.week_factor,
            "calibration": self.calibration,
            "expected_breach_us": self.deadline_us,
            "expected_met_us": self.expected_met_us,
            "queue": self.queue,
            "position": self.position,
            "backlog": self.backlog,
            "reason": self.reason,
            "business_left_us": self.business_left_us,
            "threshold": self.threshold,
            "model": self.model,
            "threshold_why": self.threshold_why,
        }


@dataclass(frozen=True, slots=True)
class Assessment:
    """The risk of one running metric, or why there is none."""

    key: TicketKey
    metric: Metric
    cycle: int
    probability: float | None
    deadline_us: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class QueueForecast:
    """One queue and metric over the horizon. Rates are per wall-clock hour, averaged over the
    window the horizon covers; ``unknown`` says why there are no figures."""

    source: str
    queue: str
    metric: Metric
    at_us: int
    backlog: int
    arrivals_per_hour: float
    throughput_per_hour: float
    forecast: tuple[tuple[int, float], ...]  # (instant µs, expected backlog)
    will_miss: int  # waiting cycles whose deadline comes before their turn
    needed_rise_per_hour: float
    unknown: str = ""

    @property
    def trend(self) -> str:
        if self.unknown or not self.forecast:
            return "unknown"
        end = self.forecast[-1][1]
        margin = max(1.0, 0.1 * self.backlog)
        if end > self.backlog + margin:
            return "rising"
        if end < self.backlog - margin:
            return "falling"
        return "steady"


@dataclass(frozen=True, slots=True)
class QueueAlert:
    """A queue's forecast changed materially. ``key`` is its durable identity: one message per
    queue, local day and miss bucket."""

    key: str
    source: str
    queue: str
    at_us: int
    summary: str
    will_miss: int


@dataclass
class TickResult:
    predictions: list[Prediction]
    alerts: list[QueueAlert]


def finite(value: float) -> float:
    """``value`` as a float fit for a result field: NaN and infinities become 0."""
    value = float(value)
    return value if math.isfinite(value) else 0.0
