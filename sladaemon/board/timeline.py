"""A ticket's page as values: one timeline of everything that happened to it, and each SLA
clock's business-time accounting (what ``explain`` prints, metric by metric).

The timeline merges, in time order: the helpdesk's events, the SLA events (levels reached,
breaches, predictions, met), the audit trail (pages, acks, escalations; notifications a
silence or an inhibition held) and every notification sent about the ticket (direct and in
digests: to which receiver, delivered when or why not). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sladaemon.calendar import BusinessCalendar, from_us
from sladaemon.escalate.chain_store import AuditEntry
from sladaemon.escalate.silences import Silence
from sladaemon.model import SlaEventKind
from sladaemon.sla.engine import TicketEvaluation, TicketReplay
from sladaemon.sla.explain import explain_text
from sladaemon.store.sqlite import SentRow

MAX_ENTRIES = 500  # the latest are kept


@dataclass(frozen=True)
class Entry:
    at: datetime
    what: str  # helpdesk, sla, audit, notification
    text: str
    detail: str = ""


@dataclass(frozen=True)
class TicketPage:
    source: str
    ticket_id: str
    open: bool
    fields: Mapping[str, str]
    policy: str
    category: str
    timeline: list[Entry]
    accounting: list[tuple[str, str]]  # (metric, explain's lines)
    silences: list[Silence]  # active silences matching the ticket
    acked: list[str]  # "first_response: acked by ann via board"
    chains_open: bool  # a chain that an ack would stop


def ticket_page(
    source: str,
    ticket_id: str,
    replay: TicketReplay | None,
    evaluation: TicketEvaluation | None,
    calendars: Mapping[str, BusinessCalendar],
    audit: Iterable[tuple[str, AuditEntry]],
    sent: Sequence[SentRow],
    silences: Sequence[Silence],
    acks: Sequence[tuple[str, str, str, str]],  # metric, state, acked_by, acked_via
) -> TicketPage:
    entries: list[Entry] = []
    if replay is not None:
        for e in replay.events:
            status = f" → {e.status}" if e.status else ""
            shown = ", ".join(f"{k} {v}" for k, v in e.fields.items() if v and ":" not in k)
            entries.append(Entry(e.at, "helpdesk", f"{e.kind.value}{status}", shown))
    if evaluation is not None:
        for s in evaluation.timeline:
            text = f"{s.metric.value}: {s.level or s.kind.value}"
            detail = ""
            if s.kind is SlaEventKind.PREDICTED_BREACH:
                p = s.details.get("probability")
                likely = f"{round(100 * p)}% likely" if isinstance(p, int | float) else ""
                detail = "; ".join(x for x in (likely, str(s.details.get("reason") or "")) if x)
            entries.append(Entry(s.at, "sla", text, detail))
    for _, a in audit:
        who = f" {a.actor}" if a.actor else ""
        via = f" via {a.via}" if a.via else ""
        entries.append(Entry(from_us(a.at_us), "audit", f"{a.action}{who}{via}", a.detail))
    for n in sent:
        when = datetime.fromtimestamp(n.created_at, UTC)
        if n.delivered_at is not None:
            delivered = datetime.fromtimestamp(n.delivered_at, UTC)
            fate = f"delivered {delivered:%Y-%m-%d %H:%M:%S} UTC"
        else:
            fate = n.state + (f": {n.last_error}" if n.last_error else "")
        entries.append(
            Entry(when, "notification", f"{n.kind} to {n.receiver}", f"{fate} ({n.key})")
        )
    entries.sort(key=lambda x: x.at)
    accounting: list[tuple[str, str]] = []
    if evaluation is not None:
        text = explain_text(evaluation, calendars)
        head, *sections = text.split("\n\n")
        accounting.append(("ticket", head))
        for section in sections:
            name = section.split(":", 1)[0]
            accounting.append((name, section))
    return TicketPage(
        source=source,
        ticket_id=ticket_id,
        open=replay is not None,
        fields=dict(replay.fields) if replay is not None else {},
        policy=replay.policy.name if replay is not None and replay.policy else "",
        category=replay.category.value if replay is not None and replay.category else "",
        timeline=entries[-MAX_ENTRIES:],
        accounting=accounting,
        silences=list(silences),
        acked=[f"{m}: acked by {by} via {via}" for m, state, by, via in acks if state == "acked"],
        chains_open=any(state == "active" for _, state, _, _ in acks),
    )
