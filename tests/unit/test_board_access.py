"""Who the board lets in: argon2 accounts and their sessions (expiry, reloads), the trusted
proxy's user header (only from its addresses), CSRF tokens, the sign-in form's token, cookies,
and the config's refusals."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import Mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from pydantic import ValidationError

from sladaemon.board.access import LOGIN_COOKIE, SESSION_COOKIE, Access, hash_password
from sladaemon.config.board import BoardConfig

ANN = hash_password("ann-password")
VIC = hash_password("vic-password")


def config(**overrides: Any) -> BoardConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "accounts": {
            "ann": {"password_hash": ANN, "role": "responder"},
            "vic": {"password_hash": VIC},
        },
        "session_ttl": "1h",
    }
    return BoardConfig(**(values | overrides))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(
    remote: str = "192.0.2.7",
    cookies: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Request:
    headers = dict(headers or {})
    transport = Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (remote, 40000) if name == "peername" else default
    )
    cookie = "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())
    if cookie:
        headers["Cookie"] = cookie
    return make_mocked_request("GET", "/", headers=headers, transport=transport)


def test_an_account_signs_in_with_its_password_only_and_its_session_ends_on_time() -> None:
    clock = Clock()
    access = Access(config(), clock)
    assert asyncio.run(access.sign_in("ann", "wrong")) is None
    assert asyncio.run(access.sign_in("nobody", "ann-password")) is None
    token = asyncio.run(access.sign_in("ann", "ann-password"))
    assert token is not None
    me = access.identify(request(cookies={SESSION_COOKIE: token}))
    assert me is not None and (me.user, me.role, me.responder, me.via) == (
        "ann", "responder", True, "session",
    )  # fmt: skip
    assert access.identify(request(cookies={SESSION_COOKIE: token + "x"})) is None
    clock.now += 3599
    assert access.identify(request(cookies={SESSION_COOKIE: token})) is not None
    clock.now += 2
    assert access.identify(request(cookies={SESSION_COOKIE: token})) is None
    assert not access.sessions


def test_a_viewer_is_no_responder_and_sign_out_ends_the_session() -> None:
    access = Access(config())
    token = asyncio.run(access.sign_in("vic", "vic-password"))
    assert token is not None
    me = access.identify(request(cookies={SESSION_COOKIE: token}))
    assert me is not None and me.role == "viewer" and not me.responder
    access.sign_out(me)
    assert access.identify(request(cookies={SESSION_COOKIE: token})) is None


def test_a_reload_ends_the_sessions_of_removed_accounts_and_changed_roles() -> None:
    access = Access(config())
    ann = asyncio.run(access.sign_in("ann", "ann-password"))
    vic = asyncio.run(access.sign_in("vic", "vic-password"))
    assert ann and vic
    access.use(config(accounts={"ann": {"password_hash": ANN, "role": "viewer"},
                                "vic": {"password_hash": VIC}}))  # fmt: skip
    assert access.identify(request(cookies={SESSION_COOKIE: ann})) is None
    assert access.identify(request(cookies={SESSION_COOKIE: vic})) is not None


def test_the_proxy_header_counts_only_from_a_trusted_address() -> None:
    access = Access(config(trusted_proxies=["10.0.0.0/8"], proxy_roles={"lead": "responder"}))
    assert access.identify(request("192.0.2.7", headers={"X-Remote-User": "lead"})) is None
    lead = access.identify(request("10.1.2.3", headers={"X-Remote-User": "lead"}))
    assert lead is not None and (lead.user, lead.role, lead.via) == ("lead", "responder", "proxy")
    other = access.identify(request("10.1.2.3", headers={"X-Remote-User": "someone"}))
    assert other is not None and other.role == "viewer"
    assert access.identify(request("10.1.2.3")) is None  # no header: not signed in
    assert Access(config()).identify(request("10.1.2.3", headers={"X-Remote-User": "lead"})) is None


def test_csrf_tokens_belong_to_one_identity() -> None:
    access = Access(config(trusted_proxies=["127.0.0.1"]))
    token = asyncio.run(access.sign_in("ann", "ann-password"))
    assert token is not None
    ann = access.identify(request(cookies={SESSION_COOKIE: token}))
    lead = access.identify(request("127.0.0.1", headers={"X-Remote-User": "lead"}))
    assert ann is not None and lead is not None
    assert access.csrf_ok(ann, ann.csrf) and access.csrf_ok(lead, lead.csrf)
    assert not access.csrf_ok(ann, "") and not access.csrf_ok(ann, lead.csrf)
    again = access.identify(request("127.0.0.1", headers={"X-Remote-User": "lead"}))
    assert again is not None and again.csrf == lead.csrf  # stable for the proxy's user


def test_the_sign_in_form_token_is_a_double_submitted_signed_cookie() -> None:
    access = Access(config())
    token, fresh = access.login_token(request())
    assert fresh
    with_cookie = request(cookies={LOGIN_COOKIE: token})
    assert access.login_token(with_cookie) == (token, False)
    assert access.login_csrf_ok(with_cookie, token)
    assert not access.login_csrf_ok(with_cookie, "")
    assert not access.login_csrf_ok(request(), token)  # no cookie
    forged = token.rsplit(".", 1)[0] + ".00"
    assert not access.login_csrf_ok(request(cookies={LOGIN_COOKIE: forged}), forged)
    other = Access(config())  # another daemon run signs with another key
    assert not other.login_csrf_ok(with_cookie, token)


def test_sign_in_attempts_are_limited_per_client_address() -> None:
    clock = Clock()
    access = Access(config(login_rate=0.5), clock)
    allowed = [access.allowed(request("192.0.2.1")) for _ in range(7)]
    assert allowed == [True] * 5 + [False] * 2  # a burst of 5, then one every 2 s
    assert access.allowed(request("192.0.2.2"))
    clock.now += 2
    assert access.allowed(request("192.0.2.1"))
    assert not access.allowed(request("192.0.2.1"))


def test_cookies_are_http_only_strict_and_secure_behind_tls() -> None:
    access = Access(config(trusted_proxies=["127.0.0.1"]))
    response = web.Response()
    access.set_cookie(response, request(), SESSION_COOKIE, "t", 60)
    morsel = response.cookies[SESSION_COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and not morsel["secure"]
    proxied = request("127.0.0.1", headers={"X-Forwarded-Proto": "https"})
    access.set_cookie(response, proxied, SESSION_COOKIE, "t", 60)
    assert response.cookies[SESSION_COOKIE]["secure"]
    spoofed = request("192.0.2.9", headers={"X-Forwarded-Proto": "https"})  # not from the proxy
    access.set_cookie(response, spoofed, SESSION_COOKIE, "t", 60)
    assert not response.cookies[SESSION_COOKIE]["secure"]
    forced = Access(config(secure_cookies=True))
    forced.set_cookie(response, request(), SESSION_COOKIE, "t", 60)
    assert response.cookies[SESSION_COOKIE]["secure"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"enabled": True}, "nobody can sign in"),
        ({"accounts": {"a": {"password_hash": "plain"}}}, "argon2 hash"),
        ({"trusted_proxies": ["not-an-address"]}, "not an address"),
        ({"listen": "nowhere"}, "invalid listen address"),
        ({"accounts": {"a": {"password_hash": ANN, "role": "admin"}}}, "viewer"),
    ],
)
def test_config_mistakes_are_refused_with_their_reason(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        BoardConfig(**values)
