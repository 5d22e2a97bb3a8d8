"""Delivery through apprise (email, Slack, webhooks, ...) and to the console.

apprise is synchronous: each send runs in a worker thread, bounded by the receiver's
``timeout``. apprise itself waits a little longer for an answer, so a receiver that answers
late is known as one that may have taken the message (``maybe_sent``: the retry says it may
be a duplicate), not as one that refused it. Every URL of a receiver is its own delivery
target, so a retry never repeats a message to a URL that already accepted it. A URL apprise
cannot parse makes that target fail permanently (with a clear reason); the others keep working.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TextIO

import apprise
from pydantic import SecretStr

from sladaemon.model import NotificationKind
from sladaemon.notify.message import Notification

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
}
_BODY_FORMAT = {"text": apprise.NotifyFormat.TEXT, "html": apprise.NotifyFormat.HTML}


class Receiver(Protocol):
    """What the notifier needs of a receiver's settings (config's ``ReceiverConfig``)."""

    @property
    def urls(self) -> Sequence[SecretStr]: ...
    @property
    def template(self) -> str | None: ...
    @property
    def timeout(self) -> timedelta: ...


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    delivered: bool
    retryable: bool = True
    error: str = ""
    maybe_sent: bool = False  # no answer in time: the receiver may have taken it after all


@dataclass
class _Target:
    label: str  # the URL's scheme and host, safe to log
    url: str = ""
    console: bool = False
    invalid: str = ""
    prefers_html: bool = False  # the plugin's own format is HTML (email)
    read_timeout: float = 0.0  # seconds apprise waits for an answer (0: its own default)

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
    apprise cannot use shows its scheme and host only, never credentials."""
    plugin = apprise.Apprise.instantiate(url) if not url.lower().startswith(CONSOLE) else None
    if plugin:
        private: str = plugin.url(privacy=True)  # type: ignore[no-untyped-call]
        return private.split("?", 1)[0]
    m = re.match(r"^([a-zA-Z0-9+.-]+)://(?:[^@/]*@)?([^/?#:]*)", url)
    if not m:
        return "(unparsable URL)"
    return f"{m.group(1)}://{m.group(2)}" if m.group(2) else f"{m.group(1)}://"


class AppriseNotifier:
    """Sends notifications to the configured receivers."""

    def __init__(
        self,
        receivers: Mapping[str, Receiver],
        console: TextIO | None = None,
        max_workers: int = 32,
    ) -> None:
        self._receivers = receivers
        self._console = console or sys.stdout
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
                client = apprise.Apprise()
                if client.add(url):
                    read_timeout = cfg.timeout.total_seconds() + LATE_ANSWER_MARGIN
                    targets.append(
                        _Target(
                            label,
                            url,
                            prefers_html=_prefers_html(client),
                            read_timeout=read_timeout,
                        )
                    )
                else:
                    targets.append(_Target(label, invalid=f"apprise cannot use URL {label}"))
            self._targets[name] = targets

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
            self._console.write(f"[{message.kind.upper()}] {message.title}\n")
            for line in message.body.splitlines():
                self._console.write(f"    {line}\n")
            self._console.flush()
            return DeliveryOutcome(True)
        timeout = self._receivers[receiver].timeout.total_seconds()
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

    def close(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)


def _prefers_html(client: apprise.Apprise) -> bool:
    formats = getattr(client[0], "notify_format", None)
    first = formats[0] if isinstance(formats, tuple | list) and formats else formats
    return bool(first == apprise.NotifyFormat.HTML)
