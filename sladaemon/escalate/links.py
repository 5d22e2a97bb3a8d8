"""Signed acknowledgement links: ``<public_url>/ack/<token>``.

A token names a chain, the person it was sent to and when it expires, signed with HMAC-SHA256
under the ``ack.secret``. Anything else — a changed byte, another secret, a past expiry — is
refused with its reason; the daemon refuses a token used before (``use_link``) as a replay.
Pure: the caller passes ``now``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

MAX_TOKEN = 2048  # characters: anything longer is not one of ours


@dataclass(frozen=True, slots=True)
class LinkClaim:
    chain: str
    person: str  # who the link was sent to ("" for a receiver that is not a person)
    expires: int  # Unix seconds
    link_id: str  # the signature: what a replay repeats


class LinkRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # forged, expired, malformed: the metric's label


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AckLinks:
    def __init__(self, public_url: str, secret: str) -> None:
        self.public_url = public_url.rstrip("/")
        self._key = hashlib.sha256(b"sladaemon ack link\n" + secret.encode()).digest()

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:20]

    def token(self, chain: str, person: str, expires: int) -> str:
        body = f"{chain}\n{person}\n{expires}".encode()
        return f"{_b64(body)}.{_b64(self._sign(body))}"

    def url(self, chain: str, person: str, expires: int) -> str:
        return f"{self.public_url}/ack/{self.token(chain, person, expires)}"

    def verify(self, token: str, now: float) -> LinkClaim:
        """The claim of a genuine, unexpired token; else ``LinkRefused``."""
        body_text, dot, signature = token.partition(".")
        if not dot or len(token) > MAX_TOKEN:
            raise LinkRefused("malformed", "this is not an acknowledgement link")
        try:
            body, given = _unb64(body_text), _unb64(signature)
        except (binascii.Error, ValueError):
            raise LinkRefused("malformed", "this is not an acknowledgement link") from None
        if not hmac.compare_digest(given, self._sign(body)):
            raise LinkRefused("forged", "this link is not valid: it was not signed by sladaemon")
        try:
            chain, person, expires_text = body.decode().split("\n")
            expires = int(expires_text)
        except ValueError:
            raise LinkRefused("malformed", "this is not an acknowledgement link") from None
        if now >= expires:
            raise LinkRefused("expired", "this link has expired")
        return LinkClaim(chain, person, expires, signature)
