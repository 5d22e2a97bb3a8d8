"""Who a ticket is assigned to, as the ``assignee`` field tells it, and a bounded name cache.

Every connector puts the helpdesk's assignee in the ticket field ``assignee`` (the agent's
email in lower case; the name or login when the helpdesk gives no email) and the assigned
group, team or queue in ``group``. Unlike other fields, both are set on every change even
when empty: ``assignee=""`` means the ticket is no longer assigned.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping
from typing import TypeVar

ASSIGNEE = "assignee"
GROUP = "group"

K = TypeVar("K", bound=Hashable)

DEFAULT_CACHE_SIZE = 10_000


def person_identity(email: str | None, name: str | None = None) -> str:
    """How ``assignee`` names a person: the email in lower case, else the name; "" for none."""
    if email and email.strip():
        return email.strip().lower()
    return (name or "").strip()


class BoundedCache(Mapping[K, str]):
    """Names looked up by id, the least recently used forgotten beyond ``size`` entries."""

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[K, str] = OrderedDict()

    def __getitem__(self, key: K) -> str:
        value = self._items[key]
        self._items.move_to_end(key)
        return value

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: K, value: str) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
