"""Log lines under journald: fields that never collide, credentials (and only credentials)
redacted, console receivers' messages as log lines."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from pydantic import SecretStr

from sladaemon.logs import Redactor, configure_logging, get_logger
from sladaemon.model import NotificationKind
from sladaemon.notify.apprise_notifier import AppriseNotifier, url_secrets
from sladaemon.notify.message import Notification


def lines_of(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_callers_field_named_like_a_lines_own_key_is_kept_apart() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream, json_output=True)
    get_logger("sladaemon.test").warning("sla_warning", level="75%", logger="x", timestamp="t")
    (line,) = lines_of(stream)
    assert line["level"] == "warning" and line["logger"] == "sladaemon.test"
    assert (line["field_level"], line["field_logger"], line["field_timestamp"]) == ("75%", "x", "t")
    assert str(line["timestamp"]).endswith("Z")


RECEIVER_URLS = [
    "json://alerts.example.com/sladaemon",
    "json://alice:hunter22@hooks.example.com/T0K3Nabcdef?key=zz99yy88xx",
    "slack://T000AAAA/B000BBBB/XXXXSECRETXXXX",
    "opsgenie://KEYSECRET123",
    "mailtos://oncall:pass1234@smtp.example.com?to=leads@example.com",
    "tgram://123456789:ABCdefGHIjklMNO/support",
    "json://hooks.example.com/services/AbCdEfGhIjKlMnOpQr",
]


def test_only_credentials_are_redacted() -> None:
    redactor = Redactor(part for url in RECEIVER_URLS for part in url_secrets(url))
    plain = (
        "logger sladaemon.daemon read /var/lib/sladaemon/events.csv; posted to "
        "alerts.example.com/sladaemon and hooks.example.com as alice; mail to "
        "leads@example.com through smtp.example.com; telegram chat support; webhook services"
    )
    assert redactor.scrub(plain) == plain
    secrets = ["hunter22", "T0K3Nabcdef", "zz99yy88xx", "T000AAAA", "B000BBBB", "XXXXSECRETXXXX"]
    secrets += ["KEYSECRET123", "pass1234", "ABCdefGHIjklMNO", "AbCdEfGhIjKlMnOpQr"]
    leaked = redactor.scrub(" ".join(f"<{s}>" for s in secrets))
    assert leaked == " ".join(["<***>"] * len(secrets))


@dataclass(frozen=True)
class Console:
    urls: tuple[SecretStr, ...] = (SecretStr("console://"),)
    template: str | None = None
    timeout: timedelta = timedelta(seconds=5)


def message(n: int) -> Notification:
    return Notification(f"desk/T{n}/resolution/0/breach", NotificationKind.BREACH, f"T{n}", "a\nb")


def test_console_messages_are_log_lines_when_the_log_is_json_whatever_its_level() -> None:
    stream = io.StringIO()
    configure_logging("error", stream=stream, json_output=True)
    notifier = AppriseNotifier({"console": Console()})

    async def send(count: int) -> None:
        for n in range(count):
            assert (await notifier.send("console", 0, message(n))).delivered

    burst = 300  # more than the flood gate lets through: deliveries are never cut
    asyncio.run(send(burst))
    notifier.close()
    lines = lines_of(stream)
    assert len(lines) == burst
    assert lines[0]["event"] == "console_message" and lines[0]["logger"] == "sladaemon.console"
    assert (lines[0]["kind"], lines[0]["title"], lines[0]["body"]) == ("breach", "T0", "a\nb")
    assert lines[0]["id"] == "desk/T0/resolution/0/breach"


def test_console_messages_are_text_blocks_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", stream=io.StringIO(), json_output=False)
    notifier = AppriseNotifier({"console": Console()})
    assert asyncio.run(notifier.send("console", 0, message(1))).delivered
    notifier.close()
    assert capsys.readouterr().out == "[BREACH] T1\n    a\n    b\n"
