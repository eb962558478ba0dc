"""Each tool call of a `KitaruAgent` run: a checkpoint in a flow body, a child event inside one."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry, ToolFailed
from pydantic_ai.toolsets import AbstractToolset, WrapperToolset
from pydantic_ai.usage import RunUsage

import kitaru
from kitaru_core.errors import SerializationError
from kitaru_core.runtime.events import record_child_event
from kitaru_core.runtime.state import where

from ._run import AgentRunState, checkpoint_call

HITL_KEY = "kitaru_hitl"

#: Exceptions by which a tool answers the model (retry, failure, deferral): outcomes, not errors.
TOOL_ANSWERS = (ModelRetry, ToolFailed, ApprovalRequired, CallDeferred)

#: Set while an unrecorded tool runs: an agent run it starts is nested, not parallel.
in_unrecorded_tool: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "kitaru_in_unrecorded_tool", default=False
)


@dataclass
class _ToolAnswer:
    """A tool's `ModelRetry`, `ToolFailed`, `ApprovalRequired` or `CallDeferred`, recorded
    as the call's outcome and raised again on replay (so the model sees the same answer)."""

    message: str | None
    kind: str = "ModelRetry"
    metadata: dict[str, Any] | None = None
    deferred_kind: str = "external"

    @classmethod
    def of(cls, exc: Exception) -> _ToolAnswer:
        kind = next(t.__name__ for t in TOOL_ANSWERS if isinstance(exc, t))
        return cls(getattr(exc, "message", None), kind,
                   getattr(exc, "metadata", None), getattr(exc, "kind", "external"))

    def exception(self) -> Exception:
        if self.kind == "ToolFailed":
            return ToolFailed(self.message or "")
        if self.kind == "ApprovalRequired":
            return ApprovalRequired(self.metadata)
        if self.kind == "CallDeferred":
            return CallDeferred(self.metadata, kind=self.deferred_kind)  # type: ignore[arg-type]
        return ModelRetry(self.message or "")


@dataclass
class _ToolResult:
    """A tool's outcome together with the usage it added to the run (`ctx.usage`, e.g. an agent
    it delegated to): a resume adds that usage again, as the live call did."""

    outcome: Any
    usage: RunUsage


def add_usage(usage: RunUsage, delta: RunUsage) -> None:
    """Add `delta` to a run's usage (and, where Pydantic AI tracks it, to the run that made it)."""
    try:
        from pydantic_ai._usage_attribution import record_usage
    except ImportError:  # a private helper: without it the run's own usage is still right
        usage.incr(delta)
        return
    record_usage(usage, delta)


@dataclass
class KitaruToolset(WrapperToolset[Any]):
    """Each tool call: a checkpoint in a flow body, a child event inside a checkpoint.

    A tool that is no checkpoint (capture "none", a `hitl_tool`, config False) runs as a barrier
    (`sequential`): alone and in order, so what it records itself (a wait, a nested agent run)
    keeps its position. Recorded tools of one response run concurrently.
    """

    # A dataclass field: Pydantic AI copies toolsets with dataclasses.replace.
    _run: AgentRunState = field(default=None, repr=False)  # type: ignore[assignment]

    def _recorded(self, name: str, tool: Any) -> bool:
        hitl = bool((tool.tool_def.metadata or {}).get(HITL_KEY))
        return not hitl and self._run.agent.tool_config(name, tool) is not False

    async def get_tools(self, ctx: Any) -> dict[str, Any]:
        tools = await super().get_tools(ctx)
        out = {}
        for name, tool in tools.items():
            if self._recorded(name, tool):
                self._run.recorded_tools.add(name)
                out[name] = tool
            else:
                self._run.recorded_tools.discard(name)
                barrier = dataclasses.replace(tool.tool_def, sequential=True)
                out[name] = dataclasses.replace(tool, tool_def=barrier)
        return out

    async def call_tool(self, name: str, tool_args: dict[str, Any], ctx: Any, tool: Any) -> Any:
        scope = where()
        config = self._run.agent.tool_config(name, tool)
        if scope is None or config is False or not self._recorded(name, tool):
            token = in_unrecorded_tool.set(True)
            try:
                return await super().call_tool(name, tool_args, ctx, tool)
            finally:
                in_unrecorded_tool.reset(token)
        capture = self._run.agent.capture.for_tool(name)
        wrapped, timeout = self.wrapped, config.get("timeout")
        kind = {"mcp_server": _mcp_server(tool)} if _mcp_server(tool) else {}

        async def live(run_ctx: Any) -> Any:
            return await asyncio.wait_for(wrapped.call_tool(name, tool_args, run_ctx, tool), timeout)

        if scope == "checkpoint":
            return await self._as_child_event(name, tool_args, live, ctx, capture, kind)

        async def tool_call() -> Any:
            if capture == "full":
                kitaru.save("args", tool_args)
            # The tool gets its own copy of the run's usage, so what it adds (a delegated agent run
            # with usage=ctx.usage) is measured apart from tools running beside it.
            own = dataclasses.replace(ctx, usage=copy.copy(ctx.usage))
            before = copy.copy(own.usage)
            started = time.perf_counter()
            try:
                result = await live(own)
            except TOOL_ANSWERS as exc:
                result = _ToolAnswer.of(exc)
            kitaru.log(tool=name, latency_s=round(time.perf_counter() - started, 6), **kind)
            delta = own.usage - before
            return _ToolResult(result, delta) if delta.has_values() else result

        step = self._run.step_for(ctx, name)
        try:
            outcome = (await checkpoint_call(f"{name}_tool", "tool_call", tool_call, config, step)).load()
        except SerializationError as exc:
            raise _unstorable(name, exc) from None
        if isinstance(outcome, _ToolResult):
            add_usage(ctx.usage, outcome.usage)
            outcome = outcome.outcome
        if isinstance(outcome, _ToolAnswer):
            raise outcome.exception()
        return outcome

    async def _as_child_event(self, name: str, tool_args: dict[str, Any], live: Any, ctx: Any,
                              capture: str, kind: dict[str, Any]) -> Any:
        record = self._run.agent.capture.emit_child_events and capture != "none"
        started = time.perf_counter()
        meta: dict[str, Any] = {"tool": name, **kind}
        try:
            result = await live(ctx)
        except Exception as exc:  # recorded too (a ModelRetry, a tool's own error)
            if record:
                meta["latency_s"] = round(time.perf_counter() - started, 6)
                meta["error"] = f"{type(exc).__name__}: {exc}"
                parts = {"args": tool_args} if capture == "full" else {}
                record_child_event("tool_call", f"{name}_tool", artifacts=parts, metadata=meta)
            raise
        if record:
            meta["latency_s"] = round(time.perf_counter() - started, 6)
            parts = {"args": tool_args, "result": result} if capture == "full" else {}
            try:
                record_child_event("tool_call", f"{name}_tool", artifacts=parts, metadata=meta)
            except SerializationError as exc:
                raise _unstorable(name, exc) from None
        return result


def wrap_toolset(toolset: AbstractToolset[Any], run: AgentRunState) -> KitaruToolset:
    return KitaruToolset(toolset, _run=run)


def _mcp_server(tool: Any) -> str | None:
    toolset = getattr(tool, "toolset", None)
    if toolset is None or "mcp" not in type(toolset).__module__.lower():
        return None
    return getattr(toolset, "id", None) or type(toolset).__name__


def is_mcp(tool: Any) -> bool:
    return _mcp_server(tool) is not None


def _unstorable(tool: str, exc: SerializationError) -> SerializationError:
    return SerializationError(
        f"tool {tool!r} returned a value kitaru cannot store ({exc}); return JSON-able data, a "
        "pydantic model or bytes, or leave the tool unrecorded with "
        f"CapturePolicy(tool_capture_overrides={{{tool!r}: 'none'}})"
    )
