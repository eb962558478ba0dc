"""Authentication and authorization of requests: bearer API keys checked against scopes,
a per-key rate limit for answering waits, and a request body size limit."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from .keys import AuthError, KeyStore, Principal
from .scopes import Scope, allows
from .sessions import guard_single_user, session_token

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Send
    from starlette.types import Scope as AsgiScope

LOCAL_ADMIN = Principal("local", "admin", None)
#: The OpenAPI security scheme (`Authorization: Bearer kitaru_...`); checked by `Authorizer`.
BEARER = HTTPBearer(auto_error=False, description="An API key: `kitaru auth api-keys create`")


class KeyCache:
    """Verified tokens for a few seconds, so a request costs no registry read for its key."""

    def __init__(self, keys: KeyStore, ttl: float) -> None:
        self.keys = keys
        self.ttl = ttl
        self._seen: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified within the last `ttl` seconds (no registry read)."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            hit = self._seen.get(digest)
        return hit[1] if hit and hit[0] > time.monotonic() else None

    def verify(self, token: str) -> Principal:
        hit = self.cached(token)
        if hit is not None:
            return hit
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        principal = self.keys.verify(token)
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[digest] = (now + self.ttl, principal)
        return principal


class Authorizer:
    """A route dependency: the caller's principal, if its key allows `scope` (else 401/403)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(
        self, request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(BEARER)
    ) -> Principal:
        # On the event loop: a key verified within the cache's time costs no registry read, so
        # most requests reach their route without a hop through the thread pool for the check.
        state = request.app.state.kitaru
        if state.settings.single_user:
            guard_single_user(request)  # a browser's state change needs the CSRF token
            principal = LOCAL_ADMIN
        else:
            token = credentials.credentials.strip() if credentials else ""
            if not token:  # the dashboard's session cookie (CSRF token checked for changes)
                token = session_token(request) or ""
            if not token:
                raise HTTPException(
                    401, "no API key; send `Authorization: Bearer kitaru_...` (create one with "
                    "`kitaru auth api-keys create`)", headers={"WWW-Authenticate": "Bearer"})
            try:
                principal = state.key_cache.cached(token) or await run_in_threadpool(
                    state.key_cache.verify, token)
            except AuthError as exc:
                raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        if not allows(principal.scope, self.scope):
            raise HTTPException(
                403, f"this needs an API key with the {self.scope!r} scope; this key has "
                f"{principal.scope!r}")
        request.state.principal = principal
        return principal


def require(scope: Scope) -> Any:
    """`dependencies=[require("operator")]`: the route needs a key of at least that scope."""
    return Depends(Authorizer(scope))


def route_scope(route: Any) -> Scope | None:
    """The scope a route requires (None: open, such as `/health`)."""
    for dep in getattr(getattr(route, "dependant", None), "dependencies", []):
        if isinstance(dep.call, Authorizer):
            return dep.call.scope
    return None


class RateLimiter:
    """A token bucket per caller: `rate` per second, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, who: str) -> float:
        """0 if the caller may go on, else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(who, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens >= 1:
                self._buckets[who] = (tokens - 1, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1 - tokens) / self.rate


def rate_limited(request: Request) -> None:
    """A route dependency (after the scope check): 429 when the caller answers too often."""
    state = request.app.state.kitaru
    principal = getattr(request.state, "principal", None)
    who = principal.key_id if principal and principal.key_id else (
        request.client.host if request.client else "?")
    wait = state.limiter.take(who)
    if wait:
        raise HTTPException(429, f"too many inputs; retry in {wait:.1f} s",
                            headers={"Retry-After": str(max(1, round(wait)))})


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is refused with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.limit:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)  # the server reads no more than declared
            return
        # No length given (chunked): read the body up to the limit first, then replay it.
        chunks: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = (b'{"error": "RequestTooLarge", "detail": "the request body is over '
                + str(self.limit).encode() + b' bytes; send less"}')
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

