"""The FastAPI application: `create_app(settings)`."""

from __future__ import annotations

from fastapi import FastAPI

from kitaru_core.errors import KitaruError

from . import __version__, recovery
from .dashboard import routes as dashboard
from .errors import kitaru_error
from .routes import (
    artifacts,
    auth,
    deployments,
    diffs,
    execution_events,
    executions,
    health,
    memory,
    registry,
    secrets,
    stacks,
    statistics,
)
from .security import BodyLimit
from .security_headers import SecurityHeaders
from .settings import ServerSettings
from .state import ServerState

API = "/api/v1"
#: Every router with its prefix (tests/test_server_auth.py walks them for the auth matrix).
ROUTERS = (
    (health.router, ""), (executions.router, API), (auth.router, API), (stacks.router, API),
    (statistics.router, API), (execution_events.router, API), (artifacts.router, API),
    (memory.router, API), (deployments.router, API), (diffs.router, API), (secrets.router, API),
    (registry.router, API),
)


def create_app(settings: ServerSettings | None = None, *, state: ServerState | None = None) -> FastAPI:
    """The server's ASGI application over `settings.stack` (the active stack by default)."""
    settings = settings or ServerSettings()
    app = FastAPI(
        title="kitaru", version=__version__,
        description="Durable executions of Python agents: executions, waits, artifacts, memory.",
        openapi_url=f"{API}/openapi.json", docs_url=f"{API}/docs", redoc_url=None,
        lifespan=recovery.lifespan(settings.recovery_seconds),
    )
    app.state.kitaru = state or ServerState.build(settings)
    app.add_exception_handler(KitaruError, kitaru_error)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders, docs_path=f"{API}/docs")
    for router, prefix in ROUTERS:
        app.include_router(router, prefix=prefix)
    # The dashboard: pages and their static files, outside the published API.
    app.include_router(dashboard.router)
    app.mount("/dashboard/static", dashboard.static_files(), name="dashboard-static")
    from .mcp_mount import mount_mcp

    mount_mcp(app)  # the MCP tools at /mcp (streamable HTTP), same keys and scopes

    return app


def openapi_json() -> str:
    """The OpenAPI schema as published in docs/openapi.json (`kitaru server openapi`)."""
    import json

    schema = create_app(ServerSettings(single_user=True, recovery_seconds=0)).openapi()
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
