"""Silences: which notifications they silence and when, how they are kept in the state file,
the ``silence`` command on a state file no daemon holds, and the silences API served on
127.0.0.1 against a real state file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from sladaemon.cli import main
from sladaemon.config.chains import AckConfig
from sladaemon.daemon.silence_http import silence_routes
from sladaemon.escalate.silence_store import SilenceBook, SilenceStore, UnknownSilence
from sladaemon.escalate.silences import (
    MAX_MATCHERS,
    MAX_TEXT,
    RETENTION,
    Silence,
    SilenceError,
    expired,
    matchers_of,
    new_silence,
    silence_from_request,
    silencing,
)
from sladaemon.metrics import DaemonMetrics
from sladaemon.store.sqlite import StateStore

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
BILLING = {"queue": "billing", "priority": "low", "source": "desk"}


def make(
    *texts: str,
    start: timedelta = timedelta(0),
    lasting: timedelta = timedelta(hours=2),
    sid: str = "s1",
) -> Silence:
    return new_silence(
        sid,
        matchers_of(texts),
        now=NOW,
        starts_at=NOW + start,
        ends_at=NOW + start + lasting,
        created_by="alice",
        comment="maintenance",
    )


# ---------------------------------------------------------------------- pure


def test_an_active_silence_silences_only_labels_matching_every_matcher() -> None:
    silence = make("queue=billing", 'priority=~"low|normal"')
    assert silencing([silence], BILLING, NOW) == silence
    assert silencing([silence], {**BILLING, "priority": "urgent"}, NOW) is None
    assert silencing([silence], {"priority": "low"}, NOW) is None


def test_a_silence_is_pending_then_active_then_expired_and_silences_only_while_active() -> None:
    silence = make("queue=billing", start=timedelta(hours=1), lasting=timedelta(hours=2))
    moments = [
        (NOW, "pending"),
        (NOW + timedelta(hours=1), "active"),
        (NOW + timedelta(hours=3) - timedelta(seconds=1), "active"),
        (NOW + timedelta(hours=3), "expired"),
    ]
    for at, state in moments:
        assert silence.state(at) == state
        assert (silencing([silence], BILLING, at) is not None) == (state == "active")


def test_the_first_matching_active_silence_is_the_answer() -> None:
    ended = expired(make("queue=billing", sid="ended"), NOW, "bob")
    broad = make('queue=~"bill.*"', sid="broad")
    narrow = make("queue=billing", sid="narrow")
    assert silencing([ended, broad, narrow], BILLING, NOW) == broad
    assert silencing([ended, narrow, broad], BILLING, NOW) == narrow


@pytest.mark.parametrize(
    ("texts", "lasting", "comment", "complaint"),
    [
        ((), timedelta(hours=1), "x", "matcher"),
        (('queue=~".*"',), timedelta(hours=1), "x", "empty string"),
        (('queue=~"("',), timedelta(hours=1), "x", "regex"),
        (("queue=billing",), timedelta(seconds=59), "x", "1m to 30d"),
        (("queue=billing",), timedelta(days=30, seconds=1), "x", "1m to 30d"),
        (("queue=billing",), timedelta(hours=1), " ", "comment"),
    ],
)
def test_a_silence_that_cannot_be_made_says_why(
    texts: tuple[str, ...], lasting: timedelta, comment: str, complaint: str
) -> None:
    with pytest.raises(SilenceError, match=complaint):
        new_silence(
            "s", matchers_of(texts), now=NOW, ends_at=NOW + lasting, created_by="a",
            comment=comment,
        )  # fmt: skip


def test_a_request_gives_the_length_or_the_end_with_an_offset() -> None:
    body: dict[str, object] = {"matchers": ["queue=billing"], "comment": "x", "created_by": "a"}
    made = silence_from_request({**body, "for": "3d"}, silence_id="s", now=NOW)
    assert made.ends_at == NOW + timedelta(days=3)
    end = "2026-03-02T18:00:00+01:00"
    made = silence_from_request({**body, "ends_at": end}, silence_id="s", now=NOW)
    assert made.ends_at == datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    wrongs: list[tuple[dict[str, object], str]] = [
        ({}, "either"),
        ({"for": "2h", "ends_at": end}, "either"),
        ({"ends_at": "2026-03-02T18:00:00"}, "offset"),
        ({"for": "soon"}, "invalid period"),
        ({"for": "2h", "matchers": "queue=billing"}, "list"),
        ({"for": 7200}, "texts"),
    ]
    for wrong, complaint in wrongs:
        with pytest.raises(SilenceError, match=complaint):
            silence_from_request({**body, **wrong}, silence_id="s", now=NOW)


# ---------------------------------------------------------------------- store


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(tmp_path / "state.sqlite")
    yield store
    store.close()


def test_silences_survive_a_reopened_state_file_with_their_matchers(tmp_path: Path) -> None:
    silence = make('queue="bill\\"ing"', 'priority!~"urgent|high"', "team!=ops")
    first = StateStore(tmp_path / "state.sqlite")
    SilenceStore(first).add(silence)
    first.close()
    again = StateStore(tmp_path / "state.sqlite")
    try:
        assert SilenceStore(again).get("s1") == silence
    finally:
        again.close()


def test_expire_ends_a_silence_now_and_refuses_unknown_or_ended_ones(state: StateStore) -> None:
    store = SilenceStore(state)
    store.add(make("queue=billing"))
    later = NOW + timedelta(minutes=10)
    ended = store.expire("s1", "bob", later)
    assert (ended.state(later), ended.expired_by, ended.ended_at) == ("expired", "bob", later)
    assert store.listed(later) == []
    assert [s.id for s in store.listed(later, include_expired=True)] == ["s1"]
    with pytest.raises(UnknownSilence):
        store.expire("nope", "bob", later)
    with pytest.raises(SilenceError, match="expired already"):
        store.expire("s1", "bob", later)


def test_expired_silences_are_listed_for_the_retention_then_pruned(state: StateStore) -> None:
    store = SilenceStore(state)
    store.add(make("queue=billing", sid="old"))
    ended = NOW + timedelta(hours=2)
    assert store.counts(ended) == {"active": 0, "pending": 0, "expired": 1}
    past = ended + RETENTION + timedelta(seconds=1)
    assert store.listed(past, include_expired=True) == []
    store.add(
        new_silence(
            "new", matchers_of(["queue=sales"]), now=past, ends_at=past + timedelta(hours=1),
            created_by="a", comment="x",
        )
    )  # fmt: skip
    assert store.get("old") is None
    assert store.get("new") is not None


def test_the_book_sees_a_silence_added_or_expired_through_another_store(
    state: StateStore,
) -> None:
    book = SilenceBook(SilenceStore(state))
    assert book.silencing(BILLING, NOW) is None
    other = SilenceStore(state)
    other.add(make("queue=billing"))
    found = book.silencing(BILLING, NOW)
    assert found is not None and found.id == "s1"
    other.expire("s1", "bob", NOW + timedelta(minutes=1))
    assert book.silencing(BILLING, NOW + timedelta(minutes=1)) is None


# ---------------------------------------------------------------------- the command


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
calendars:
  always: {{timezone: UTC, hours: {{mon-sun: "00:00-24:00"}}}}
policies:
  - name: all
    calendar: always
    targets: {{first_response: 1h}}
daemon:
  state: {tmp_path / "state.sqlite"}
"""
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_adds_lists_and_expires_a_silence_in_the_state_file(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = ["--config", str(config)]
    code, out, err = run(
        capsys, "silence", "add", *c, "queue=billing", 'priority=~"low|normal"', "--for", "2h",
        "--comment", "billing migration", "--by", "alice",
    )  # fmt: skip
    assert (code, err) == (0, "")
    silence_id = out.strip()
    code, out, _ = run(capsys, "silence", "list", *c, "--json")
    (listed,) = json.loads(out)["silences"]
    assert listed["id"] == silence_id
    assert listed["matchers"] == ['queue="billing"', 'priority=~"low|normal"']
    assert (listed["created_by"], listed["comment"], listed["state"]) == (
        "alice", "billing migration", "active",
    )  # fmt: skip
    code, out, _ = run(capsys, "silence", "list", *c)
    assert silence_id in out and "billing migration" in out and "active" in out
    assert run(capsys, "silence", "expire", *c, silence_id, "--by", "bob")[0] == 0
    assert run(capsys, "silence", "list", *c, "--json")[1].count(silence_id) == 0
    code, out, _ = run(capsys, "silence", "list", *c, "--all", "--json")
    (listed,) = json.loads(out)["silences"]
    assert (listed["state"], listed["expired_by"]) == ("expired", "bob")


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["add", "--for", "2h", "--comment", "x"], "give a matcher"),
        (["add", "queue=a", "--for", "31d", "--comment", "x"], "1m to 30d"),
        (["add", "queue=a", "--for", "30s", "--comment", "x"], "1m to 30d"),
        (["add", "queue", "--for", "1h", "--comment", "x"], "matcher"),
        (["add", "queue=a", "--until", "2026-01-01T00:00:00", "--comment", "x"], "offset"),
        (["expire", "no-such-id"], "no silence"),
        ([], "add, list or expire"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    config: Path, capsys: pytest.CaptureFixture[str], args: list[str], complaint: str
) -> None:
    argv = ["silence", *args[:1], "--config", str(config), *args[1:]] if args else ["silence"]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert complaint in err and len(err.strip().splitlines()) == 1
    assert out == ""


# ---------------------------------------------------------------------- the API

TOKEN = "silence-api-token-0123456789"


class Api:
    def __init__(self, url: str, store: SilenceStore, metrics: DaemonMetrics) -> None:
        self.url, self.store, self.metrics = url, store, metrics

    async def call(
        self, method: str, path: str = "", body: Any = None, token: str = TOKEN, **params: str
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, self.url + path, data=data, headers=headers, params=params
            ) as response,
        ):
            return response.status, await response.json()

    def refused(self, reason: str) -> float:
        return (
            self.metrics.registry.get_sample_value(
                "sladaemon_silence_requests_refused_total", {"reason": reason}
            )
            or 0.0
        )


class Clock:
    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def wait(self, *_: object) -> None:
        raise NotImplementedError


@pytest.fixture
async def api(state: StateStore) -> AsyncIterator[Api]:
    store, metrics = SilenceStore(state), DaemonMetrics()
    ack = AckConfig(
        public_url="http://127.0.0.1",
        secret=SecretStr("s" * 32),
        api_tokens=[SecretStr(TOKEN)],
        rate=1000,
    )
    app = web.Application(client_max_size=64 * 1024)
    app.add_routes(silence_routes(lambda: ack, store, metrics, Clock()))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Api(f"http://127.0.0.1:{port}/api/v1/silences", store, metrics)
    await runner.cleanup()


async def test_the_api_adds_lists_and_expires_a_committed_silence(api: Api) -> None:
    body = {"matchers": ["queue=billing"], "for": "2h", "comment": "x", "created_by": "carol"}
    status, made = await api.call("POST", body=body)
    assert status == 201
    stored = api.store.get(made["id"])
    assert stored is not None and stored.created_by == "carol"
    status, answer = await api.call("GET")
    assert status == 200 and [s["id"] for s in answer["silences"]] == [made["id"]]
    status, ended = await api.call("DELETE", f"/{made['id']}", by="dave")
    assert (status, ended["state"], ended["expired_by"]) == (200, "expired", "dave")
    assert (await api.call("GET"))[1]["silences"] == []
    status, answer = await api.call("GET", all="1")
    assert [s["state"] for s in answer["silences"]] == ["expired"]
    assert (await api.call("DELETE", f"/{made['id']}"))[0] == 409
    assert (await api.call("DELETE", "/no-such-id"))[0] == 404


async def test_the_api_refuses_and_counts_bad_tokens_and_bad_bodies(api: Api) -> None:
    good = {"matchers": ["queue=billing"], "for": "2h", "comment": "x"}
    assert (await api.call("POST", body=good, token="wrong"))[0] == 401
    assert (await api.call("GET", token="wrong"))[0] == 401
    assert api.refused("unauthorized") == 2
    too_many = [f"label{n}=x" for n in range(MAX_MATCHERS + 1)]
    bad_bodies = [
        b"{not json",
        [good],
        {**good, "matchers": []},
        {**good, "for": "40d"},
        {**good, "matchers": too_many},
        {**good, "comment": "x" * (MAX_TEXT + 1)},
        {**good, "matchers": ["queue=" + "x" * MAX_TEXT]},
    ]
    for bad in bad_bodies:
        status, answer = await api.call("POST", body=bad)
        assert status == 400 and answer["ok"] is False and answer["message"]
    assert api.refused("malformed") == len(bad_bodies)
    assert api.store.listed(datetime.now(UTC), include_expired=True) == []
