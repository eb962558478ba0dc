"""Liveness and readiness, open to everyone (a load balancer's probes)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import __version__

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """The process serves requests."""
    return {"status": "ok", "version": __version__}


@router.get("/ready")
def ready(request: Request) -> JSONResponse:
    """The registry answers: 200, else 503 with the reason."""
    state = request.app.state.kitaru
    try:
        state.stack.registry.list_executions(limit=1)
    except Exception as exc:  # any failure means "not ready"; the reason goes to the probe
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ready", "stack": state.stack.name})
