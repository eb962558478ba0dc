"""kitaru's MCP tools over streamable HTTP at `/mcp`, behind the REST API's keys and scopes.

A request without a valid API key is refused with 401 before MCP sees it; a tool call is
refused (as a tool error naming the scope it needs) when the key's scope is below the
tool's (`kitaru.mcp.server.TOOLS`): read tools need `read`, the others `operator` or
`admin`. Answers to waits and started runs share the REST API's per-key rate limit.

The transport is stateless with JSON responses: each POST is answered on its own, so the
server needs no session affinity behind a load balancer (several replicas of the Helm
chart) and a restart loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from .keys import AuthError, Principal
from .scopes import allows
from .security import LOCAL_ADMIN

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import Receive, Send
    from starlette.types import Scope as AsgiScope

    from .state import ServerState

PATH = "/mcp"
#: Tools that share the REST API's per-key rate limit of answers to waits and invocations.
RATE_LIMITED = frozenset({"kitaru_executions_input", "kitaru_executions_abort_wait",
                          "kitaru_executions_run", "kitaru_deployments_invoke"})
_PRINCIPAL = "kitaru.principal"


def mount_mcp(app: FastAPI) -> None:
    """Serve the MCP tools at `/mcp` of `app` (its lifespan runs the MCP session manager)."""
    from mcp.server.transport_security import TransportSecuritySettings

    from kitaru.mcp.build import build_server

    state: ServerState = app.state.kitaru
    server = build_server(middleware=[_ScopeCheck(state)])
    # With API keys a page of another site can't call (it has no key); without (single-user
    # mode, loopback only) the Host and Origin headers must be local (DNS rebinding).
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    if state.settings.single_user:
        security = TransportSecuritySettings(
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    server.streamable_http_app(stateless_http=True, json_response=True, transport_security=security,
                               max_request_body_size=state.settings.max_body_bytes)
    manager = server.session_manager
    app.add_route(PATH, _Endpoint(state, manager), methods=["GET", "POST", "DELETE"],
                  include_in_schema=False)

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(asgi: Any) -> AsyncIterator[Any]:
        async with manager.run(), inner(asgi) as value:
            yield value

    app.router.lifespan_context = lifespan


class _Endpoint:
    """The ASGI endpoint at `/mcp`: the caller's API key, then the MCP transport."""

    def __init__(self, state: ServerState, manager: Any) -> None:
        self.state = state
        self.manager = manager

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        principal = await self._principal(scope)
        if isinstance(principal, str):
            body = json.dumps({"error": "Unauthorized", "detail": principal}).encode()
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        scope[_PRINCIPAL] = principal
        await self.manager.handle_request(scope, receive, send)

    async def _principal(self, scope: AsgiScope) -> Principal | str:
        """The key's principal, or why the request is refused."""
        if self.state.settings.single_user:
            return LOCAL_ADMIN
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        kind, _, token = header.strip().partition(" ")
        token = token.strip()
        if kind.lower() != "bearer" or not token:
            return ("no API key; send `Authorization: Bearer kitaru_...` (create one with "
                    "`kitaru auth api-keys create`)")
        try:
            return await anyio.to_thread.run_sync(self.state.key_cache.verify, token)
        except AuthError as exc:
            return str(exc)


class _ScopeCheck:
    """MCP server middleware: a tool call runs only within its key's scope, on this server's
    client; answers to waits and started runs are rate limited per key."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        from kitaru.mcp.server import TOOLS, use_client

        if ctx.method != "tools/call":
            return await call_next(ctx)
        name = (ctx.params or {}).get("name")
        found = TOOLS.get(name) if isinstance(name, str) else None
        if found is None:  # the SDK answers an unknown tool
            return await call_next(ctx)
        principal: Principal | None = None if ctx.request is None else ctx.request.scope.get(_PRINCIPAL)
        needed = found[1]
        if principal is None or not allows(principal.scope, needed):
            have = "no key" if principal is None else f"this key has {principal.scope!r}"
            return _refusal(f"{name} needs an API key with the {needed!r} scope; {have}")
        if name in RATE_LIMITED:
            wait = self.state.limiter.take(principal.key_id or "local")
            if wait:
                return _refusal(f"too many inputs; retry in {wait:.1f} s")
        with use_client(self.state.client):
            return await call_next(ctx)


def _refusal(message: str) -> Any:
    from mcp_types import CallToolResult, TextContent

    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
