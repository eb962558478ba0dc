"""Statistics over recorded executions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from ..security import require

router = APIRouter(tags=["statistics"])


@router.get("/statistics", dependencies=[require("read")])
def statistics(
    request: Request, flow: str | None = None,
    limit: int = Query(1000, ge=1, le=100_000, description="the newest this many executions"),
) -> dict[str, Any]:
    """Counts by status and flow, checkpoint totals and durations (seconds) over the newest
    `limit` executions; `window.complete` says whether that was every one."""
    return request.app.state.kitaru.client.executions.statistics(flow=flow, limit=limit).to_dict()
