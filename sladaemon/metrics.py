"""Prometheus metrics of the daemon. Names are part of the interface (dashboards use them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class DaemonMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sla_events = Counter(
            "sladaemon_sla_events_total",
            "SLA events by kind (warning, breach, escalation, met, met_late)",
            ["source", "policy", "metric", "kind"],
            registry=r,
        )
        self.breaches = Counter(
            "sladaemon_breaches_total", "SLA breaches", ["source", "policy", "metric"], registry=r
        )
        self.sla_events_skipped = Counter(
            "sladaemon_sla_events_skipped_total",
            "SLA events not sent because they were older than daemon.catch_up",
            ["source"],
            registry=r,
        )
        self.escalations_sent = Counter(
            "sladaemon_escalations_sent_total",
            "Notifications a receiver accepted",
            ["receiver", "kind"],
            registry=r,
        )
        self.escalations_failed = Counter(
            "sladaemon_escalations_failed_total",
            "Notifications given up after their last attempt (or undeliverable)",
            ["receiver", "kind"],
            registry=r,
        )
        self.delivery_attempts_failed = Counter(
            "sladaemon_delivery_attempts_failed_total",
            "Failed delivery attempts (each is retried until max_attempts)",
            ["receiver"],
            registry=r,
        )
        self.outbox = Gauge(
            "sladaemon_outbox_entries", "Outbox entries by state", ["state"], registry=r
        )
        self.poll_duration = Histogram(
            "sladaemon_poll_duration_seconds", "Duration of source polls", ["source"], registry=r
        )
        self.poll_errors = Counter(
            "sladaemon_poll_errors_total", "Failed source polls", ["source"], registry=r
        )
        self.last_poll = Gauge(
            "sladaemon_last_successful_poll_timestamp_seconds",
            "Unix time of the last successful poll",
            ["source"],
            registry=r,
        )
        self.source_up = Gauge(
            "sladaemon_source_up",
            "1 when the source is fresh, 0 when stale",
            ["source"],
            registry=r,
        )
        self.rows_skipped = Counter(
            "sladaemon_input_rows_skipped_total",
            "Input rows or items skipped as unusable",
            ["source"],
            registry=r,
        )
        self.lateness = Histogram(
            "sladaemon_alert_lateness_seconds",
            "Real seconds between an SLA instant and the moment the daemon acted on it",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.delivery_latency = Histogram(
            "sladaemon_delivery_latency_seconds",
            "Real seconds between an SLA instant and the receiver accepting the notification",
            ["receiver"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.reloads = Counter(
            "sladaemon_config_reloads_total", "Config reloads", ["result"], registry=r
        )
        self.deadline_mismatches = Counter(
            "sladaemon_deadline_mismatch_total",
            "The helpdesk's own deadline differs from sladaemon's by more than the tolerance",
            ["source", "metric"],
            registry=r,
        )
        self.invalid_targets = Gauge(
            "sladaemon_receiver_invalid_urls",
            "Receiver URLs apprise cannot use",
            ["receiver"],
            registry=r,
        )

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)


class TicketCollector(Collector):
    """Open tickets and SLA clock states, computed when scraped (not on every change)."""

    def __init__(
        self,
        open_tickets: Callable[[], Iterable[tuple[tuple[str, str, str], int]]],
        clock_states: Callable[[], Iterable[tuple[tuple[str, str, str], int]]],
    ) -> None:
        self._open_tickets = open_tickets
        self._clock_states = clock_states

    def collect(self) -> Iterable[Metric]:
        tickets = GaugeMetricFamily(
            "sladaemon_open_tickets",
            "Open tickets by source, queue and policy",
            labels=["source", "queue", "policy"],
        )
        for labels, n in self._open_tickets():
            tickets.add_metric(list(labels), n)
        yield tickets
        states = GaugeMetricFamily(
            "sladaemon_sla_clocks",
            "Current SLA clocks by policy, metric and state",
            labels=["policy", "metric", "state"],
        )
        for labels, n in self._clock_states():
            states.add_metric(list(labels), n)
        yield states
