"""`KitaruDurability`: kitaru as a Pydantic AI durability capability, the shape Pydantic AI's own
Temporal, DBOS and Prefect integrations have: `Agent(..., capabilities=[KitaruDurability()])`.

Built on `pydantic_ai.durable_exec`'s public base: the base decides what is a durable unit (each
model request, each tool call, each tool event for an event stream handler) and this module runs
each unit as a kitaru checkpoint of the running flow, named like `KitaruAgent`'s
(`model_request#n`, `<tool>_tool#n`, `event_stream_handler#n`). Outside a flow body (outside a
flow, or inside a `@checkpoint`) the agent runs as it would without the capability.

Tool calls of one response run one after the other in a flow body: a unit's identity is its
position among the flow's checkpoints, and the base hands units to the engine as they start.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from pydantic_ai.durable_exec import (
    JSON_CODEC,
    BaseDurabilityCapability,
    CallableOperationBackend,
    CapabilityOperationId,
    DurabilityEngineSpec,
    DurableOperationId,
    DurableOperationNamer,
    EventStreamHandlerId,
    ModelCancelSuspendedResponseId,
    ModelCompactMessagesId,
    ModelRequestId,
    RoleBasedOperationConfig,
    ToolsetCallToolId,
    ToolsetGetInstructionsId,
    ToolsetGetToolsId,
    ToolsetValidateToolArgumentsId,
    conversation_id_from_run_id,
    replay_scope,
)
from pydantic_ai.durable_exec._operation_names import DurableInvocationName
from pydantic_ai.tools import RunContext
from pydantic_ai.usage import RunUsage

import kitaru
from kitaru_core.runtime.state import current_execution, where

from ...model_calls import load_response, usage_of
from ._options import CheckpointConfig, checkpoint_config
from ._run import checkpoint_call
from ._toolset import add_usage

_TYPES = {ModelRequestId: "llm_call", ToolsetCallToolId: "tool_call", EventStreamHandlerId: "event"}


class KitaruOperationNamer(DurableOperationNamer):
    """Checkpoint names for the base's durable operations, the same as `KitaruAgent` records."""

    def operation_name(self, operation_id: DurableOperationId) -> str:
        match operation_id:
            case ModelRequestId():
                return "model_request"
            case ToolsetCallToolId(toolset_id=toolset_id):
                return f"{toolset_id}_tool"
            case EventStreamHandlerId():
                return "event_stream_handler"
            case ModelCompactMessagesId():
                return "compact_messages"
            case ModelCancelSuspendedResponseId():
                return "cancel_suspended_response"
            case ToolsetGetToolsId(toolset_id=toolset_id):
                return f"{toolset_id}_get_tools"
            case ToolsetGetInstructionsId(toolset_id=toolset_id):
                return f"{toolset_id}_get_instructions"
            case ToolsetValidateToolArgumentsId(toolset_id=toolset_id):
                return f"{toolset_id}_validate_args"
            case CapabilityOperationId(capability_id=capability_id, operation=operation):
                return f"{capability_id}_{operation}"
        assert_never(operation_id)

    def invocation_name(
        self, operation_id: DurableOperationId, *, label: str | None
    ) -> DurableInvocationName:
        if isinstance(operation_id, ToolsetCallToolId) and label:
            return DurableInvocationName(f"{label}_tool")
        return DurableInvocationName(self.operation_name(operation_id))


class KitaruOperationBackend(CallableOperationBackend[dict[str, Any]]):
    """Runs each durable unit as a checkpoint call of the running flow, on the run's event loop."""

    async def execute(self, *, operation_id: DurableOperationId, name: str,
                      body: Callable[[], Awaitable[object]], cache_key: tuple[object, ...],
                      config: dict[str, Any]) -> object:
        kind = next((t for cls, t in _TYPES.items() if isinstance(operation_id, cls)), "durable_unit")
        if isinstance(operation_id, ModelRequestId):
            return (await checkpoint_call(name, kind, _logging_usage(body), config)).load()
        ctx = next((v for v in cache_key if isinstance(v, RunContext)), None)
        if not isinstance(operation_id, ToolsetCallToolId) or ctx is None:
            return (await checkpoint_call(name, kind, body, config)).load()
        # What the tool added to the run's usage (an agent it delegated to with usage=ctx.usage)
        # is recorded with its result and added again when a resume answers it from the record.
        ran: list[bool] = []

        async def tool_call() -> dict[str, Any]:
            before = copy.copy(ctx.usage)
            ran.append(True)
            payload = await body()
            delta = ctx.usage - before
            return {"result": payload, "usage": dataclasses.asdict(delta) if delta.has_values() else None}

        recorded = (await checkpoint_call(name, kind, tool_call, config)).load()
        if not ran and recorded["usage"]:
            add_usage(ctx.usage, RunUsage(**recorded["usage"]))
        return recorded["result"]


def _logging_usage(body: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
    """A model request's body that also logs its `llm_usage` (tokens, latency, cost) on its checkpoint."""

    async def model_request() -> object:
        started = time.perf_counter()
        payload = await body()
        found = payload.get("response", payload) if isinstance(payload, dict) else None
        if isinstance(found, dict) and "parts" in found:
            with contextlib.suppress(ValueError, TypeError):
                kitaru.log(llm_usage=usage_of(load_response(found), time.perf_counter() - started))
        return payload

    return model_request


@dataclass(init=False, kw_only=True)
class KitaruDurability(BaseDurabilityCapability[Any]):
    """Makes an agent durable in kitaru flows: `Agent(..., capabilities=[KitaruDurability()])`.

    In a flow body each model request, tool call and tool event (for `event_stream_handler`) is
    a checkpoint; a resume, retry or replay answers the recorded ones from the record. Options:
    `model_checkpoint_config`, `tool_checkpoint_config`, `event_checkpoint_config` (a
    `CheckpointConfig`: retries, retry_delay, backoff, type); `event_stream_handler` receives
    model events live inside the request's checkpoint and each tool event once, in a
    checkpoint of its own; `models` registers extra models by id, as for Pydantic AI's
    other durability capabilities. Per-tool options go in tool metadata under "kitaru".
    """

    engine_spec = DurabilityEngineSpec(
        engine_name="kitaru",
        durable_unit_noun="checkpoint",
        durable_container_noun="flow",
        codec=JSON_CODEC,  # recorded as JSON artifacts: inspectable, no pickles
        wrapped_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        toolset_lifecycles={"function": "enter-always", "mcp": "enter-in-durable-unit",
                            "dynamic": "enter-never"},
        journal_discovery=False,  # tool discovery runs in the flow body, as KitaruAgent's does
        sequential_tools_in_durable_context=True,
        tool_config_key="kitaru",
    )

    def __init__(
        self,
        *,
        name: str | None = None,
        models: Mapping[str, Any] | None = None,
        event_stream_handler: Any = None,
        model_checkpoint_config: CheckpointConfig | None = None,
        tool_checkpoint_config: CheckpointConfig | None = None,
        event_checkpoint_config: CheckpointConfig | None = None,
    ) -> None:
        super().__init__(models=models, event_stream_handler=event_stream_handler, name=name)
        self._model_config = checkpoint_config(model_checkpoint_config, "model_checkpoint_config")
        self._tool_config = checkpoint_config(tool_checkpoint_config, "tool_checkpoint_config")
        self._event_config = checkpoint_config(event_checkpoint_config, "event_checkpoint_config")

    @property
    def in_durable_context(self) -> bool:
        return where() == "flow"

    async def wrap_run(self, ctx: Any, *, handler: Any) -> Any:
        if not self.in_durable_context:
            return await super().wrap_run(ctx, handler=handler)
        # Spans of model requests and tool calls answered from the record are not exported again.
        with replay_scope():
            return await super().wrap_run(ctx, handler=handler)

    def get_default_run_id(self) -> str | None:
        execution = current_execution.get()
        if execution is None or where() != "flow":
            return None
        # Replay-stable: the n-th agent run of this execution's flow body, on every resume.
        counter = _run_counters.setdefault(execution, itertools.count(1))
        return f"{execution.exec_id}:{self.name or 'agent'}:{next(counter)}"

    def get_default_conversation_id(self, run_id: str) -> str | None:
        return conversation_id_from_run_id(run_id) if self.in_durable_context else None

    def get_durable_operation_backend(self) -> KitaruOperationBackend:
        return KitaruOperationBackend(
            namer=KitaruOperationNamer(),
            config=RoleBasedOperationConfig(model=self._model_config, event=self._event_config,
                                            capability={}, tool=self._tool_config),
        )


_run_counters: weakref.WeakKeyDictionary[Any, itertools.count[int]] = weakref.WeakKeyDictionary()
