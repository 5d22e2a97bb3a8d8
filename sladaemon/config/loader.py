"""Loading a config file: YAML (with line numbers) -> pydantic-settings -> runtime objects.

Precedence: ``SLADAEMON_*`` environment variables (``__`` between nested keys, e.g.
``SLADAEMON_DAEMON__STATE=/tmp/state.sqlite``) override the YAML file. ``load_config`` either
returns a ready ``Config`` or raises ``ConfigError`` listing every problem with file, line and
YAML path. Commands that only read (``explain``, ``report``) load with ``secrets=False``: the
receivers' URLs and the sources' tokens and passwords are left out (as ``console://`` and
nothing), so a missing ``${VAR}`` or credential file there is no error.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from sladaemon.calendar import BusinessCalendar, CalendarSpec
from sladaemon.config import board, chains, models, oncall, routing
from sladaemon.config.board import BoardConfig
from sladaemon.config.chains import AckConfig, ChainConfig
from sladaemon.config.models import (
    CalendarConfig,
    DaemonConfig,
    PolicyConfig,
    PredictConfig,
    ReceiverConfig,
    ReportConfig,
    SourceConfig,
    parse_level,
    weekly_hours,
)
from sladaemon.config.oncall import PersonConfig, ScheduleConfig, build_roster
from sladaemon.config.routing import InhibitRuleConfig, RootRouteConfig
from sladaemon.config.yamlfile import (
    LineMap,
    Path_,
    UnreadableFileError,
    YamlDocument,
    format_path,
    load_yaml,
    read_text_file,
)
from sladaemon.errors import ConfigError, ConfigIssue
from sladaemon.model import Metric, StatusCategory, split_target
from sladaemon.notify.slack_blocks import is_slack_app
from sladaemon.oncall.roster import Roster
from sladaemon.predict.settings import PredictSettings
from sladaemon.sla.policy import (
    FieldMatch,
    LadderLevel,
    MetricRule,
    SlaPolicy,
    ladder_for,
)
from sladaemon.statuses import StatusMap

ENV_PREFIX = "SLADAEMON_"
_document: ContextVar[YamlDocument] = ContextVar("sladaemon_config_document")


class _LocatedYamlSource(YamlConfigSettingsSource):
    """pydantic-settings' YAML source, fed with the document parsed with line numbers."""

    def _read_files(self, files: Any, deep_merge: bool = False) -> dict[str, Any]:
        return _document.get().data  # the file may be stdin: never read again

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return _document.get().data


class Settings(BaseSettings):
    """The whole config file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    calendars: dict[str, CalendarConfig] = {}
    policies: list[PolicyConfig] = []
    receivers: dict[str, ReceiverConfig] = {}
    sources: dict[str, SourceConfig] = {}
    reports: list[ReportConfig] = []
    chains: dict[str, ChainConfig] = {}
    ack: AckConfig | None = None
    people: dict[str, PersonConfig] = {}
    schedules: dict[str, ScheduleConfig] = {}
    daemon: DaemonConfig = DaemonConfig()
    predict: PredictConfig = PredictConfig()
    route: RootRouteConfig | None = None
    inhibit_rules: list[InhibitRuleConfig] = []
    inhibit_defaults: bool = True  # the built-in inhibition rules (escalate/inhibition.py)
    board: BoardConfig = BoardConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        doc = _document.get(None)
        if doc is None:
            return init_settings, env_settings
        return init_settings, env_settings, _LocatedYamlSource(settings_cls, yaml_file=doc.file)


@dataclass(frozen=True)
class PersonReceiver:
    """A person as the notifier sees a receiver (``person:NAME``)."""

    urls: tuple[SecretStr, ...]
    template: str | None = None
    timeout: timedelta = timedelta(seconds=20)
    send_resolved: bool = True


@dataclass(frozen=True)
class Config:
    """A validated config with its runtime objects built."""

    path: Path
    settings: Settings
    calendars: Mapping[str, BusinessCalendar]
    policies: tuple[SlaPolicy, ...]
    lines: LineMap = field(default_factory=LineMap, repr=False, compare=False)
    roster: Roster = field(default_factory=Roster, repr=False, compare=False)

    def issue(self, path: Path_, message: str) -> ConfigIssue:
        """A problem found with a value after loading (building a source, ...), located
        like the loader's own."""
        return ConfigIssue(str(self.path), self.lines.line_of(path), format_path(path), message)

    @property
    def receivers(self) -> Mapping[str, ReceiverConfig]:
        return self.settings.receivers

    @property
    def sources(self) -> Mapping[str, SourceConfig]:
        return self.settings.sources

    @property
    def daemon(self) -> DaemonConfig:
        return self.settings.daemon

    @property
    def predict(self) -> PredictSettings:
        return self.settings.predict.settings()

    @property
    def reports(self) -> list[ReportConfig]:
        return self.settings.reports

    def delivery_receivers(self) -> dict[str, Any]:
        """What the notifier sends to: the receivers, and each reachable person as the
        receiver ``person:NAME`` (their apprise URLs, ``slack-app://<id>`` when the person has
        a Slack id and ``daemon.slack`` is set, and ``daemon.email_url`` to their ``email``)."""
        out: dict[str, Any] = dict(self.receivers)
        slack, mail = self.daemon.slack, self.daemon.email_url
        for name, person in self.settings.people.items():
            urls = list(person.urls)
            if person.slack and slack is not None:
                urls.append(SecretStr(f"slack-app://{person.slack}"))
            if person.email and mail is not None:
                base = mail.get_secret_value().strip()
                joint = "&" if "?" in base else "?"
                urls.append(SecretStr(f"{base}{joint}to={quote(person.email, safe='@')}"))
            if urls:
                out[f"person:{name}"] = PersonReceiver(tuple(urls))
        return out

    def secrets(self) -> set[str]:
        """What the log must never show: each receiver's and person's URL with its credential
        parts, the sources' tokens and passwords, the Slack app's tokens, the ack secret and
        API tokens, iCal feed URLs."""
        from sladaemon.notify.apprise_notifier import url_secrets  # apprise is slow to import

        found = {
            part
            for receiver in self.receivers.values()
            for url in receiver.urls
            for part in url_secrets(url.get_secret_value())
        }
        for source in self.sources.values():
            for key in ("token", "password"):
                value = getattr(source, key, None)
                if value is not None and value.get_secret_value():
                    found.add(value.get_secret_value())
        if self.daemon.slack is not None:
            found |= self.daemon.slack.secrets()
        if self.daemon.email_url is not None:
            found |= set(url_secrets(self.daemon.email_url.get_secret_value()))
        if self.settings.ack is not None:
            found.add(self.settings.ack.secret.get_secret_value())
            found |= {t.get_secret_value() for t in self.settings.ack.api_tokens}
        for person in self.settings.people.values():
            found |= {part for url in person.urls for part in url_secrets(url.get_secret_value())}
        for schedule in self.settings.schedules.values():
            if schedule.ical is not None and schedule.ical.url is not None:
                found |= set(url_secrets(schedule.ical.url.get_secret_value()))
        return found

    def report_timezone(self, calendar: str | None) -> str:
        """A report's time zone: its calendar's, else the first calendar's, else UTC."""
        if calendar is not None:
            return self.calendars[calendar].spec.timezone
        return next((c.spec.timezone for c in self.calendars.values()), "UTC")

    def status_map(self, source: str | None = None) -> StatusMap:
        """The status mapping of a source (or of the only csv source; else the defaults)."""
        if source is None:
            csv_sources = [s for s in self.sources.values() if s.type == "csv"]
            statuses = csv_sources[0].statuses if len(csv_sources) == 1 else {}
        else:
            statuses = self.sources[source].statuses
        return StatusMap(statuses)


def load_config(
    path: Path | str,
    environ: Mapping[str, str] | None = None,
    *,
    text: str | None = None,
    secrets: bool = True,
) -> Config:
    """Load, validate and compile a config file (or ``text``, named ``path``). Raises
    ConfigError listing every problem. ``secrets=False``: see the module's docstring."""
    path = Path(path)
    env = dict(os.environ if environ is None else environ)
    file = str(path)
    if text is None:
        try:
            text = read_text_file(path)
        except UnreadableFileError as exc:
            raise ConfigError([ConfigIssue(file, None, "", f"cannot read: {exc}")]) from None
    doc = load_yaml(text, file, env)
    if not secrets:
        doc = _without_secrets(doc)
    issues = list(doc.issues)
    settings: Settings | None = None
    token = _document.set(doc)
    saved_env = _swap_environ(env) if environ is not None else None
    try:
        settings = Settings()
    except ValidationError as exc:
        issues.extend(_issue_from_error(err, doc, env) for err in exc.errors())
    finally:
        _document.reset(token)
        if saved_env is not None:
            _swap_environ(saved_env)
    issues.extend(_reference_issues(doc))
    if issues or settings is None:
        raise ConfigError(_dedupe(issues))
    return _compile(path, settings, doc.lines)


_SECRET_KEYS = {
    "receivers": ("urls", "urls_file"),
    "sources": ("token", "token_file", "password", "password_file"),
    "people": ("urls", "urls_file"),
}


def _without_secrets(doc: YamlDocument) -> YamlDocument:
    """``doc`` without receiver URLs and source credentials, nor the issues found in them."""
    data = dict(doc.data)
    secret_paths: list[str] = []
    for section, keys in _SECRET_KEYS.items():
        entries = data.get(section)
        if not isinstance(entries, dict):
            continue
        data[section] = kept = {}
        for name, entry in entries.items():
            if isinstance(entry, dict):
                secret_paths += [format_path((section, name, key)) for key in keys]
                had_urls = bool(set(keys) & set(entry))
                entry = {k: v for k, v in entry.items() if k not in keys}
                if section == "receivers" or (section == "people" and had_urls):
                    entry["urls"] = ["console://"]
            kept[name] = entry
    daemon = data.get("daemon")
    for key in ("slack", "email_url"):  # the Slack app's tokens; a mail account
        if isinstance(daemon, dict) and key in daemon:
            data["daemon"] = daemon = {k: v for k, v in daemon.items() if k != key}
            secret_paths.append(format_path(("daemon", key)))
    if "ack" in data:  # signs links and guards the API: nothing a reading command needs
        data.pop("ack")
        secret_paths.append("ack")
    issues = [
        issue
        for issue in doc.issues
        if not any(
            issue.path == p or issue.path.startswith((p + "[", p + ".")) for p in secret_paths
        )
    ]
    return replace(doc, data=data, issues=issues)


def _swap_environ(new: Mapping[str, str]) -> dict[str, str]:
    """pydantic-settings reads os.environ; a given environ replaces the SLADAEMON_ part."""
    old = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    for k in old:
        del os.environ[k]
    os.environ.update({k: v for k, v in new.items() if k.startswith(ENV_PREFIX)})
    return old


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: set[tuple[int | None, str, str]] = set()
    out = []
    for issue in issues:
        key = (issue.line, issue.path, issue.message)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


# ---------------------------------------------------------------------------- error messages


def _known_keys() -> set[str]:
    keys: set[str] = set(Settings.model_fields)
    for module in (models, chains, board, routing, oncall):
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseModel):
                keys.update(obj.model_fields)
    keys.update(m.value for m in Metric)
    return keys


_KNOWN_KEYS = _known_keys()


def _resolve(loc: tuple[str | int, ...], data: Any) -> Path_:
    """The YAML path of a pydantic error location (dropping union tags and validator names)."""
    path: list[str | int] = []
    current = data
    for part in loc:
        if _has_child(current, part):
            path.append(part)
            current = current[part]
        elif isinstance(part, str) and (
            "[" in part or part in ("duration", "per_priority") or _is_tag(current, part)
        ):
            continue  # union member or validator name, not a key of the file
        else:
            path.append(part)
            current = None
    return tuple(path)


def _has_child(current: Any, part: str | int) -> bool:
    if isinstance(current, dict):
        return part in current
    return isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)


def _is_tag(current: Any, part: str) -> bool:
    return isinstance(current, dict) and current.get("type") == part


def _issue_from_error(err: Any, doc: YamlDocument, env: Mapping[str, str]) -> ConfigIssue:
    loc = tuple(err["loc"])
    path = _resolve(loc, doc.data)
    kind = err["type"]
    msg = str(err["msg"])
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        known = sorted(_KNOWN_KEYS - {key})  # a key valid elsewhere is not a typo of itself
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else " (not a setting of this block)"
        msg = f"unknown key {key!r}" + hint
    elif kind == "missing":
        msg = f"missing required key {path[-1]!r}" if path else "missing value"
    elif kind == "union_tag_invalid":
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        msg = f"unknown type {ctx.get('tag')!r} (one of {expected})"
    elif kind == "union_tag_not_found":
        msg = "missing required key 'type'"
    else:
        for prefix in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(prefix)
        if kind in ("literal_error", "enum") and "input" in err:
            msg = f"{msg}, got {err['input']!r}"
    reading = doc.readings.get(path)
    if reading:
        msg += f" ({reading})"
    line = doc.lines.line_of(path)
    env_name = ENV_PREFIX + "__".join(str(p).upper() for p in path if isinstance(p, str))
    if path not in doc.lines.lines and any(k.startswith(env_name) for k in env):
        msg += f" (from environment {env_name})"
    return ConfigIssue(doc.file, line, format_path(path), msg)


# ---------------------------------------------------------------------------- references


def _reference_issues(doc: YamlDocument) -> list[ConfigIssue]:
    """Names that must refer to something defined elsewhere in the file."""
    data = doc.data
    refs = _References(doc)
    refs.check_policies(_list(data.get("policies")))
    refs.check_sources(_mapping(data.get("sources")))
    refs.check_receiver(("daemon", "operator"), _mapping(data.get("daemon")).get("operator"))
    queue_alerts = _mapping(_mapping(data.get("predict")).get("queue_alerts")).get("notify")
    refs.check_receivers(("predict", "queue_alerts", "notify"), _list(queue_alerts))
    refs.check_reports(_list(data.get("reports")))
    refs.check_slack_urls(_mapping(data.get("receivers")), _mapping(data.get("daemon")))
    refs.check_people(_mapping(data.get("people")))
    refs.check_schedules(_mapping(data.get("schedules")))
    if "route" in data:
        refs.check_route(("route",), _mapping(data.get("route")))
    elif _list(data.get("inhibit_rules")):
        refs.report(
            ("inhibit_rules",),
            "inhibit_rules hold notifications of the routing tree's groups: add a route: section",
        )
    for name, chain in _mapping(data.get("chains")).items():
        for j, step in enumerate(_list(_mapping(chain).get("steps"))):
            notify = _mapping(step).get("notify")
            path = ("chains", name, "steps", j, "notify")
            refs.check_targets(path, [notify] if isinstance(notify, str) else _list(notify))
    return refs.issues


class _References:
    """The calendars and receivers a file defines, and the issues found naming others."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.calendars = set(_mapping(doc.data.get("calendars")))
        self.receivers = set(_mapping(doc.data.get("receivers")))
        self.people = set(_mapping(doc.data.get("people")))
        self.schedules = set(_mapping(doc.data.get("schedules")))
        self.chains = set(_mapping(doc.data.get("chains")))
        self.issues: list[ConfigIssue] = []

    def report(self, path: Path_, message: str) -> None:
        line = self.doc.lines.line_of(path)
        self.issues.append(ConfigIssue(self.doc.file, line, format_path(path), message))

    def check(self, path: Path_, name: object, known: set[str], what: str) -> None:
        if isinstance(name, str) and name not in known:
            shown = ", ".join(sorted(known)) or f"no {what}s are defined"
            self.report(path, f"unknown {what} {name!r} ({shown})")

    def check_calendar(self, path: Path_, name: object) -> None:
        self.check(path, name, self.calendars, "calendar")

    def check_receiver(self, path: Path_, name: object) -> None:
        self.check(path, name, self.receivers, "receiver")

    def check_receivers(self, path: Path_, names: list[Any]) -> None:
        for k, receiver in enumerate(names):
            self.check_receiver((*path, k), receiver)

    def check_targets(self, path: Path_, targets: list[Any]) -> None:
        """``receiver:NAME`` (or a plain receiver name), ``person:NAME``, ``oncall:SCHEDULE``,
        ``ticket:assignee`` or ``ticket:group``."""
        for k, target in enumerate(targets):
            self.check_target((*path, k), target)

    def check_target(self, path: Path_, target: object) -> None:
        if not isinstance(target, str):
            return
        kind, name = split_target(target)
        if kind == "person":
            self.check(path, name, self.people, "person")
        elif kind == "oncall":
            self.check(path, name, self.schedules, "schedule")
        elif kind == "ticket":
            if name not in ("assignee", "group"):
                self.report(
                    path, f"unknown ticket target {target!r} (ticket:assignee or ticket:group)"
                )
        else:
            self.check_receiver(path, name)

    def check_slack_urls(self, receivers: dict[str, Any], daemon: dict[str, Any]) -> None:
        """``slack-app://`` URLs are sent by the Slack app of ``daemon.slack``."""
        if "slack" in daemon:
            return
        for name, receiver in receivers.items():
            for k, url in enumerate(_list(_mapping(receiver).get("urls"))):
                if isinstance(url, str) and is_slack_app(url):
                    self.report(
                        ("receivers", name, "urls", k),
                        "a slack-app:// URL needs daemon.slack (the Slack app's bot token)",
                    )

    def check_people(self, people: dict[str, Any]) -> None:
        for name, person in people.items():
            quiet = _mapping(person).get("quiet_hours")
            self.check_calendar(("people", name, "quiet_hours"), quiet)

    def check_route(self, path: Path_, route: dict[str, Any]) -> None:
        """A routing tree's targets and time-interval calendars, all the way down."""
        self.check_target((*path, "receiver"), route.get("receiver"))
        for key in ("mute_time_intervals", "active_time_intervals"):
            names = route.get(key)
            if isinstance(names, str):
                self.check_calendar((*path, key), names)
            for k, name in enumerate(_list(names)):
                self.check_calendar((*path, key, k), name)
        for i, child in enumerate(_list(route.get("routes"))):
            self.check_route((*path, "routes", i), _mapping(child))

    def check_schedules(self, schedules: dict[str, Any]) -> None:
        for name, schedule in schedules.items():
            base: Path_ = ("schedules", name)
            for i, layer in enumerate(_list(_mapping(schedule).get("layers"))):
                layer = _mapping(layer)
                self.check_calendar((*base, "layers", i, "restrict"), layer.get("restrict"))
                for j, member in enumerate(_list(layer.get("members"))):
                    self.check((*base, "layers", i, "members", j), member, self.people, "person")
            for i, override in enumerate(_list(_mapping(schedule).get("overrides"))):
                who = _mapping(override).get("who")
                self.check((*base, "overrides", i, "who"), who, self.people, "person")

    def check_unique(
        self, seen: dict[str, int], key: object, i: int, path: Path_, why: str
    ) -> None:
        """Report ``key`` met again at index ``i`` (``why`` formatted with ``key`` and the
        first index); remember where each key was first met."""
        if not isinstance(key, str):
            return
        if key in seen:
            self.report(path, why.format(key=key, first=seen[key]))
        seen.setdefault(key, i)

    def check_policies(self, policies: list[Any]) -> None:
        seen_names: dict[str, int] = {}
        for i, policy in enumerate(policies):
            if not isinstance(policy, dict):
                continue
            base: Path_ = ("policies", i)
            self.check_unique(
                seen_names,
                policy.get("name"),
                i,
                (*base, "name"),
                "duplicate policy name {key!r} (also policies[{first}])",
            )
            self.check_policy(base, policy)

    def check_policy(self, base: Path_, policy: dict[str, Any]) -> None:
        self.check_calendar((*base, "calendar"), policy.get("calendar"))
        for metric, override in _mapping(policy.get("overrides")).items():
            if isinstance(override, dict):
                path = (*base, "overrides", metric, "calendar")
                self.check_calendar(path, override.get("calendar"))
        for j, level in enumerate(_list(policy.get("escalation"))):
            notify = level.get("notify") if isinstance(level, dict) else None
            self.check_targets((*base, "escalation", j, "notify"), _list(notify))
            if notify and "route" in self.doc.data:
                self.report(
                    (*base, "escalation", j, "notify"),
                    "with a route: section the routing tree picks who is told: drop notify "
                    "here (route on the level label instead, e.g. matchers: ['level=\"breach\"'])",
                )
            chain = level.get("chain") if isinstance(level, dict) else None
            self.check((*base, "escalation", j, "chain"), chain, self.chains, "chain")

    def check_sources(self, sources: dict[str, Any]) -> None:
        paced = [n for n, s in sources.items() if isinstance(s, dict) and _sets_clock(s)]
        if paced and len(sources) > 1:
            self.report(
                ("sources", paced[0]),
                "a replayed or simulated source runs the daemon's clock faster than real time, "
                "so it must be the only source",
            )

    def check_reports(self, reports: list[Any]) -> None:
        report_names: dict[str, int] = {}
        for i, report_cfg in enumerate(reports):
            if not isinstance(report_cfg, dict):
                continue
            self.check_calendar(("reports", i, "calendar"), report_cfg.get("calendar"))
            named = report_cfg.get("receiver")
            if isinstance(named, list):
                self.check_receivers(("reports", i, "receiver"), named)
            else:
                self.check_receiver(("reports", i, "receiver"), named)
            self.check_unique(
                report_names,
                report_cfg.get("name", report_cfg.get("every")),
                i,
                ("reports", i, "name" if "name" in report_cfg else "every"),
                "two reports named {key!r} (also reports[{first}]); give each a distinct name",
            )


def _sets_clock(source: dict[str, Any]) -> bool:
    if source.get("type") == "simulator":
        return bool(source.get("speed", 60) != 1)
    return source.get("type") == "csv" and source.get("speed") is not None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------------------- compilation


def build_calendar(name: str, cfg: CalendarConfig) -> BusinessCalendar:
    holidays = cfg.holidays
    return BusinessCalendar(
        CalendarSpec(
            name=name,
            timezone=cfg.timezone,
            weekly=weekly_hours(cfg.hours),
            holiday_country=holidays.country.upper() if holidays and holidays.country else None,
            holiday_subdivision=holidays.subdivision if holidays else None,
            holiday_dates=frozenset(holidays.dates) if holidays else frozenset(),
            holidays_cancel=holidays.cancel if holidays else "day",
            breaks={day: tuple(sorted(ranges)) for day, ranges in cfg.breaks.items()},
        )
    )


def _compile(path: Path, settings: Settings, lines: LineMap) -> Config:
    calendars = {name: build_calendar(name, cfg) for name, cfg in settings.calendars.items()}
    policies = tuple(compile_policy(i, p, calendars) for i, p in enumerate(settings.policies))
    roster = build_roster(settings.people, settings.schedules, calendars)
    return Config(path, settings, calendars, policies, lines, roster)


def compile_policy(
    index: int, cfg: PolicyConfig, calendars: Mapping[str, BusinessCalendar]
) -> SlaPolicy:
    default_pause = frozenset(StatusCategory(c) for c in cfg.pause_on)
    rules = []
    for metric, target in cfg.targets.given().items():
        override = cfg.overrides.get(metric)
        calendar = calendars[override.calendar if override and override.calendar else cfg.calendar]
        pause_on = default_pause
        if override and override.pause_on is not None:
            pause_on = frozenset(StatusCategory(c) for c in override.pause_on)
        if isinstance(target, dict):
            per_priority = {k.lower(): v for k, v in target.items() if k.lower() != "default"}
            default = next((v for k, v in target.items() if k.lower() == "default"), None)
        else:
            per_priority, default = {}, target
        rules.append(MetricRule(metric, per_priority, default, calendar, pause_on))
    ladder = []
    for level in cfg.escalation:
        label, fraction, after, predicted = parse_level(level.at)
        ladder.append(
            LadderLevel(
                label=label,
                fraction=fraction,
                after_breach=after,
                predicted=predicted,
                notify=tuple(level.notify),
                chain=level.chain,
                metrics=frozenset(level.metrics) if level.metrics else None,
            )
        )
    ladder.sort(key=lambda lv: (lv.predicted is False, lv.fraction, lv.after_breach))
    return SlaPolicy(
        name=cfg.name,
        index=index,
        match=tuple(
            FieldMatch(field, tuple(v.lower() for v in values))
            for field, values in cfg.match.items()
        ),
        metrics=tuple(rules),
        ladder=tuple(ladder),
        calendar=calendars[cfg.calendar],
        ladders={rule.metric: ladder_for(tuple(ladder), rule.metric) for rule in rules},
    )
