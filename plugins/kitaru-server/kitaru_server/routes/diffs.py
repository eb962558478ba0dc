"""Diffs of executions: checkpoint by checkpoint, with a unified diff per changed artifact."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from ..security import require

router = APIRouter(prefix="/executions", tags=["diffs"])


@router.get("/{a}/diff/{b}", dependencies=[require("read")])
def diff(
    request: Request, a: str, b: str,
    context: int = Query(3, ge=0, le=100, description="lines of context around changes"),
    max_lines: int = Query(500, ge=1, le=20_000, description="lines kept of each artifact's diff"),
) -> dict[str, Any]:
    """Execution `a` against `b`: same / changed / only_in_a / only_in_b per checkpoint."""
    client = request.app.state.kitaru.client
    return client.executions.diff(a, b, context=context, max_lines=max_lines).to_dict()


@router.get("/{baseline}/diff-matrix", dependencies=[require("read")])
def diff_matrix(
    request: Request, baseline: str,
    ids: list[str] = Query([], description="the executions to compare with the baseline "
                                          "(none: the baseline's replays)"),
) -> dict[str, Any]:
    """The baseline and other executions (by default its replays), checkpoint by checkpoint."""
    client = request.app.state.kitaru.client
    return client.executions.diff_matrix([baseline, *ids]).to_dict()
