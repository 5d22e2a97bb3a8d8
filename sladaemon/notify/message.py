"""What a notification says. Pure: SLA events become payloads (stored in the outbox) and
payloads become title and body, optionally through a receiver's template."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from string import Formatter
from typing import Any
from zoneinfo import ZoneInfo

from sladaemon.durations import format_duration
from sladaemon.model import NotificationKind, SlaEvent, SlaEventKind

# Placeholders a receiver template may use.
FIELDS = (
    "id",
    "kind",
    "source",
    "ticket_id",
    "link",
    "policy",
    "metric",
    "level",
    "cycle",
    "at",
    "deadline",
    "deadline_local",
    "remaining",
    "overdue",
    "summary",
    "probability",
    "expected_met",
    "reason",
)

HEADLINE = {
    NotificationKind.WARNING: "SLA warning",
    NotificationKind.BREACH: "SLA breached",
    NotificationKind.ESCALATION: "SLA escalation",
    NotificationKind.RESOLVED: "SLA met late",
    NotificationKind.PREDICTED_BREACH: "SLA breach predicted",
    NotificationKind.QUEUE: "Queue forecast",
    NotificationKind.OPERATOR: "sladaemon",
    NotificationKind.TEST: "sladaemon test",
    NotificationKind.REPORT: "sladaemon report",
    NotificationKind.OVERDUE_AT_START: "SLA overdue at start",
    NotificationKind.GROUP: "SLA",
}
_SUMMARY_ONLY = (NotificationKind.OPERATOR, NotificationKind.TEST, NotificationKind.QUEUE)
# A KPI report, a summary of the tickets overdue when monitoring began: sent as written.
_WRITTEN = (NotificationKind.REPORT, NotificationKind.OVERDUE_AT_START, NotificationKind.GROUP)
MAX_TEMPLATE = 10_000  # characters of a receiver template
MAX_SPEC_WIDTH = 1000  # width or precision in a template's format spec, e.g. {ticket_id:>30}
MAX_TEMPLATED_BODY = 64 * 1024  # characters of a body rendered through a template
# The standard format spec: [[fill]align][sign][z][#][0][width][grouping][.precision][type].
_SPEC = re.compile(
    r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d+))?[a-zA-Z%]?",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    kind: NotificationKind
    title: str
    body: str
    body_format: str = "text"  # text | html
    chain: str = ""  # the escalation chain this message is a step of (its key), if any
    ack_url: str = ""  # the signed link that acknowledges that chain
    data: Mapping[str, Any] = field(default_factory=dict)  # the payload, for JSON webhooks


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def notification_kind(event: SlaEvent) -> NotificationKind:
    """What a message about ``event`` is: a met-late metric is a ``resolved`` message."""
    if event.kind is SlaEventKind.MET_LATE:
        return NotificationKind.RESOLVED
    return NotificationKind(event.kind.value)


def sla_payload(key: str, source: str, event: SlaEvent, link: str | None) -> dict[str, Any]:
    """Everything a message about ``event`` needs, as JSON-able values; ``key`` is its
    identity in the outbox."""
    details = event.details
    zone = ZoneInfo(str(details.get("timezone", "UTC")))
    target_us = int(details.get("target_us", 0) or 0)
    elapsed_us = int(details.get("elapsed_us", 0) or 0)
    remaining_s = (target_us - elapsed_us) / 1e6
    kind = notification_kind(event).value
    payload: dict[str, Any] = {
        "id": key,
        "kind": kind,
        "source": source,
        "ticket_id": event.ticket_id,
        "link": link or "",
        "policy": event.policy,
        "metric": event.metric.value,
        "level": event.level or kind,
        "cycle": event.cycle,
        "at": iso(event.at),
        "deadline": iso(event.deadline) if event.deadline else "",
        "deadline_local": (
            f"{event.deadline.astimezone(zone):%a %Y-%m-%d %H:%M %Z}" if event.deadline else ""
        ),
        "remaining_s": remaining_s,
        "remaining": format_duration(remaining_s, exact=False) if remaining_s >= 0 else "",
        "overdue": format_duration(-remaining_s, exact=False) if remaining_s < 0 else "",
    }
    if event.kind is SlaEventKind.PREDICTED_BREACH:
        payload.update(_prediction_fields(details, zone))
    return payload


def percent(value: object) -> str:
    """A probability as a whole percentage, 1 % to 99 % (a prediction is never certain);
    'unknown' for anything that is not a number in 0..1 (never 'nan%')."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return f"{min(99, max(1, round(100.0 * value)))}%"
    return "unknown"


def _prediction_fields(details: Mapping[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    met_us = details.get("expected_met_us")
    expected_met = ""
    if isinstance(met_us, int):
        met = datetime.fromtimestamp(met_us / 1e6, UTC)
        expected_met = f"{iso(met)} ({met.astimezone(zone):%a %Y-%m-%d %H:%M %Z})"
    return {
        "probability": percent(details.get("probability")),
        "expected_met": expected_met,
        "reason": str(details.get("reason") or ""),
        "threshold": percent(details.get("threshold")) if details.get("threshold") else "",
        "threshold_why": str(details.get("threshold_why") or ""),
    }


def operator_payload(key: str, summary: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "id": key,
        "kind": NotificationKind.OPERATOR.value,
        "summary": summary,
        "at": iso(at),
    } | extra


def render(payload: Mapping[str, Any], template: str | None = None) -> Notification:
    """Title and body of a notification; a receiver template replaces the default body."""
    kind = payload_kind(payload)
    if kind in _WRITTEN:  # title and body written already: templates are for SLA messages
        return Notification(
            id=str(payload.get("id", "")),
            kind=kind,
            title=str(payload.get("title", "")),
            body=str(payload.get("body", "")),
            body_format="html" if payload.get("format") == "html" else "text",
            data=payload,
        )
    payload = {k: _one_line(v) if isinstance(v, str) else v for k, v in payload.items()}
    fields = {name: payload.get(name, "") for name in FIELDS}
    fields["summary"] = payload.get("summary") or _summary(kind, payload)
    title = f"{HEADLINE[kind]}: {fields['summary']}"
    if template:
        body = _capped(template.format_map(fields))
    elif kind in _SUMMARY_ONLY:
        body = f"{fields['summary']}\nat: {fields['at']}\nid: {fields['id']}"
    else:
        body = _default_body(kind, payload)
    ack_url = str(payload.get("ack_url") or "")
    if ack_url:
        body += f"\nacknowledge: {ack_url}"
    if payload.get("possible_duplicate"):
        body += "\n(possible duplicate: re-sent after an interrupted delivery)"
    return Notification(
        id=str(payload.get("id", "")),
        kind=kind,
        title=title,
        body=body,
        chain=str(payload.get("chain") or ""),
        ack_url=ack_url,
        data=payload,
    )


def _capped(body: str) -> str:
    """A templated body cut at ``MAX_TEMPLATED_BODY`` characters, saying so."""
    if len(body) <= MAX_TEMPLATED_BODY:
        return body
    return body[:MAX_TEMPLATED_BODY] + "\n(cut: the message was too long)"


def _one_line(text: str) -> str:
    """Control characters (a newline in a ticket id) shown as spaces: a value never adds a
    line of its own to a message, such as a second ``id:``."""
    return "".join(" " if ch < " " or ch == "\x7f" else ch for ch in text)


def payload_kind(payload: Mapping[str, Any]) -> NotificationKind:
    """The kind a stored payload says it is; a row without a known kind reads as an operator
    message (its summary and id are shown as they are)."""
    try:
        return NotificationKind(str(payload.get("kind", "")))
    except ValueError:
        return NotificationKind.OPERATOR


def _summary(kind: NotificationKind, p: Mapping[str, Any]) -> str:
    what = f"ticket {p.get('ticket_id')} {p.get('metric')}"
    if kind is NotificationKind.WARNING:
        return f"{what} at {p.get('level')} of target, {p.get('remaining')} left"
    if kind is NotificationKind.RESOLVED:
        return f"{what} met after its breach"
    if kind is NotificationKind.ESCALATION:
        return f"{what} overdue by {p.get('overdue') or '0s'} ({p.get('level')})"
    if kind is NotificationKind.PREDICTED_BREACH:
        return (
            f"{what} {p.get('probability') or 'unknown'} likely to breach at "
            f"{p.get('deadline_local') or p.get('deadline')}"
        )
    return f"{what} breached"


def _default_body(kind: NotificationKind, p: Mapping[str, Any]) -> str:
    ticket = str(p.get("ticket_id"))
    if p.get("link"):
        ticket += f" {p['link']}"
    lines = [
        f"ticket: {ticket}",
        f"policy: {p.get('policy')}",
        f"metric: {p.get('metric')} (cycle {p.get('cycle')})",
        f"level: {p.get('level')}",
        f"deadline: {p.get('deadline')} ({p.get('deadline_local')})",
    ]
    if p.get("remaining"):
        lines.append(f"remaining: {p['remaining']}")
    if p.get("overdue"):
        lines.append(f"overdue: {p['overdue']}")
    if kind is NotificationKind.PREDICTED_BREACH:
        lines.append(f"probability of breach: {p.get('probability') or 'unknown'}")
        lines.append(f"expected met: {p.get('expected_met') or 'not within the history seen'}")
        if p.get("threshold_why"):
            lines.append(f"warns at: {p['threshold_why']}")
        if p.get("reason"):
            lines.append(f"why: {p['reason']}")
    lines += [f"at: {p.get('at')}", f"source: {p.get('source')}", f"id: {p.get('id')}"]
    return "\n".join(lines)


def template_problem(template: str) -> str | None:
    """Why a template cannot be rendered for every kind of message, or None. Fields are
    plain names (no ``.attribute`` or ``[index]``), format specs hold no fields and no width
    or precision above ``MAX_SPEC_WIDTH``, so a message stays small whatever the values."""
    if len(template) > MAX_TEMPLATE:
        return f"template longer than {MAX_TEMPLATE} characters"
    try:
        parts = [
            (name, spec) for _, name, spec, _ in Formatter().parse(template) if name is not None
        ]
    except ValueError as exc:
        return f"invalid template: {exc}"
    names = [name for name, _ in parts]
    if any(not n for n in names):
        return "template fields must be named, e.g. {ticket_id}"
    unknown = sorted({re.split(r"[.\[]", n)[0] for n in names} - set(FIELDS))
    if unknown:
        return f"unknown template field(s) {', '.join(unknown)} (use {', '.join(FIELDS)})"
    if any(not n.isidentifier() for n in names):
        shown = next(n for n in names if not n.isidentifier())
        return f"template fields are plain names: {{{shown}}} (use e.g. {{ticket_id}})"
    problem = next((p for _, spec in parts if (p := _spec_problem(spec or ""))), None)
    return problem or _sample_problem(template)


def _spec_problem(spec: str) -> str | None:
    """Why a format spec is refused: fields inside it, a bad form, or too wide."""
    if "{" in spec:
        return f"a format spec cannot hold fields: {spec!r}"
    m = _SPEC.fullmatch(spec)
    if m is None:
        return f"invalid format spec {spec!r}"
    for part in ("width", "precision"):
        value = m.group(part)
        if value and int(value) > MAX_SPEC_WIDTH:
            return f"format spec {spec!r}: {part} above {MAX_SPEC_WIDTH}"
    return None


def _sample_problem(template: str) -> str | None:
    """Render ``template`` for an SLA message and for a message without SLA fields (an
    operator message: those fields are empty text)."""
    sla = dict.fromkeys(FIELDS, "x") | {"cycle": 0}
    for fields in (sla, dict.fromkeys(FIELDS, "")):
        try:
            template.format_map(fields)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            return f"template cannot be rendered: {exc} (fields a message lacks are empty text)"
    return None
