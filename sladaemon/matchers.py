"""Label matchers in Alertmanager's syntax: ``name="value"``, ``name!="value"``,
``name=~"regex"``, ``name!~"regex"``, alone or as a list ``{a="b", c=~"d.*"}`` (braces optional,
values quoted or not). Parsing follows Alertmanager's (``pkg/labels``): label names may hold
``:``, whitespace around the parts is dropped, a list may end with a comma, and in a value
``\\"``, ``\\n`` and ``\\\\`` are escapes while any other backslash is itself. A regex is
anchored at both ends and read as Go's RE2 reads it (``\\d``, ``\\w``, ``\\s`` are ASCII,
``.`` stops at a line feed, ``[[:alpha:]]`` classes; look-arounds and back-references are
errors). A label that is absent matches as the empty string, so ``team=""`` matches
notifications without a team. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

Op = Literal["=", "!=", "=~", "!~"]
_GO_SPACE = "[\t\n\f\r ]"  # Go's \s
# '=~' before '=' so that the '~' is not read as the value's first character.
_MATCHER = re.compile(
    rf"{_GO_SPACE}*([a-zA-Z_:][a-zA-Z0-9_:]*){_GO_SPACE}*(=~|=|!=|!~){_GO_SPACE}*(.*?){_GO_SPACE}*\Z",
    re.DOTALL,
)


class MatcherError(ValueError):
    pass


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, name: str, op: Op, value: str) -> Matcher:
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(f"(?:{_python_regex(value)})\\Z")
            except re.error as exc:
                raise MatcherError(f"invalid regex in {name}{op}{value!r}: {exc}") from None
        return cls(name, op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        assert self._regex is not None
        found = self._regex.match(got) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """One matcher, e.g. ``queue=~"billing|sales"``."""
    found = _MATCHER.match(text)
    if found is None:
        raise MatcherError(f"bad matcher format: {text}")
    name, op, raw = found.groups()
    return Matcher.of(name, cast(Op, op), _unescape(raw))


def parse_matchers(text: str) -> list[Matcher]:
    """A list of matchers, comma-separated, optionally in braces: ``{a="b", c!~"x|y"}``."""
    text = text.removeprefix("{").removesuffix("}")
    return [parse_matcher(part) for part in _split(text)]


def matches_all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def format_matchers(matchers: list[Matcher]) -> str:
    """``{a="b",c=~"d"}``, sorted by name, value and operator as Alertmanager shows a route's."""
    order: dict[str, int] = {"=": 0, "!=": 1, "=~": 2, "!~": 3}
    ordered = sorted(matchers, key=lambda m: (m.name, m.value, order[m.op]))
    return "{" + ",".join(str(m) for m in ordered) + "}"


def _unescape(raw: str) -> str:
    """A value without its quotes and escapes; an unescaped quote inside is an error."""
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    out: list[str] = []
    escaped = False
    for i, ch in enumerate(body):
        last = i == len(body) - 1
        if escaped:
            escaped = False
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(ch, "\\" + ch))
        elif ch == "\\" and not last:
            escaped = True
        elif ch == '"':
            if not quoted or not last:
                raise MatcherError(f"matcher value contains unescaped double quote: {raw}")
            quoted = False
        else:
            out.append(ch)
    if quoted:
        raise MatcherError(f"matcher value contains unescaped double quote: {raw}")
    return "".join(out)


def _split(text: str) -> list[str]:
    """Split at commas outside quotes (a quote after a backslash is no quote); blank last
    part dropped, as after a trailing comma."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        if ch == '"':
            if escaped:
                escaped = False
            else:
                quoted = not quoted
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        current.append(ch)
    last = "".join(current).strip()
    if last:
        parts.append(last)
    return parts


# ---------------------------------------------------------------------------- Go regexes

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_PERL_CLASSES = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_UNSUPPORTED_GROUPS = ("(?=", "(?!", "(?<=", "(?<!", "(?>", "(?P=", "(?(")


def _python_regex(pattern: str) -> str:
    """An RE2 (Go) pattern as a Python one that matches the same strings."""
    out: list[str] = []
    scoped: list[list[str]] = [[]]  # per open group: its ``(?i)`` turned into ``(?i:``
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 2
            out.append(_escape(pattern[i - 1], in_class))
            continue
        if in_class:
            i, in_class = _class_member(pattern, i, out)
            continue
        if ch == "[":
            in_class = True
            member = re.match(r"\[\^?\]?", pattern[i:])
            assert member is not None
            out.append(member.group(0).replace("]", "\\]"))  # a leading ] is a member
            i += member.end()
            continue
        flags = re.match(r"\(\?([imsU-]+)\)", pattern[i:])
        if flags:
            out.append(f"(?{flags.group(1)}:")  # Go scopes it to the rest of the group
            scoped[-1].append(flags.group(1))
            i += flags.end()
            continue
        if ch == "(":
            if pattern.startswith(_UNSUPPORTED_GROUPS, i):
                raise re.error("look-arounds, atomic groups and conditionals are not supported")
            scoped.append([])
        elif ch == ")" and len(scoped) > 1:
            out.append(")" * len(scoped.pop()))
        elif ch == "|":  # each alternative keeps the flags
            ch = ")" * len(scoped[-1]) + "|" + "".join(f"(?{f}:" for f in scoped[-1])
        elif ch == "$" and "m" not in "".join(re.findall(r"\(\?([imsU-]+)[:)]", pattern)):
            ch = "\\Z"  # Go's $ is the end of the text, not before a last line feed
        out.append(ch)
        i += 1
    if in_class:
        raise re.error("missing closing ]")
    out.append(")" * len(scoped[0]))
    return "".join(out)


def _class_member(pattern: str, i: int, out: list[str]) -> tuple[int, bool]:
    """Copy the member of a character class at ``i``: where the next starts, and whether
    the class goes on."""
    posix = re.match(r"\[:(\^?)([a-z]+):\]", pattern[i:])
    if posix and posix.group(2) in _POSIX_CLASSES:
        if posix.group(1):
            raise re.error("negated POSIX classes are not supported")
        out.append(_POSIX_CLASSES[posix.group(2)])
        return i + posix.end(), True
    ch = pattern[i]
    out.append("\\" + ch if ch in "[&~|" else ch)  # literal in Go, warned of by Python
    return i + 1, ch != "]"


def _escape(ch: str, in_class: bool) -> str:
    """A backslash escape ``\\<ch>`` of Go as Python reads it."""
    if ch.isdigit() and ch != "0":
        raise re.error("back-references are not supported")
    if ch in _PERL_CLASSES:
        return _PERL_CLASSES[ch] if in_class else f"[{_PERL_CLASSES[ch]}]"
    if ch.lower() in _PERL_CLASSES and not in_class:
        return f"[^{_PERL_CLASSES[ch.lower()]}]"
    return "\\Z" if ch == "z" else "\\" + ch
