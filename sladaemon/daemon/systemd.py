"""A dependency-free client for systemd's notify protocol (``sd_notify``).

systemd passes ``NOTIFY_SOCKET`` to a ``Type=notify`` service and, with ``WatchdogSec=``,
``WATCHDOG_USEC`` and ``WATCHDOG_PID``. Messages are newline-separated ``KEY=value`` lines sent
as one datagram. Notification is best effort: nothing here raises into the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

logger = logging.getLogger(__name__)


class SystemdNotifier:
    """Tells systemd about readiness, reloads, shutdown and liveness; a no-op outside systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self.enabled: bool = self._address is not None  # False for an unsupported address
        self.watchdog_interval: float | None = _watchdog_interval(env)
        self._socket: socket.socket | None = None
        self._failure_logged = False

    def ready(self, status: str | None = None) -> None:
        """Startup or reload finished (``READY=1``), optionally with a status line."""
        fields = ["READY=1"]
        if status is not None:
            fields.append(f"STATUS={_one_line(status)}")
        self._send(fields)

    def reloading(self) -> None:
        """A reload started; follow with :meth:`ready` when it is done."""
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(["RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}"])

    def stopping(self) -> None:
        """Shutdown started."""
        self._send(["STOPPING=1"])

    def status(self, text: str) -> None:
        """Free-form status shown by ``systemctl status``."""
        self._send([f"STATUS={_one_line(text)}"])

    def extend_timeout(self, seconds: float, status: str | None = None) -> None:
        """Work in progress (a long start-up sync): systemd waits at least ``seconds`` more
        beyond ``TimeoutStartSec=`` (``EXTEND_TIMEOUT_USEC``), optionally with a status line."""
        fields = [f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}"]
        if status is not None:
            fields.append(f"STATUS={_one_line(status)}")
        self._send(fields)

    def watchdog(self) -> None:
        """Keep-alive ping; call every :attr:`watchdog_interval` seconds (no-op without one)."""
        if self.watchdog_interval is not None:
            self._send(["WATCHDOG=1"])

    def close(self) -> None:
        """Close the socket; a later message opens a new one."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, fields: list[str]) -> None:
        address = self._address
        if address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._socket.setblocking(False)
            self._socket.sendto("\n".join(fields).encode(), address)
        except OSError as exc:
            # A full queue (BlockingIOError) or a vanished socket: drop the message.
            if not self._failure_logged:
                self._failure_logged = True
                logger.warning(
                    "cannot notify systemd at %r (%s); further failures are not logged",
                    address.replace("\0", "@", 1),
                    exc,
                )


def _socket_address(value: str) -> str | None:
    """``/path`` as is, ``@name`` as an abstract address (leading NUL); None otherwise."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value:
        logger.warning("ignoring unsupported NOTIFY_SOCKET address %r", value)
    return None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half the watchdog timeout in seconds, if the watchdog is meant for this process."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid.strip() != str(os.getpid()):
        return None
    return usec / 2 / 1_000_000


def _one_line(text: str) -> str:
    """A value cannot span lines: a newline would start another assignment."""
    return " ".join(text.splitlines())
