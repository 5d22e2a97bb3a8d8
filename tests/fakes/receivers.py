"""Stand-alone notification receivers that record what they are sent, for end-to-end tests.

Run one per process::

    python -m tests.fakes.receivers webhook --port P --out FILE [--mode ok|fail|hang|slow]
    python -m tests.fakes.receivers smtp --port P --out FILE

Every message received is appended to FILE as one JSON line, written, flushed and fsync'd
before the sender gets its answer, so a reader in another process sees it at once and a
killed receiver loses nothing it acknowledged. ``received_at`` is ISO 8601 UTC with
microseconds.

Once listening, the receiver prints ``READY <port>`` on stdout (``--port 0`` picks a free
port) and nothing else there. It exits with status 0 on SIGTERM or SIGINT, and with
:data:`EXIT_ADDRESS_IN_USE` when the port cannot be bound yet.

The webhook records every POST to any path as
``{"received_at", "method", "path", "query", "headers", "body", "status"}``, where ``body``
is the parsed JSON (or the text when it is not JSON) and ``status`` is the answer given:
200 in mode ``ok`` (after ``SLOW_SECONDS`` in mode ``slow``: the message is taken, but later
than a sender waits), 500 with an HTML error page in mode ``fail``, and ``null`` in mode
``hang``, where the request is never answered and its connection is dropped when a mode
is set or the receiver stops. ``GET /_control`` returns ``{"mode": ...}``;
``POST /_control`` with ``{"mode": ...}`` changes it.

The SMTP server speaks plain SMTP (no TLS, no authentication) and records every message
as ``{"received_at", "mail_from", "rcpt_tos", "subject", "body", "html", "headers"}``,
with the subject decoded from its MIME encoding, ``body`` the decoded text/plain part and
``html`` the decoded text/html part or ``null``; line endings are ``\n``, and a body ends
with the newline it had on the wire.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web
from aiosmtpd.smtp import SMTP

CONTROL_PATH = "/_control"
EXIT_ADDRESS_IN_USE = 75
FAIL_PAGE = """<!DOCTYPE html>
<html>
<head><title>500 Internal Server Error</title></head>
<body>
<h1>Internal Server Error</h1>
<p>The webhook receiver is in fail mode.</p>
</body>
</html>
"""


SLOW_SECONDS = 7.0  # longer than the receiver timeout of the end-to-end configs (5 s)


class WebhookMode(StrEnum):
    """How the webhook answers the messages posted to it."""

    OK = "ok"
    FAIL = "fail"
    HANG = "hang"
    SLOW = "slow"  # takes the message, answers 200 only after SLOW_SECONDS


def utc_now_iso() -> str:
    """The current time as ISO 8601 UTC with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class RecordLog:
    """An append-only JSON-lines file, each line on disk before :meth:`append` returns."""

    def __init__(self, path: Path) -> None:
        self._file: TextIO = path.open("a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class Webhook:
    """Request handlers for the recording webhook and its control endpoint."""

    def __init__(self, log: RecordLog, mode: WebhookMode) -> None:
        self._log = log
        self.mode = mode
        self._release_hung = asyncio.Event()

    def set_mode(self, mode: WebhookMode) -> None:
        self.mode = mode
        self.release_hung()

    def release_hung(self) -> None:
        """End the requests left hanging so far: their connections are dropped unanswered."""
        self._release_hung.set()
        self._release_hung = asyncio.Event()

    async def receive(self, request: web.Request) -> web.StreamResponse:
        received_at = utc_now_iso()
        text = (await request.read()).decode("utf-8", errors="replace")
        mode, release = self.mode, self._release_hung
        status = {
            WebhookMode.OK: 200,
            WebhookMode.FAIL: 500,
            WebhookMode.HANG: None,
            WebhookMode.SLOW: 200,
        }[mode]
        self._log.append(
            {
                "received_at": received_at,
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "headers": dict(request.headers),
                "body": parse_body(text),
                "status": status,
            }
        )
        if mode is WebhookMode.SLOW:
            await asyncio.sleep(SLOW_SECONDS)
        if mode in (WebhookMode.OK, WebhookMode.SLOW):
            return web.json_response({"status": "ok"})
        if mode is WebhookMode.FAIL:
            return web.Response(status=500, text=FAIL_PAGE, content_type="text/html")
        await release.wait()
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=204)  # never sent: the connection is already gone

    async def control(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                payload = await request.json()
                self.set_mode(WebhookMode(payload["mode"]))
            except (ValueError, KeyError, TypeError):
                modes = ", ".join(mode.value for mode in WebhookMode)
                return web.json_response(
                    {"error": f'expected {{"mode": one of {modes}}}'}, status=400
                )
        return web.json_response({"mode": self.mode.value})


def parse_body(text: str) -> Any:
    """The body as JSON when it parses, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class MailRecorder:
    """An aiosmtpd handler that records every message it accepts."""

    def __init__(self, log: RecordLog) -> None:
        self._log = log

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        received_at = utc_now_iso()
        content = bytes(envelope.content).replace(b"\r\n", b"\n")
        message = BytesParser(_class=EmailMessage, policy=default_policy).parsebytes(content)
        self._log.append(
            {
                "received_at": received_at,
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "subject": str(message.get("Subject", "")),
                "body": text_part(message, "plain") or "",
                "html": text_part(message, "html"),
                "headers": {name: str(value) for name, value in message.items()},
            }
        )
        return "250 Message accepted for delivery"


def text_part(message: EmailMessage, subtype: str) -> str | None:
    """The decoded text/<subtype> body of a message, or None when it has none."""
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    return str(part.get_content())


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port, bindable again right after a restart."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def announce_ready(sock: socket.socket) -> None:
    print(f"READY {sock.getsockname()[1]}", flush=True)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def serve_webhook(sock: socket.socket, log: RecordLog, mode: WebhookMode) -> None:
    stop = stop_on_signals()
    webhook = Webhook(log, mode)
    app = web.Application()
    app.router.add_route("GET", CONTROL_PATH, webhook.control)
    app.router.add_route("POST", CONTROL_PATH, webhook.control)
    app.router.add_route("POST", "/{tail:.*}", webhook.receive)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        announce_ready(sock)
        await stop.wait()
        webhook.release_hung()
    finally:
        await runner.cleanup()


async def serve_smtp(sock: socket.socket, log: RecordLog) -> None:
    stop = stop_on_signals()
    recorder = MailRecorder(log)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(recorder, hostname="sladaemon-test-receiver"), sock=sock
    )
    async with server:
        announce_ready(sock)
        await stop.wait()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.receivers",
        description="Record the notifications sent to a webhook or SMTP server.",
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    webhook = kinds.add_parser("webhook", help="HTTP server recording every POST")
    smtp = kinds.add_parser("smtp", help="plain SMTP server recording every message")
    for sub in (webhook, smtp):
        sub.add_argument("--port", type=int, required=True, help="0 picks a free port")
        sub.add_argument("--out", type=Path, required=True, help="JSON-lines file to append to")
        sub.add_argument("--host", default="127.0.0.1")
    webhook.add_argument(
        "--mode", type=WebhookMode, choices=list(WebhookMode), default=WebhookMode.OK
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        sock = listening_socket(args.host, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_ADDRESS_IN_USE if exc.errno == errno.EADDRINUSE else 1
    log = RecordLog(args.out)
    try:
        if args.kind == "webhook":
            asyncio.run(serve_webhook(sock, log, args.mode))
        else:
            asyncio.run(serve_smtp(sock, log))
    finally:
        log.close()
        with contextlib.suppress(OSError):
            sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
