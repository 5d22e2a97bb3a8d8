"""The labels of a notification, what routes, silences and inhibition rules match on:
``source``, ``policy``, ``metric``, ``level``, ``kind``, ``ticket``, ``cycle`` (the metric's
clock cycle: 0, then 1 after a reopen, ...), and every ticket field a
connector provides (``queue``, ``priority``, ``channel``, ``organization``, ``assignee``,
``group``, ...). Field names that are not label names (``due:resolution``) are left out. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sladaemon.model import NotificationKind, SlaEvent

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# set by sladaemon, not fields
OWN = ("source", "policy", "metric", "level", "kind", "ticket", "cycle")


def sla_labels(
    source: str, event: SlaEvent, kind: NotificationKind, fields: Mapping[str, str]
) -> dict[str, str]:
    labels = {k: v for k, v in fields.items() if v and _LABEL_NAME.match(k) and k not in OWN}
    labels.update(
        source=source,
        policy=event.policy,
        metric=event.metric.value,
        level=event.level or event.kind.value,
        kind=kind.value,
        ticket=event.ticket_id,
        cycle=str(event.cycle),
    )
    return labels
