"""The context variables that tell kitaru primitives where they are called from."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .execution import ExecutionContext

#: The execution whose flow body is running in this context.
current_execution: ContextVar[ExecutionContext | None] = ContextVar(
    "kitaru_execution", default=None
)
#: The checkpoint call running in this context (an object with save/log methods).
current_call: ContextVar[Any] = ContextVar("kitaru_call", default=None)


def current_execution_id() -> str | None:
    """The id of the execution running here (flow body, checkpoint or worker), else None."""
    call = current_call.get()
    if call is not None:
        return call.exec_id
    ctx = current_execution.get()
    return ctx.exec_id if ctx is not None else None


def where() -> str | None:
    """Where the caller runs: "checkpoint" (inside a checkpoint call), "flow" (in a flow
    body), or None (outside any flow). Adapters use it to choose their recording."""
    if current_call.get() is not None:
        return "checkpoint"
    if current_execution.get() is not None:
        return "flow"
    return None
