"""The knobs of breach prediction, as plain values (the ``predict:`` config section compiles
to these). Defaults are documented in the README and in ``config/example.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

DEFAULT_PRECISION = 0.9
DEFAULT_THRESHOLD = 0.3
DEFAULT_EARLY = 0.9
DEFAULT_LEAD = timedelta(hours=1)
DEFAULT_HORIZON = timedelta(hours=4)
DEFAULT_HALF_LIFE = timedelta(days=28)
DEFAULT_MIN_HISTORY = 30
DEFAULT_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class PredictSettings:
    """``precision``: the share of warnings that must come true; the predictor then warns a
    metric as soon as its probability reaches the threshold that met this precision on recent
    finished metrics of its policy × metric (see ``operating``), while the deadline is at least
    ``lead`` away. None: the fixed rule of ``threshold`` and ``early`` instead.
    ``threshold``: the breach probability that raises ``predicted_breach`` at the last
    moment that still leaves ``lead`` before the deadline (wall clock); ``early``: the
    probability that raises it at once, however far the deadline; ``horizon``: business time the
    queue forecast looks ahead; ``half_life``: how fast old history fades; ``min_history``:
    finished cycles of a policy × metric before its tickets get a probability; ``every``: how
    often the daemon re-evaluates every running metric; ``queue_alerts``: receivers of the
    per-queue forecast messages (none: no queue alerts)."""

    enabled: bool = True
    precision: float | None = None
    threshold: float = DEFAULT_THRESHOLD
    early: float = DEFAULT_EARLY
    lead: timedelta = DEFAULT_LEAD
    horizon: timedelta = DEFAULT_HORIZON
    half_life: timedelta = DEFAULT_HALF_LIFE
    min_history: int = DEFAULT_MIN_HISTORY
    every: timedelta = DEFAULT_EVERY
    queue_alerts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.precision is not None and not 0.0 < self.precision < 1.0:
            raise ValueError(f"precision must be between 0 and 1, got {self.precision}")
        for name, value in (("threshold", self.threshold), ("early", self.early)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.early < self.threshold:
            raise ValueError("early must not be below threshold")
        if self.lead < timedelta(0):
            raise ValueError("lead must not be negative")
        if self.horizon <= timedelta(0) or self.half_life <= timedelta(0):
            raise ValueError("horizon and half_life must be positive")
        if self.min_history < 1:
            raise ValueError("min_history must be at least 1")
        if self.every <= timedelta(0):
            raise ValueError("every must be positive")
