"""Label matchers (Alertmanager's syntax) for the escalation stages; the language itself lives
in ``sladaemon.matchers``, below the config, which checks the matchers it is given."""

from sladaemon.matchers import (
    Matcher,
    MatcherError,
    Op,
    format_matchers,
    matches_all,
    parse_matcher,
    parse_matchers,
)

__all__ = [
    "Matcher",
    "MatcherError",
    "Op",
    "format_matchers",
    "matches_all",
    "parse_matcher",
    "parse_matchers",
]
