"""Staging a config: build from it everything that can fail because of it (notifier, sources,
prediction settings, report schedules, a replayed event file) before any of it is used.
``sladaemon check``, the start of ``run`` and a reload all stage, so a config that passes
``check`` builds the same way when the daemon starts or reloads."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from sladaemon.config import Config
from sladaemon.daemon.slack_interactions import slack_app
from sladaemon.errors import ConfigError, ConfigIssue
from sladaemon.notify.apprise_notifier import AppriseNotifier
from sladaemon.report.schedule import Every
from sladaemon.sources.base import Source
from sladaemon.sources.registry import build_source


@dataclass
class Staged:
    """A config and what was built from it, not yet in use: taken by a reload, or closed."""

    config: Config
    notifier: AppriseNotifier
    sources: dict[str, Source] = field(default_factory=dict)

    def close(self) -> None:
        """Drop what was built (the sources have opened nothing before their first poll)."""
        self.notifier.close(wait=False)


def stage(
    config: Config,
    *,
    console: TextIO | None = None,
    sources: Iterable[str] | None = None,
    cursor: Callable[[str], object] = lambda name: None,
    now: datetime | None = None,
) -> Staged:
    """Build what ``config`` needs to run: the notifier, the ``sources`` named (default: all,
    from ``cursor``), the prediction settings and the report schedules; find replayed event
    files. Raises ConfigError naming the file, line and path of every part that cannot be
    built."""
    now = now or datetime.now(UTC)
    issues: list[ConfigIssue] = []
    built: dict[str, Source] = {}
    for name in config.sources if sources is None else sources:
        try:
            built[name] = build_source(name, config.sources[name], cursor(name), now)
        except Exception as exc:  # whatever a source's constructor refuses
            issues.append(config.issue(("sources", name), f"cannot build the source: {exc}"))
    issues += _unusable_settings(config) + _missing_replays(config)
    notifier = AppriseNotifier(config.delivery_receivers(), console, slack=slack_app(config))
    if issues:
        notifier.close(wait=False)
        raise ConfigError(issues)
    return Staged(config, notifier, built)


def _missing_replays(config: Config) -> list[ConfigIssue]:
    """Replayed event files: the daemon's clock starts at their first event, so they must be
    there when it starts (a followed file may come later)."""
    return [
        config.issue(("sources", name, "path"), f"cannot read the replayed file {cfg.path}")
        for name, cfg in config.sources.items()
        if cfg.type == "csv"
        and cfg.speed is not None
        and not (cfg.path.is_file() and os.access(cfg.path, os.R_OK))
    ]


def _unusable_settings(config: Config) -> list[ConfigIssue]:
    """The prediction settings and report schedules, as the loops will read them."""
    issues = []
    try:
        config.predict  # noqa: B018 (the settings check themselves when built)
    except ValueError as exc:
        issues.append(config.issue(("predict",), str(exc)))
    for i, report in enumerate(config.reports):
        try:
            ZoneInfo(config.report_timezone(report.calendar))
            Every.parse(report.every)
        except (ValueError, KeyError) as exc:
            issues.append(config.issue(("reports", i), f"cannot schedule the report: {exc}"))
    return issues
