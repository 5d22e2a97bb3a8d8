"""The helpdesk's own deadlines (``due:`` fields), each under the metric it stands for.

``due:<metric>`` is that metric's deadline. ``due:<a>|<b>`` is one deadline that is the
earliest of those metrics' own: Request Tracker keeps a single ``Due``, ``min(Response or
KeepInLoop, Resolve)`` (``RT::Action::SLA_SetDue``). It stands for the metric whose deadline is
earliest, judged by sladaemon's deadlines as RT judges by its own: the first one listed, unless
a later one is strictly earlier (on a tie RT keeps the response deadline). A metric without a
deadline of ours is no candidate. An empty value is a deadline the helpdesk no longer shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sladaemon.model import Metric, native_due_metrics


def native_deadlines(
    fields: Mapping[str, str], ours: Mapping[Metric, datetime]
) -> dict[Metric, str]:
    """The helpdesk's deadlines among ``fields`` (ISO text), by the metric each stands for,
    given ``ours``, sladaemon's deadline of each metric."""
    out: dict[Metric, str] = {}
    for name, value in fields.items():
        metrics = native_due_metrics(name)
        if not value or not metrics:
            continue
        metric = stands_for(metrics, ours)
        if metric is not None:
            out[metric] = value
    return out


def stands_for(metrics: Sequence[Metric], ours: Mapping[Metric, datetime]) -> Metric | None:
    """The metric a deadline for ``metrics`` (the earliest of theirs) stands for; None when
    several are named and none of them has a deadline of ours."""
    if len(metrics) == 1:
        return metrics[0]
    best: Metric | None = None
    for metric in metrics:
        at = ours.get(metric)
        if at is not None and (best is None or at < ours[best]):
            best = metric
    return best
