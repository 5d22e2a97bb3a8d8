"""Who is asking: sessions of the board's accounts, a trusted proxy's user header, CSRF.

* Accounts sign in with a password checked against their argon2 hash (in a thread: a check
  takes tens of ms by design). A session is a random token in a cookie — ``HttpOnly``,
  ``SameSite=Strict``, ``Secure`` behind TLS — held in memory only: a restart signs everyone
  out. Sign-in attempts are limited per client address: ``LOGIN_BURST`` in a row, then
  ``board.login_rate`` a second.
* A reverse proxy that authenticated the user passes the name in ``board.user_header``; the
  header counts only when the request comes from an address of ``board.trusted_proxies``.
* Every POST carries the identity's CSRF token (a form field); the sign-in form, which has no
  identity yet, carries the token of a short-lived pre-session cookie (double submit).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sladaemon.config.board import BoardConfig, Role
from sladaemon.ratelimit import RateLimit

SESSION_COOKIE = "sladaemon_board"
LOGIN_COOKIE = "sladaemon_board_login"  # the sign-in form's CSRF token
LOGIN_TTL = 3600  # seconds a sign-in form's token is good for
MAX_SESSIONS = 10_000
LOGIN_BURST = 5  # sign-in attempts in a row before ``login_rate`` applies
CSRF_FIELD = "csrf"
_HASHER = PasswordHasher()
# A hash to check against for unknown names, so that they take as long as known ones.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(8))


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` for ``board.accounts.NAME.password_hash``."""
    return _HASHER.hash(password)


@dataclass(frozen=True)
class Identity:
    user: str
    role: Role
    csrf: str
    via: str  # "session" or "proxy"
    session: str = ""

    @property
    def responder(self) -> bool:
        return self.role == "responder"


@dataclass
class Session:
    user: str
    role: Role
    csrf: str
    expires: float


@dataclass(eq=False)
class Access:
    config: BoardConfig
    clock: Callable[[], float] = time.monotonic
    sessions: dict[str, Session] = field(default_factory=dict)
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def __post_init__(self) -> None:
        self.limit = RateLimit(self.config.login_rate, self.clock, LOGIN_BURST)
        self._proxies = _networks(self.config.trusted_proxies)

    def use(self, config: BoardConfig) -> None:
        """A reloaded config: sessions of removed accounts (or changed roles) end."""
        self.config = config
        self.limit.rate = config.login_rate
        self._proxies = _networks(config.trusted_proxies)
        for token, s in list(self.sessions.items()):
            account = config.accounts.get(s.user)
            if account is None or account.role != s.role:
                del self.sessions[token]

    # ------------------------------------------------------------------ who

    def identify(self, request: web.Request) -> Identity | None:
        proxied = self._proxy_user(request)
        if proxied is not None:
            role = self.config.proxy_roles.get(proxied, self.config.proxy_default_role)
            return Identity(proxied, role, self._derived("proxy", proxied), "proxy")
        token = request.cookies.get(SESSION_COOKIE, "")
        s = self.sessions.get(token)
        if s is None:
            return None
        if s.expires <= self.clock():
            del self.sessions[token]
            return None
        return Identity(s.user, s.role, s.csrf, "session", token)

    def _proxy_user(self, request: web.Request) -> str | None:
        user = request.headers.get(self.config.user_header, "").strip()
        return user[:200] if user and self._trusted(request) else None

    def _derived(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ CSRF

    @staticmethod
    def csrf_ok(identity: Identity, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), identity.csrf.encode())

    def login_token(self, request: web.Request) -> tuple[str, bool]:
        """The sign-in form's token: the pre-session cookie's, or a new one (True: set it)."""
        given = request.cookies.get(LOGIN_COOKIE, "")
        if self._login_token_valid(given):
            return given, False
        stamp = str(int(time.time()))
        nonce = secrets.token_urlsafe(16)
        return f"{stamp}.{nonce}.{self._derived('login', stamp + nonce)}", True

    def _login_token_valid(self, token: str) -> bool:
        stamp, _, rest = token.partition(".")
        nonce, _, mac = rest.partition(".")
        if not stamp.isdigit() or not mac or time.time() - int(stamp) > LOGIN_TTL:
            return False
        return hmac.compare_digest(mac, self._derived("login", stamp + nonce))

    def login_csrf_ok(self, request: web.Request, given: str) -> bool:
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        return (
            bool(given)
            and hmac.compare_digest(given.encode(), cookie.encode())
            and self._login_token_valid(cookie)
        )

    # ------------------------------------------------------------------ sign in and out

    def allowed(self, request: web.Request) -> bool:
        """Within the client's sign-in rate."""
        return self.limit.allow(request.remote or "")

    async def sign_in(self, user: str, password: str) -> str | None:
        """A new session's token, or None when the name or password is wrong."""
        account = self.config.accounts.get(user)
        stored = account.password_hash.get_secret_value() if account else _DUMMY_HASH
        ok = await asyncio.to_thread(_verify, stored, password)
        if not ok or account is None:
            return None
        if len(self.sessions) >= MAX_SESSIONS:
            self._forget_expired()
        token = secrets.token_urlsafe(32)
        expires = self.clock() + self.config.session_ttl.total_seconds()
        self.sessions[token] = Session(user, account.role, secrets.token_urlsafe(32), expires)
        return token

    def sign_out(self, identity: Identity) -> None:
        self.sessions.pop(identity.session, None)

    def _forget_expired(self) -> None:
        now = self.clock()
        for token, s in list(self.sessions.items()):
            if s.expires <= now:
                del self.sessions[token]
        while len(self.sessions) >= MAX_SESSIONS:  # still full: the oldest go first
            del self.sessions[next(iter(self.sessions))]

    def secure(self, request: web.Request) -> bool:
        if self.config.secure_cookies is not None:
            return self.config.secure_cookies
        forwarded = request.headers.get("X-Forwarded-Proto", "") if self._trusted(request) else ""
        return request.secure or forwarded.lower() == "https"

    def _trusted(self, request: web.Request) -> bool:
        """The request comes from a configured reverse proxy."""
        if not self._proxies:
            return False
        try:
            address = ipaddress.ip_address(request.remote or "")
        except ValueError:
            return False
        return any(address in network for network in self._proxies)

    def set_cookie(self, response: web.StreamResponse, request: web.Request, name: str,
                   value: str, max_age: int) -> None:  # fmt: skip
        response.set_cookie(
            name, value, max_age=max_age, path="/", httponly=True, samesite="Strict",
            secure=self.secure(request),
        )  # fmt: skip


def _networks(texts: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(text, strict=False) for text in texts]


def _verify(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
