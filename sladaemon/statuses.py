"""Mapping of a helpdesk's raw status names to status categories."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

from sladaemon.model import StatusCategory

# Names most helpdesks use, so an unmapped status still lands somewhere sensible.
DEFAULT_STATUS_PATTERNS: tuple[tuple[str, StatusCategory], ...] = (
    ("new", StatusCategory.NEW),
    ("open", StatusCategory.OPEN),
    ("active", StatusCategory.OPEN),
    ("in progress", StatusCategory.OPEN),
    ("pending*", StatusCategory.PENDING),
    ("waiting*", StatusCategory.PENDING),
    ("wait*", StatusCategory.PENDING),
    ("awaiting*", StatusCategory.PENDING),
    ("stalled", StatusCategory.ON_HOLD),
    ("on hold", StatusCategory.ON_HOLD),
    ("on_hold", StatusCategory.ON_HOLD),
    ("hold", StatusCategory.ON_HOLD),
    ("solved", StatusCategory.SOLVED),
    ("resolved", StatusCategory.SOLVED),
    ("closed", StatusCategory.CLOSED),
    ("rejected", StatusCategory.CLOSED),
    ("cancel*", StatusCategory.CLOSED),
)


class StatusMap:
    """Raw status -> category: the configured map first (exact, case-insensitive, or glob),
    then the category names themselves, then common names. Unknown statuses count as open and
    are remembered in ``unknown`` so callers can log each once."""

    def __init__(self, configured: Mapping[str, StatusCategory] | None = None) -> None:
        exact: dict[str, StatusCategory] = {}
        globs: list[tuple[str, StatusCategory]] = []
        for raw, category in (configured or {}).items():
            key = raw.strip().lower()
            if any(c in key for c in "*?["):
                globs.append((key, category))
            else:
                exact[key] = category
        for category in StatusCategory:
            exact.setdefault(category.value, category)
        self._exact = exact
        self._globs = globs + [(p, c) for p, c in DEFAULT_STATUS_PATTERNS if p not in exact]
        self._cache: dict[str, StatusCategory] = {}
        self.unknown: set[str] = set()

    def __call__(self, raw: str) -> StatusCategory:
        cached = self._cache.get(raw)
        if cached is not None:
            return cached
        key = raw.strip().lower()
        category = self._exact.get(key)
        if category is None:
            category = next((c for p, c in self._globs if fnmatchcase(key, p)), None)
        if category is None:
            self.unknown.add(raw)
            category = StatusCategory.OPEN
        self._cache[raw] = category
        return category
