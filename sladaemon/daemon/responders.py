"""Where people answer pages: the ack page and API (``ack:``) with the silences API beside it,
and Slack's Acknowledge and Escalate buttons — clicks posted to the interactivity route, or
received over Socket Mode (``daemon.slack.socket_mode``). All of them act through the
ChainRunner (the AckDesk).

The routes are served beside ``/metrics`` on ``daemon.http.listen``, or on their own address
(``ack.listen``); the App owns the listeners. Socket Mode connects at start: a connection that
fails is logged and told to the operator, and the daemon runs on (the links, CLI and API still
take acks).
"""

from __future__ import annotations

import time

from aiohttp import web

from sladaemon.clock import Clock
from sladaemon.config import Config
from sladaemon.daemon.ack_http import AckPages
from sladaemon.daemon.silence_http import silence_routes
from sladaemon.daemon.slack_interactions import SlackClicks, slack_routes
from sladaemon.daemon.slack_socket import SlackSocket
from sladaemon.escalate.chain_runner import ChainRunner, OperatorAlert
from sladaemon.escalate.silence_store import SilenceStore
from sladaemon.logs import get_logger
from sladaemon.metrics import DaemonMetrics, SilenceCollector
from sladaemon.notify.slack_app import SlackApp


class Responders:
    def __init__(
        self,
        config: Config,
        chains: ChainRunner,
        slack: SlackApp | None,
        metrics: DaemonMetrics,
        clock: Clock,
        operator_alert: OperatorAlert,
        silences: SilenceStore,
    ) -> None:
        self.chains = chains
        self.operator_alert = operator_alert
        self.log = get_logger("sladaemon.responders")
        ack = config.settings.ack
        self.listen = ack.listen if ack is not None else None  # None: beside /metrics
        self.routes: list[web.RouteDef] = AckPages(chains, metrics).routes() if ack else []
        self.silences = silences
        metrics.add_collector(SilenceCollector(lambda: self.silences.counts(clock.now())))
        if ack:
            tokens = lambda: chains.config.settings.ack  # noqa: E731 - the config of the moment
            self.routes += silence_routes(tokens, self.silences, metrics, clock)
        self.clicks: SlackClicks | None = None
        self.socket: SlackSocket | None = None
        cfg = config.daemon.slack
        if slack is None or cfg is None:
            return
        if cfg.socket_mode and cfg.app_token is not None:
            self.clicks = SlackClicks(chains, slack, self.person_of, metrics, clock)
            self.socket = SlackSocket(cfg.app_token.get_secret_value(), cfg.api_url, self.clicks)
        elif cfg.signing_secret is not None:
            secret = cfg.signing_secret.get_secret_value()
            routes, self.clicks = slack_routes(
                chains, slack, secret, self.person_of, metrics, clock
            )
            self.routes += routes

    def person_of(self, slack_user: str, slack_name: str) -> str:
        """Who clicked: the person whose ``slack:`` is the user's id, else the Slack name."""
        person = self.chains.config.roster.person_by_slack(slack_user)
        return person.name if person is not None else slack_name or slack_user

    async def start(self) -> None:
        if self.socket is None:
            return
        try:
            await self.socket.start()
        except Exception as exc:  # the daemon runs on: links, the CLI and the API still ack
            error = f"{type(exc).__name__}: {exc}"
            self.log.error("slack_socket_failed", error=error)
            self.operator_alert(
                "slack_socket_failed",
                "slack",
                f"Slack Socket Mode could not connect: {error}; Slack buttons do not work",
                time.time(),
            )

    async def stop(self) -> None:
        if self.socket is not None:
            await self.socket.stop()
        elif self.clicks is not None:
            await self.clicks.settle()
