"""Prometheus metrics of the daemon. Names are part of the interface (dashboards use them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sladaemon.report.kpi import (
    COMPLIANCE_TARGET,
    ESCALATION_TARGET,
    REOPEN_TARGET,
    KpiReport,
    TimeStats,
)

LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TRAINING_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


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
        self.overdue_at_start = Counter(
            "sladaemon_overdue_at_start_tickets_total",
            "Tickets already past a ladder level when monitoring of their source began "
            "(told in one summary per receiver)",
            ["source"],
            registry=r,
        )
        self.chain_pages = Counter(
            "sladaemon_chain_pages_total",
            "Pages of escalation chains sent (posted to the outbox), by chain",
            ["chain"],
            registry=r,
        )
        self.chain_acks = Counter(
            "sladaemon_chain_acks_total",
            "Acknowledgements, unacks, escalations and lapsed acks of chains, by action and way",
            ["action", "via"],
            registry=r,
        )
        self.targets_unresolved = Counter(
            "sladaemon_targets_unresolved_total",
            "Targets that stood for nobody when a message was sent (nobody on call, ...)",
            ["target"],
            registry=r,
        )
        self.ack_refused = Counter(
            "sladaemon_ack_refused_total",
            "Acknowledgements (links, API, Slack clicks) refused: forged, expired, replayed, "
            "rate_limited, too_large, malformed",
            ["reason"],
            registry=r,
        )
        self.board_requests = Counter(
            "sladaemon_board_requests_total",
            "Requests of the web board by outcome: signed_in, sign_in_failed, rate_limited, "
            "csrf_refused, forbidden, acted",
            ["outcome"],
            registry=r,
        )
        self.grouped = Counter(
            "sladaemon_notifications_grouped_total",
            "Notifications taken into a group (routing tree), sent as part of its digests",
            ["receiver"],
            registry=r,
        )
        self.muted = Counter(
            "sladaemon_group_messages_muted_total",
            "Group messages held because their route was muted (a time interval)",
            ["receiver"],
            registry=r,
        )
        self.silence_refused = Counter(
            "sladaemon_silence_requests_refused_total",
            "Requests to the silences API refused: unauthorized, rate_limited, malformed, "
            "unknown, expired",
            ["reason"],
            registry=r,
        )
        self.notifications_silenced = Counter(
            "sladaemon_notifications_silenced_total",
            "Notifications not sent because a silence matched them",
            ["receiver"],
            registry=r,
        )
        self.notifications_inhibited = Counter(
            "sladaemon_notifications_inhibited_total",
            "Notifications of groups held because a firing alert inhibits them",
            ["receiver"],
            registry=r,
        )
        self.rate_limited = Counter(
            "sladaemon_notifications_rate_limited_total",
            "Ladder-level messages beyond their receiver's rate_limit, sent in one digest",
            ["receiver"],
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
        self.http_connections_dropped = Counter(
            "sladaemon_http_connections_dropped_total",
            "Oldest connections to the HTTP port closed to make room (too many were open)",
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
        self.ical_fetch_failures = Counter(
            "sladaemon_ical_fetch_failures_total",
            "Failed fetches of a schedule's iCal feed (the last good copy is kept)",
            ["schedule"],
            registry=r,
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
            "sladaemon_deadline_mismatches_total",
            "The helpdesk's own deadline differs from sladaemon's by more than the tolerance",
            ["source", "metric"],
            registry=r,
        )
        self.reports_generated = Counter(
            "sladaemon_reports_generated_total",
            "Scheduled KPI reports generated and queued for their receivers",
            ["report"],
            registry=r,
        )
        self.reports_skipped = Counter(
            "sladaemon_reports_skipped_total",
            "Scheduled KPI reports not sent: due longer than daemon.catch_up ago (downtime)",
            ["report"],
            registry=r,
        )
        self.predicted_breaches = Counter(
            "sladaemon_predicted_breaches_total",
            "Running SLA metrics predicted to breach (each ticket × metric × cycle once)",
            ["source", "policy", "metric"],
            registry=r,
        )
        self.prediction_trainings = Counter(
            "sladaemon_prediction_trainings_total",
            "Trainings of the boosted breach model by outcome (ok, failed: the model in force "
            "stays)",
            ["outcome"],
            registry=r,
        )
        for outcome in ("ok", "failed"):
            self.prediction_trainings.labels(outcome)
        self.prediction_training_seconds = Histogram(
            "sladaemon_prediction_training_seconds",
            "Real seconds a successful training of the boosted breach model took (worker process)",
            buckets=TRAINING_BUCKETS,
            registry=r,
        )
        self.queue_alerts = Counter(
            "sladaemon_queue_alerts_total",
            "Queue forecast alerts raised (one per queue when its forecast changes materially)",
            ["source", "queue"],
            registry=r,
        )
        self.loop_crashes = Counter(
            "sladaemon_loop_crashes_total",
            "Daemon loops that ended with an error and were restarted",
            ["loop"],
            registry=r,
        )
        self.loop_up = Gauge(
            "sladaemon_loop_up",
            "1 while the loop runs, 0 from its crash until it has run a while again",
            ["loop"],
            registry=r,
        )
        self.state_write_errors = Counter(
            "sladaemon_state_write_errors_total",
            "Writes to the state file that failed and are retried (locked file, full disk)",
            ["what"],
            registry=r,
        )
        self.quarantined = Counter(
            "sladaemon_quarantined_total",
            "Input set aside because it cannot be processed (see explain --source)",
            ["source"],
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


class SilenceCollector(Collector):
    """``sladaemon_silences{state}``: silences active, pending, and expired (kept 5 days),
    counted at each scrape (a silence changes state with time alone)."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self.counts = counts

    def describe(self) -> Iterable[Metric]:
        return [self._family({})]

    def collect(self) -> Iterable[Metric]:
        return [self._family(self.counts())]

    @staticmethod
    def _family(counts: Mapping[str, int]) -> GaugeMetricFamily:
        family = GaugeMetricFamily("sladaemon_silences", "Silences by state", labels=["state"])
        for state, count in counts.items():
            family.add_metric([state], count)
        return family


class KpiCollector(Collector):
    """The support KPIs over the rolling window ``daemon.kpi_window``, from the KPI ledger.

    ``kpis`` returns the latest figures (the daemon caches them) or None before the first
    evaluation. Figures without data (no cycle decided, nothing solved) are left out rather
    than reported as NaN. Targets are gauges of their own so dashboards can draw them.
    """

    def __init__(self, kpis: Callable[[], KpiReport | None]) -> None:
        self._kpis = kpis

    def describe(self) -> Iterable[Metric]:
        return list(self._families(None))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self._kpis()))

    def _families(self, r: KpiReport | None) -> Iterable[Metric]:
        families = _KpiFamilies.create()
        if r is not None:
            families.fill(r)
        return families.all()


def _kpi_gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"sladaemon_kpi_{name}", doc, labels=list(labels))


@dataclass
class _KpiFamilies:
    """The KPI metric families, in the order they are exposed; empty until filled."""

    window: GaugeMetricFamily
    compliance: GaugeMetricFamily
    cycles: GaugeMetricFamily
    compliance_target: GaugeMetricFamily
    first_response: GaugeMetricFamily
    resolution: GaugeMetricFamily
    new_tickets: GaugeMetricFamily
    daily_volume: GaugeMetricFamily
    backlog: GaugeMetricFamily
    backlog_limit: GaugeMetricFamily
    today: GaugeMetricFamily
    baseline: GaugeMetricFamily
    spike: GaugeMetricFamily
    solved: GaugeMetricFamily
    reopen: GaugeMetricFamily
    reopen_target: GaugeMetricFamily
    escalation: GaugeMetricFamily
    escalation_target: GaugeMetricFamily
    first_contact: GaugeMetricFamily

    @classmethod
    def create(cls) -> _KpiFamilies:
        gauge = _kpi_gauge
        return cls(
            window=gauge("window_seconds", "Length of the rolling window of the KPI metrics"),
            compliance=gauge(
                "sla_compliance_ratio",
                "SLA cycles met / decided in the window (met + breached)",
                ["policy", "metric", "channel"],
            ),
            cycles=gauge(
                "sla_cycles",
                "SLA cycles decided in the window by outcome (met, breached)",
                ["policy", "metric", "channel", "outcome"],
            ),
            compliance_target=gauge("sla_compliance_target_ratio", "SLA compliance target"),
            first_response=gauge(
                "first_response_seconds",
                "First response time over first responses given in the window",
                ["clock", "statistic"],
            ),
            resolution=gauge(
                "resolution_seconds",
                "Resolution time over tickets resolved in the window",
                ["clock", "statistic"],
            ),
            new_tickets=gauge("new_tickets", "Tickets created in the window", ["channel"]),
            daily_volume=gauge("daily_volume_tickets", "Tickets created a day, window average"),
            backlog=gauge("backlog_tickets", "Open tickets (not solved or closed)"),
            backlog_limit=gauge(
                "backlog_limit_tickets", "10 % of the daily volume: a healthy backlog stays below"
            ),
            today=gauge(
                "new_tickets_today",
                "Tickets created since local midnight (KPI time zone)",
                ["channel"],
            ),
            baseline=gauge(
                "new_tickets_today_baseline",
                "Mean of the same weekday in the four weeks before, up to the same time of day",
                ["channel"],
            ),
            spike=gauge(
                "volume_spike",
                "1 when today's tickets exceed the baseline by more than 20 %",
                ["channel"],
            ),
            solved=gauge("solved_tickets", "Tickets first solved in the window"),
            reopen=gauge("reopen_ratio", "Share of the tickets solved in the window that reopened"),
            reopen_target=gauge("reopen_target_ratio", "Reopen rate target (stay below)"),
            escalation=gauge(
                "escalation_ratio",
                "Share of the tickets created in the window that changed queue or reached an "
                "escalation level",
            ),
            escalation_target=gauge(
                "escalation_target_ratio", "Escalation rate target (stay below)"
            ),
            first_contact=gauge(
                "first_contact_resolution_ratio",
                "Share of the tickets solved in the window with one agent reply and no reopen",
            ),
        )

    def all(self) -> tuple[GaugeMetricFamily, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def fill(self, r: KpiReport) -> None:
        self.window.add_metric([], (r.end - r.start).total_seconds())
        self.compliance_target.add_metric([], COMPLIANCE_TARGET / 100)
        self.reopen_target.add_metric([], REOPEN_TARGET / 100)
        self.escalation_target.add_metric([], ESCALATION_TARGET / 100)
        self._fill_compliance(r)
        _add_time_stats(self.first_response, r.first_response_business, r.first_response_calendar)
        _add_time_stats(self.resolution, r.resolution_business, r.resolution_calendar)
        self._fill_volume(r)
        self.solved.add_metric([], r.reopen.denominator)
        for family, rate in (
            (self.reopen, r.reopen),
            (self.escalation, r.escalation),
            (self.first_contact, r.first_contact_resolution),
        ):
            if rate.percent is not None:
                family.add_metric([], rate.percent / 100)

    def _fill_compliance(self, r: KpiReport) -> None:
        for c in r.compliance:
            labels = [c.policy, c.metric, c.channel]
            self.cycles.add_metric([*labels, "met"], c.met)
            self.cycles.add_metric([*labels, "breached"], c.breached)
            if c.percent is not None:
                self.compliance.add_metric(labels, c.percent / 100)

    def _fill_volume(self, r: KpiReport) -> None:
        for channel, n in sorted(r.created_per_channel.items()):
            self.new_tickets.add_metric([channel], n)
        self.daily_volume.add_metric([], r.daily_volume)
        self.backlog.add_metric([], r.backlog)
        self.backlog_limit.add_metric([], r.backlog_limit)
        last_day = max((v.day for v in r.volume), default=None)
        for v in r.volume:
            if v.day == last_day:
                self.today.add_metric([v.channel], v.tickets)
                self.spike.add_metric([v.channel], 1 if v.spike else 0)
                if v.baseline is not None:
                    self.baseline.add_metric([v.channel], v.baseline)


def _add_time_stats(family: GaugeMetricFamily, business: TimeStats, calendar: TimeStats) -> None:
    """Mean, median and 90th percentile on each clock, those that are known."""
    for clock, stats in (("business", business), ("calendar", calendar)):
        for statistic, value in (
            ("mean", stats.mean_s),
            ("median", stats.median_s),
            ("p90", stats.p90_s),
        ):
            if value is not None:
                family.add_metric([clock, statistic], value)


QueueFigures = tuple[str, str, str, float, float, float, float, int, bool]


class QueueCollector(Collector):
    """Per queue and metric: backlog, forecast arrivals and throughput over the horizon, the
    expected backlog at its end and the waiting tickets forecast to miss their target.

    ``figures`` returns tuples (source, queue, metric, backlog, arrivals per hour, throughput
    per hour, backlog at the horizon, will miss, known); queues whose forecast is unknown
    (too little history) report their backlog only.
    """

    def __init__(self, figures: Callable[[], Iterable[QueueFigures]]) -> None:
        self._figures = figures

    def describe(self) -> Iterable[Metric]:
        return list(self._families([]))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self._figures()))

    @staticmethod
    def _families(figures: Iterable[QueueFigures]) -> Iterable[Metric]:
        labels = ["source", "queue", "metric"]

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"sladaemon_queue_{name}", doc, labels=labels)

        backlog = gauge("backlog", "Open SLA cycles of the queue and metric")
        arrivals = gauge("arrivals_per_hour", "Forecast arrivals per hour over the horizon")
        throughput = gauge("throughput_per_hour", "Forecast throughput per hour over the horizon")
        forecast = gauge("backlog_forecast", "Expected backlog at the end of the horizon")
        misses = gauge(
            "forecast_misses", "Waiting tickets forecast to miss their target within the horizon"
        )
        for source, queue, metric, n, arriving, served, ahead, miss, known in figures:
            key = [source, queue, metric]
            backlog.add_metric(key, n)
            if known:
                arrivals.add_metric(key, arriving)
                throughput.add_metric(key, served)
                forecast.add_metric(key, ahead)
                misses.add_metric(key, miss)
        return [backlog, arrivals, throughput, forecast, misses]


@dataclass(frozen=True)
class PredictionFigures:
    """What the breach predictor shows on /metrics: per policy × metric the threshold in force
    and its measured precision (None: not measured yet), and the boosted model in force (None:
    the life tables judge)."""

    thresholds: tuple[tuple[str, str, float, float | None], ...] = ()
    model_trained_at_s: float | None = None  # Unix time of its training, on the daemon's clock
    model_snapshots: int | None = None  # labelled snapshots it learnt from


class PredictionCollector(Collector):
    """The breach predictor's operating point and model, as ``figures`` last noted them."""

    def __init__(self, figures: Callable[[], PredictionFigures]) -> None:
        self._figures = figures

    def describe(self) -> Iterable[Metric]:
        return list(self._families(PredictionFigures()))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self._figures()))

    @staticmethod
    def _families(figures: PredictionFigures) -> Iterable[Metric]:
        labels = ["policy", "metric"]
        threshold = GaugeMetricFamily(
            "sladaemon_prediction_threshold",
            "Breach probability that warns, in force per policy and metric (predict.precision)",
            labels=labels,
        )
        precision = GaugeMetricFamily(
            "sladaemon_prediction_threshold_precision",
            "Share of the warnings of that threshold that came true on recent finished metrics "
            "(once measured)",
            labels=labels,
        )
        trained = GaugeMetricFamily(
            "sladaemon_prediction_model_trained_timestamp_seconds",
            "Unix time the boosted model in force was trained (absent: life tables judge)",
        )
        snapshots = GaugeMetricFamily(
            "sladaemon_prediction_model_snapshots",
            "Labelled snapshots the boosted model in force learnt from",
        )
        for policy, metric, value, measured in figures.thresholds:
            threshold.add_metric([policy, metric], value)
            if measured is not None:
                precision.add_metric([policy, metric], measured)
        if figures.model_trained_at_s is not None:
            trained.add_metric([], figures.model_trained_at_s)
        if figures.model_snapshots is not None:
            snapshots.add_metric([], figures.model_snapshots)
        return [threshold, precision, trained, snapshots]
