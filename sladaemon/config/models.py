"""The config file, as pydantic models. Unknown keys are errors (``extra="forbid"``).

Every top-level section is optional. Secrets (receiver URLs, tokens) are ``SecretStr`` so they
never print; each may also be given as ``<name>_file`` (a path whose content is the value, e.g.
a systemd credential; a regular file of at most 1 MiB) or through ``${ENV_VAR}`` references.
Every duration has a range (``within``; README, "Limits"): a value outside it is a config error.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sladaemon.calendar.business import HolidaysCancel
from sladaemon.calendar.hours import (
    TimeRange,
    WeeklyHours,
    check_no_overlap,
    parse_date,
    parse_day_key,
)
from sladaemon.config.base import STRICT
from sladaemon.config.base import _custom as _custom
from sladaemon.config.base import _secret_from_file as _secret_from_file
from sladaemon.config.durations import (
    ABOVE_ZERO,
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    TEN_YEARS,
    WEEK,
    YEAR,
    Duration,
    Period,
    within,
)
from sladaemon.config.slack import SlackConfig
from sladaemon.durations import format_duration, parse_duration
from sladaemon.model import EARLIEST, LATEST, Metric, StatusCategory
from sladaemon.notify.message import template_problem
from sladaemon.predict.settings import (
    DEFAULT_EARLY,
    DEFAULT_EVERY,
    DEFAULT_HALF_LIFE,
    DEFAULT_HORIZON,
    DEFAULT_LEAD,
    DEFAULT_MIN_HISTORY,
    DEFAULT_PRECISION,
    DEFAULT_THRESHOLD,
    PredictSettings,
)
from sladaemon.report.schedule import Every


class StrictModel(BaseModel):
    model_config = STRICT


# ---------------------------------------------------------------------------- calendars


def _time_range(value: object) -> TimeRange:
    try:
        return TimeRange.parse(value)
    except ValueError as exc:
        raise _custom("time_range", str(exc)) from None


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _day_key(value: object) -> str:
    try:
        parse_day_key(str(value))
    except ValueError as exc:
        raise _custom("day_key", str(exc)) from None
    return str(value)


def _date(value: object) -> date:
    try:
        return parse_date(value)
    except ValueError as exc:
        raise _custom("date", str(exc)) from None


TimeRangeText = Annotated[TimeRange, BeforeValidator(_time_range)]
Ranges = Annotated[list[TimeRangeText], BeforeValidator(_one_or_many)]
DayKey = Annotated[str, BeforeValidator(_day_key)]
Date = Annotated[date, BeforeValidator(_date)]


class HolidaysConfig(StrictModel):
    country: str | None = Field(None, description="ISO country code for the holidays package")
    subdivision: str | None = None
    dates: list[Date] = []
    cancel: HolidaysCancel = Field(
        "day",
        description="day: a holiday closes its whole local day; shift: it cancels the shifts "
        "that start on it, overnight parts included",
    )

    @model_validator(mode="after")
    def _known_country(self) -> HolidaysConfig:
        if self.subdivision and not self.country:
            raise _custom("holidays", "subdivision needs a country")
        if self.country:
            import holidays

            supported = holidays.list_supported_countries()
            if self.country.upper() not in supported:
                raise _custom("holidays", f"unknown holiday country {self.country!r}")
            subdivisions = supported[self.country.upper()]
            if self.subdivision and self.subdivision.upper() not in {
                s.upper() for s in subdivisions
            }:
                shown = ", ".join(subdivisions[:12]) + (" ..." if len(subdivisions) > 12 else "")
                raise _custom(
                    "holidays",
                    f"unknown subdivision {self.subdivision!r} of {self.country} ({shown})",
                )
        return self


def known_zone(name: str) -> str:
    """``name`` if it is an IANA time zone; else a config error."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise _custom("timezone", f"unknown time zone {name!r} (use an IANA name)") from None
    return name


class CalendarConfig(StrictModel):
    timezone: str
    hours: dict[DayKey, Ranges]
    holidays: HolidaysConfig | None = None
    breaks: dict[Date, Ranges] = {}

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("hours")
    @classmethod
    def _valid_week(cls, hours: dict[str, list[TimeRange]]) -> dict[str, list[TimeRange]]:
        weekly_hours(hours)
        return hours


def weekly_hours(hours: dict[str, list[TimeRange]]) -> WeeklyHours:
    per_day: list[list[TimeRange]] = [[] for _ in range(7)]
    owner: dict[int, str] = {}
    for key, ranges in hours.items():
        for day in parse_day_key(key):
            if day in owner:
                raise _custom("hours", f"{key}: day given twice (also in {owner[day]!r})")
            owner[day] = key
            per_day[day].extend(ranges)
    weekly = WeeklyHours(tuple(tuple(sorted(d)) for d in per_day))
    if weekly.empty:
        raise _custom("hours", "the calendar has no business hours")
    try:
        check_no_overlap(weekly)
    except ValueError as exc:
        raise _custom("hours", str(exc)) from None
    return weekly


# ---------------------------------------------------------------------------- policies

PAUSABLE_NAMES = ("new", "open", "pending", "on_hold")
PauseCategory = Literal["new", "open", "pending", "on_hold"]


def _match_values(value: object) -> list[str]:
    """A value, or a list of values, as text. Null is refused rather than read as 'None': a
    policy cannot match a field's absence."""
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v is None:
            raise _custom("match", "null is not a value to match: give a value, a list or a glob")
        if isinstance(v, dict | list):
            shape = "a mapping" if isinstance(v, dict) else "a nested list"
            raise _custom("match", f"give a value, a list of values or a glob, not {shape}")
    if not values:
        raise _custom("match", "an empty list matches no ticket: give at least one value")
    return [str(v) for v in values]


MatchValue = Annotated[list[str], BeforeValidator(_match_values)]


def _level(value: object) -> str:
    try:
        return parse_level(value)[0]
    except ValueError as exc:
        raise _custom("ladder_level", str(exc)) from None


LevelText = Annotated[str, BeforeValidator(_level)]

MAX_TARGET = YEAR  # of business time: an SLA target or a ladder offset after the breach
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_BREACH = re.compile(r"^\s*breach\s*(?:\+\s*(\S+))?\s*$", re.IGNORECASE)


def parse_level(text: object) -> tuple[str, float, timedelta, bool]:
    """'75%' | 'breach' | 'breach+30m' | 'predicted' -> (label, fraction, after, predicted)."""
    hint = "use e.g. '75%', 'breach', 'breach+30m' or 'predicted'"
    if isinstance(text, int | float) and not isinstance(text, bool):
        raise ValueError(f"invalid ladder level {text!r} ({hint}; percentages need a '%')")
    if not isinstance(text, str) or len(text) > 40:
        raise ValueError(f"invalid ladder level {str(text)[:40]!r} ({hint})")
    if text.strip().lower() == "predicted":
        return "predicted", 0.0, timedelta(0), True
    m = _PERCENT.match(text)
    if m:
        pct = float(m.group(1))
        if pct <= 0:
            raise ValueError(f"invalid ladder level {text!r}: the percentage must be above 0")
        return ("breach" if pct == 100 else f"{pct:g}%"), pct / 100, timedelta(0), False
    m = _BREACH.match(text)
    if m:
        if m.group(1) is None:
            return "breach", 1.0, timedelta(0), False
        try:
            after = parse_duration(m.group(1))
        except OverflowError:
            raise ValueError(f"invalid ladder level {text!r}: the offset is far too long") from None
        if after <= timedelta(0):
            raise ValueError(f"invalid ladder level {text!r}: the offset must be positive")
        if after > MAX_TARGET:
            raise ValueError(
                f"invalid ladder level {text!r}: the offset must be at most "
                f"{format_duration(MAX_TARGET)}"
            )
        return f"breach+{format_duration(after)}", 1.0, after, False
    raise ValueError(f"invalid ladder level {text!r} ({hint})")


class LadderLevelConfig(StrictModel):
    at: LevelText
    notify: list[str] = Field([], description="targets told once when the level is reached")
    chain: str | None = Field(None, description="an escalation chain (chains:) the level starts")
    metrics: list[Metric] | None = None


def _target_kind(value: Any) -> str:
    return "per_priority" if isinstance(value, dict) else "duration"


Target = Annotated[Duration, within(ABOVE_ZERO, MAX_TARGET)]
# One duration, or priority -> duration. The discriminator keeps errors about the form used.
TargetConfig = Annotated[
    Annotated[Target, Tag("duration")]
    | Annotated[dict[Annotated[str, BeforeValidator(str)], Target], Tag("per_priority")],
    Discriminator(_target_kind),
]


class TargetsConfig(StrictModel):
    """Per metric: one duration, or a map of priority -> duration with an optional default."""

    first_response: TargetConfig | None = None
    next_response: TargetConfig | None = None
    periodic_update: TargetConfig | None = None
    resolution: TargetConfig | None = None

    def given(self) -> dict[Metric, timedelta | dict[str, timedelta]]:
        return {m: getattr(self, m.value) for m in Metric if getattr(self, m.value) is not None}


class MetricOverride(StrictModel):
    calendar: str | None = None
    pause_on: list[PauseCategory] | None = None


class PolicyConfig(StrictModel):
    name: str
    match: dict[str, MatchValue] = {}
    calendar: str
    pause_on: list[PauseCategory] = ["pending", "on_hold"]
    targets: TargetsConfig
    overrides: dict[Metric, MetricOverride] = {}
    escalation: list[LadderLevelConfig] = []

    @model_validator(mode="after")
    def _has_targets(self) -> PolicyConfig:
        if not self.targets.given():
            raise _custom(
                "targets", "no targets: give at least one of " + ", ".join(m.value for m in Metric)
            )
        return self


# ---------------------------------------------------------------------------- receivers


class RateLimitConfig(StrictModel):
    """At most ``count`` ladder-level messages per ``per``; the rest go out as one digest."""

    count: int = Field(ge=1, le=10_000)
    per: Annotated[Duration, within(MINUTE, DAY)]


class ReceiverConfig(StrictModel):
    """Where alerts go: apprise URLs (mailto://, slack://, json://, ...) or ``console://``."""

    urls: list[SecretStr] = Field(min_length=1)
    template: str | None = Field(None, description="message body; fields like {ticket_id}")
    timeout: Annotated[Duration, within(ABOVE_ZERO, HOUR)] = timedelta(seconds=20)
    send_resolved: bool = Field(False, description="say so when a breached metric is met")
    rate_limit: RateLimitConfig | None = Field(
        None, description="{count: 20, per: 10m}: beyond it, one digest when there is room"
    )

    @model_validator(mode="before")
    @classmethod
    def _urls_file(cls, data: Any) -> Any:
        return _secret_from_file(data, "urls", as_lines=True)

    @field_validator("template")
    @classmethod
    def _renderable(cls, value: str | None) -> str | None:
        problem = template_problem(value) if value else None
        if problem:
            raise _custom("template", problem)
        return value

    @field_validator("urls")
    @classmethod
    def _usable_urls(cls, urls: list[SecretStr]) -> list[SecretStr]:
        return usable_urls(urls)


def usable_urls(urls: list[SecretStr]) -> list[SecretStr]:
    """``urls`` if apprise (or sladaemon itself) can send to every one; else the reason."""
    if not urls:
        return urls
    # apprise is slow to import: only when receivers are configured
    from sladaemon.notify.apprise_notifier import url_problem

    for secret in urls:
        url = secret.get_secret_value().strip()
        problem = url_problem(url) if url else "empty URL"
        if problem:
            raise _custom("url", problem)
    return urls


# ---------------------------------------------------------------------------- sources


PollInterval = Annotated[Duration, within(SECOND, DAY)]
MAX_SPEED = 100_000.0  # a replay or simulation this many times faster than real time


class SourceCommon(StrictModel):
    poll_interval: PollInterval = timedelta(seconds=60)
    stale_after: Annotated[Duration, within(SECOND, WEEK)] = timedelta(minutes=10)
    statuses: dict[str, StatusCategory] = {}
    channels: dict[str, str] = {}
    ticket_url: str | None = Field(None, description="link to a ticket, with {ticket_id}")


class CsvSourceConfig(SourceCommon):
    """The normalized event CSV: followed live as lines are appended, or replayed (``speed``:
    the file's history is played back that many times faster than real time)."""

    type: Literal["csv"]
    path: Path
    follow: bool = True
    speed: float | None = Field(None, gt=0, le=MAX_SPEED)
    poll_interval: PollInterval = timedelta(seconds=1)


class SimulatorSourceConfig(SourceCommon):
    """The built-in synthetic helpdesk, in simulated time ``speed`` times faster than real."""

    type: Literal["simulator"]
    seed: int = 7
    speed: float = Field(60.0, gt=0, le=MAX_SPEED)
    tickets_per_hour: float = Field(10.0, gt=0, le=10_000)
    agents: int = Field(6, gt=0, le=10_000)
    timezone: str = "Europe/Berlin"
    poll_interval: PollInterval = timedelta(seconds=1)
    start: datetime | None = Field(None, description="simulated start instant (default: now)")
    warmup: Annotated[Duration, within(timedelta(0), 90 * DAY)] = Field(
        timedelta(0), description="history simulated before the start, e.g. a weekend's backlog"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise _custom("timestamp", "start needs a UTC offset, e.g. 2026-01-05T07:00:00Z")
        if value is not None and not EARLIEST + YEAR <= value < LATEST - YEAR:
            raise _custom("timestamp", "start must lie between 1971 and 2198")
        return value


class HttpSourceCommon(SourceCommon):
    """What every helpdesk API connector shares."""

    url: str = Field(description="base URL, e.g. https://acme.zendesk.com")
    token: SecretStr | None = None
    poll_interval: PollInterval = timedelta(seconds=60)
    page_size: int = Field(100, ge=1, le=1000)
    overlap: Annotated[Duration, within(timedelta(0), DAY)] = Field(
        timedelta(minutes=2), description="re-read window for index lag"
    )
    reconcile_every: Annotated[Duration, within(MINUTE, WEEK)] = Field(
        timedelta(minutes=30), description="full pass over open tickets (closures, deletions)"
    )
    tolerance: Annotated[Duration, within(timedelta(0), DAY)] = Field(
        timedelta(seconds=60), description="native deadline difference worth reporting"
    )
    timeout: Annotated[Duration, within(ABOVE_ZERO, HOUR)] = timedelta(seconds=30)
    queues: list[str] = Field([], description="groups/queues to watch; empty: all")

    @model_validator(mode="before")
    @classmethod
    def _token_file(cls, data: Any) -> Any:
        return _secret_from_file(data, "token")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise _custom("url", f"invalid URL {value!r} (use e.g. https://helpdesk.example.com)")
        return value.rstrip("/")


class ZendeskSourceConfig(HttpSourceCommon):
    type: Literal["zendesk"]
    email: str | None = Field(None, description="agent email, for API-token authentication")


class ZammadSourceConfig(HttpSourceCommon):
    type: Literal["zammad"]


class FreshdeskSourceConfig(HttpSourceCommon):
    type: Literal["freshdesk"]


class RequestTrackerSourceConfig(HttpSourceCommon):
    type: Literal["rt"]
    user: str | None = Field(None, description="with password: basic auth instead of a token")
    password: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _password_file(cls, data: Any) -> Any:
        return _secret_from_file(data, "password")


class JiraSourceConfig(HttpSourceCommon):
    type: Literal["jira"]
    email: str | None = Field(None, description="Atlassian account email for the API token")
    jql: str | None = Field(None, description="extra JQL filter, e.g. project = HELP")


SourceConfig = Annotated[
    CsvSourceConfig
    | SimulatorSourceConfig
    | ZendeskSourceConfig
    | ZammadSourceConfig
    | FreshdeskSourceConfig
    | RequestTrackerSourceConfig
    | JiraSourceConfig,
    Field(discriminator="type"),
]


# ---------------------------------------------------------------------------- reports


def _every(value: object) -> str:
    try:
        Every.parse(value)
    except ValueError as exc:
        raise _custom("schedule", str(exc)) from None
    return str(value)


EveryText = Annotated[str, BeforeValidator(_every)]


class ReportConfig(StrictModel):
    """A KPI report sent on a schedule (see report/schedule.py for ``every``)."""

    name: str | None = Field(None, description="identity of the report (default: every)")
    every: EveryText = Field(description="e.g. 'mon 09:00', 'daily 08:00', 'mon-fri 07:30'")
    calendar: str | None = Field(None, description="its time zone (default: the first one's)")
    period: Annotated[Period, within(HOUR, TEN_YEARS, days=True)] = timedelta(days=7)
    receiver: Annotated[list[str], BeforeValidator(_one_or_many)] = Field(min_length=1)
    format: Literal["auto", "text", "html"] = Field(
        "auto", description="auto: the HTML page to email URLs, the text table elsewhere"
    )

    @property
    def key(self) -> str:
        return self.name or self.every


# ---------------------------------------------------------------------------- daemon


class HttpConfig(StrictModel):
    enabled: bool = True
    listen: str = "127.0.0.1:9464"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _custom("listen", f"invalid listen address {value!r} (use host:port)")
        return value


def _mail_url(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return value
    url = value.get_secret_value().strip()
    if not url.lower().startswith(("mailto://", "mailtos://")):
        raise _custom("url", "email_url must be a mailto:// or mailtos:// URL")
    from sladaemon.notify.apprise_notifier import url_problem  # apprise is slow to import

    problem = url_problem(url)
    if problem:
        raise _custom("url", problem)
    return value


class DeliveryConfig(StrictModel):
    """Retries of a failed delivery: capped exponential backoff with jitter."""

    first_retry: Annotated[Duration, within(SECOND, HOUR)] = timedelta(seconds=5)
    max_retry: Annotated[Duration, within(SECOND, DAY)] = timedelta(minutes=10)
    max_attempts: int = Field(20, ge=1, le=1000)

    @model_validator(mode="after")
    def _growing(self) -> DeliveryConfig:
        if self.max_retry < self.first_retry:
            raise _custom(
                "duration",
                f"max_retry ({format_duration(self.max_retry)}) must not be below first_retry "
                f"({format_duration(self.first_retry)})",
            )
        return self


class DaemonConfig(StrictModel):
    state: Path = Path("/var/lib/sladaemon/state.sqlite")
    operator: str | None = Field(None, description="receiver for alerts about sladaemon itself")
    email_url: SecretStr | None = Field(
        None,
        description="a mailto:// or mailtos:// URL through which people with an `email` are "
        "mailed (their address is added as to=)",
    )

    @field_validator("email_url")
    @classmethod
    def _mail(cls, value: SecretStr | None) -> SecretStr | None:
        return _mail_url(value)

    http: HttpConfig = HttpConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    delivery: DeliveryConfig = DeliveryConfig()
    retention: Annotated[Period, within(HOUR, TEN_YEARS, days=True)] = Field(
        timedelta(days=14),
        description="solved tickets without news for this long leave memory and state",
    )
    catch_up: Annotated[Duration, within(SECOND, YEAR)] = Field(
        timedelta(hours=1),
        description="SLA events found this long overdue (e.g. after downtime) are still sent",
    )
    kpi_window: Annotated[Period, within(HOUR, TEN_YEARS, days=True)] = Field(
        timedelta(days=7), description="the rolling window of the KPI metrics on /metrics"
    )
    slack: SlackConfig | None = Field(None, description="the Slack app messages are posted as")


# ---------------------------------------------------------------------------- prediction


class QueueAlertsConfig(StrictModel):
    notify: list[str] = Field([], description="receivers of the per-queue forecast messages")


class PredictConfig(StrictModel):
    """Breach prediction (sladaemon/predict): ``predicted_breach`` events for ``at:
    predicted`` ladder levels, queue forecasts and queue alerts."""

    enabled: bool = True
    precision: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="share of warnings that must come true; picks the threshold "
        f"(default {DEFAULT_PRECISION} unless threshold or early are given)",
    )
    threshold: float = Field(
        DEFAULT_THRESHOLD,
        gt=0,
        lt=1,
        description="breach probability that warns at the last moment leaving `lead`",
    )
    early: float = Field(
        DEFAULT_EARLY, gt=0, lt=1, description="breach probability that warns at once"
    )
    lead: Annotated[Duration, within(SECOND, 30 * DAY)] = Field(
        DEFAULT_LEAD, description="warn only while the deadline is this far"
    )
    horizon: Annotated[Duration, within(ABOVE_ZERO, 30 * DAY)] = Field(
        DEFAULT_HORIZON, description="business time the queue forecast sees"
    )
    half_life: Annotated[Period, within(HOUR, TEN_YEARS, days=True)] = Field(
        DEFAULT_HALF_LIFE, description="how fast old history fades"
    )
    min_history: int = Field(
        DEFAULT_MIN_HISTORY,
        ge=1,
        le=1_000_000,
        description="finished cycles of a policy × metric needed",
    )
    every: Annotated[Duration, within(ABOVE_ZERO, DAY)] = Field(
        DEFAULT_EVERY, description="how often running metrics are judged"
    )
    queue_alerts: QueueAlertsConfig = QueueAlertsConfig()

    @field_validator("early")
    @classmethod
    def _early_above_threshold(cls, value: float, info: ValidationInfo) -> float:
        threshold = info.data.get("threshold")
        if isinstance(threshold, float) and value < threshold:
            raise _custom(
                "probability", f"early ({value}) must not be below threshold ({threshold})"
            )
        return value

    @model_validator(mode="after")
    def _one_way_to_warn(self) -> PredictConfig:
        fixed = {"threshold", "early"} & self.model_fields_set
        if self.precision is not None and fixed:
            raise _custom(
                "warning_rule",
                f"precision and {' and '.join(sorted(fixed))} are two ways to choose when to "
                "warn: give one",
            )
        return self

    def settings(self) -> PredictSettings:
        precision = self.precision
        if precision is None and not {"threshold", "early"} & self.model_fields_set:
            precision = DEFAULT_PRECISION
        return PredictSettings(
            enabled=self.enabled,
            precision=precision,
            threshold=self.threshold,
            early=self.early,
            lead=self.lead,
            horizon=self.horizon,
            half_life=self.half_life,
            min_history=self.min_history,
            every=self.every,
            queue_alerts=tuple(self.queue_alerts.notify),
        )
