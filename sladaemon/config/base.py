"""What every config section shares: strict frozen models, one-line errors, secrets from files.

Sections in their own files that ``models`` imports (Slack) use these, not ``models``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict
from pydantic_core import PydanticCustomError

from sladaemon.config.yamlfile import UnreadableFileError, read_text_file

STRICT = ConfigDict(extra="forbid", frozen=True)  # unknown keys are errors; values frozen


def _custom(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, "{reason}", {"reason": message})


def _secret_from_file(data: Any, name: str, *, as_lines: bool = False) -> Any:
    """Replace ``<name>_file: PATH`` by ``<name>``: the file's content (lines for lists)."""
    key = f"{name}_file"
    if not isinstance(data, dict) or key not in data:
        return data
    if name in data:
        raise _custom("secret_file", f"give either {name} or {key}, not both")
    path = Path(str(data[key]))
    try:
        content = read_text_file(path)
    except UnreadableFileError as exc:
        raise _custom("secret_file", f"{key}: cannot read {path}: {exc}") from None
    data = {k: v for k, v in data.items() if k != key}
    if as_lines:
        data[name] = [ln.strip() for ln in content.splitlines() if ln.strip()]
    else:
        data[name] = content.strip()
    return data
