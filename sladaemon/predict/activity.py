"""What a ticket and its queue have been doing: the signals a fixed share of the target cannot
see, kept up to date as events arrive.

* ``TicketActivity`` — per ticket number: reassignments (queue, group or assignee changed from
  one set value to another), agent and customer replies, waiting periods (entries into a
  pending or on-hold status), and the last agent action. Counted incrementally from the
  replay's events; a replay rebuilt around a late event is counted afresh.
* ``RecentRates`` — per queue × metric, arrivals and services over the last day (exponentially
  decayed, time constant ``DAY_US``) and the backlog's day average, whose difference from the
  backlog now is its trend.

Pure: events and instants in, numbers out.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from sladaemon.model import EventKind, StatusCategory
from sladaemon.predict.columns import Floats, Int32s, Ints, UInt32s
from sladaemon.sla.engine import TicketReplay

Int8s = npt.NDArray[np.int8]
DAY_US = 86_400 * 1_000_000
OWNER_FIELDS = ("queue", "group", "assignee")
AGENT_ACTIONS = frozenset(
    {
        EventKind.CREATED,
        EventKind.AGENT_REPLY,
        EventKind.INTERNAL_NOTE,
        EventKind.STATUS_CHANGED,
        EventKind.RESOLVED,
        EventKind.REOPENED,
    }
)
WAITING = frozenset({StatusCategory.PENDING, StatusCategory.ON_HOLD})


class TicketActivity:
    """Per ticket number (see ``columns.TicketSlots``) the counts named in the module."""

    COUNTS = ("seen", "reassignments", "agent_replies", "customer_replies", "waits", "waiting")
    OWNERS = tuple(f"owner_{name}" for name in OWNER_FIELDS)  # hash of the value; 0: unset

    def __init__(self) -> None:
        self.seen: Int32s = np.zeros(0, np.int32)  # events counted
        self.reassignments: Int32s = np.zeros(0, np.int32)
        self.agent_replies: Int32s = np.zeros(0, np.int32)
        self.customer_replies: Int32s = np.zeros(0, np.int32)
        self.waits: Int32s = np.zeros(0, np.int32)
        self.waiting: Int8s = np.zeros(0, np.int8)  # 1 while pending or on hold
        self.last_counted: Ints = np.zeros(0, np.int64)  # id() of the last event counted
        self.last_action: UInt32s = np.zeros(0, np.uint32)  # whole seconds; 0: none yet
        self.owner_queue: Int32s = np.zeros(0, np.int32)
        self.owner_group: Int32s = np.zeros(0, np.int32)
        self.owner_assignee: Int32s = np.zeros(0, np.int32)

    def reset(self, number: int) -> None:
        self._grow(number)
        for name in (*self.COUNTS, *self.OWNERS):
            getattr(self, name)[number] = 0
        self.last_action[number] = 0

    def observe(self, number: int, replay: TicketReplay) -> None:
        """Count the replay's events not counted yet."""
        self._grow(number)
        events = replay.events
        seen = int(self.seen[number])
        if seen and (len(events) < seen or id(events[seen - 1]) != self.last_counted[number]):
            self.reset(number)  # rebuilt (a late event sorted in): count it afresh
        waiting = bool(self.waiting[number])
        for event in events[int(self.seen[number]) :]:
            for name in OWNER_FIELDS:
                value = event.fields.get(name)
                if value is None:
                    continue
                owner = getattr(self, f"owner_{name}")
                # A hash of the value (0: unset), as long-lived as the process
                new = (hash(value) & 0x7FFFFFFF or 1) if value else 0
                if owner[number] and new and new != owner[number]:
                    self.reassignments[number] += 1
                owner[number] = new
            kind = event.kind
            if kind is EventKind.AGENT_REPLY:
                self.agent_replies[number] += 1
            elif kind is EventKind.CUSTOMER_REPLY:
                self.customer_replies[number] += 1
            if kind in AGENT_ACTIONS:
                self.last_action[number] = max(1, int(event.at.timestamp()))
            if event.category is not None:
                now_waiting = event.category in WAITING
                if now_waiting and not waiting:
                    self.waits[number] += 1
                waiting = now_waiting
        self.waiting[number] = waiting
        self.seen[number] = len(events)
        self.last_counted[number] = id(events[-1]) if events else 0

    def _grow(self, number: int) -> None:
        size = self.seen.size
        if number < size:
            return
        new = max(64, size * 5 // 4, number + 1)
        for name in (*self.COUNTS, *self.OWNERS, "last_counted", "last_action"):
            array = getattr(self, name)
            grown = np.zeros(new, array.dtype)
            grown[:size] = array
            setattr(self, name, grown)


class RecentRates:
    """Per queue × metric id: arrivals and services in the last day (decayed), and the backlog's
    day average. Instants only move forward; an older instant counts as the latest seen."""

    def __init__(self) -> None:
        self.at = 0
        self.arrivals: Floats = np.zeros(0)
        self.services: Floats = np.zeros(0)
        self.backlog_average: Floats = np.zeros(0)
        self._backlog_at = 0

    def arrival(self, queue: int, at_us: int) -> None:
        self._decay_to(at_us)
        self._grow(queue)
        self.arrivals[queue] += self._weight(at_us)

    def service(self, queue: int, at_us: int) -> None:
        self._decay_to(at_us)
        self._grow(queue)
        self.services[queue] += self._weight(at_us)

    def note_backlog(self, backlogs: Floats, now_us: int) -> None:
        """Move the backlog's day average towards ``backlogs`` (one entry per queue id)."""
        self._grow(backlogs.size - 1)
        average = self.backlog_average[: backlogs.size]
        if self._backlog_at == 0:
            average[:] = backlogs
        else:
            keep = math.exp(-max(0, now_us - self._backlog_at) / DAY_US)
            average[:] = keep * average + (1.0 - keep) * backlogs
        self._backlog_at = max(self._backlog_at, now_us)

    def per_day(self, queues: Ints, now_us: int) -> tuple[Floats, Floats]:
        """Arrivals and services of the last day at ``now_us``, for each entry of ``queues``."""
        self._grow(int(queues.max(initial=0)))
        scale = math.exp(-max(0, now_us - self.at) / DAY_US)
        return self.arrivals[queues] * scale, self.services[queues] * scale

    def _weight(self, at_us: int) -> float:
        return math.exp(-max(0, self.at - at_us) / DAY_US)

    def _decay_to(self, at_us: int) -> None:
        if at_us > self.at:
            if self.at:
                keep = math.exp(-(at_us - self.at) / DAY_US)
                self.arrivals *= keep
                self.services *= keep
            self.at = at_us

    def _grow(self, queue: int) -> None:
        size = self.arrivals.size
        if queue < size:
            return
        new = max(16, size * 2, queue + 1)
        for name in ("arrivals", "services", "backlog_average"):
            grown = np.zeros(new)
            grown[:size] = getattr(self, name)
            setattr(self, name, grown)
