"""How good were the warnings? Predicted breaches against the fixed 75 % threshold.

A *metric* here is one cycle of one metric of one ticket. For every metric that breached, the
lead of a warning is ``deadline − warning instant`` in wall-clock time (the deadline being the
instant it breached): how long someone had to act. Figures per kind of warning:

* alerts — warnings raised (each metric at most once);
* precision — the share of warned metrics that went on to breach;
* warned ≥ 30 min / ≥ 1 h — the share of breached metrics warned at least that long ahead;
* median lead — over the breached metrics that were warned before their deadline.

The 75 % baseline is the instant elapsed business time reached 75 % of the target, whether or
not the policy has such a ladder level.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sladaemon.model import SlaEvent, SlaEventKind
from sladaemon.texttable import aligned, percent, short_duration

BASELINE_LABEL = "75%"
MetricKey = tuple[str, str, int]  # (ticket, metric, cycle)


@dataclass(frozen=True, slots=True)
class WarningQuality:
    name: str
    alerts: int
    breaches: int
    warned_breaches: int  # breached metrics warned before their deadline
    caught_30m: int
    caught_1h: int
    median_lead_s: float | None

    @property
    def precision(self) -> float | None:
        return self.warned_breaches / self.alerts if self.alerts else None

    @property
    def share_30m(self) -> float | None:
        return self.caught_30m / self.breaches if self.breaches else None

    @property
    def share_1h(self) -> float | None:
        return self.caught_1h / self.breaches if self.breaches else None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(precision=self.precision, share_30m=self.share_30m, share_1h=self.share_1h)
        return out


@dataclass(frozen=True, slots=True)
class GroupQuality:
    policy: str
    metric: str
    predicted: WarningQuality
    baseline: WarningQuality


@dataclass(frozen=True, slots=True)
class PredictionQuality:
    predicted: WarningQuality
    baseline: WarningQuality
    groups: tuple[GroupQuality, ...]
    queue_alerts: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "predicted": self.predicted.as_json(),
            "baseline_75": self.baseline.as_json(),
            "queue_alerts": self.queue_alerts,
            "by_policy_metric": [
                {
                    "policy": g.policy,
                    "metric": g.metric,
                    "predicted": g.predicted.as_json(),
                    "baseline_75": g.baseline.as_json(),
                }
                for g in self.groups
            ],
        }


def measure(events: Iterable[SlaEvent], queue_alerts: int = 0) -> PredictionQuality:
    """Quality of the ``predicted_breach`` events and of the 75 % warnings among ``events``."""
    breached: dict[MetricKey, float] = {}
    predicted: dict[MetricKey, float] = {}
    baseline: dict[MetricKey, float] = {}
    group_of: dict[MetricKey, tuple[str, str]] = {}
    for e in events:
        key = (e.ticket_id, e.metric.value, e.cycle)
        stamp = e.at.timestamp()
        if e.kind is SlaEventKind.BREACH:
            breached.setdefault(key, stamp)
            group_of[key] = (e.policy, e.metric.value)
        elif e.kind is SlaEventKind.PREDICTED_BREACH:
            predicted.setdefault(key, stamp)
            group_of.setdefault(key, (e.policy, e.metric.value))
        elif e.kind is SlaEventKind.WARNING and e.level == BASELINE_LABEL:
            baseline.setdefault(key, stamp)
            group_of.setdefault(key, (e.policy, e.metric.value))
    groups = sorted(set(group_of.values()))
    by_group = tuple(
        GroupQuality(
            policy,
            metric,
            _quality("predicted", predicted, breached, group_of, (policy, metric)),
            _quality("75% of target", baseline, breached, group_of, (policy, metric)),
        )
        for policy, metric in groups
    )
    return PredictionQuality(
        predicted=_quality("predicted", predicted, breached, group_of, None),
        baseline=_quality("75% of target", baseline, breached, group_of, None),
        groups=by_group,
        queue_alerts=queue_alerts,
    )


def _quality(
    name: str,
    warnings: dict[MetricKey, float],
    breached: dict[MetricKey, float],
    group_of: dict[MetricKey, tuple[str, str]],
    group: tuple[str, str] | None,
) -> WarningQuality:
    def mine(key: MetricKey) -> bool:
        return group is None or group_of.get(key) == group

    leads = [breached[key] - at for key, at in warnings.items() if key in breached and mine(key)]
    leads = [lead for lead in leads if lead >= 0]
    return WarningQuality(
        name=name,
        alerts=sum(1 for key in warnings if mine(key)),
        breaches=sum(1 for key in breached if mine(key)),
        warned_breaches=len(leads),
        caught_30m=sum(lead >= 1800 for lead in leads),
        caught_1h=sum(lead >= 3600 for lead in leads),
        median_lead_s=statistics.median(leads) if leads else None,
    )


def format_quality(quality: PredictionQuality, *, groups: bool = True) -> str:
    """The quality table as aligned text."""
    header = ("policy", "metric", "warning", "alerts", "precision", "breaches", ">=30m", ">=1h",
              "median lead")  # fmt: skip
    lines: list[Sequence[str]] = [header]
    rows = [("all", "all", quality.predicted, quality.baseline)]
    if groups:
        rows += [(g.policy, g.metric, g.predicted, g.baseline) for g in quality.groups]
    for policy, metric, *kinds in rows:
        assert isinstance(policy, str) and isinstance(metric, str)
        for q in kinds:
            assert isinstance(q, WarningQuality)
            lines.append(
                (
                    policy,
                    metric,
                    q.name,
                    str(q.alerts),
                    percent(q.precision),
                    str(q.breaches),
                    percent(q.share_30m),
                    percent(q.share_1h),
                    short_duration(q.median_lead_s),
                )
            )
    return "\n".join(aligned(lines, left=(0, 1, 2)))
