"""YAML loading that remembers where every value came from.

``load_yaml`` returns the plain data and a ``LineMap`` from YAML paths (tuples of keys and list
indexes) to 1-based line numbers, so every config error can name its file, line and path.
``${ENV_VAR}`` references inside strings are replaced from the environment (``$$`` is a literal
``$``); a missing variable is a config error at the line that references it.

A document is measured before it is read: one whose aliases and merge keys expand it to more
than ``MAX_VALUES`` values, an alias inside the value it names, or nesting deeper than
``MAX_DEPTH`` is refused at its line, so a small file cannot take the daemon's memory or time.
``read_text_file`` reads the files a config names (the config itself, ``urls_file``,
``token_file``): regular files of at most ``MAX_FILE_BYTES`` only, never a device or a pipe.

YAML 1.1 reads some plain words as other types: ``NO``, ``off`` and ``y`` are booleans and
``12:30`` is the base-60 number 750. Each such reading is noted (``YamlDocument.readings``), so
an error about that value can say how it was read and how to quote it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sladaemon.errors import ConfigIssue

Path_ = tuple[str | int, ...]
_ENV_REF = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")
MAX_FILE_BYTES = 1024 * 1024  # a config or credential file; the example config is 10 KiB
MAX_VALUES = 100_000  # values a document may hold once its aliases are expanded
MAX_DEPTH = 50  # nesting levels (a config needs about 6)


class UnreadableFileError(ValueError):
    """A file a config names cannot be used; the message says why."""


def read_text_file(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file ``path``. Devices, pipes and directories are
    refused without reading (``/dev/zero`` never ends, a FIFO blocks), as are files larger
    than ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableFileError(exc.strerror or str(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnreadableFileError(f"not a regular file ({_file_kind(mode)})")
        data = _read_up_to(fd, max_bytes + 1)
    except OSError as exc:
        raise UnreadableFileError(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnreadableFileError(f"larger than {max_bytes // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableFileError("not a UTF-8 text file") from None


def _read_up_to(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    while size > 0 and (chunk := os.read(fd, min(size, 64 * 1024))):
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "not a file"


@dataclass
class LineMap:
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


@dataclass
class YamlDocument:
    file: str
    data: dict[str, Any]
    lines: LineMap
    issues: list[ConfigIssue]
    readings: dict[Path_, str] = field(default_factory=dict)  # YAML 1.1 surprises, by path


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class _RefusedError(Exception):
    """The document is not read: where, and why."""

    def __init__(self, path: Path_, line: int, message: str) -> None:
        super().__init__(message)
        self.path, self.line, self.message = path, line, message


def load_yaml(text: str, file: str, environ: Mapping[str, str] | None = None) -> YamlDocument:
    """Parse one YAML document. Syntax errors, documents too large once expanded and
    missing env vars become issues."""
    env = os.environ if environ is None else environ
    lines = LineMap()
    issues: list[ConfigIssue] = []
    readings: dict[Path_, str] = {}

    def refused(line: int | None, message: str, path: Path_ = ()) -> YamlDocument:
        issues.append(ConfigIssue(file, line, format_path(path), message))
        return YamlDocument(file, {}, lines, issues)

    if "\0" in text:
        return refused(_line_at(text, text.index("\0")), "NUL byte: the file is not YAML text")
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return refused(_line_at(text, exc.position), f"control character U+{code:04X} not allowed")
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(file, {}, lines, issues)
        _Extent().check(node)
        data = _Walker(loader, lines, issues, file, env, readings).walk(node, ())
    except _RefusedError as exc:
        return refused(exc.line, exc.message, exc.path)
    except RecursionError:
        return refused(loader.get_mark().line + 1, f"nested deeper than {MAX_DEPTH} levels")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        return refused(mark.line + 1 if mark else 1, f"YAML syntax error: {problem}")
    except yaml.YAMLError as exc:
        return refused(loader.get_mark().line + 1, f"YAML error: {exc}")
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        return refused(1, "the config must be a mapping of sections (calendars: ...)")
    return YamlDocument(file, data, lines, issues, readings)


def _line_at(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


# ---------------------------------------------------------------------------- measuring


def _children(node: yaml.Node, path: Path_) -> Iterator[tuple[Path_, int, yaml.Node]]:
    """The nodes inside ``node`` with the path and line each stands at (a key at its value's
    path)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            yield (*path, key), line, key_node
            yield (*path, key), line, value_node
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield (*path, i), item.start_mark.line + 1, item


@dataclass
class _Extent:
    """How many values each node stands for once expanded: a node an alias names counts
    each time it is used. Memoized per node, so measuring costs one visit of each."""

    sizes: dict[int, int] = field(default_factory=dict)
    inside: set[int] = field(default_factory=set)  # the nodes being measured

    def check(self, root: yaml.Node) -> None:
        """Raise ``_RefusedError`` at the innermost value that expands past ``MAX_VALUES``."""
        size = self.measure(root, (), root.start_mark.line + 1)
        if size <= MAX_VALUES:
            return
        node, line = root, root.start_mark.line + 1
        path: Path_ = ()
        while True:
            bigger = [c for c in _children(node, path) if self.sizes[id(c[2])] > MAX_VALUES]
            if not bigger:
                break
            path, line, node = bigger[0]
        raise _RefusedError(
            path,
            line,
            f"aliases expand this value to {self.sizes[id(node)]:,} values "
            f"(at most {MAX_VALUES:,} are read)",
        )

    def measure(self, node: yaml.Node, path: Path_, line: int) -> int:
        key = id(node)
        known = self.sizes.get(key)
        if known is not None:
            return known
        if key in self.inside:
            raise _RefusedError(path, line, "recursive alias: the value contains itself")
        if len(path) > MAX_DEPTH:
            raise _RefusedError(path, line, f"nested deeper than {MAX_DEPTH} levels")
        self.inside.add(key)
        size = 1 + sum(self.measure(child, p, n) for p, n, child in _children(node, path))
        self.inside.discard(key)
        self.sizes[key] = size
        return size


# ---------------------------------------------------------------------------- reading


def yaml11_reading(node: yaml.Node, value: Any) -> str | None:
    """How YAML 1.1 read a plain word that people mean as text, or None: ``NO`` (Norway) as
    a boolean, ``12:30`` as a base-60 number."""
    if not isinstance(node, yaml.ScalarNode) or node.style is not None:
        return None  # quoted: read as written
    text = str(node.value)
    if isinstance(value, bool) and text.lower() not in ("true", "false"):
        return f"{text} was read as a boolean by YAML 1.1; quote it: '{text}'"
    if isinstance(value, int | float) and not isinstance(value, bool) and ":" in text:
        return f"{text} was read as the number {value} by YAML 1.1; quote it: '{text}'"
    return None


@dataclass
class _Walker:
    """Builds the plain data of a measured document, noting each path's line."""

    loader: yaml.SafeLoader
    lines: LineMap
    issues: list[ConfigIssue]
    file: str
    env: Mapping[str, str]
    readings: dict[Path_, str] = field(default_factory=dict)

    def issue(self, line: int, path: Path_, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, line, format_path(path), message))

    def walk(self, node: yaml.Node, path: Path_) -> Any:
        self.lines.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self.scalar(node, path)
        reading = yaml11_reading(node, value)
        if reading:
            self.readings[path] = reading
        if isinstance(value, str) and "$" in value:
            value = self.expand_env(value, path, node.start_mark.line + 1)
        return value

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        self.loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.issue(line, path, "a key must be plain text, not a list or a mapping")
                continue
            key = self.scalar(key_node, path)
            if not isinstance(key, str):
                key = str(key_node.value)  # keep the text written: 1, 2026-12-31, yes
            key_path = (*path, key)
            if key in out:
                self.issue(line, key_path, f"duplicate key {key!r}")
            self.lines.lines[key_path] = line
            out[key] = self.walk(value_node, key_path)
            self.lines.lines[key_path] = line
        return out

    def scalar(self, node: yaml.Node, path: Path_) -> Any:
        """The value of a scalar; one YAML cannot construct (a date like 2026-13-45, an
        integer of thousands of digits) is an issue, read as its text."""
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            text = re.split(r"[\n;]", str(exc), maxsplit=1)[0]
            self.issue(node.start_mark.line + 1, path, f"invalid value ({text})")
            return str(node.value)

    def expand_env(self, text: str, path: Path_, line: int) -> str:
        def replace(m: re.Match[str]) -> str:
            if m.group(1) == "$":
                return "$"
            name = m.group(2)
            if name not in self.env:
                self.issue(line, path, f"environment variable {name} is not set")
                return ""
            return self.env[name]

        return _ENV_REF.sub(replace, text)
