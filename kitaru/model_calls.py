"""What a model call records, shared by `kitaru.llm` and the Pydantic AI adapter:
the response as JSON (lossless, for replay), its usage and estimated cost, and a way
to run Pydantic AI's async calls from kitaru's synchronous flow code.

Imports pydantic-ai, so only modules that make model calls import this one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse

T = TypeVar("T")

__all__ = ["dump_messages", "dump_response", "load_response", "run_sync", "usage_of"]


def dump_response(response: ModelResponse) -> dict[str, Any]:
    """A model response as a plain JSON dict (`load_response` gives it back, equal)."""
    return ModelMessagesTypeAdapter.dump_python([response], mode="json")[0]


def load_response(data: dict[str, Any]) -> ModelResponse:
    message = ModelMessagesTypeAdapter.validate_python([data])[0]
    assert isinstance(message, ModelResponse)
    return message


def dump_messages(messages: list[ModelMessage]) -> list[dict[str, Any]]:
    return ModelMessagesTypeAdapter.dump_python(messages, mode="json")


def usage_of(response: ModelResponse, latency_s: float | None) -> dict[str, Any]:
    """Tokens, latency and estimated cost (genai-prices) of one response (see kitaru.usage)."""
    usage = response.usage
    return {
        "model": response.model_name,
        "provider": response.provider_name,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "latency_s": None if latency_s is None else round(latency_s, 6),
        "cost_usd": _cost(response),
    }


def _cost(response: ModelResponse) -> float | None:
    # genai-prices knows real providers' models; test models and unknown ones have no price.
    try:
        return float(response.cost().total_price)
    except (LookupError, ValueError, AssertionError, TypeError, AttributeError):
        return None


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run `make()` to completion from synchronous code.

    In a thread without a running event loop it runs on that thread's loop (the way
    Pydantic AI's own `*_sync` functions do, so cached HTTP clients keep their loop);
    where a loop is already running (sync code called from async code), it runs on a
    fresh loop in a helper thread, with this context's variables.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _thread_loop().run_until_complete(make())
    ctx = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kitaru-async") as pool:
        return pool.submit(ctx.run, asyncio.run, make()).result()  # type: ignore[arg-type]


def _thread_loop() -> asyncio.AbstractEventLoop:
    try:  # Pydantic AI's per-thread loop, shared with its own *_sync functions
        from pydantic_ai._utils import get_event_loop
    except ImportError:  # a private helper: fall back to a loop of our own for this thread
        try:
            return asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            return loop
    return get_event_loop()
