"""YAML loading that remembers where every value came from.

``load_yaml`` returns the plain data and a ``LineMap`` from YAML paths (tuples of keys and list
indexes) to 1-based line numbers, so every config error can name its file, line and path.
``${ENV_VAR}`` references inside strings are replaced from the environment (``$$`` is a literal
``$``); a missing variable is a config error at the line that references it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from sladaemon.errors import ConfigIssue

Path_ = tuple[str | int, ...]
_ENV_REF = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")


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


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load_yaml(text: str, file: str, environ: Mapping[str, str] | None = None) -> YamlDocument:
    """Parse one YAML document. Syntax errors and missing env vars become issues."""
    env = os.environ if environ is None else environ
    lines = LineMap()
    issues: list[ConfigIssue] = []
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(file, {}, lines, issues)
        data = _walk(loader, node, (), lines, issues, file, env)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        issues.append(ConfigIssue(file, line, "", f"YAML syntax error: {problem}"))
        return YamlDocument(file, {}, lines, issues)
    except yaml.YAMLError as exc:
        issues.append(ConfigIssue(file, None, "", f"YAML error: {exc}"))
        return YamlDocument(file, {}, lines, issues)
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        issues.append(
            ConfigIssue(file, 1, "", "the config must be a mapping of sections (calendars: ...)")
        )
        return YamlDocument(file, {}, lines, issues)
    return YamlDocument(file, data, lines, issues)


def _walk(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: Path_,
    lines: LineMap,
    issues: list[ConfigIssue],
    file: str,
    env: Mapping[str, str],
) -> Any:
    lines.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key_node.value)  # keep the text written: 1, 2026-12-31, yes
            key_path = (*path, key)
            if key in out:
                issues.append(
                    ConfigIssue(
                        file,
                        key_node.start_mark.line + 1,
                        format_path(key_path),
                        f"duplicate key {key!r}",
                    )
                )
            lines.lines[key_path] = key_node.start_mark.line + 1
            out[key] = _walk(loader, value_node, key_path, lines, issues, file, env)
            lines.lines[key_path] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _walk(loader, item, (*path, i), lines, issues, file, env)
            for i, item in enumerate(node.value)
        ]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, str) and "$" in value:
        value = _expand_env(value, path, node.start_mark.line + 1, issues, file, env)
    return value


def _expand_env(
    text: str,
    path: Path_,
    line: int,
    issues: list[ConfigIssue],
    file: str,
    env: Mapping[str, str],
) -> str:
    def replace(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2)
        if name not in env:
            issues.append(
                ConfigIssue(
                    file, line, format_path(path), f"environment variable {name} is not set"
                )
            )
            return ""
        return env[name]

    return _ENV_REF.sub(replace, text)
