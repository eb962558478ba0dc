"""Live events of an execution as server-sent events (`text/event-stream`).

Each event is one `data:` line holding the event as JSON (`KitaruClient().executions.events`
fields), with its cursor as the SSE `id`: a client that reconnects with `Last-Event-ID`
(browsers' EventSource do it themselves) continues after the last event it received.
The stream ends, with an `end` event holding the execution's status, once the execution is
no longer running (completed, failed, cancelled or waiting): a client closes on `end`
instead of reconnecting. A comment line every 15 s keeps proxies from closing a quiet stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from kitaru_core.status import ExecutionStatus

from ..security import require

router = APIRouter(tags=["executions"])
#: Seconds between two reads of the record while the execution runs.
POLL_SECONDS = 0.5
#: Seconds of quiet after which a comment line is sent.
KEEPALIVE_SECONDS = 15.0


def _frame(event: dict[str, Any], *, event_id: str | None = None, name: str | None = None) -> str:
    head = "".join(f"{k}: {v}\n" for k, v in (("id", event_id), ("event", name)) if v)
    return f"{head}data: {json.dumps(event, default=str, separators=(',', ':'))}\n\n"


@router.get("/executions/{exec_id}/events", dependencies=[require("read")],
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "one SSE message per event, then an `end` event"}})
async def events(
    request: Request, exec_id: str,
    kind: list[str] | None = Query(None, description="only these kinds (repeatable)"),
    checkpoint: str | None = Query(None, description="only this checkpoint (name or call id)"),
    since: str | None = Query(None, description="start after the event with this cursor"),
    follow: bool = Query(True, description="keep streaming while the execution runs"),
    last_event_id: str | None = Header(None, description="the SSE reconnection cursor"),
) -> StreamingResponse:
    """The execution's events in order, live while it runs (server-sent events)."""
    client = request.app.state.kitaru.client
    registry = request.app.state.kitaru.stack.registry
    cursor = last_event_id or since

    def read(after: str | None) -> tuple[str, list[Any]]:
        # The status first: an event published before the run ended is then recorded by
        # the time of the read that follows.
        status = registry.get_execution(exec_id).status
        found = list(client.executions.events(exec_id, kinds=kind, checkpoint=checkpoint,
                                               since=after, follow=False))
        return status, found

    status, first = await run_in_threadpool(read, cursor)  # 404 / 400 before the stream starts

    async def stream() -> AsyncIterator[str]:
        nonlocal status, cursor
        batch = first
        quiet_since = time.monotonic()
        while True:
            for event in batch:
                cursor = event.cursor
                yield _frame(event.to_dict(), event_id=event.cursor)
                quiet_since = time.monotonic()
            if not follow or status != ExecutionStatus.RUNNING.value:
                yield _frame({"exec_id": exec_id, "status": status}, event_id=cursor, name="end")
                return
            if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(POLL_SECONDS)
            if await request.is_disconnected():
                return
            status, batch = await run_in_threadpool(read, cursor)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
