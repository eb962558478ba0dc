"""Executions and their waits: read, answer, resume, retry, replay, cancel, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from kitaru_core.status import ExecutionStatus

from ..responses import json_response
from ..security import rate_limited, require

router = APIRouter(prefix="/executions", tags=["executions"])


def _client(request: Request) -> Any:
    return request.app.state.kitaru.client


@router.get("", dependencies=[require("read")], response_model=dict[str, Any])
def list_executions(
    request: Request, flow: str | None = None, status: ExecutionStatus | None = None,
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = Query(None, description="a previous page's `next_cursor`"),
) -> Response:
    """Executions, newest first (without their checkpoints; a waiting one with its
    `pending_wait`), one page at a time: pass `next_cursor` back as `cursor` for the next
    page (null: there is none). Executions created meanwhile never shift a page."""
    page = _client(request).executions.page(flow=flow, status=status, limit=limit, cursor=cursor)
    return json_response({"items": [e.to_summary_dict() for e in page.items],
                          "next_cursor": page.next_cursor})


@router.get("/{exec_id}", dependencies=[require("read")], response_model=dict[str, Any])
def get_execution(request: Request, exec_id: str) -> Response:
    """One execution with its checkpoint calls, artifacts and pending wait."""
    return json_response(_client(request).executions.get(exec_id).to_dict())


@router.get("/{exec_id}/logs", dependencies=[require("read")], response_model=dict[str, Any])
def get_logs(
    request: Request, exec_id: str, checkpoint: str | None = None, after: int = Query(0, ge=0)
) -> Response:
    """Captured output after sequence number `after`, in order."""
    entries = _client(request).executions.logs(exec_id, checkpoint=checkpoint, after=after)
    return json_response({"items": [e.to_dict() for e in entries]})


@router.get("/{exec_id}/waits", dependencies=[require("read")])
def pending_waits(request: Request, exec_id: str) -> dict[str, Any]:
    """The execution's pending waits (what `input` can answer)."""
    return {"items": [w.to_dict() for w in _client(request).executions.pending_waits(exec_id)]}


@router.post("/{exec_id}/input", dependencies=[require("operator"), Depends(rate_limited)])
def give_input(
    request: Request, exec_id: str,
    wait: str | None = Body(None, description="the wait's name (default: the pending one)"),
    value: Any = Body(None, description="the answer, validated against the wait's schema"),
    resume: bool = Body(True, description="continue the execution after the answer"),
) -> dict[str, Any]:
    """Answer a pending wait; the execution continues (its polling runner, or a resume)."""
    return _client(request).executions.input(exec_id, wait=wait, value=value, resume=resume).to_dict()


@router.post("/{exec_id}/waits/{wait}", dependencies=[require("operator"), Depends(rate_limited)])
def answer_wait(request: Request, exec_id: str, wait: str, value: Any = Body(None)) -> dict[str, Any]:
    """Webhook-friendly input: the request body is the answer to wait `wait`."""
    return _client(request).executions.input(exec_id, wait=wait, value=value).to_dict()


@router.post("/{exec_id}/waits/{wait}/abort",
             dependencies=[require("operator"), Depends(rate_limited)])
def abort_wait(request: Request, exec_id: str, wait: str, resume: bool = True) -> dict[str, Any]:
    """Abort pending wait `wait` without an answer: the flow's `wait()` raises
    `WaitAbortedError` (it may catch it and go on); the execution continues unless `resume=false`."""
    return _client(request).executions.abort_wait(exec_id, wait=wait, resume=resume).to_dict()


@router.post("/{exec_id}/resume", dependencies=[require("operator")])
def resume(request: Request, exec_id: str) -> dict[str, Any]:
    """Continue a waiting execution, or a running one whose runner died (in the background)."""
    return _client(request).executions.resume(exec_id).to_dict()


@router.post("/{exec_id}/retry", dependencies=[require("operator")])
def retry(request: Request, exec_id: str) -> dict[str, Any]:
    """Continue a failed execution in place, reusing its completed checkpoints."""
    return _client(request).executions.retry(exec_id).to_dict()


@router.post("/{exec_id}/replay", dependencies=[require("operator")])
def replay(
    request: Request, exec_id: str,
    at: str = Body(..., embed=True, description="the checkpoint (name or call id) or wait to "
                   "replay from: it and what follows run live"),
    checkpoint_overrides: dict[str, dict[str, Any]] | None = Body(
        None, embed=True, description='outputs to use instead: {"name": {"output": value}}'),
    flow_overrides: dict[str, Any] | None = Body(
        None, embed=True, description="flow inputs to change, by parameter name"),
) -> dict[str, Any]:
    """Replay an execution from `at` as a new linked execution (started in the background)."""
    return _client(request).executions.replay(
        exec_id, at=at, checkpoint_overrides=checkpoint_overrides, flow_overrides=flow_overrides,
    ).to_dict()


@router.post("/{exec_id}/cancel", dependencies=[require("operator")])
def cancel(request: Request, exec_id: str) -> dict[str, Any]:
    """Cancel a running or waiting execution and stop its remote work."""
    return _client(request).executions.cancel(exec_id).to_dict()


@router.delete("/{exec_id}", dependencies=[require("admin")])
def delete(request: Request, exec_id: str, force: bool = False) -> dict[str, Any]:
    """Delete an execution and everything recorded for it (blobs stay until `kitaru gc`)."""
    result = _client(request).executions.delete(exec_id, force=force)
    return {"deleted": list(result.deleted), "refused": dict(result.refused)}
