"""Matchers parse and match as Alertmanager's (pkg/labels): its parser's own examples, its
escaping rules, and Go's RE2 reading of regexes."""

from __future__ import annotations

import pytest

from sladaemon.matchers import (
    Matcher,
    MatcherError,
    format_matchers,
    matches_all,
    parse_matcher,
    parse_matchers,
)


def triples(text: str) -> list[tuple[str, str, str]]:
    return [(m.name, m.op, m.value) for m in parse_matchers(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{foo="bar"}', [("foo", "=", "bar")]),
        ('{foo=~"bar.*"}', [("foo", "=~", "bar.*")]),
        ('{foo!="bar"}', [("foo", "!=", "bar")]),
        ('{foo!~"bar.*"}', [("foo", "!~", "bar.*")]),
        ('{foo="bar", baz!="quux"}', [("foo", "=", "bar"), ("baz", "!=", "quux")]),
        (
            '{foo="bar",baz!~".*quux", derp="wat"}',
            [("foo", "=", "bar"), ("baz", "!~", ".*quux"), ("derp", "=", "wat")],
        ),
        ('{foo=""}', [("foo", "=", "")]),
        ('{foo="bar,quux", job="job1"}', [("foo", "=", "bar,quux"), ("job", "=", "job1")]),
        ('{foo = "bar", dings != "bums", }', [("foo", "=", "bar"), ("dings", "!=", "bums")]),
        ("foo=bar,dings!=bums", [("foo", "=", "bar"), ("dings", "!=", "bums")]),
        (
            '{quote="She said: \\"Hi, ladies! That\'s gender-neutral…\\""}',
            [("quote", "=", 'She said: "Hi, ladies! That\'s gender-neutral…"')],
        ),
        ('statuscode=~"5.."', [("statuscode", "=~", "5..")]),
        ("tricky=~~~", [("tricky", "=~", "~~")]),
        (r"trickier==\\=\=\"", [("trickier", "=", r'=\=\="')]),
        (
            r'contains_quote != "\"" , contains_comma !~ "foo,bar" , ',
            [("contains_quote", "!=", '"'), ("contains_comma", "!~", "foo,bar")],
        ),
        ("job=", [("job", "=", "")]),
        ("{job:name=a}", [("job:name", "=", "a")]),  # names may hold ':'
        ('{a="x\\ty"}', [("a", "=", "x\\ty")]),  # only \" \n \\ are escapes
        ('{a="x\\ny"}', [("a", "=", "x\ny")]),
        ('a=" padded "', [("a", "=", " padded ")]),  # quotes keep the spaces
        ("a= unquoted value ", [("a", "=", "unquoted value")]),
        ('{a="1"', [("a", "=", "1")]),  # each brace is optional on its own
    ],
)
def test_alertmanagers_examples_parse_as_alertmanager_parses_them(text, expected) -> None:
    assert triples(text) == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('job="value', "unescaped double quote"),
        ('job=value"', "unescaped double quote"),
        (r'trickier==\\=\=\""', "unescaped double quote"),
        ('contains_unescaped_quote = foo"bar', "unescaped double quote"),
        ('{invalid-name = "valid label"}', "bad matcher format"),
        ('{foo=~"invalid[regexp"}', "invalid regex"),
        ('"{foo=\\"bar"}', "bad matcher format"),
        ('"foo=\\"bar\\""', "bad matcher format"),
        ('"foo="bar""', "bad matcher format"),
        ("a=b,,c=d", "bad matcher format"),
        ("foo", "bad matcher format"),
    ],
)
def test_alertmanagers_bad_examples_are_refused(text, error) -> None:
    with pytest.raises(MatcherError, match=error):
        parse_matchers(text)


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("bar.*", "barista", True),
        ("bar", "barista", False),  # anchored at both ends
        ("a|b", "a", True),
        ("ab$", "ab\n", False),  # Go's $ is the end of the text
        ("a$\n", "a\n", False),
        ("a.b", "a\nb", False),  # . stops at a line feed
        ("(?s)a.b", "a\nb", True),
        (r"\d+", "١٢", False),  # \d is ASCII in Go
        (r"\w+", "é", False),
        ("[[:alpha:]]+", "abC", True),
        ("[[:digit:]]+", "12a", False),
        ("(?i)crit.*", "CRITICAL", True),
        ("x(?i)ab|c", "C", True),  # the flag holds in each alternative
        ("x(?i)ab|c", "xAB", True),
        ("x(?i)ab|c", "XAB", False),
        ("[]a]+", "]a", True),  # a leading ] is a member
        ("[[a]+", "[a", True),
        ("a&&b", "a&&b", True),
    ],
)
def test_regexes_match_as_go_reads_them(pattern, value, matches) -> None:
    assert Matcher.of("x", "=~", pattern).matches({"x": value}) is matches
    assert Matcher.of("x", "!~", pattern).matches({"x": value}) is not matches


@pytest.mark.parametrize("pattern", ["(?=a)", "(?<!a)b", r"(a)\1", "[[:^alpha:]]", "a[b"])
def test_what_re2_refuses_is_refused(pattern) -> None:
    with pytest.raises(MatcherError, match="invalid regex"):
        Matcher.of("x", "=~", pattern)


def test_an_absent_label_matches_as_the_empty_string() -> None:
    assert parse_matcher('team=""').matches({"queue": "a"})
    assert not parse_matcher("team!=").matches({})
    assert parse_matcher('team=~"|ops"').matches({})
    assert matches_all(parse_matchers("a=1, b!=2"), {"a": "1"})
    assert not matches_all(parse_matchers("a=1, b!=2"), {"a": "1", "b": "2"})


def test_matchers_print_as_alertmanager_prints_them() -> None:
    matcher = parse_matcher('a="say \\"hi\\"\\nback\\\\slash"')
    assert matcher.value == 'say "hi"\nback\\slash'
    assert str(matcher) == 'a="say \\"hi\\"\\nback\\\\slash"'
    assert parse_matcher(str(matcher)) == matcher
    shown = format_matchers(parse_matchers('{b=~"x", a!="2", a="2", a="1"}'))
    assert shown == '{a="1",a="2",a!="2",b=~"x"}'
