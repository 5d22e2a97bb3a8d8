"""``python -m tests.fakes <helpdesk> [--host H] [--port P]``: run a fake helpdesk (or Slack)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import socket
import sys

from aiohttp import web


async def serve(helpdesk: str, host: str, port: int) -> None:
    module = importlib.import_module(f"tests.fakes.{helpdesk}")
    app: web.Application = module.make_app()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    print(f"READY {sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    with contextlib.suppress(OSError):
        sock.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes")
    parser.add_argument("helpdesk", help="zendesk | zammad | freshdesk | rt | jira | slack")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.helpdesk, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
