"""Command line: ``sladaemon run | once | notify-test | check | explain | backtest | report |
import | simulate``.

Exit codes: 0 success, 1 failure while running, 2 bad input (config, files, arguments).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sladaemon.config import Config, load_config
from sladaemon.errors import ConfigError, EventLogError, StateFileError, StateLockedError
from sladaemon.eventlog import EventLog, parse_timestamp, read_events
from sladaemon.model import EARLIEST, LATEST, SlaEventKind, TicketEvent
from sladaemon.sla.backtest import backtest, format_compliance
from sladaemon.sla.engine import TicketReplay
from sladaemon.sla.explain import explain_json, explain_text, iso

if TYPE_CHECKING:
    from sladaemon.report.kpi import KpiReport

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """A problem with the arguments given on the command line."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print(f"config error{'s' if len(exc.issues) > 1 else ''}:", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except (EventLogError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (StateLockedError, StateFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sladaemon", description="SLA monitoring and escalation for helpdesks."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT (SIGHUP reloads)")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("once", help="one poll, evaluation and delivery pass, then exit")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    p.set_defaults(func=cmd_once)

    p = sub.add_parser("notify-test", help="send a test message to a receiver")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("receiver")
    p.set_defaults(func=cmd_notify_test)

    p = sub.add_parser("check", help="validate a config file (exit 0, or 2 listing every error)")
    p.add_argument("--config", required=True, type=Path)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("explain", help="show how a ticket's SLA deadlines were computed")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--events", type=Path, help="normalized event CSV (default: the daemon's state)")
    p.add_argument("ticket_id")
    p.add_argument("--at", help="evaluate at this ISO 8601 instant (default: end of history)")
    p.add_argument(
        "--source",
        help="with --events: the csv source whose status mapping applies; without: the source "
        "whose tickets the daemon keeps in its state file",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("backtest", help="replay a history: SLA events and compliance table")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--events", required=True, type=Path, help="normalized event CSV")
    p.add_argument("--out", type=Path, help="write SLA events as JSON lines here")
    p.add_argument("--until", help="stop the replay at this ISO 8601 instant")
    p.add_argument("--source", help="csv source whose status mapping applies")
    p.add_argument("--strict", action="store_true", help="reject the file if any row is bad")
    p.add_argument("--json", type=Path, help="write the summary (compliance, prediction) here")
    p.add_argument("--no-predict", action="store_true", help="skip breach prediction")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("report", help="support KPIs over a period: table, JSON or HTML")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--events", type=Path, help="normalized event CSV (default: the daemon's state)")
    p.add_argument("--source", help="csv mapping (with --events) or the daemon source to read")
    p.add_argument("--period", default="7d", help="length of the period, e.g. 7d, 4w, 12h")
    p.add_argument("--until", help="end of the period (default: end of history, or now)")
    p.add_argument("--timezone", help="zone for days (default: the first calendar's)")
    p.add_argument("--format", choices=["table", "json", "html"], default="table")
    p.add_argument("--out", type=Path, help="write the report here instead of stdout")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("state", help="check the daemon's state file, or restore its backup")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("action", choices=["check", "restore"])
    p.set_defaults(func=cmd_state)

    p = sub.add_parser("simulate", help="write a synthetic history from the built-in simulator")
    p.add_argument("output", type=Path)
    p.add_argument("--start", default="2026-01-05T00:00:00Z", help="ISO 8601 start instant")
    p.add_argument("--days", type=float, default=14.0)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("import", help="convert a public ticket log to the normalized CSV")
    p.add_argument("--format", required=True, help="helpdesk-italian | bpic2013 | servicenow")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.set_defaults(func=cmd_import)
    return parser


# ---------------------------------------------------------------------------- commands


def _setup_logging(cfg: Config, log_format: str = "auto") -> None:
    from sladaemon.logs import configure_logging

    secrets = [u.get_secret_value() for r in cfg.receivers.values() for u in r.urls]
    json_output = {"auto": None, "json": True, "console": False}[log_format]
    configure_logging(cfg.daemon.log_level, json_output=json_output, secrets=secrets)


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from sladaemon.daemon.app import App
    from sladaemon.daemon.staging import stage
    from sladaemon.daemon.systemd import SystemdNotifier
    from sladaemon.logs import get_logger

    cfg = load_config(args.config)
    stage(cfg).close()  # what check builds, refused the same way (exit 2)
    _setup_logging(cfg, args.log_format)
    log = get_logger("sladaemon")
    _raise_open_files_limit()

    async def main_loop() -> None:
        app = App(cfg, systemd=SystemdNotifier())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, app.stop)
        loop.add_signal_handler(signal.SIGHUP, app.request_reload, str(args.config))
        await app.run()

    try:
        asyncio.run(main_loop())
    except (StateLockedError, StateFileError):
        raise
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

    cfg = load_config(args.config)
    _setup_logging(cfg, args.log_format)
    counts = asyncio.run(App(cfg, serve_http=False).once())
    print(
        f"{counts['tickets']} open tickets; {counts['sent']} notifications sent, "
        f"{counts['failed']} failed (kept for the next run)"
    )
    return EXIT_OK if counts["failed"] == 0 else EXIT_FAILED


def cmd_notify_test(args: argparse.Namespace) -> int:
    import asyncio

    from sladaemon.model import NotificationKind
    from sladaemon.notify.apprise_notifier import AppriseNotifier
    from sladaemon.notify.message import operator_payload, render

    cfg = load_config(args.config)
    if args.receiver not in cfg.receivers:
        known = ", ".join(sorted(cfg.receivers)) or "none defined"
        raise UsageError(f"no receiver {args.receiver!r} in {args.config} ({known})")
    notifier = AppriseNotifier(cfg.receivers)
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

    cfg = load_config(args.config)
    stage(cfg).close()
    print(
        f"{args.config}: ok — {len(cfg.calendars)} calendars, {len(cfg.policies)} policies, "
        f"{len(cfg.receivers)} receivers, {len(cfg.sources)} sources, {len(cfg.reports)} reports"
    )
    return EXIT_OK


def _read_log(cfg: Config, args: argparse.Namespace, strict: bool = False) -> EventLog:
    if args.source and args.source not in cfg.sources:
        raise UsageError(f"no source {args.source!r} in {cfg.path}")
    log = read_events(args.events, cfg.status_map(args.source), strict=strict)
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
    cfg = load_config(args.config)
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
    if args.json:
        print(json.dumps(explain_json(evaluation), indent=2))
    else:
        print(explain_text(evaluation, cfg.calendars))
    return EXIT_OK


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
    finally:
        store.close()
    if not events and quarantined:
        return [], datetime.now(UTC), quarantined
    if not events:
        raise UsageError(f"ticket {ticket_id!r} of source {source!r} is not in the daemon state")
    events.sort(key=lambda e: e.at)
    return events, datetime.now(UTC), quarantined


def cmd_state(args: argparse.Namespace) -> int:
    """``check``: the state file and its backup; ``restore``: the backup in place of the state
    file (refused while a daemon holds it)."""
    from sladaemon.store.backup import backup_path, check, restore
    from sladaemon.store.lock import StateLock

    state = load_config(args.config).daemon.state
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
    cfg = load_config(args.config)
    if not cfg.policies:
        raise UsageError(f"{args.config} defines no policies: nothing to evaluate")
    started = time.perf_counter()
    log = _read_log(cfg, args, strict=args.strict)
    until = _instant(args.until, "--until")
    predicted = None
    if cfg.predict.enabled and not args.no_predict:
        from sladaemon.predict.backtest import predictive_backtest

        predicted = predictive_backtest(log.tickets, cfg.policies, cfg.predict, until)
        result = predicted.result
        events = sorted(
            [*result.events, *predicted.predictions],
            key=lambda e: (e.at, e.ticket_id, e.metric.value, e.cycle),
        )
    else:
        result = backtest(log.tickets, cfg.policies, until, _progress_bar(sys.stderr))
        events = result.events
    if args.out:
        from sladaemon.predict.backtest import prediction_record

        with args.out.open("w", encoding="utf-8") as out:
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
    elapsed = time.perf_counter() - started
    counts: dict[str, int] = {}
    for e in events:
        counts[e.kind.value] = counts.get(e.kind.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no SLA events"
    print(
        f"replayed {result.ticket_events} events of {result.tickets} tickets "
        f"up to {iso(result.until)} in {elapsed:.1f}s: {summary}"
    )
    if result.unmatched_tickets:
        print(f"{result.unmatched_tickets} tickets matched no policy")
    print()
    print(format_compliance(result.compliance))
    if predicted is not None:
        from sladaemon.predict.quality import format_quality

        print()
        print(
            "prediction quality (a metric = ticket × metric × cycle; lead = deadline − warning, "
            "wall clock; the 75 % baseline is that level's instant on the same replay):"
        )
        print(format_quality(predicted.quality))
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
        }
        args.json.write_text(json.dumps(summary_json, indent=2) + "\n", encoding="utf-8")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    import json as json_module

    from sladaemon.durations import parse_period
    from sladaemon.report.ledger import compute_kpis
    from sladaemon.report.render import as_html, as_json, as_table

    cfg = load_config(args.config)
    try:
        period = parse_period(args.period)
    except ValueError as exc:
        raise UsageError(f"--period: {exc}") from None
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
    else:
        report = _state_report(cfg, args.source, until or datetime.now(UTC), period, zone)
    if args.format == "json":
        text = json_module.dumps(as_json(report), indent=2)
    elif args.format == "html":
        text = as_html(report)
    else:
        text = as_table(report)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text)
    return EXIT_OK


def _state_report(
    cfg: Config, source: str | None, end: datetime, period: timedelta, zone: str
) -> KpiReport:
    """The KPIs from the daemon's ledger (closed tickets included: their facts outlive their
    events)."""
    from sladaemon.report.ledger import KpiLedger

    if source is not None and source not in cfg.sources:
        known = ", ".join(sorted(cfg.sources)) or "none"
        raise UsageError(f"no source {source!r} in {cfg.path} ({known})")
    if not cfg.daemon.state.exists():
        raise UsageError(f"no daemon state at {cfg.daemon.state}; give --events")
    ledger = KpiLedger(cfg.daemon.state)
    try:
        return ledger.report(end - period, end, zone, source)
    finally:
        ledger.close()


def cmd_simulate(args: argparse.Namespace) -> int:
    from sladaemon.eventlog import EventWriter
    from sladaemon.sources.simulator.simulation import HelpdeskSimulation, SimulationSettings

    start = _instant(args.start, "--start")
    assert start is not None
    if args.days <= 0:
        raise UsageError("--days must be positive")
    simulation = HelpdeskSimulation(SimulationSettings(seed=args.seed), start)
    with args.output.open("w", encoding="utf-8", newline="") as stream:
        writer = EventWriter(stream)
        rows = writer.write_all(simulation.run(start + timedelta(days=args.days)))
    print(f"wrote {rows} events to {args.output}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from sladaemon.eventlog.importers import IMPORTERS, convert

    if args.format not in IMPORTERS:
        raise UsageError(f"unknown format {args.format!r} (one of {', '.join(IMPORTERS)})")
    started = time.perf_counter()
    report = convert(args.format, args.input, args.output)
    for issue in report.skipped[:20]:
        print(f"{args.input}:{issue.line}: skipped: {issue.message}", file=sys.stderr)
    if len(report.skipped) > 20:
        print(f"{args.input}: ... {len(report.skipped) - 20} more rows skipped", file=sys.stderr)
    print(
        f"wrote {report.events} events of {report.tickets} tickets to {args.output} "
        f"in {time.perf_counter() - started:.1f}s ({len(report.skipped)} rows skipped)"
    )
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
