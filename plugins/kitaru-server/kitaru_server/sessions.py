"""Browser sessions (the dashboard's): a signed cookie and the CSRF token that goes with it.

The login form takes an API key; the server keeps it in a cookie signed with the server's
session secret (`HttpOnly`: page scripts can't read it; `SameSite=Strict`: other sites'
requests don't carry it; `Secure` over HTTPS) next to a random CSRF token. The key is
encrypted in the cookie (AES-256-GCM under a key derived from the session secret), so a copy
of the cookie value (a proxy's log, a screenshot of the browser's storage) does not show it. A request that
carries the cookie and no `Authorization` header is authenticated with the key inside it,
verified like a bearer key on every request (a deleted, rotated or expired key ends the
session), and when it changes state (any method but GET/HEAD/OPTIONS) it must also send the
session's CSRF token (header `X-CSRF-Token`, or the form field `csrf_token` of the
dashboard's own forms): a synchronizer token, which a page on another site can't read.

In single-user mode there is no key: the cookie then only binds the CSRF token, and a
state-changing request that comes from a browser (it sends `Origin` or `Sec-Fetch-Site`, or
the cookie) needs that token too, so a web page can't drive the local server. Programs
(curl, httpx, the kitaru client) send neither header and are not affected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from starlette.responses import Response

COOKIE = "kitaru_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The registry document that holds the signing secret when the settings give none, so that
#: every replica of a server over one registry accepts the same cookies, across restarts.
SECRET_KIND = "server-secret"
SECRET_NAME = "dashboard-sessions"
_AAD = b"kitaru-dashboard-session"


@dataclass(frozen=True)
class Session:
    """What the cookie holds: the API key typed at login (None before it, and in single-user
    mode) and the CSRF token of this session."""

    token: str | None
    csrf: str

    @classmethod
    def new(cls, token: str | None = None) -> Session:
        return cls(token, secrets.token_urlsafe(32))


class SessionSigner:
    """Signs sessions into cookie values and back; a value past `max_age` seconds, or signed
    with another secret, reads as no session."""

    def __init__(self, secret: Callable[[], str], max_age: float) -> None:
        self._secret = secret
        self._serializer: URLSafeTimedSerializer | None = None
        self._cipher: AESGCM | None = None
        self.max_age = max_age

    @property
    def serializer(self) -> URLSafeTimedSerializer:
        if self._serializer is None:  # the secret is read (or created) on first use
            self._serializer = URLSafeTimedSerializer(self._secret(), salt="kitaru-dashboard-session")
        return self._serializer

    @property
    def cipher(self) -> AESGCM:
        if self._cipher is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            key = hashlib.sha256(("kitaru-dashboard-cookie-key:" + self._secret()).encode()).digest()
            self._cipher = AESGCM(key)
        return self._cipher

    def _seal(self, token: str | None) -> str | None:
        if token is None:
            return None
        nonce = os.urandom(12)
        sealed = self.cipher.encrypt(nonce, token.encode(), _AAD)
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def _open(self, value: object) -> str | None:
        if not isinstance(value, str):
            return None
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.urlsafe_b64decode(value.encode())
            return self.cipher.decrypt(raw[:12], raw[12:], _AAD).decode()
        except (InvalidTag, ValueError):
            return None

    def dumps(self, session: Session) -> str:
        return self.serializer.dumps({"t": self._seal(session.token), "c": session.csrf})

    def loads(self, value: str | None) -> Session | None:
        if not value:
            return None
        try:
            data = self.serializer.loads(value, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        return Session(self._open(data.get("t")), data["c"])


def registry_secret(registry: object) -> Callable[[], str]:
    """A function returning the signing secret kept in `registry` (made once, by compare-and-set)."""
    from kitaru_core.errors import DocumentConflictError

    def read() -> str:
        doc = registry.get_document(SECRET_KIND, SECRET_NAME)  # type: ignore[attr-defined]
        if doc is None:
            try:
                doc = registry.put_document(  # type: ignore[attr-defined]
                    SECRET_KIND, SECRET_NAME, {"secret": secrets.token_urlsafe(48)},
                    expected_version=0)
            except DocumentConflictError:  # another replica made it first
                doc = registry.get_document(SECRET_KIND, SECRET_NAME)  # type: ignore[attr-defined]
        return str(doc.body["secret"])

    return read


def read_session(request: Request) -> Session | None:
    """The request's session, if its cookie is there and validly signed."""
    signer: SessionSigner = request.app.state.kitaru.sessions
    return signer.loads(request.cookies.get(COOKIE))


def set_cookie(response: Response, request: Request, session: Session) -> None:
    signer: SessionSigner = request.app.state.kitaru.sessions
    response.set_cookie(
        COOKIE, signer.dumps(session), max_age=int(signer.max_age), path="/", httponly=True,
        samesite="strict", secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")


def csrf_matches(session: Session | None, given: str | None) -> bool:
    return bool(session and given and hmac.compare_digest(session.csrf.encode(), given.encode()))


def require_csrf(request: Request, session: Session | None, given: str | None = None) -> None:
    """403 unless the request is safe or carries the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    if not csrf_matches(session, given if given is not None else request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, "the CSRF token is missing or wrong; reload the dashboard page "
                                 "and try again")


def from_browser(request: Request) -> bool:
    """Whether a browser sent the request (it sends `Origin` or `Sec-Fetch-Site` on every
    state-changing request; programs send neither), or it carries a dashboard cookie."""
    headers = request.headers
    return "origin" in headers or "sec-fetch-site" in headers or COOKIE in request.cookies


def session_token(request: Request) -> str | None:
    """The API key of the request's dashboard session (CSRF checked for state changes)."""
    session = read_session(request)
    if session is None or session.token is None:
        return None
    require_csrf(request, session)
    return session.token


def guard_single_user(request: Request) -> None:
    """In single-user mode: a browser's state-changing request needs the CSRF token."""
    if request.method not in SAFE_METHODS and from_browser(request):
        require_csrf(request, read_session(request))
