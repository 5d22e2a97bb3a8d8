"""Delivery through apprise (email, Slack, webhooks, ...) and to the console.

apprise is synchronous: each send runs in a worker thread, bounded by the receiver's
``timeout``. apprise itself waits a little longer for an answer, so a receiver that answers
late is known as one that may have taken the message (``maybe_sent``: the retry says it may
be a duplicate), not as one that refused it. Every URL of a receiver is its own delivery
target, so a retry never repeats a message to a URL that already accepted it. A URL apprise
cannot parse makes that target fail permanently (with apprise's own reason); the others keep
working.

``slack-app://CHANNEL`` is sent by our own Slack app (notify/slack_app.py, ``daemon.slack``), not
by apprise: Block Kit messages with Acknowledge and Escalate buttons.

``console://`` prints a message as a block of text; when the log is JSON lines (stdout is not a
terminal: journald) it is a log line instead, ``console_message`` with ``kind``, ``title``,
``body`` and ``id``, so every line of the daemon's output stays JSON.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TextIO
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import apprise
from pydantic import SecretStr

from sladaemon.logs import (
    CONSOLE_LOGGER,
    MIN_FRAGMENT,
    get_logger,
    looks_like_token,
    secret_fragments,
    writes_json,
)
from sladaemon.model import NotificationKind
from sladaemon.notify.message import Notification
from sladaemon.notify.outcome import DeliveryOutcome
from sladaemon.notify.slack_blocks import channel_problem, is_slack_app, slack_channel
from sladaemon.notify.webhook import describe_webhook, is_webhook, post_webhook, webhook_problem

CONSOLE = "console://"
LATE_ANSWER_MARGIN = 5.0  # seconds apprise waits for an answer beyond the receiver's timeout
_NOTIFY_TYPE = {
    NotificationKind.WARNING: apprise.NotifyType.WARNING,
    NotificationKind.BREACH: apprise.NotifyType.FAILURE,
    NotificationKind.ESCALATION: apprise.NotifyType.FAILURE,
    NotificationKind.RESOLVED: apprise.NotifyType.SUCCESS,
    NotificationKind.OPERATOR: apprise.NotifyType.WARNING,
    NotificationKind.TEST: apprise.NotifyType.INFO,
    NotificationKind.REPORT: apprise.NotifyType.INFO,
    NotificationKind.OVERDUE_AT_START: apprise.NotifyType.WARNING,
    NotificationKind.GROUP: apprise.NotifyType.WARNING,
}
_BODY_FORMAT = {"text": apprise.NotifyFormat.TEXT, "html": apprise.NotifyFormat.HTML}


class SlackSender(Protocol):
    """What the notifier needs of the Slack app (notify/slack_app.py)."""

    async def send(self, channel: str, message: Notification) -> DeliveryOutcome: ...


class Receiver(Protocol):
    """What the notifier needs of a receiver's settings (config's ``ReceiverConfig``)."""

    @property
    def urls(self) -> Sequence[SecretStr]: ...
    @property
    def template(self) -> str | None: ...
    @property
    def timeout(self) -> timedelta: ...


@dataclass
class _Target:
    label: str  # the URL's scheme and host, safe to log
    url: str = ""
    console: bool = False
    invalid: str = ""
    prefers_html: bool = False  # the plugin's own format is HTML (email)
    read_timeout: float = 0.0  # seconds apprise waits for an answer (0: its own default)
    slack_channel: str = ""  # a slack-app:// target: where the Slack app posts
    webhook: bool = False  # a webhook+http(s):// target: our own JSON POST of the whole payload

    def client(self) -> apprise.Apprise:
        # A fresh client per message: apprise paces sends through one client object
        # (seconds apart for email), which would make alerts late; receivers' own rate
        # limits are met by the outbox's retries instead.
        client = apprise.Apprise()
        client.add(self.url)
        if self.read_timeout and "rto=" not in self.url.lower():
            for plugin in client:  # our wait ends first: a late answer counts as maybe sent
                if hasattr(plugin, "socket_read_timeout"):
                    plugin.socket_read_timeout = self.read_timeout
        return client


def describe_url(url: str) -> str:
    """A loggable form of an apprise URL: apprise's own privacy rendering (keys and passwords
    masked, wherever the service puts them — host, user or path), without the query. A URL
    apprise cannot use shows its scheme and host only (a host shaped like a token masked),
    never credentials."""
    if is_slack_app(url):  # a channel or user id is no secret
        return url.strip()
    if is_webhook(url):
        return describe_webhook(url)
    plugin = apprise.Apprise.instantiate(url) if not url.lower().startswith(CONSOLE) else None
    if plugin:
        private: str = plugin.url(privacy=True)  # type: ignore[no-untyped-call]
        return private.split("?", 1)[0]
    m = re.match(r"^([a-zA-Z0-9+.-]+)://(?:[^@/]*@)?([^/?#:]*)", url)
    if not m:
        return "(unparsable URL)"
    host = "***" if looks_like_token(m.group(2)) else m.group(2)
    return f"{m.group(1)}://{host}" if host else f"{m.group(1)}://"


def _url_parts(url: str) -> list[str]:
    """The user, password, host, path segments and query values of a URL, as written."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    found = [user, password, *host.split(":")]  # tgram://BOT:TOKEN/..., or host:port
    found += parts.path.split("/") + [v for _, v in parse_qsl(parts.query)]
    return [unquote(p) for p in found if p]


def url_secrets(url: str) -> set[str]:
    """What to redact from the log for a receiver URL: the URL, its credential parts
    (``sladaemon.logs.secret_fragments``) and every part apprise's privacy rendering masks
    or leaves out, wherever the service puts its keys (host, user or path)."""
    found = secret_fragments(url)
    if is_slack_app(url):
        return found
    if is_webhook(url):  # its path and query may hold a key: keep only scheme and host
        parts = [p for p in _url_parts(url.strip().removeprefix("webhook+")) if len(p) >= 3]
        return found | {p for p in parts if p not in describe_webhook(url)}
    plugin = apprise.Apprise.instantiate(url) if not url.lower().startswith(CONSOLE) else None
    if plugin:
        private = plugin.url(privacy=True)  # type: ignore[no-untyped-call]
        shown = unquote(private)
        found.update(
            part
            for part in _url_parts(url)
            if len(part) >= MIN_FRAGMENT and part not in shown and quote(part) not in private
        )
    return found


def url_problem(url: str) -> str | None:
    """Why apprise cannot use ``url``, in apprise's own words (the URL's parts masked), or
    None when it can."""
    if url.strip().lower().startswith(CONSOLE):
        return None
    if is_slack_app(url):
        return channel_problem(url)
    if is_webhook(url):
        return webhook_problem(url)
    capture = apprise.LogCapture(level=logging.WARNING, fmt="%(message)s")  # type: ignore[no-untyped-call]
    with capture as captured:
        usable = apprise.Apprise().add(url)
    if usable:
        return None
    said = [line.strip() for line in captured.getvalue().splitlines() if line.strip()]
    parts = sorted({p for p in _url_parts(url) if len(p) >= 3}, key=len, reverse=True)
    if parts:
        hidden = re.compile(
            r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, parts)) + r")(?![A-Za-z0-9])"
        )
        said = [hidden.sub("***", line) for line in said]
    reason = "; ".join(dict.fromkeys(said))[:300] or "unknown service or malformed URL"
    return f"apprise cannot use URL {describe_url(url)}: {reason}"


class AppriseNotifier:
    """Sends notifications to the configured receivers. ``console``: where ``console://``
    writes; by default stdout, as text or, when the log is JSON, as a log line. ``slack``:
    the Slack app that sends ``slack-app://`` targets (None: ``daemon.slack`` is not set)."""

    def __init__(
        self,
        receivers: Mapping[str, Receiver],
        console: TextIO | None = None,
        max_workers: int = 32,
        slack: SlackSender | None = None,
    ) -> None:
        self._receivers = receivers
        self._console = console
        self._slack = slack
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="notify")
        self._targets: dict[str, list[_Target]] = {}
        for name, cfg in receivers.items():
            targets = []
            for secret in cfg.urls:
                url = secret.get_secret_value()
                label = describe_url(url)
                if url.strip().lower().startswith(CONSOLE):
                    targets.append(_Target(label, console=True))
                    continue
                problem = url_problem(url)
                if problem:
                    targets.append(_Target(label, invalid=problem))
                    continue
                if is_slack_app(url):
                    targets.append(self._slack_target(label, url))
                    continue
                if is_webhook(url):
                    targets.append(_Target(label, url, webhook=True))
                    continue
                client = apprise.Apprise()
                client.add(url)
                read_timeout = cfg.timeout.total_seconds() + LATE_ANSWER_MARGIN
                targets.append(
                    _Target(
                        label, url, prefers_html=_prefers_html(client), read_timeout=read_timeout
                    )
                )
            self._targets[name] = targets

    def _slack_target(self, label: str, url: str) -> _Target:
        if self._slack is None:
            return _Target(label, invalid=f"{label} needs daemon.slack (the Slack app)")
        return _Target(label, slack_channel=slack_channel(url))

    def targets(self, receiver: str) -> int:
        """How many delivery targets (URLs) a receiver has; 0 when unknown."""
        return len(self._targets.get(receiver, ()))

    def invalid_targets(self) -> list[tuple[str, int, str]]:
        return [
            (name, k, t.invalid)
            for name, targets in self._targets.items()
            for k, t in enumerate(targets)
            if t.invalid
        ]

    def prefers_html(self, receiver: str, target: int) -> bool:
        """Whether a receiver URL renders HTML bodies itself (email does; chat and webhooks
        get text)."""
        targets = self._targets.get(receiver, ())
        return target < len(targets) and targets[target].prefers_html

    def template(self, receiver: str) -> str | None:
        cfg = self._receivers.get(receiver)
        return cfg.template if cfg else None

    async def send(self, receiver: str, target: int, message: Notification) -> DeliveryOutcome:
        targets = self._targets.get(receiver)
        if not targets or target >= len(targets):
            return DeliveryOutcome(False, retryable=False, error=f"no receiver {receiver!r}")
        t = targets[target]
        if t.invalid:
            return DeliveryOutcome(False, retryable=False, error=t.invalid)
        if t.console:
            self._print(message)
            return DeliveryOutcome(True)
        if t.slack_channel and self._slack is not None:
            return await self._slack.send(t.slack_channel, message)
        timeout = self._receivers[receiver].timeout.total_seconds()
        if t.webhook:
            return await post_webhook(t.url, message, timeout)
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(
            self._executor,
            lambda: t.client().notify(
                body=message.body,
                title=message.title,
                notify_type=_NOTIFY_TYPE.get(message.kind, apprise.NotifyType.INFO),
                body_format=_BODY_FORMAT.get(message.body_format, apprise.NotifyFormat.TEXT),
            ),
        )
        try:
            accepted = await asyncio.wait_for(call, timeout=timeout)
        except TimeoutError:
            return DeliveryOutcome(
                False, error=f"{t.label} did not answer within {timeout:g}s", maybe_sent=True
            )
        except Exception as exc:  # a plugin crash is a failed attempt, not a daemon crash
            return DeliveryOutcome(False, error=f"{t.label}: {type(exc).__name__}")
        if accepted:
            return DeliveryOutcome(True)
        return DeliveryOutcome(False, error=f"{t.label} refused or unreachable")

    def _print(self, message: Notification) -> None:
        """A ``console://`` delivery: a block of text, or one JSON log line."""
        if self._console is None and writes_json():
            get_logger(CONSOLE_LOGGER).info(
                "console_message",
                kind=message.kind.value,
                title=message.title,
                body=message.body,
                id=message.id,
            )
            return
        console = self._console or sys.stdout
        console.write(f"[{message.kind.upper()}] {message.title}\n")
        for line in message.body.splitlines():
            console.write(f"    {line}\n")
        console.flush()

    def close(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)


def _prefers_html(client: apprise.Apprise) -> bool:
    formats = getattr(client[0], "notify_format", None)
    first = formats[0] if isinstance(formats, tuple | list) and formats else formats
    return bool(first == apprise.NotifyFormat.HTML)
