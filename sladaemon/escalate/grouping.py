"""Grouping notifications into digests, with Alertmanager's timing: a group's first message
waits ``group_wait`` after its first item, so what arrives together goes out together; after
that at most one message per ``group_interval``, and only when something changed (an item
added); a group still firing is sent again every ``repeat_interval``. An item stops firing
when its metric is met or its chain is acknowledged; a group with nothing firing is done.

A group is keyed like Alertmanager's (the route's key and the group labels) plus its
receiver. Every message of a group has its own key, ``group/<receiver>/<group key>/<n>``:
``n`` counts the group's messages, so a message re-posted after a crash is the same outbox key
(never sent twice) and the next one is a new key. Pure: the GroupRunner stores the state and
posts the messages; times are integer µs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Item:
    key: str  # the notification's own key (source/ticket/metric/cycle/level)
    payload: dict[str, Any]
    added_us: int
    firing: bool = True
    sent: bool = False  # in a message of the group already
    labels: dict[str, str] = field(default_factory=dict)
    silenced: bool = False  # held by a silence at the group's last instant


@dataclass
class Group:
    key: str  # group/<receiver>/<route key>:<group labels>
    receiver: str  # a target, resolved when a message is sent
    labels: dict[str, str]  # the group labels
    wait_us: int
    interval_us: int
    repeat_us: int
    created_us: int
    items: dict[str, Item] = field(default_factory=dict)
    messages: int = 0  # messages sent so far
    last_sent_us: int | None = None
    next_us: int | None = None  # when to look at the group next

    def add(self, item: Item) -> bool:
        """Take an item; False when the group has it already."""
        if item.key in self.items:
            return False
        self.items[item.key] = item
        if self.last_sent_us is None:
            self.next_us = self.next_us or self.created_us + self.wait_us
        else:
            self.next_us = min(
                self.next_us or 2**62, max(item.added_us, self.last_sent_us + self.interval_us)
            )
        return True

    def resolve(self, item_key: str) -> bool:
        item = self.items.get(item_key)
        if item is None or not item.firing:
            return False
        item.firing = False
        return True

    @property
    def firing(self) -> list[Item]:
        return [i for i in self.items.values() if i.firing]

    def due(self, now_us: int, held: Callable[[Item], bool] = lambda _: False) -> Digest | None:
        """What to send at ``now_us`` (the group's instant has come): new items, or a repeat
        of what still fires; None when nothing is to be sent now (``next_us`` is moved on).
        Firing items ``held`` (by a silence or an inhibition) stay unsent: when that ends they
        go out as new."""
        for item in self.items.values():
            item.silenced = item.firing and held(item)
        new = [i for i in self.items.values() if not i.sent and i.firing and not i.silenced]
        firing = [i for i in self.firing if not i.silenced]
        waiting = any(i.silenced and not i.sent for i in self.items.values())
        repeat = (
            not new
            and bool(firing)
            and self.last_sent_us is not None
            and now_us >= self.last_sent_us + self.repeat_us
        )
        if not new and not repeat:
            later = [now_us + self.interval_us] if waiting else []  # a silence may end
            if firing and self.last_sent_us is not None:
                later.append(self.last_sent_us + self.repeat_us)
            self.next_us = min(later) if later else None
            return None
        return Digest(self.key, self.messages + 1, new, firing, repeat)

    def sent(self, digest: Digest, now_us: int) -> None:
        """After ``digest`` was posted to the outbox."""
        for item in digest.new:
            item.sent = True
        self.messages = digest.number
        self.last_sent_us = now_us
        self.next_us = now_us + min(self.interval_us, self.repeat_us) if self.firing else None

    @property
    def done(self) -> bool:
        return not self.firing and self.next_us is None

    def message_key(self, number: int) -> str:
        return f"{self.key}/{number}"


@dataclass(frozen=True)
class Digest:
    group: str
    number: int  # the group's message number: its outbox key
    new: list[Item]  # items not in an earlier message of the group
    firing: list[Item]  # every item still firing
    repeat: bool  # nothing new: the firing items again, after repeat_interval


def digest_payload(group: Group, digest: Digest, at: str) -> dict[str, Any]:
    """The message of a digest: a headline, every item with its link, and the items as data
    (for JSON receivers)."""
    items = digest.firing if digest.repeat else digest.new
    count = len(items)
    noun = "ticket" if count == 1 else "tickets"
    verbs = sorted({_VERB.get(str(i.payload.get("kind")), "new") for i in items})
    verb = "still firing" if digest.repeat else " or ".join(verbs)
    title = f"{_subject(group, items)}: {count} {noun} {verb}"
    lines: list[str] = []  # the title is the message's subject: the body lists the tickets
    for item in items:
        p = item.payload
        link = f" {p['link']}" if p.get("link") else ""
        lines.append(
            f"- {p.get('ticket_id')}{link}: {p.get('metric')} {p.get('level')} "
            f"(deadline {p.get('deadline')}, policy {p.get('policy')})"
        )
    others = len(digest.firing) - count if not digest.repeat else 0
    if others > 0:
        lines.append(f"(and {others} earlier, still firing)")
    lines += ["", f"at: {at}", f"id: {group.message_key(digest.number)}"]
    return {
        "id": group.message_key(digest.number),
        "kind": "group",
        "title": title,
        "body": "\n".join(lines),
        "at": at,
        "group": group.key,
        "group_labels": group.labels,
        "repeat": digest.repeat,
        "items": [
            {k: i.payload.get(k) for k in ("id", "ticket_id", "link", "metric", "level", "kind")}
            for i in items
        ],
    }


_VERB = {
    "warning": "at a warning level",
    "breach": "breached",
    "escalation": "overdue",
    "predicted_breach": "predicted to breach",
}
_SUBJECT_LABELS = ("queue", "policy", "metric")


def _subject(group: Group, items: list[Item]) -> str:
    """What the group is about: its labels, queue / policy / metric first, and the metric its
    items share when that is no group label (``billing / first_response``)."""
    labels = group.labels
    parts = [labels[k] for k in _SUBJECT_LABELS if labels.get(k)]
    parts += [
        f"{k}={v}" for k, v in sorted(labels.items()) if k not in (*_SUBJECT_LABELS, "kind")
    ]  # the kind is told by the verb
    metrics = {str(i.payload.get("metric")) for i in items}
    if "metric" not in labels and len(metrics) == 1:
        parts.append(metrics.pop())
    return " / ".join(parts) or "SLA"
