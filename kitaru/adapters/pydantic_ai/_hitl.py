"""Human in the loop for Pydantic AI agents: a tool that is a durable `kitaru.wait`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pydantic_ai import Tool

import kitaru
from kitaru_core.errors import ContextError
from kitaru_core.runtime.state import current_call, where

from ._toolset import HITL_KEY


def hitl_tool(
    *,
    question: str | None = None,
    schema: Any = None,
    name: str | None = None,
    timeout: float | None = 600,
    question_arg: str | None = "question",
) -> Callable[[Callable[..., Any]], Tool[Any]]:
    """Make a tool a durable human-in-the-loop wait: `@hitl_tool(question=..., schema=bool)`.

    The decorated function's body is not run; its signature tells the model what
    to pass. When the agent calls the tool, the flow waits (`kitaru.wait`, named
    after the tool) with the tool's arguments as metadata; after `timeout` seconds
    without input the execution suspends and its compute is released, until
    `kitaru executions input` answers it. The answer, validated against `schema`,
    is the tool's result. Without a static `question`, the model's `question_arg`
    argument is asked. Only where the execution can suspend: a flow body, not a
    checkpoint.
    """

    def decorate(fn: Callable[..., Any]) -> Tool[Any]:
        tool_name = name or fn.__name__

        def ask(**kwargs: Any) -> Any:
            scope = where()
            if scope != "flow":
                inside = getattr(getattr(current_call.get(), "call", None), "call_id", None)
                place = f"inside checkpoint {inside!r}" if scope == "checkpoint" else "outside a flow"
                raise ContextError(
                    f"hitl_tool {tool_name!r} was reached {place}, where the execution cannot "
                    "suspend for input; run the agent from a @kitaru.flow body (not inside a "
                    "@checkpoint), or with KitaruAgent.run_sync outside any flow"
                )
            asked = question
            if asked is None and question_arg and isinstance(kwargs.get(question_arg), str):
                asked = kwargs[question_arg]
            return kitaru.wait(
                name=tool_name, question=asked or f"Input for tool {tool_name!r}", schema=schema,
                timeout=timeout, metadata={"tool": tool_name, "args": kwargs},
            )

        ask.__signature__ = _signature_without_ctx(fn)  # type: ignore[attr-defined]
        ask.__doc__ = fn.__doc__
        ask.__name__ = tool_name
        ask.__annotations__ = dict(fn.__annotations__)
        return Tool(ask, name=tool_name, takes_ctx=False, metadata={HITL_KEY: True})

    return decorate


def _signature_without_ctx(fn: Callable[..., Any]) -> Any:
    sig = inspect.signature(fn)
    return sig.replace(parameters=[
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()
    ])
