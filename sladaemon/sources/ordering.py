"""Events of one instant in the order their meaning needs (pure).

A customer's reply to a solved or closed ticket reopens it, and helpdesks record the two in
the same second, the reply first (RT's Correspond before the Status its scrip sets, Zendesk's
comment before the status change of the same audit, Freshdesk's and Zammad's reply and reopen
at one timestamp). Read in that order the reply would reach a done ticket and wait for no
answer: so the reopen goes first, and the reply, when it carries a status, takes the reopened
one. The engine reopens a solved ticket on a customer's reply in any order (``sla.engine``);
this keeps a closed one, and the statuses the events show, right too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sladaemon.model import EventKind, TicketEvent


def reopen_before_replies(events: Sequence[TicketEvent]) -> list[TicketEvent]:
    """``events`` (in order) with each reopen moved before the customer replies
    of its instant that precede it with no status change between them."""
    out = list(events)
    for index, event in enumerate(out):
        if event.kind is not EventKind.REOPENED:
            continue
        first_reply = None
        earlier = index - 1
        while earlier >= 0 and out[earlier].at == event.at:
            before = out[earlier]
            if before.ticket_id != event.ticket_id:
                break
            if before.kind is EventKind.CUSTOMER_REPLY:
                first_reply = earlier
            elif before.category is not None:
                break  # a status change: the replies before it did not reach a done ticket
            earlier -= 1
        if first_reply is None:
            continue
        out[first_reply + 1 : index + 1] = out[first_reply:index]
        out[first_reply] = event
        for moved in range(first_reply + 1, index + 1):
            reply = out[moved]
            if reply.kind is EventKind.CUSTOMER_REPLY and reply.category is not None:
                out[moved] = replace(reply, status=event.status, category=event.category)
    return out
