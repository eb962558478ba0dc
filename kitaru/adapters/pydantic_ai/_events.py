"""An event stream handler that sees each event once, across crashes, resumes and replays.

In a flow body:
- a model request's events (part starts, deltas, the final result) reach the handler live while
  the request runs; a request answered from the record was delivered when it ran, so its
  events are not delivered again (the run itself still sees them: `run_stream` replays the
  recorded text);
- every other event (a tool call, a tool's result) is delivered as a durable unit of its own:
  a checkpoint `event_stream_handler#n` (type `event`) that calls the handler with that one
  event. A resume skips the deliveries that completed, so an event is delivered again only if
  the process died while the handler was handling it (at least once, as any checkpoint).
Elsewhere (inside a `@checkpoint`, outside a flow) the handler gets the stream as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from pydantic_ai.messages import FinalResultEvent, PartDeltaEvent, PartEndEvent, PartStartEvent

from kitaru_core.runtime.state import where

from ._run import checkpoint_call, current_run

EVENT_STREAM_HANDLER = "event_stream_handler"
_MODEL_EVENTS = (PartStartEvent, PartDeltaEvent, PartEndEvent, FinalResultEvent)
_DURABLE = "_kitaru_durable_events"


def durable_handler(handler: Any) -> Any:
    """`handler`, delivering each event once under a flow (see the module docstring)."""
    if handler is None or getattr(handler, _DURABLE, False):
        return handler

    async def deliver(ctx: Any, events: AsyncIterable[Any]) -> None:
        run = current_run.get()
        if where() != "flow" or run is None:
            await handler(ctx, events)
            return
        stream = aiter(events)
        first = await anext(stream, None)
        if first is None:
            return
        if isinstance(first, _MODEL_EVENTS):
            if run.model_events_live:
                await handler(ctx, _chain(first, stream))
            async for _ in stream:  # what the handler left (or all of a recorded request's events)
                pass
            return
        await _deliver_once(handler, ctx, first)
        async for event in stream:
            await _deliver_once(handler, ctx, event)

    setattr(deliver, _DURABLE, True)
    return deliver


async def _deliver_once(handler: Any, ctx: Any, event: Any) -> None:
    async def event_stream_handler() -> None:
        await handler(ctx, _chain(event, _empty()))

    await checkpoint_call(EVENT_STREAM_HANDLER, "event", event_stream_handler)


async def _chain(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for event in rest:
        yield event


async def _empty() -> AsyncIterator[Any]:
    return
    yield
