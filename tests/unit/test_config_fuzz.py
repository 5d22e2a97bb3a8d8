"""Seeded mutations of config/example.yaml through ``sladaemon check``: whatever the file, check
ends quickly with exit 0, or exit 2 naming file and line for every problem; never a traceback.
A file check accepts is then run as ``once`` runs it (every part built, a poll, an evaluation,
a delivery pass), which must not fail either."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import re
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from sladaemon.cli import main
from sladaemon.config import load_config
from sladaemon.daemon.app import App

ROOT = Path(__file__).resolve().parents[2]
MUTATIONS = 400
TIME_LIMIT = 10.0  # seconds per check, and per run of an accepted file
MEMORY_LIMIT = 2 << 30  # bytes the test may add: a file read without end fails, not the machine
# A key and its value on one line: indent, optional list dash, key, value, optional comment.
KEY_VALUE = re.compile(
    r"^(?P<head>\s*(?:- )?[\w\"-][^:#]*:)[ \t]+(?P<value>[^#\n]*?)(?P<tail>\s+#.*)?$"
)
ALIAS_BOMB = "".join(
    f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]\n" for i in range(1, 9)
).replace("*b0", '"lol"')

Lines = list[str]
Mutation = Callable[[random.Random, Lines], Lines]


def base_text(tmp_path: Path) -> str:
    """The example config, with its network receiver printing to the console instead and its
    files in ``tmp_path`` (the receivers' ${...} URLs are set to console:// too)."""
    return (
        (ROOT / "config" / "example.yaml")
        .read_text()
        .replace("json://alerts.example.com/sladaemon", "console://")
        .replace("/var/lib/sladaemon/", f"{tmp_path}/")
    )


# ---------------------------------------------------------------------------- mutations


def _value_lines(lines: Lines, value: re.Pattern[str] | None = None) -> list[int]:
    """The lines with a key and a value (one matching ``value``, if given)."""
    found = []
    for i, line in enumerate(lines):
        m = KEY_VALUE.match(line)
        if m and ": " in line and (value is None or value.fullmatch(m.group("value"))):
            found.append(i)
    return found


def replace_value(*values: str, where: re.Pattern[str] | None = None) -> Mutation:
    """A mutation that puts one of ``values`` in place of a random key's value, most often one
    of the values ``where`` matches (a duration in place of a duration)."""

    def mutate(rng: random.Random, lines: Lines) -> Lines:
        i = rng.choice(_value_lines(lines, where if rng.random() < 0.75 else None))
        m = KEY_VALUE.match(lines[i])
        assert m is not None
        lines[i] = f"{m.group('head')} {rng.choice(values)}{m.group('tail') or ''}"
        return lines

    return mutate


def delete_key(rng: random.Random, lines: Lines) -> Lines:
    del lines[rng.choice(_value_lines(lines))]
    return lines


def duplicate_key(rng: random.Random, lines: Lines) -> Lines:
    i = rng.choice(_value_lines(lines))
    lines.insert(i + 1, lines[i])
    return lines


def swap_indentation(rng: random.Random, lines: Lines) -> Lines:
    i = rng.choice([k for k, line in enumerate(lines) if not line.lstrip().startswith("#")])
    stripped = lines[i].lstrip(" ")
    indent = len(lines[i]) - len(stripped)
    lines[i] = " " * max(0, indent + rng.choice([-4, -2, 2, 4, 1])) + stripped
    return lines


def insert_nul(rng: random.Random, lines: Lines) -> Lines:
    i = rng.randrange(len(lines))
    at = rng.randrange(len(lines[i]) + 1)
    lines[i] = lines[i][:at] + "\0" + lines[i][at:]
    return lines


def alias_bomb(rng: random.Random, lines: Lines) -> Lines:
    """The bomb at the top; a random value, or an unknown key, uses it."""
    bomb = ALIAS_BOMB.splitlines()
    if rng.random() < 0.5:
        return [*bomb, *replace_value("*b8")(rng, lines)]
    return [*bomb, *lines, "x-bomb: *b8"]


def recursive_alias(rng: random.Random, lines: Lines) -> Lines:
    i = rng.choice(_value_lines(lines))
    m = KEY_VALUE.match(lines[i])
    assert m is not None
    lines[i] = f"{m.group('head')} &loop [1, *loop]"
    return lines


def credential_from_a_device(rng: random.Random, lines: Lines) -> Lines:
    i = next(k for k, line in enumerate(lines) if line.strip().startswith("urls:"))
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    lines[i] = f"{indent}urls_file: {rng.choice(['/dev/zero', '/dev/null', '/proc', '/'])}"
    return lines


def unknown_key(rng: random.Random, lines: Lines) -> Lines:
    i = rng.choice(_value_lines(lines))
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip(" -"))]
    lines.insert(i, f"{indent}{rng.choice(['colour', 'calender', 'retry'])}: 1")
    return lines


NUMBERS = ("9" * 40, "99999999999999999999", "1e308", ".inf", ".nan", "-1", "0", "-99999999999")
NUMBER = re.compile(r"-?[\d.]+")
# Overflowing, zero and negative ones, and those at the ends of the ranges (accepted or not).
DURATIONS = (
    "99999999999d",
    "9999999999999s",
    "99999999999999h",
    "99999999999w",
    "0s",
    "-5m",
    "1s",
    "1m",
    "1h",
    "24h",
    "720h",
    "8760h",
    "8761h",
    "1d",
    "3650d",
    "3651d",
)
DURATION = re.compile(r"\d+[smhdw]\w*|breach\+\w+")
TEMPLATES = (
    '"{ticket_id:>99999999}"',
    '"{summary:.999999999}"',
    '"{ticket_id.__class__}"',
    '"{cycle:d}"',
    '"{ticket_id:>{cycle}}"',
    '"{ticket_id:>1000} {summary!r:.50}"',  # accepted: as wide as allowed
)
OTHERS = ('""', "~", "[1, 2]", "{a: 1}", '"' + "x" * 100_000 + '"', "[~]", "{}", "[]")
MUTATORS: list[tuple[str, Mutation]] = [
    ("number", replace_value(*NUMBERS, where=NUMBER)),
    ("duration", replace_value(*DURATIONS, where=DURATION)),
    ("template", replace_value(*TEMPLATES, where=re.compile(r'".*\{.*\}.*"'))),
    ("other value", replace_value(*OTHERS)),
    ("delete key", delete_key),
    ("duplicate key", duplicate_key),
    ("unknown key", unknown_key),
    ("indentation", swap_indentation),
    ("nul byte", insert_nul),
    ("alias bomb", alias_bomb),
    ("recursive alias", recursive_alias),
    ("credential file", credential_from_a_device),
]


def mutated(seed: int, base: str) -> tuple[str, str]:
    """The name of the mutation(s) made and the text; the same for the same seed."""
    rng = random.Random(seed)
    if rng.random() < 0.08:  # truncated at a random byte
        cut = rng.randrange(len(base.encode()))
        return "truncate", base.encode()[:cut].decode(errors="ignore")
    lines = base.splitlines()
    names = []
    for _ in range(rng.choice([1, 1, 1, 2])):
        name, mutate = rng.choice(MUTATORS)
        lines = mutate(rng, lines)
        names.append(name)
    return "+".join(names), "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- the harness


class HungError(Exception):
    """A check or run took longer than ``TIME_LIMIT``."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise HungError(f"no answer within {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def memory_limit(extra: int) -> Iterator[None]:
    """The process's address space bounded to what it uses now plus ``extra`` bytes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * resource.getpagesize()
    limit = used + extra if hard == resource.RLIM_INFINITY else min(hard, used + extra)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``sladaemon check`` through the command line's entry point."""
    with time_limit(TIME_LIMIT):
        code = main(["check", "--config", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def run_once(path: Path, state: Path) -> None:
    """What ``sladaemon once`` does, state kept in ``state`` whatever the file says."""
    environ = {**os.environ, "SLADAEMON_DAEMON__STATE": str(state)}
    config = load_config(path, environ=environ)
    with time_limit(TIME_LIMIT):
        asyncio.run(App(config, console=io.StringIO(), serve_http=False).once())


def assert_rejection_is_located(path: Path, out: str) -> None:
    """Exit 2: a heading, then every problem as ``file:line path: message``."""
    heading, *issues = out.strip().splitlines()
    assert heading in ("config error:", "config errors:"), out
    located = re.compile(re.escape(str(path)) + r":\d+[ :]")
    assert issues and all(located.match(issue) for issue in issues), out


def try_mutation(seed: int, base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> bool:
    """Check mutation ``seed``; run it if accepted. Returns whether check accepted it."""
    name, text = mutated(seed, base)
    path = tmp_path / f"mutation-{seed}.yaml"
    path.write_text(text)
    code, out = check(path, capsys)
    what = f"seed {seed} ({name}): exit {code}\n{out[:3000]}"
    assert "Traceback" not in out and code in (0, 2), what
    if code == 2:
        assert_rejection_is_located(path, out)
        return False
    try:
        run_once(path, tmp_path / f"state-{seed}.sqlite")
    except Exception as exc:
        raise AssertionError(f"seed {seed} ({name}): check accepted, once failed") from exc
    capsys.readouterr()
    return True


@pytest.fixture
def receivers_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SUPPORT_URL", "console://")
    monkeypatch.setenv("LEADS_MAIL_URL", "console://")


@pytest.mark.usefixtures("receivers_print")
def test_check_survives_seeded_mutations_of_the_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative path in a mutated file lands here
    base = base_text(tmp_path)
    outcomes: dict[str, int] = {"accepted": 0, "rejected": 0}
    with memory_limit(MEMORY_LIMIT):
        for seed in range(MUTATIONS):
            outcomes["accepted" if try_mutation(seed, base, tmp_path, capsys) else "rejected"] += 1
    assert outcomes["accepted"] >= 40 and outcomes["rejected"] >= 200, outcomes


@pytest.mark.usefixtures("receivers_print")
def test_the_command_line_process_agrees_with_the_entry_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first mutation of a few kinds through a real ``sladaemon check`` process: the same
    exit code, the same messages."""
    base = base_text(tmp_path)
    kinds = ("alias bomb", "nul byte", "credential file", "duration", "delete key")
    for kind in kinds:
        seed = next(s for s in range(MUTATIONS) if mutated(s, base)[0] == kind)
        path = tmp_path / f"mutation-{seed}.yaml"
        path.write_text(mutated(seed, base)[1])
        code, out = check(path, capsys)
        done = subprocess.run(
            [sys.executable, "-m", "sladaemon", "check", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (done.returncode, done.stdout + done.stderr) == (code, out)
