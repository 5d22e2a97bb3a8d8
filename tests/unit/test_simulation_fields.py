"""The simulated helpdesk's tickets carry the fields a real connector gives them."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sladaemon.model import EventKind
from sladaemon.sources.simulator.simulation import HelpdeskSimulation, SimulationSettings


def test_each_ticket_is_created_with_an_assignee_email_and_its_queue_as_group() -> None:
    settings = SimulationSettings(seed=3, agents=4, tickets_per_hour=20)
    start = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)  # a Monday
    events = HelpdeskSimulation(settings, start).advance(start + timedelta(days=2))
    created = [e for e in events if e.kind is EventKind.CREATED]
    assert len(created) > 20
    assert all(e.fields["group"] == e.fields["queue"] for e in created)
    agents = {f"agent{n}@example.com" for n in range(1, settings.agents + 1)}
    load = Counter(e.fields["assignee"] for e in created)
    assert set(load) == agents  # round-robin: every agent gets tickets
    assert max(load.values()) - min(load.values()) <= 1
