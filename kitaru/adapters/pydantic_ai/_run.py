"""The state of one `KitaruAgent` run, and how its calls become checkpoints of the flow."""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic_ai.durable_exec import record_durable_unit
from pydantic_ai.messages import ModelResponse, ToolCallPart

from kitaru_core.runtime.specs import CheckpointSpec
from kitaru_core.runtime.state import current_execution

if TYPE_CHECKING:
    from ._agent import KitaruAgent

Step = tuple[int, str]


@dataclass
class AgentRunState:
    """What the wrappers of one agent run share.

    `model_events_live`: whether the model request being streamed runs live (its events go
    to the event stream handler) or comes from the record (they were delivered already).
    Tool calls of one model response run concurrently, so their checkpoint identities are
    reserved in the response's order when the first of them starts (`step_for`).
    """

    agent: KitaruAgent
    model_events_live: bool = True
    recorded_tools: set[str] = field(default_factory=set)
    _steps: dict[str, deque[Step]] = field(default_factory=dict)
    _reserved: list[ModelResponse] = field(default_factory=list)

    def step_for(self, ctx: Any, name: str) -> Step | None:
        """This tool call's reserved position and id (None: none reserved, take the next)."""
        call_id = getattr(ctx, "tool_call_id", None)
        if call_id is None:
            return None
        if not self._steps.get(call_id):
            self._reserve_latest_response(ctx)
        queue = self._steps.get(call_id)
        if not queue:
            return None
        step = queue.popleft()
        return step if step[1].startswith(f"{name}_tool#") else None

    def _reserve_latest_response(self, ctx: Any) -> None:
        response = next((m for m in reversed(getattr(ctx, "messages", None) or [])
                         if isinstance(m, ModelResponse)), None)
        if response is None or any(r is response for r in self._reserved):
            return
        self._reserved.append(response)
        calls = [p for p in response.parts
                 if isinstance(p, ToolCallPart) and p.tool_name in self.recorded_tools]
        execution = current_execution.get()
        if not calls or execution is None:
            return
        steps = execution.reserve([f"{p.tool_name}_tool" for p in calls])
        for part, step in zip(calls, steps, strict=True):
            self._steps.setdefault(part.tool_call_id, deque()).append(step)


#: The run whose flow-body calls are being made (for the event stream handler).
current_run: contextvars.ContextVar[AgentRunState | None] = contextvars.ContextVar(
    "kitaru_agent_run", default=None
)


async def checkpoint_call(name: str, type_: str, body: Callable[[], Awaitable[Any]],
                          config: dict[str, Any] | None = None, step: Step | None = None) -> Any:
    """Run `body` as a checkpoint call of the running flow, on this event loop; a recorded
    call returns its output without running the body."""
    execution = current_execution.get()
    assert execution is not None  # where() == "flow"
    ran: list[bool] = []

    async def run_body() -> Any:
        ran.append(True)
        return await body()

    handle = await execution.acall(spec(name, type_, body, config), run_body, step=step)
    unit_done(executed=bool(ran))
    return handle


def unit_done(*, executed: bool) -> None:
    """Tell Pydantic AI's instrumentation whether a call ran or came from the record: a span that
    covered only recorded calls is not exported again (inside `replay_scope`, see `KitaruAgent.iter`)."""
    record_durable_unit(executed=executed)


def spec(name: str, type_: str, body: Callable[..., Any], config: dict[str, Any] | None) -> CheckpointSpec:
    config = config or {}
    return CheckpointSpec(
        fn=body, name=name, type=config.get("type", type_), retries=config.get("retries", 0),
        retry_delay=config.get("retry_delay", 1.0), backoff=config.get("backoff", 2.0),
    )
