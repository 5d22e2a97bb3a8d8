"""What a predicted breach and a queue alert say, including with bad numbers."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from sladaemon.calendar import to_us
from sladaemon.escalate.outbox import sla_key
from sladaemon.model import Metric, SlaEvent, SlaEventKind
from sladaemon.notify.message import percent, render, sla_payload
from sladaemon.predict.results import QueueForecast
from sladaemon.predict.wording import queue_summary

DEADLINE = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
AT = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def predicted(**details: object) -> SlaEvent:
    return SlaEvent(
        ticket_id="4711",
        policy="email-and-web",
        metric=Metric.FIRST_RESPONSE,
        kind=SlaEventKind.PREDICTED_BREACH,
        at=AT,
        deadline=DEADLINE,
        level="predicted",
        details={
            "timezone": "Europe/Berlin",
            "target_us": 2 * 3600 * 1_000_000,
            "elapsed_us": 3600 * 1_000_000,
            **details,
        },
    )


def test_a_predicted_breach_says_probability_deadline_and_why() -> None:
    met = to_us(datetime(2026, 3, 10, 10, 30, tzinfo=UTC))
    event = predicted(probability=0.8234, expected_met_us=met, reason="76% of similar cycles")
    payload = sla_payload(
        sla_key("desk", event), "desk", event, "https://helpdesk.example.com/tickets/4711"
    )
    message = render(payload)
    assert message.kind == "predicted_breach"
    assert message.title == (
        "SLA breach predicted: ticket 4711 first_response 82% likely to breach at "
        "Tue 2026-03-10 10:00 CET"
    )
    lines = message.body.splitlines()
    assert "deadline: 2026-03-10T09:00:00Z (Tue 2026-03-10 10:00 CET)" in lines
    assert "probability of breach: 82%" in lines
    assert "expected met: 2026-03-10T10:30:00Z (Tue 2026-03-10 11:30 CET)" in lines
    assert "why: 76% of similar cycles" in lines
    assert "id: desk/4711/first_response/0/predicted" in lines


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.2, 1.7, None, "0.5", True])
def test_a_probability_that_is_not_one_reads_unknown_never_nan(bad: object) -> None:
    event = predicted(probability=bad)
    message = render(sla_payload(sla_key("desk", event), "desk", event, None))
    text = (message.title + message.body).lower()
    assert "nan" not in text and "inf" not in text
    assert "probability of breach: unknown" in message.body
    assert "expected met: not within the history seen" in message.body


def test_percentages_are_never_shown_as_certain() -> None:
    assert [percent(p) for p in (0.0, 0.004, 0.5, 0.994, 0.999, 1.0)] == [
        "1%",
        "1%",
        "50%",
        "99%",
        "99%",
        "99%",
    ]


def test_a_receiver_template_can_use_the_prediction_fields() -> None:
    event = predicted(probability=0.5, reason="busy queue")
    payload = sla_payload(sla_key("desk", event), "desk", event, None)
    message = render(payload, "{ticket_id}: {probability} ({reason}), deadline {deadline}")
    assert message.body == "4711: 50% (busy queue), deadline 2026-03-10T09:00:00Z"


def test_a_queue_alert_reads_as_its_summary() -> None:
    summary = "support: backlog 8 and rising (arrivals 1.0/h, throughput 0.5/h)"
    payload = {"id": "queue/desk/support/2026-03-10/3", "kind": "queue", "summary": summary}
    payload["at"] = "2026-03-10T08:00:00Z"
    message = render(payload)
    assert message.title == f"Queue forecast: {summary}"
    assert message.body.splitlines()[0] == summary


def at_risk_queue(needed_rise: float) -> QueueForecast:
    return QueueForecast(
        source="desk",
        queue="support",
        metric=Metric.FIRST_RESPONSE,
        at_us=to_us(AT),
        backlog=12,
        arrivals_per_hour=3.0,
        throughput_per_hour=2.96,
        forecast=((to_us(DEADLINE), 14.0),),
        will_miss=2,
        needed_rise_per_hour=needed_rise,
    )


@pytest.mark.parametrize(
    ("needed_rise", "said"),
    [
        (0.001, "0.1/h"),
        (0.04, "0.1/h"),
        (0.3000000000000001, "0.3/h"),
        (0.31, "0.4/h"),
        (9.96, "10/h"),
        (12.2, "13/h"),
    ],
)
def test_a_queue_forecast_asks_for_a_rise_it_can_show_never_zero(
    needed_rise: float, said: str
) -> None:
    """The rise that would serve every waiting ticket in time is rounded up, never down to
    0.0/h: a smaller rise than the one shown would not be enough."""
    summary = queue_summary("support", [at_risk_queue(needed_rise)], timedelta(hours=4))
    assert summary.endswith(
        f"2 tickets will miss first response within the next 4h of "
        f"business time unless throughput rises by {said}"
    )
    assert "0.0/h" not in summary


def test_a_queue_forecast_without_a_needed_rise_asks_for_none() -> None:
    summary = queue_summary("support", [at_risk_queue(0.0)], timedelta(hours=4))
    assert summary.endswith("within the next 4h of business time")
