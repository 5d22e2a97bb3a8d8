"""Command line: ``sladaemon run | once | notify-test | check | explain | ack | unack |
silence | routes | backtest | report | state | import | simulate | oncall | init | completion``.

Exit codes: 0 success, 1 failure while running, 2 bad input (config, files, arguments), each
with one line saying what is wrong. The config is ``--config FILE`` (``-``: stdin), else
``$SLADAEMON_CONFIG``, else ``/etc/sladaemon/config.yaml``. ``--json`` means the same wherever
it is offered: the command's result as JSON on stdout, and nothing else on stdout. A file a
command reads or writes may be ``-`` for stdin or stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sladaemon import __version__
from sladaemon.config import Config, load_config
from sladaemon.config.yamlfile import MAX_FILE_BYTES
from sladaemon.errors import (
    AckSetupError,
    ConfigError,
    EventLogError,
    ListenError,
    StateFileError,
    StateLockedError,
)
from sladaemon.escalate.silences import SilenceError
from sladaemon.eventlog import EventLog, parse_timestamp, read_events
from sladaemon.model import EARLIEST, LATEST, Metric, SlaEvent, SlaEventKind, TicketEvent
from sladaemon.sla.backtest import backtest, format_compliance
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.explain import explain_json, explain_text, iso

if TYPE_CHECKING:
    from sladaemon.escalate.routing import Route, RouteMatch
    from sladaemon.predict.backtest import PredictiveBacktest
    from sladaemon.predict.curves import CurveReport
    from sladaemon.report.kpi import KpiReport

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_CONFIG = Path("/etc/sladaemon/config.yaml")
CONFIG_ENV = "SLADAEMON_CONFIG"
STDIN = "-"  # as a file to read: stdin; as a file to write: stdout
STDIN_NAME = "<stdin>"
MAX_SIMULATED_DAYS = 3650
FILE_COMPLETION = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}  # shtab.FILE


class UsageError(Exception):
    """A problem with the arguments given on the command line."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if hasattr(args, "config"):
            args.config = _config_source(args.config)
        if args.command == "run" and args.config == STDIN:
            raise UsageError("run reloads its config on SIGHUP: give --config FILE, not -")
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print(f"config error{'s' if len(exc.issues) > 1 else ''}:", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except (EventLogError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SilenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AckSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (StateLockedError, StateFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # stdout closed early (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:  # a file the command was given cannot be read or written
        print(f"error: {_os_error(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def _os_error(exc: OSError) -> str:
    """``exc`` as one line: what went wrong, and with which file."""
    what = exc.strerror or str(exc)
    return f"{exc.filename}: {what}" if exc.filename else what


# ---------------------------------------------------------------------------- arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sladaemon",
        description="SLA monitoring and escalation for helpdesks.",
        epilog=f"The config is --config FILE, else ${CONFIG_ENV}, else {DEFAULT_CONFIG}. "
        "Exit codes: 0 success, 1 failure while running, 2 bad input.",
    )
    parser.add_argument("--version", action="version", version=f"sladaemon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT (SIGHUP reloads)")
    _config_option(p, stdin=False)
    _log_format_option(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("once", help="one poll, evaluation and delivery pass, then exit")
    _config_option(p)
    _log_format_option(p)
    p.set_defaults(func=cmd_once)

    p = sub.add_parser("notify-test", help="send a test message to a receiver")
    _config_option(p)
    p.add_argument("receiver", help="name of a receiver in the config")
    p.set_defaults(func=cmd_notify_test)

    p = sub.add_parser("check", help="validate a config file (exit 0, or 2 listing every error)")
    _config_option(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("explain", help="show how a ticket's SLA deadlines were computed")
    _config_option(p)
    _events_option(p, "normalized event CSV, - for stdin (default: the daemon's state)")
    p.add_argument("ticket_id", help="the ticket to explain")
    p.add_argument(
        "--at", metavar="ISO", help="evaluate at this ISO 8601 instant (default: end of history)"
    )
    p.add_argument(
        "--source",
        metavar="NAME",
        help="with --events: the csv source whose status mapping applies; without: the source "
        "whose tickets the daemon keeps in its state file",
    )
    _json_option(p, "the explanation")
    p.set_defaults(func=cmd_explain)

    for name, undo in (("ack", False), ("unack", True)):
        p = sub.add_parser(
            name,
            help="take back an acknowledgement: the chain goes on"
            if undo
            else "acknowledge a ticket's escalation chains: their remaining steps are not sent",
        )
        _config_option(p, stdin=False)
        p.add_argument("ticket_id", help="the ticket")
        p.add_argument("--source", metavar="NAME", help="the source of the ticket (default: any)")
        p.add_argument(
            "--metric", choices=[m.value for m in Metric], help="only this metric's chains"
        )
        p.add_argument(
            "--by", metavar="NAME", help="who (default: the login name, $USER)", default=None
        )
        if not undo:
            p.add_argument("--note", metavar="TEXT", default="", help="a note for the audit trail")
        _json_option(p, "the outcome")
        p.set_defaults(func=cmd_ack, undo=undo)

    p = sub.add_parser("silence", help="silence notifications for a while: add, list, expire")
    p.set_defaults(func=cmd_silence, action=None)
    actions = p.add_subparsers(dest="action", metavar="ACTION", help="add, list or expire")
    a = actions.add_parser("add", help="silence notifications whose labels match every matcher")
    _config_option(a, stdin=False)
    a.add_argument(
        "matchers",
        nargs="*",
        metavar="MATCHER",
        help='queue=billing, priority=~"low|normal", team!=ops, ... (all must match)',
    )
    until = a.add_mutually_exclusive_group(required=True)
    until.add_argument("--for", dest="lasting", metavar="DURATION", help="e.g. 2h, 3d (1m-30d)")
    until.add_argument("--until", metavar="ISO", help="until this ISO 8601 instant")
    a.add_argument("--from", dest="starts", metavar="ISO", help="from this instant (default: now)")
    a.add_argument("--comment", required=True, metavar="TEXT", help="why (shown in the list)")
    a.add_argument("--by", metavar="NAME", help="who (default: the login name, $USER)")
    _json_option(a, "the new silence")
    a = actions.add_parser("list", help="the active and pending silences")
    _config_option(a, stdin=False)
    a.add_argument("--all", action="store_true", help="expired silences too (kept 5 days)")
    _json_option(a, "the silences")
    a = actions.add_parser("expire", help="end a silence now")
    _config_option(a, stdin=False)
    a.add_argument("silence_id", metavar="ID", help="the silence (its id from silence list)")
    a.add_argument("--by", metavar="NAME", help="who (default: the login name, $USER)")
    _json_option(a, "the expired silence")

    p = sub.add_parser("routes", help="where the routing tree sends notifications: test")
    p.set_defaults(func=cmd_routes, action=None)
    actions = p.add_subparsers(dest="action", metavar="ACTION", help="test")
    a = actions.add_parser("test", help="the targets a notification with these labels goes to")
    _config_option(a)
    a.add_argument(
        "labels", nargs="*", metavar="LABEL=VALUE", help="e.g. queue=billing priority=urgent"
    )
    a.add_argument("--tree", action="store_true", help="also print the matching routes")
    _json_option(a, "the matches with their group keys")

    p = sub.add_parser(
        "backtest",
        help="replay a history: SLA events, compliance table, prediction against fixed thresholds",
    )
    _config_option(p)
    _events_option(p, "normalized event CSV, - for stdin", required=True)
    _file_option(p, "--out", "write the SLA events as JSON lines to FILE (- for stdout)")
    _file_option(
        p,
        "--curve",
        "write breach prediction against every fixed threshold (precision and lead curves) "
        "as an HTML page to FILE",
    )
    p.add_argument("--until", metavar="ISO", help="stop the replay at this ISO 8601 instant")
    p.add_argument("--source", metavar="NAME", help="csv source whose status mapping applies")
    p.add_argument("--strict", action="store_true", help="reject the file if any row is bad")
    _json_option(p, "the summary (SLA events, compliance, prediction quality and curves)")
    p.add_argument("--no-predict", action="store_true", help="skip breach prediction")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("report", help="support KPIs over a period: table, JSON or HTML")
    _config_option(p)
    _events_option(p, "normalized event CSV, - for stdin (default: the daemon's state)")
    p.add_argument(
        "--source", metavar="NAME", help="csv mapping (with --events) or the daemon source to read"
    )
    p.add_argument(
        "--period",
        default="7d",
        metavar="PERIOD",
        help="length of the period, a duration with days and weeks allowed: 7d, 2w, 1d12h, "
        "36h (default: 7d)",
    )
    p.add_argument(
        "--until", metavar="ISO", help="end of the period (default: end of history, or now)"
    )
    p.add_argument(
        "--timezone", metavar="ZONE", help="zone for days (default: the first calendar's)"
    )
    p.add_argument(
        "--format",
        choices=["table", "json", "html"],
        default="table",
        help="table (default), json or html (a page with inline SVG charts)",
    )
    _json_option(p, "the report (--format json)")
    _file_option(p, "--out", "write the report to FILE instead of stdout (- for stdout)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("state", help="check the daemon's state file, or restore its backup")
    _config_option(p)
    p.add_argument(
        "action",
        choices=["check", "restore"],
        help="check: the state file and its backup; restore: the backup in its place",
    )
    p.set_defaults(func=cmd_state)

    p = sub.add_parser("simulate", help="write a synthetic history from the built-in simulator")
    _file_argument(p, "output", "the event CSV to write, - for stdout")
    p.add_argument(
        "--start", metavar="ISO", default="2026-01-05T00:00:00Z", help="ISO 8601 start instant"
    )
    p.add_argument(
        "--days", metavar="N", type=float, default=14.0, help="days to simulate (default: 14)"
    )
    p.add_argument("--seed", metavar="N", type=int, default=7, help="random seed (default: 7)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("import", help="convert a public ticket log to the normalized CSV")
    p.add_argument(
        "--format",
        required=True,
        metavar="FORMAT",
        help="the log's format: helpdesk-italian | bpic2013 | servicenow",
    )
    _file_argument(p, "input", "the log to read, - for stdin")
    _file_argument(p, "output", "the event CSV to write (.gz: compressed), - for stdout")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("oncall", help="who is on call for each schedule, and until when")
    _config_option(p)
    p.add_argument("schedule", nargs="?", metavar="SCHEDULE", help="one schedule (default: all)")
    p.add_argument("--at", metavar="ISO", help="at this ISO 8601 instant (default: now)")
    _json_option(p, "the answers")
    p.set_defaults(func=cmd_oncall)

    p = sub.add_parser(
        "board-password",
        help="print the argon2 hash of a password for board.accounts (read from stdin, or asked)",
    )
    p.set_defaults(func=cmd_board_password)

    p = sub.add_parser("init", help="write a commented starter config")
    _file_argument(p, "path", "where to write it (default: - for stdout)", nargs="?", default="-")
    p.add_argument("--force", action="store_true", help="replace PATH if it exists")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("completion", help="print a shell completion script")
    p.add_argument(
        "shell",
        choices=["bash", "zsh", "tcsh"],
        help="e.g. sladaemon completion bash > /etc/bash_completion.d/sladaemon",
    )
    p.set_defaults(func=cmd_completion)
    return parser


def _config_option(p: argparse.ArgumentParser, *, stdin: bool = True) -> None:
    _file_option(
        p,
        "--config",
        f"config file{', - for stdin' if stdin else ''} (default: ${CONFIG_ENV}, "
        f"else {DEFAULT_CONFIG})",
        short="-c",
    )


def _log_format_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default="auto",
        help="auto (default): JSON lines unless stdout is a terminal; json; console (readable)",
    )


def _json_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--json", action="store_true", help=f"print {what} as JSON on stdout, and nothing else"
    )


def _events_option(p: argparse.ArgumentParser, help_text: str, required: bool = False) -> None:
    _file_option(p, "--events", help_text, required=required)


def _file_option(
    p: argparse.ArgumentParser,
    flag: str,
    help_text: str,
    short: str | None = None,
    required: bool = False,
) -> None:
    flags = [short, flag] if short else [flag]
    action = p.add_argument(*flags, metavar="FILE", required=required, help=help_text)
    action.complete = FILE_COMPLETION  # type: ignore[attr-defined]


def _file_argument(p: argparse.ArgumentParser, name: str, help_text: str, **kw: Any) -> None:
    action = p.add_argument(name, metavar=name.upper(), help=help_text, **kw)
    action.complete = FILE_COMPLETION  # type: ignore[attr-defined]


def _config_source(given: str | None) -> str:
    """The config to read: ``--config``, else ``$SLADAEMON_CONFIG``, else the default path.
    A default that does not exist is a usage error that says how to give one."""
    if given:
        return given
    chosen = os.environ.get(CONFIG_ENV) or str(DEFAULT_CONFIG)
    if chosen != STDIN and not Path(chosen).exists():
        origin = f"${CONFIG_ENV}" if os.environ.get(CONFIG_ENV) else "the default config"
        raise UsageError(f"{origin} {chosen} does not exist; give --config FILE")
    return chosen


def _load(args: argparse.Namespace, *, secrets: bool = True) -> Config:
    """The config of a command; ``-`` reads it from stdin. Commands that only read load it
    with ``secrets=False`` (receiver URLs and source credentials are not needed)."""
    if args.config == STDIN:
        text = sys.stdin.read(MAX_FILE_BYTES + 1)
        if len(text) > MAX_FILE_BYTES:
            raise UsageError(f"--config -: larger than {MAX_FILE_BYTES // 1024} KiB")
        return load_config(STDIN_NAME, text=text, secrets=secrets)
    return load_config(args.config, secrets=secrets)


def _input_path(given: str) -> Path:
    """A file to read; ``-`` is stdin."""
    return Path("/dev/stdin") if given == STDIN else Path(given)


# ---------------------------------------------------------------------------- commands


def _setup_logging(cfg: Config, log_format: str = "auto") -> None:
    from sladaemon.logs import configure_logging

    json_output = {"auto": None, "json": True, "console": False}[log_format]
    configure_logging(cfg.daemon.log_level, json_output=json_output, secrets=cfg.secrets())


def _check_state(cfg: Config) -> None:
    """Refuse (exit 2, at ``daemon.state``'s line) a state file the daemon cannot write."""
    from sladaemon.store.lock import unusable_state

    problem = unusable_state(cfg.daemon.state)
    if problem:
        raise ConfigError([cfg.issue(("daemon", "state"), problem)])


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from sladaemon.daemon.app import App
    from sladaemon.daemon.staging import stage
    from sladaemon.daemon.systemd import SystemdNotifier
    from sladaemon.logs import get_logger

    cfg = load_config(args.config)
    stage(cfg).close()  # what check builds, refused the same way (exit 2)
    _check_state(cfg)
    _setup_logging(cfg, args.log_format)
    log = get_logger("sladaemon")
    _raise_open_files_limit()

    async def main_loop() -> None:
        app = App(cfg, systemd=SystemdNotifier())
        loop = asyncio.get_running_loop()
        interrupted = asyncio.Event()  # Ctrl-C at a terminal: a summary follows the stop

        def interrupt() -> None:
            interrupted.set()
            app.stop()

        loop.add_signal_handler(signal.SIGTERM, app.stop)
        loop.add_signal_handler(signal.SIGINT, interrupt)
        loop.add_signal_handler(signal.SIGHUP, app.request_reload, str(args.config))
        await app.run()
        if interrupted.is_set():
            from sladaemon.daemon.summary import format_summary, summarize

            print(format_summary(summarize(app, args.config)))

    try:
        asyncio.run(main_loop())
    except (StateLockedError, StateFileError):
        raise
    except ListenError as exc:  # a daemon nobody can scrape must not look healthy
        print(f"error: {exc}", file=sys.stderr)
        _exit_now(EXIT_FAILED)
    except Exception:
        log.exception("daemon_crashed")
        _exit_now(EXIT_FAILED)
    _exit_now(EXIT_OK)


def _exit_now(code: int) -> NoReturn:
    """Exit once the daemon has stopped and its state is flushed, without waiting for threads
    still blocked on a hung receiver (apprise's thread pools are joined at interpreter exit,
    which would hold the stop up to the receiver's timeout; the send it was making stays owed
    in the state file and goes out again, flagged, after a restart)."""
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _raise_open_files_limit() -> None:
    """Lift the soft limit on open files to the hard one (systemd starts services at 1024), so
    many receivers, sources and HTTP clients at once do not run out of descriptors."""
    import contextlib
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):  # an unlimited hard limit cannot be the soft
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cmd_once(args: argparse.Namespace) -> int:
    import asyncio

    from sladaemon.daemon.app import App
    from sladaemon.daemon.staging import stage
    from sladaemon.logs import get_logger, writes_json

    cfg = _load(args)
    stage(cfg).close()  # what check builds, refused the same way (exit 2)
    _check_state(cfg)
    _setup_logging(cfg, args.log_format)
    app = App(cfg, serve_http=False)
    counts = asyncio.run(app.once())
    for name, error in app.failed_sources.items():
        print(f"error: source {name}: {error}", file=sys.stderr)
    if writes_json():  # stdout is the JSON log: the summary is a line of it
        get_logger("sladaemon").info("once_finished", **counts)
    else:
        print(
            f"{counts['tickets']} open tickets; {counts['sent']} notifications sent, "
            f"{counts['failed']} failed (kept for the next run)"
        )
    return EXIT_OK if counts["failed"] == 0 and not app.failed_sources else EXIT_FAILED


def cmd_notify_test(args: argparse.Namespace) -> int:
    import asyncio

    from sladaemon.daemon.slack_interactions import slack_app
    from sladaemon.model import NotificationKind
    from sladaemon.notify.apprise_notifier import AppriseNotifier
    from sladaemon.notify.message import operator_payload, render

    cfg = _load(args)
    if args.receiver not in cfg.receivers:
        known = ", ".join(sorted(cfg.receivers)) or "none defined"
        raise UsageError(f"no receiver {args.receiver!r} in {args.config} ({known})")
    notifier = AppriseNotifier(cfg.receivers, slack=slack_app(cfg))
    now = datetime.now(UTC)
    payload = operator_payload(
        f"test/{args.receiver}/{now.isoformat()}",
        f"test message from sladaemon to receiver {args.receiver}",
        now,
    )
    payload["kind"] = NotificationKind.TEST.value
    message = render(payload, None)

    async def send_all() -> list[tuple[int, bool, str]]:
        results = []
        for target in range(notifier.targets(args.receiver)):
            outcome = await notifier.send(args.receiver, target, message)
            results.append((target, outcome.delivered, outcome.error))
        return results

    try:
        results = asyncio.run(send_all())
    finally:
        notifier.close(wait=False)
    for target, delivered, error in results:
        print(
            f"{args.receiver} url {target + 1}: "
            + ("delivered" if delivered else f"FAILED: {error}")
        )
    return EXIT_OK if all(ok for _, ok, _ in results) else EXIT_FAILED


def cmd_check(args: argparse.Namespace) -> int:
    """Load the config and build from it what ``run`` and a reload build (``stage``)."""
    from sladaemon.daemon.staging import stage

    cfg = _load(args)
    stage(cfg).close()
    print(
        f"{cfg.path}: ok — {len(cfg.calendars)} calendars, {len(cfg.policies)} policies, "
        f"{len(cfg.receivers)} receivers, {len(cfg.sources)} sources, {len(cfg.reports)} reports"
    )
    return EXIT_OK


def _read_log(cfg: Config, args: argparse.Namespace, strict: bool = False) -> EventLog:
    if args.source and args.source not in cfg.sources:
        raise UsageError(f"no source {args.source!r} in {cfg.path}")
    log = read_events(_input_path(args.events), cfg.status_map(args.source), strict=strict)
    for issue in log.issues[:20]:
        print(f"{args.events}:{issue.line}: skipped: {issue.message}", file=sys.stderr)
    if len(log.issues) > 20:
        print(f"{args.events}: ... {len(log.issues) - 20} more rows skipped", file=sys.stderr)
    for status in sorted(log.unknown_statuses):
        print(f"{args.events}: unknown status {status!r} counted as open", file=sys.stderr)
    return log


def _instant(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def cmd_explain(args: argparse.Namespace) -> int:
    cfg = _load(args, secrets=False)
    if args.events is not None:
        log = _read_log(cfg, args)
        events = log.tickets.get(args.ticket_id)
        if not events:
            raise UsageError(f"ticket {args.ticket_id!r} is not in {args.events}")
        end = max(e[-1].at for e in log.tickets.values())
    else:
        events, end, quarantined = _events_from_state(cfg, args.source, args.ticket_id)
        for reason in quarantined:
            print(f"quarantined by the daemon: {reason}", file=sys.stderr)
        events = [e for e in events if EARLIEST <= e.at < LATEST]  # as the daemon reads them
        if not events:
            return EXIT_FAILED
    at = _instant(args.at, "--at") or end
    replay = TicketReplay(args.ticket_id, cfg.policies)
    try:
        for event in events:
            if event.at <= at:
                replay.feed(event)
        if not replay.events:
            raise UsageError(f"ticket {args.ticket_id!r} was created after {iso(at)}")
        evaluation = replay.evaluate(at)
    except (ValueError, OverflowError, ArithmeticError) as exc:
        print(f"ticket {args.ticket_id!r} cannot be evaluated: {exc}", file=sys.stderr)
        return EXIT_FAILED
    trail = _audit_from_state(cfg, args.source, args.ticket_id) if args.events is None else []
    predicted = (
        _predicted_from_state(cfg, args.source, args.ticket_id) if args.events is None else []
    )
    if args.json:
        extra = {"predicted": predicted} if predicted else {}
        print(json.dumps(explain_json(evaluation) | {"escalation": trail} | extra, indent=2))
    else:
        print(explain_text(evaluation, cfg.calendars))
        if predicted:
            print("\npredicted breaches (as the daemon sent them):")
            print("\n".join(_predicted_lines(predicted)))
        if trail:
            print("\nescalation (who was paged, who acknowledged):")
            print("\n".join(f"  {_audit_line(entry)}" for entry in trail))
    return EXIT_OK


def _predicted_lines(predicted: list[dict[str, Any]]) -> list[str]:
    lines = []
    for p in predicted:
        lines.append(f"  {p['at']}  {p['metric']} (cycle {p['cycle']}): {p['probability']} likely")
        if p["threshold_why"]:
            lines.append(f"    warns at: {p['threshold_why']}")
        if p["reason"]:
            lines.append(f"    why: {p['reason']}")
    return lines


def _predicted_from_state(cfg: Config, source: str | None, ticket_id: str) -> list[dict[str, Any]]:
    """The ticket's predicted breaches as the daemon queued them (probability, the threshold in
    force and how it was chosen, the reasons), oldest first."""
    from sladaemon.model import NotificationKind
    from sladaemon.store.sqlite import StateStore

    store = StateStore(cfg.daemon.state)
    try:
        payloads = [
            payload
            for name in ([source] if source else sorted(cfg.sources))
            for payload in store.payloads_of(
                f"{name}/{ticket_id}/", NotificationKind.PREDICTED_BREACH.value
            )
        ]
    finally:
        store.close()
    fields = ("at", "metric", "cycle", "probability", "threshold", "threshold_why", "reason")
    return sorted(
        ({name: payload.get(name, "") for name in fields} for payload in payloads),
        key=lambda p: str(p["at"]),
    )


def _audit_from_state(cfg: Config, source: str | None, ticket_id: str) -> list[dict[str, str]]:
    """The ticket's escalation audit trail from the daemon's state file, oldest first."""
    from sladaemon.calendar import from_us
    from sladaemon.escalate.chain_store import ChainStore
    from sladaemon.store.sqlite import StateStore

    store = StateStore(cfg.daemon.state)
    try:
        entries = ChainStore(store).audit(source, ticket_id)
    finally:
        store.close()
    return [
        {
            "at": iso(from_us(e.at_us)) or "",
            "chain": e.chain,
            "action": e.action,
            "who": e.actor,
            "via": e.via,
            "detail": e.detail,
        }
        for _, e in entries
    ]


def _audit_line(e: dict[str, str]) -> str:
    """``paged alice 02:00:00 via person:alice (oncall:l1)``, ``acked by alice ... via link``."""
    what = e["chain"].split("/", 2)[-1]  # metric/cycle/level
    at = e["at"].replace("T", " ").removesuffix("Z") + " UTC"
    action = {"acked": "acked by", "unacked": "unacked by", "escalated": "escalated by"}.get(
        e["action"], e["action"]
    )
    line = f"{at}  {what}: {action}"
    if e["who"]:
        line += f" {e['who']}"
    if e["via"]:
        line += f" via {e['via']}"
    if e["detail"]:
        line += f" ({e['detail']})"
    return line


def _events_from_state(
    cfg: Config, source: str | None, ticket_id: str
) -> tuple[list[TicketEvent], datetime, list[str]]:
    """A ticket's events as the daemon stored them (for sources without an event file), and
    why the daemon quarantined input of it, if it did."""
    from sladaemon.store.sqlite import StateStore

    if source is None or source not in cfg.sources:
        known = ", ".join(sorted(cfg.sources)) or "none"
        raise UsageError(f"give --events, or --source naming one of the config's sources ({known})")
    if not cfg.daemon.state.exists():
        raise UsageError(f"no daemon state at {cfg.daemon.state}")
    store = StateStore(cfg.daemon.state)
    try:
        events = store.load_events(source, ticket_id).get(ticket_id)
        quarantined = store.quarantined(source, ticket_id)
        now = store.simulated_time() or datetime.now(UTC)
    finally:
        store.close()
    if not events and quarantined:
        return [], now, quarantined
    if not events:
        raise UsageError(f"ticket {ticket_id!r} of source {source!r} is not in the daemon state")
    events.sort(key=lambda e: e.at)
    return events, now, quarantined


def cmd_ack(args: argparse.Namespace) -> int:
    """``ack`` / ``unack``: through the daemon's API when it runs, else in the state file."""
    import asyncio
    import getpass

    from sladaemon.daemon.acking import ack_ticket

    cfg = _load(args)
    by = args.by or os.environ.get("USER") or getpass.getuser()
    outcome = asyncio.run(
        ack_ticket(
            cfg,
            args.ticket_id,
            source=args.source,
            metric=Metric(args.metric) if args.metric else None,
            by=by,
            note=getattr(args, "note", ""),
            undo=args.undo,
        )
    )
    if args.json:
        print(json.dumps({"ok": outcome.ok, "message": outcome.message, "chains": outcome.chains}))
    else:
        print(outcome.message, file=sys.stdout if outcome.ok else sys.stderr)
    return EXIT_OK if outcome.ok else EXIT_FAILED


def cmd_silence(args: argparse.Namespace) -> int:
    """``silence add | list | expire``: through the daemon's API when it runs, else in the
    state file."""
    import asyncio

    from sladaemon.daemon import silencing
    from sladaemon.texttable import aligned

    if args.action is None:
        raise UsageError("silence: give add, list or expire")
    cfg = _load(args, secrets=True)
    if args.action == "add":
        if not args.matchers:
            raise UsageError("silence add: give a matcher, e.g. queue=billing")
        request = {
            "matchers": args.matchers,
            "for": args.lasting,
            "ends_at": _iso(_instant(args.until, "--until")),
            "starts_at": _iso(_instant(args.starts, "--from")),
            "comment": args.comment,
            "created_by": _login(args.by),
        }
        made = asyncio.run(silencing.add_silence(cfg, request))
        print(json.dumps(made, indent=2) if args.json else made["id"])
        return EXIT_OK
    if args.action == "expire":
        ended = asyncio.run(silencing.expire_silence(cfg, args.silence_id, _login(args.by)))
        print(json.dumps(ended, indent=2) if args.json else f"silence {ended['id']} expired")
        return EXIT_OK
    listed = asyncio.run(silencing.list_silences(cfg, include_expired=args.all))
    if args.json:
        print(json.dumps({"silences": listed}, indent=2))
    elif not listed:
        print("no silences" if args.all else "no active or pending silences")
    else:
        rows = [["ID", "MATCHERS", "FROM", "UNTIL", "BY", "COMMENT", "STATE"]]
        rows += [_silence_row(s) for s in listed]
        print("\n".join(aligned(rows, left=range(7))))
    return EXIT_OK


def _silence_row(s: dict[str, Any]) -> list[str]:
    matchers = ", ".join(s["matchers"])
    when = [_minute(s["starts_at"]), _minute(s["ends_at"])]
    return [s["id"], matchers, *when, s["created_by"], s["comment"], s["state"]]


def _login(given: str | None) -> str:
    import getpass

    return given or os.environ.get("USER") or getpass.getuser()


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _minute(iso_text: str) -> str:
    """An ISO instant as local ``2026-03-01 18:00 CET`` for a table."""
    return datetime.fromisoformat(iso_text).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def cmd_routes(args: argparse.Namespace) -> int:
    """``routes test``: the targets of the ``route:`` tree for some labels, comma-separated as
    ``amtool config routes test`` prints them."""
    from sladaemon.escalate.routing import RouteTree

    if args.action is None:
        raise UsageError("routes: give test")
    cfg = _load(args, secrets=False)
    if cfg.settings.route is None:
        raise UsageError(f"{cfg.path} has no route: tree")
    labels = _label_set(args.labels)
    tree = RouteTree.from_config(cfg.settings.route)
    matches = tree.match(labels)
    if args.json:
        shown = [_route_match_json(m, labels) for m in matches]
        print(json.dumps({"labels": labels, "matches": shown}, indent=2))
        return EXIT_OK
    if args.tree:
        print("Matching routes:")
        print("\n".join(_matching_tree(tree.root, labels)))
        print()
    print(",".join(m.receiver for m in matches))
    return EXIT_OK


def _label_set(given: list[str]) -> dict[str, str]:
    """``name=value`` arguments (Alertmanager's matcher syntax, ``=`` only) as labels."""
    from sladaemon.matchers import MatcherError, parse_matcher

    labels = {}
    for text in given:
        try:
            matcher = parse_matcher(text)
        except MatcherError as exc:
            raise UsageError(f"label {text!r}: {exc}") from None
        if matcher.op != "=":
            raise UsageError(f"label {text!r}: labels are given as name=value")
        labels[matcher.name] = matcher.value
    return labels


def _route_match_json(match: RouteMatch, labels: dict[str, str]) -> dict[str, Any]:
    from sladaemon.durations import format_duration

    return {
        "receiver": match.receiver,
        "route_key": match.key,
        "group_key": match.group_key(labels),
        "group_by": ["..."] if match.group_by_all else sorted(match.group_by),
        "group_wait": format_duration(match.group_wait),
        "group_interval": format_duration(match.group_interval),
        "repeat_interval": format_duration(match.repeat_interval),
        "mute_time_intervals": list(match.mute_calendars),
        "active_time_intervals": list(match.active_calendars),
    }


def _matching_tree(route: Route, labels: dict[str, str], depth: int = 0) -> list[str]:
    """The routes a notification passes through, indented; the final ones with a receiver,
    as ``amtool config routes test --tree`` draws them."""
    from sladaemon.matchers import format_matchers

    below: list[str] = []
    for child in route.routes:
        if child.takes(labels):
            below += _matching_tree(child, labels, depth + 1)
            if not child.continue_:
                break
    slug = format_matchers(list(route.matchers)) if route.matchers else "default-route"
    if not below:
        slug += f"  receiver: {route.settings.receiver}"
    return ["    " * depth + slug, *below]


def cmd_state(args: argparse.Namespace) -> int:
    """``check``: the state file and its backup; ``restore``: the backup in place of the state
    file (refused while a daemon holds it)."""
    from sladaemon.store.backup import backup_path, check, restore
    from sladaemon.store.lock import StateLock

    state = _load(args, secrets=False).daemon.state
    if args.action == "check":
        verdicts = {state: check(state), backup_path(state): check(backup_path(state))}
        for path, verdict in verdicts.items():
            print(f"{path}: {verdict}")
        return EXIT_OK if verdicts[state] == "ok" else EXIT_FAILED
    lock = StateLock(state)
    lock.acquire()
    try:
        kept = restore(state)
    finally:
        lock.release()
    print(f"{state}: restored from {backup_path(state)}")
    if kept is not None:
        print(f"the previous state file is kept as {kept}")
    return EXIT_OK


def cmd_backtest(args: argparse.Namespace) -> int:
    """SLA events as JSON lines to ``--out``; the summary as text, or as JSON with ``--json``
    (the text then goes to stderr, as it does when ``--out -`` takes stdout). With prediction,
    the summary compares it with every fixed threshold; ``--curve`` draws that as a page."""
    if args.json and args.out == STDIN:
        raise UsageError("--out - and --json both write to stdout: give --out FILE")
    cfg = _load(args, secrets=False)
    if not cfg.policies:
        raise UsageError(f"{cfg.path} defines no policies: nothing to evaluate")
    predicting = _predicting(args, cfg)
    started = time.perf_counter()
    log = _read_log(cfg, args, strict=args.strict)
    until = _instant(args.until, "--until")
    curves = None
    with _output(args.out, "--out") as out, _output(args.curve, "--curve") as page:
        predicted = None
        if predicting:
            from sladaemon.predict.backtest import predictive_backtest
            from sladaemon.predict.curves import curve_html, prediction_curves

            predicted = predictive_backtest(log.tickets, cfg.policies, cfg.predict, until)
            result = predicted.result
            curves = prediction_curves(predicted)
            if page is not None:
                title = f"Breach prediction against fixed thresholds, up to {iso(result.until)}"
                page.write(curve_html(title, curves))
            events = sorted(
                [*result.events, *predicted.predictions],
                key=lambda e: (e.at, e.ticket_id, e.metric.value, e.cycle),
            )
        else:
            result = backtest(log.tickets, cfg.policies, until, _progress_bar(sys.stderr))
            events = result.events
        if out is not None:
            _write_sla_events(events, out)
    elapsed = time.perf_counter() - started
    counts: dict[str, int] = {}
    for e in events:
        counts[e.kind.value] = counts.get(e.kind.value, 0) + 1
    text = sys.stderr if args.json or args.out == STDIN else sys.stdout
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no SLA events"
    print(
        f"replayed {result.ticket_events} events of {result.tickets} tickets "
        f"up to {iso(result.until)} in {elapsed:.1f}s: {summary}",
        file=text,
    )
    if result.unmatched_tickets:
        print(f"{result.unmatched_tickets} tickets matched no policy", file=text)
    print(f"\n{format_compliance(result.compliance)}", file=text)
    if predicted is not None and curves is not None:
        _print_prediction(predicted, curves, text)
        if args.curve is not None:
            print(f"wrote {args.curve}", file=sys.stderr)
    if args.json:
        summary_json = {
            "tickets": result.tickets,
            "ticket_events": result.ticket_events,
            "until": iso(result.until),
            "seconds": round(elapsed, 3),
            "sla_events": counts,
            "compliance": [
                {
                    "policy": r.policy,
                    "metric": r.metric.value,
                    "tickets": r.tickets,
                    "met": r.met,
                    "breached": r.breached,
                    "running": r.running,
                    "compliance": r.compliance,
                    "median_business_s": r.median_business_s,
                    "p90_business_s": r.p90_business_s,
                }
                for r in result.compliance
            ],
            "prediction": predicted.quality.as_json() if predicted is not None else None,
            "curves": curves.as_json() if curves is not None else None,
        }
        print(json.dumps(summary_json, indent=2))
    return EXIT_OK


def _predicting(args: argparse.Namespace, cfg: Config) -> bool:
    """Whether the backtest predicts breaches; ``--curve`` needs it, and a file."""
    predicting = cfg.predict.enabled and not args.no_predict
    if args.curve == STDIN:
        raise UsageError("--curve -: give a FILE for the HTML page")
    if args.curve is not None and not predicting:
        reason = "--no-predict" if args.no_predict else f"{cfg.path} disables predict"
        raise UsageError(f"--curve draws breach prediction, and {reason}")
    return predicting


def _print_prediction(predicted: PredictiveBacktest, curves: CurveReport, text: TextIO) -> None:
    """The quality table, then prediction against every fixed threshold."""
    from sladaemon.predict.curves import format_curves
    from sladaemon.predict.quality import format_quality

    print(
        "\nprediction quality (a metric = ticket × metric × cycle; lead = deadline − "
        "warning, wall clock; the 75 % baseline is that level's instant on the same "
        f"replay):\n{format_quality(predicted.quality)}",
        file=text,
    )
    print(f"\n{format_curves(curves)}", file=text)


def _write_sla_events(events: Sequence[SlaEvent], out: TextIO) -> None:
    from sladaemon.predict.backtest import prediction_record

    for e in events:
        record: dict[str, object] = {
            "ticket_id": e.ticket_id,
            "policy": e.policy,
            "metric": e.metric.value,
            "event": e.kind.value,
            "level": e.level,
            "at": iso(e.at),
            "deadline": iso(e.deadline),
        }
        if e.kind is SlaEventKind.PREDICTED_BREACH:
            record.update(prediction_record(e))
        out.write(json.dumps(record) + "\n")


@contextlib.contextmanager
def _output(
    given: str | None, option: str = "", newline: str | None = None
) -> Iterator[TextIO | None]:
    """The stream a command writes to: the file ``given`` (opened now, so a path that cannot
    be written fails before the work), stdout for ``-``, None when not given."""
    if given is None:
        yield None
        return
    if given == STDIN:
        yield sys.stdout
        sys.stdout.flush()
        return
    with contextlib.ExitStack() as stack:
        try:
            stream = stack.enter_context(Path(given).open("w", encoding="utf-8", newline=newline))
        except OSError as exc:
            named = f"{option} {given}" if option else given
            raise UsageError(f"{named}: cannot write: {exc.strerror or exc}") from None
        yield stream


def cmd_report(args: argparse.Namespace) -> int:
    import json as json_module

    from sladaemon.durations import parse_period
    from sladaemon.report.ledger import compute_kpis
    from sladaemon.report.render import as_html, as_json, as_table

    if args.json and args.format not in ("table", "json"):
        raise UsageError(f"--json and --format {args.format} ask for two formats: give one")
    cfg = _load(args, secrets=False)
    try:
        period = parse_period(args.period)
    except ValueError as exc:
        raise UsageError(f"--period: {exc}") from None
    except OverflowError:
        raise UsageError(f"--period: invalid period {args.period!r} (far too long)") from None
    zone = args.timezone or cfg.report_timezone(None)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--timezone: unknown time zone {zone!r} (use an IANA name)") from None
    until = _instant(args.until, "--until")
    if args.events is not None:
        tickets: dict[str, list[TicketEvent]] = dict(_read_log(cfg, args).tickets)
        end = max((evs[-1].at for evs in tickets.values()), default=datetime.now(UTC))
        end = until or end + timedelta(microseconds=1)
        report = compute_kpis(tickets, cfg.policies, end - period, end, zone)
        before = end - period
        if args.format == "html" and (earlier := _period_start(before, period)) is not None:
            report.previous = compute_kpis(tickets, cfg.policies, earlier, before, zone)
    else:
        report = _state_report(cfg, args.source, until, period, zone, args.format == "html")
    if args.json or args.format == "json":
        text = json_module.dumps(as_json(report), indent=2)
    elif args.format == "html":
        text = as_html(report)
    else:
        text = as_table(report)
    with _output(args.out or STDIN, "--out") as out:
        assert out is not None
        out.write(text + "\n")
    if args.out not in (None, STDIN):
        print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def _period_start(end: datetime, period: timedelta) -> datetime | None:
    """``end - period``, or None before the first representable instant (no period before)."""
    try:
        return end - period
    except OverflowError:
        return None


def _state_report(
    cfg: Config,
    source: str | None,
    end: datetime | None,
    period: timedelta,
    zone: str,
    compare: bool = False,
) -> KpiReport:
    """The KPIs from the daemon's ledger (closed tickets included: their facts outlive their
    events), up to ``end`` (default: now, or where a simulated clock stopped); with
    ``compare``, those of the period before too."""
    from sladaemon.report.ledger import KpiLedger
    from sladaemon.store.sqlite import StateStore

    if source is not None and source not in cfg.sources:
        known = ", ".join(sorted(cfg.sources)) or "none"
        raise UsageError(f"no source {source!r} in {cfg.path} ({known})")
    if not cfg.daemon.state.exists():
        raise UsageError(f"no daemon state at {cfg.daemon.state}; give --events")
    if end is None:
        store = StateStore(cfg.daemon.state)
        try:
            end = store.simulated_time() or datetime.now(UTC)
        finally:
            store.close()
    ledger = KpiLedger(cfg.daemon.state)
    try:
        report = ledger.report(end - period, end, zone, source)
        before = end - period
        if compare and (earlier := _period_start(before, period)) is not None:
            report.previous = ledger.report(earlier, before, zone, source)
        return report
    finally:
        ledger.close()


def cmd_simulate(args: argparse.Namespace) -> int:
    from sladaemon.eventlog import EventWriter
    from sladaemon.sources.simulator.simulation import HelpdeskSimulation, SimulationSettings

    start = _instant(args.start, "--start")
    assert start is not None
    if not 0 < args.days <= MAX_SIMULATED_DAYS:  # NaN is not either
        raise UsageError(f"--days must be above 0 and at most {MAX_SIMULATED_DAYS}")
    simulation = HelpdeskSimulation(SimulationSettings(seed=args.seed), start)
    with _output(args.output, newline="") as stream:
        assert stream is not None
        rows = EventWriter(stream).write_all(simulation.run(start + timedelta(days=args.days)))
    print(f"wrote {rows} events to {_shown(args.output)}", file=sys.stderr)
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from sladaemon.eventlog.importers import IMPORTERS, convert

    if args.format not in IMPORTERS:
        raise UsageError(f"unknown format {args.format!r} (one of {', '.join(IMPORTERS)})")
    started = time.perf_counter()
    output = sys.stdout if args.output == STDIN else Path(args.output)
    report = convert(args.format, _input_path(args.input), output)
    for issue in report.skipped[:20]:
        print(f"{args.input}:{issue.line}: skipped: {issue.message}", file=sys.stderr)
    if len(report.skipped) > 20:
        print(f"{args.input}: ... {len(report.skipped) - 20} more rows skipped", file=sys.stderr)
    print(
        f"wrote {report.events} events of {report.tickets} tickets to {_shown(args.output)} "
        f"in {time.perf_counter() - started:.1f}s ({len(report.skipped)} rows skipped)",
        file=sys.stderr,
    )
    return EXIT_OK


def _shown(path: str) -> str:
    return "stdout" if path == STDIN else path


def cmd_board_password(args: argparse.Namespace) -> int:
    """The hash for ``board.accounts.NAME.password_hash``: the password is read from stdin
    when it is not a terminal (first line), else asked twice without echo."""
    import getpass

    from sladaemon.board.access import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise UsageError("a board password has at least 8 characters")
    print(hash_password(password))
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    """Write the starter config (``sladaemon/data/starter.yaml``): never over an existing
    file unless ``--force``."""
    from importlib import resources

    text = resources.files("sladaemon").joinpath("data", "starter.yaml").read_text("utf-8")
    if args.path == STDIN:
        sys.stdout.write(text)
        return EXIT_OK
    path = Path(args.path)
    if path.exists() and not args.force:
        raise UsageError(f"{path} exists; give --force to replace it")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None
    print(f"wrote {path}; check it with: sladaemon check --config {path}", file=sys.stderr)
    return EXIT_OK


def cmd_oncall(args: argparse.Namespace) -> int:
    """Who is on call at ``--at`` (default: now). An iCal feed is read from the daemon's copy
    beside the state file, else fetched once; if neither works, the answer says so."""
    cfg = _load(args, secrets=False)
    if args.schedule is not None and args.schedule not in cfg.roster.schedules:
        known = ", ".join(sorted(cfg.roster.schedules)) or "none are defined"
        raise UsageError(f"no schedule {args.schedule!r} in {cfg.path} ({known})")
    at = _instant(args.at, "--at") or datetime.now(UTC)
    names = [args.schedule] if args.schedule is not None else sorted(cfg.roster.schedules)
    unknown = {name for name in names if not _load_feed(cfg, name)}
    answers = []
    for name in names:
        answer = cfg.roster.on_call(name, at)
        zone = cfg.roster.schedules[name].zone
        since = answer.since.astimezone(zone) if answer else None
        until = answer.until.astimezone(zone) if answer and answer.until else None
        answers.append(
            {
                "schedule": name,
                "person": answer.person if answer else None,
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "why": answer.why if answer else None,
                "feed_unreadable": name in unknown,
            }
        )
        if args.json:
            continue
        line = f"{name}: {answer.person if answer else 'nobody'}"
        if until is not None:
            line += until.strftime(" until %Y-%m-%d %H:%M %Z")
        if answer is not None:
            line += f" ({answer.why})"
        if name in unknown:
            line += " — its iCal feed cannot be read, so this cannot be known for sure"
        print(line)
    if args.json:
        print(json.dumps({"at": at.isoformat(), "schedules": answers}, indent=2))
    return EXIT_OK


def _load_feed(cfg: Config, schedule: str) -> bool:
    """Give the roster a schedule's iCal feed: the daemon's copy, else fetched once. False
    when the schedule has a feed and neither worked."""
    import asyncio

    from sladaemon.daemon.ical_refresh import CLI_TIMEOUT, cached_feed, fetch_feed
    from sladaemon.oncall.ical import IcalError, IcalFeed

    ical = cfg.settings.schedules[schedule].ical
    if ical is None:
        return True
    feed = cached_feed(cfg, schedule) if ical.url is not None else None
    if feed is None:
        try:
            if ical.url is not None:
                data = asyncio.run(fetch_feed(ical.url.get_secret_value(), CLI_TIMEOUT))
            else:
                assert ical.file is not None
                data = ical.file.read_bytes()
            feed = IcalFeed(data, cfg.roster.schedules[schedule].zone)
        except (Exception, IcalError) as exc:
            print(f"{schedule}: its iCal feed cannot be read: {exc}", file=sys.stderr)
            return False
    cfg.roster.set_feed(schedule, feed)
    return True


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    print(shtab.complete(_parser(), shell=args.shell))
    return EXIT_OK


def _progress_bar(stream: TextIO) -> ProgressBar | None:
    return ProgressBar(stream) if stream.isatty() else None


class ProgressBar:
    """A one-line progress bar on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} tickets")
        if done >= total:
            self.stream.write("\r" + " " * (width + 30) + "\r")
        self.stream.flush()


if __name__ == "__main__":
    raise SystemExit(main())
