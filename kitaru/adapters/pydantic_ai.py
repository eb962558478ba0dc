"""Durable Pydantic AI agents: `KitaruAgent` wraps an existing `pydantic_ai.Agent`.

    from kitaru.adapters.pydantic_ai import KitaruAgent
    durable = KitaruAgent(agent)          # the agent itself is not changed

    @kitaru.flow
    def research(topic: str) -> str:
        return durable.run_sync(f"Research {topic}").output

How a run is recorded depends on where it runs (`kitaru_core.runtime.state.where`):

- in a flow body, granular (the default): every model request is a checkpoint
  (`model_request#n`, type `llm_call`) and every tool call one too
  (`<tool>_tool#n`, type `tool_call`; MCP server tools included). A resume or a
  replay returns the recorded responses and tool results instead of calling
  the model or the tool again, so "fail at call 8" reruns call 8 only.
- in a flow body, not granular: the whole run is one checkpoint
  (`<agent>_run#n`, type `agent_run`), its model and tool calls child events of it.
- inside a `@checkpoint`: checkpoints do not nest, so model and tool calls are
  recorded as child events of the enclosing checkpoint, which stays the replay
  unit (a retry reruns the whole agent run).
- outside any flow: `run_sync` opens a flow around the run by itself; the other
  entry points (`run`, `run_stream`, `iter`) run the agent unrecorded.

The wrapping is thin: a run-time capability puts a model wrapper and a toolset
wrapper around whatever model and toolsets the run uses (so `agent.override(...)`,
a run-time `model=` or `toolsets=` are covered too), and tool calls run one at a
time, because a checkpoint's identity is its position among the run's calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio.to_thread
from pydantic_ai import Tool
from pydantic_ai.agent import AbstractAgent, WrapperAgent
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry, ToolFailed
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import CompletedStreamedResponse, Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.toolsets import AbstractToolset, WrapperToolset

import kitaru
from kitaru_core.errors import ConfigError, ContextError, FlowFailedError, SerializationError
from kitaru_core.runtime.events import record_child_event
from kitaru_core.runtime.specs import CheckpointSpec
from kitaru_core.runtime.state import current_call, current_execution, where

from ..model_calls import dump_messages, dump_response, load_response, usage_of

__all__ = ["CapturePolicy", "KitaruAgent", "hitl_tool"]

ToolCapture = Literal["full", "metadata", "none"]
_TOOL_CAPTURES = ("full", "metadata", "none")
_HITL_KEY = "kitaru_hitl"
MODEL_REQUEST = "model_request"
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class CapturePolicy:
    """What the adapter stores of each call, beyond what replay needs.

    `tool_capture` (per tool in `tool_capture_overrides`):
    - "full": the tool's arguments (artifact `args`) and its result;
    - "metadata": its result (replay needs it) and timing, not its arguments;
    - "none": nothing; the tool is not a checkpoint and runs again on every
      resume or replay (for tools that handle secrets, or are cheap and pure).
    `save_prompts`: store each model request's new messages (artifact `prompt`);
    the response is always stored, since a replay returns it.
    """

    tool_capture: ToolCapture | None = "full"
    tool_capture_overrides: Mapping[str, ToolCapture | None] = field(default_factory=dict)
    save_prompts: bool = True

    def __post_init__(self) -> None:
        for where_, value in [("tool_capture", self.tool_capture),
                              *((f"tool_capture_overrides[{k!r}]", v)
                                for k, v in self.tool_capture_overrides.items())]:
            if value is not None and value not in _TOOL_CAPTURES:
                raise ConfigError(
                    f"CapturePolicy({where_}={value!r}): expected one of "
                    f"{', '.join(map(repr, _TOOL_CAPTURES))} or None"
                )

    def for_tool(self, name: str) -> str:
        value = self.tool_capture_overrides.get(name, self.tool_capture)
        return value or "none"


class KitaruAgent(WrapperAgent[Any, Any]):
    """An existing Pydantic AI agent whose runs are durable inside kitaru flows.

    `run`, `run_sync`, `run_stream` and `iter` behave like the agent's own; see
    the module docstring for what is recorded where.
    """

    def __init__(
        self,
        agent: AbstractAgent[Any, Any],
        *,
        granular_checkpoints: bool = True,
        capture: CapturePolicy | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(agent, AbstractAgent):
            raise ConfigError(
                f"KitaruAgent(agent=...) expects a pydantic_ai.Agent, got {type(agent).__name__}"
            )
        if capture is not None and not isinstance(capture, CapturePolicy):
            raise ConfigError(
                f"KitaruAgent(capture=...) expects a CapturePolicy, got {type(capture).__name__}"
            )
        super().__init__(agent)
        self.granular_checkpoints = granular_checkpoints
        self.capture = capture or CapturePolicy()
        self.label = name or agent.name or "agent"

    # -- the one funnel: every run goes through iter() ---------------------------------
    @asynccontextmanager
    async def iter(self, *args: Any, capabilities: Sequence[Any] | None = None,
                   **kwargs: Any) -> AsyncIterator[Any]:
        caps = [_KitaruCapability(self), *(capabilities or [])]
        with _one_run_at_a_time(), self.parallel_tool_call_execution_mode("sequential"):
            async with super().iter(*args, capabilities=caps, **kwargs) as run:
                yield run

    # -- entry points that choose the recording unit -----------------------------------
    def run_sync(self, *args: Any, **kwargs: Any) -> Any:
        scope = where()
        if scope is None:
            return self._run_in_own_flow(args, kwargs)
        if scope == "flow" and not self.granular_checkpoints:
            return self._whole_run_checkpoint(lambda: self._run_on_own_loop(args, kwargs))
        return self._run_on_own_loop(args, kwargs)

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        if where() == "flow" and not self.granular_checkpoints:
            def whole_run() -> Any:
                return self._run_on_own_loop(args, kwargs)

            return await anyio.to_thread.run_sync(lambda: self._whole_run_checkpoint(whole_run))
        return await super().run(*args, **kwargs)

    def _run_on_own_loop(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """`run_sync` on an event loop that is shut down when this run of the flow ends.

        kitaru runs a flow body on a new thread for each run, resume and retry, and
        Pydantic AI's `run_sync` leaves a loop behind on each thread it runs on: what the
        run opened on that loop (an MCP server's stdio session) would stay bound to a
        thread that has ended, and the next run or resume of the agent fail to connect.
        So the runs of one flow body share a loop of their own (a new loop per run costs
        ~0.25 ms), closed (tasks cancelled) when the body's run ends.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            _check_no_nested_sync_run()
            coro = super().run(*args, **{"infer_name": False, **kwargs})
            execution = current_execution.get()
            if execution is None:  # an isolated worker: no run of a flow body to end the loop
                return asyncio.run(coro)
            return _flow_run_loop(execution).run_until_complete(coro)
        return super().run_sync(*args, **kwargs)  # Pydantic AI's own error: a sync run in async code

    def _whole_run_checkpoint(self, run: Callable[[], Any]) -> Any:
        # No cache: the closure has no inputs, so every run would share one cache key.
        step = kitaru.checkpoint(run, name=f"{self.label}_run", type="agent_run", cache=False)
        return step().load()

    def _run_in_own_flow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Outside any flow, `run_sync` runs as a flow of its own (named after the agent).

        The flow body is a closure over this call's arguments, so no other process can
        import it: when the run suspends (a `hitl_tool` with no answer yet), this call
        keeps blocking, and resumes the execution here once the wait is answered
        (`kitaru executions input` from any shell). Define a `@kitaru.flow` for runs that
        other processes should resume.
        """
        prompt = args[0] if args else kwargs.get("user_prompt")

        def agent_run(prompt: Any = None) -> Any:
            return self.run_sync(*args, **kwargs)

        agent_run.__qualname__ = f"KitaruAgent.<locals>.{self.label}"
        flow = kitaru.flow(agent_run, name=self.label)
        recorded_prompt = prompt if isinstance(prompt, str) else None
        handle = flow.run(recorded_prompt)
        try:
            return _result_resuming_here(handle, flow.__kitaru_flow__)
        except FlowFailedError as failed:
            # Raise what the agent's own run_sync would (UsageLimitExceeded, a tool's error);
            # `kitaru executions retry` can't import this closure flow, so don't suggest it.
            error = failed.__cause__
            if not isinstance(error, Exception):
                raise
        error.add_note(f"kitaru recorded this agent run as failed execution {handle.exec_id}")
        raise error


def _result_resuming_here(handle: Any, spec: Any) -> Any:
    """The run's result; a suspended run is resumed in this process once its wait is answered."""
    from kitaru_core.errors import ExecutionOwnedError
    from kitaru_core.runtime import service

    run = handle._run
    run.join(None)
    if run.error is not None or not run.suspended:
        return handle.wait()
    stack, exec_id = handle._stack, handle.exec_id
    while True:
        record = stack.registry.get_execution(exec_id)
        if record.status in ("completed", "failed", "cancelled"):
            return handle.wait()
        answered = not any(w.status == "pending" for w in stack.registry.get_waits(exec_id))
        if record.status == "waiting" and record.owner is None and answered:
            # A background resume (the default of `executions input`) can't import this
            # closure and hands the execution back; this process can, with the flow in hand.
            with contextlib.suppress(ExecutionOwnedError):
                service.resume_here(stack, exec_id, flow=spec)
            continue
        time.sleep(_POLL_SECONDS)


# -- one granular run at a time per flow body ----------------------------------------------------

_active_runs: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_active_runs_lock = threading.Lock()
_in_unrecorded_tool: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "kitaru_in_unrecorded_tool", default=False
)


@contextlib.contextmanager
def _one_run_at_a_time() -> Any:
    """Refuse a flow-body agent run that overlaps another one of the same execution.

    Calls are identified by their position (`model_request#3`), so two runs that overlap
    (`asyncio.gather`, threads) would interleave their calls in a different order on a
    resume, and one run would be handed the other's recorded responses. A run started from
    a tool of another run (delegation) is nested, not concurrent, and is allowed.
    """
    execution = current_execution.get() if where() == "flow" else None
    if execution is None:
        yield
        return
    with _active_runs_lock:
        if _active_runs.get(execution, 0) and not _in_unrecorded_tool.get():
            raise ContextError(
                f"another KitaruAgent run is already in progress in the flow body of execution "
                f"{execution.exec_id}; kitaru identifies model requests and tool calls by their "
                "order, so overlapping runs (asyncio.gather, threads) would be numbered "
                "differently on a resume. Run them one after the other, or give each its own "
                "@kitaru.checkpoint (its calls then become child events), e.g. with .submit()"
            )
        _active_runs[execution] = _active_runs.get(execution, 0) + 1
    try:
        yield
    finally:
        with _active_runs_lock:
            _active_runs[execution] -= 1


# -- the run-time capability and its wrappers -------------------------------------------------


@dataclass
class _KitaruCapability(AbstractCapability[Any]):
    agent: KitaruAgent

    def get_wrapper_model(self, model: Model) -> Model | None:
        return _KitaruModel(model, self.agent)

    def get_wrapper_toolset(self, toolset: AbstractToolset[Any]) -> AbstractToolset[Any] | None:
        return _KitaruToolset(toolset, self.agent)


class _KitaruModel(WrapperModel):
    """Each request: a checkpoint in a flow body, a child event inside a checkpoint."""

    def __init__(self, wrapped: Model, agent: KitaruAgent) -> None:
        super().__init__(wrapped)
        self._agent = agent

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        scope = where()
        if scope is None:
            return await super().request(messages, model_settings, model_request_parameters)
        wrapped = self.wrapped

        async def live() -> ModelResponse:
            return await wrapped.request(messages, model_settings, model_request_parameters)

        if scope == "checkpoint":
            return await self._as_child_event(messages, live)
        return await self._as_checkpoint(messages, live)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncIterator[StreamedResponse]:
        scope = where()
        if scope is None:
            async with super().request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream
            return
        wrapped = self.wrapped

        async def live() -> ModelResponse:
            # A recorded response has no stream to replay: drain the live one, keep its result.
            async with wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                async for _ in stream:
                    pass
            return stream.get()

        if scope == "checkpoint":
            response = await self._as_child_event(messages, live)
        else:
            response = await self._as_checkpoint(messages, live)
        yield CompletedStreamedResponse(
            response, model_request_parameters=model_request_parameters, replay_events=True
        )

    async def _as_checkpoint(self, messages: list[ModelMessage], live: Callable[[], Any]) -> ModelResponse:
        save_prompt = self._agent.capture.save_prompts

        made: list[ModelResponse] = []

        async def model_request() -> dict[str, Any]:
            if save_prompt:
                kitaru.save("prompt", _prompt(messages, self._agent.capture))
            started = time.perf_counter()
            response = await live()
            kitaru.log(llm_usage=usage_of(response, time.perf_counter() - started))
            made.append(response)
            return dump_response(response)

        handle = await _checkpoint_call(MODEL_REQUEST, "llm_call", model_request)
        return made[0] if made else load_response(handle.load())

    async def _as_child_event(self, messages: list[ModelMessage], live: Callable[[], Any]) -> ModelResponse:
        started = time.perf_counter()
        response = await live()
        usage = usage_of(response, time.perf_counter() - started)
        parts: dict[str, Any] = {"response": dump_response(response)}
        if self._agent.capture.save_prompts:
            parts["prompt"] = _prompt(messages, self._agent.capture)
        record_child_event("llm_call", MODEL_REQUEST, artifacts=parts,
                           metadata={"model": usage["model"], "usage": usage})
        return response


def _prompt(messages: list[ModelMessage], capture: CapturePolicy) -> list[dict[str, Any]]:
    """A request's new messages as stored (`prompt`), without the results of tools
    whose capture is "none": those must not reach the record through the prompt either."""
    dumped = dump_messages(messages[-1:])
    for message in dumped:
        for part in message.get("parts", []):
            if part.get("part_kind") == "tool-return" and capture.for_tool(part["tool_name"]) == "none":
                part["content"] = "<not recorded: tool_capture 'none'>"
    return dumped


#: Exceptions by which a tool answers the model (retry, failure, deferral): outcomes, not errors.
_TOOL_ANSWERS = (ModelRetry, ToolFailed, ApprovalRequired, CallDeferred)


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
        kind = next(t.__name__ for t in _TOOL_ANSWERS if isinstance(exc, t))
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
class _KitaruToolset(WrapperToolset[Any]):
    """Each tool call: a checkpoint in a flow body, a child event inside a checkpoint."""

    # A dataclass field: Pydantic AI copies toolsets with dataclasses.replace.
    _agent: KitaruAgent = field(default=None, repr=False)  # type: ignore[assignment]

    async def call_tool(self, name: str, tool_args: dict[str, Any], ctx: Any, tool: Any) -> Any:
        scope = where()
        capture = self._agent.capture.for_tool(name)
        hitl = bool((tool.tool_def.metadata or {}).get(_HITL_KEY))
        if scope is None or hitl or capture == "none":
            token = _in_unrecorded_tool.set(True)  # an agent run it starts is nested, not parallel
            try:
                return await super().call_tool(name, tool_args, ctx, tool)
            finally:
                _in_unrecorded_tool.reset(token)
        wrapped = self.wrapped
        kind = {"mcp_server": _mcp_server(tool)} if _mcp_server(tool) else {}

        async def live() -> Any:
            return await wrapped.call_tool(name, tool_args, ctx, tool)

        if scope == "checkpoint":
            started = time.perf_counter()
            meta: dict[str, Any] = {"tool": name, **kind}
            try:
                result = await live()
            except Exception as exc:  # recorded too (a ModelRetry, a tool's own error)
                meta["latency_s"] = round(time.perf_counter() - started, 6)
                meta["error"] = f"{type(exc).__name__}: {exc}"
                parts = {"args": tool_args} if capture == "full" else {}
                record_child_event("tool_call", f"{name}_tool", artifacts=parts, metadata=meta)
                raise
            meta["latency_s"] = round(time.perf_counter() - started, 6)
            parts = {"args": tool_args, "result": result} if capture == "full" else {}
            try:
                record_child_event("tool_call", f"{name}_tool", artifacts=parts, metadata=meta)
            except SerializationError as exc:
                raise _unstorable(name, exc) from None
            return result

        async def tool_call() -> Any:
            if capture == "full":
                kitaru.save("args", tool_args)
            started = time.perf_counter()
            try:
                result = await live()
            except _TOOL_ANSWERS as exc:
                result = _ToolAnswer.of(exc)
            kitaru.log(tool=name, latency_s=round(time.perf_counter() - started, 6), **kind)
            return result

        try:
            outcome = (await _checkpoint_call(f"{name}_tool", "tool_call", tool_call)).load()
        except SerializationError as exc:
            raise _unstorable(name, exc) from None
        if isinstance(outcome, _ToolAnswer):
            raise outcome.exception()
        return outcome


async def _checkpoint_call(name: str, type_: str, body: Callable[[], Any]) -> Any:
    """Run `body` (a coroutine function) as a checkpoint call of the running flow, on this
    event loop; a recorded call returns its output without running the body."""
    execution = current_execution.get()
    assert execution is not None  # where() == "flow"
    return await execution.acall(CheckpointSpec(fn=body, name=name, type=type_), body)


_thread_loops = threading.local()


def _flow_run_loop(execution: Any) -> asyncio.AbstractEventLoop:
    """This thread's loop for agent runs, closed when `execution`'s run of the body ends."""
    loop: asyncio.AbstractEventLoop | None = getattr(_thread_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _thread_loops.loop = loop
        execution.at_end(functools.partial(_shut_down, loop))
    return loop


def _shut_down(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on `loop`, let it unwind, and close it (as `asyncio.run` does)."""
    if loop.is_closed() or loop.is_running():
        return
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _check_no_nested_sync_run() -> None:
    # Pydantic AI refuses a sync run inside a sync tool of another run (it can deadlock).
    try:
        from pydantic_ai._utils import check_no_nested_sync_run
    except ImportError:  # a private helper; without it the check is skipped
        return
    check_no_nested_sync_run()


def _mcp_server(tool: Any) -> str | None:
    toolset = getattr(tool, "toolset", None)
    if toolset is None or "mcp" not in type(toolset).__module__.lower():
        return None
    return getattr(toolset, "id", None) or type(toolset).__name__


def _unstorable(tool: str, exc: SerializationError) -> SerializationError:
    return SerializationError(
        f"tool {tool!r} returned a value kitaru cannot store ({exc}); return JSON-able data, a "
        "pydantic model or bytes, or leave the tool unrecorded with "
        f"CapturePolicy(tool_capture_overrides={{{tool!r}: 'none'}})"
    )


# -- human in the loop ------------------------------------------------------------------------


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
        return Tool(ask, name=tool_name, takes_ctx=False, metadata={_HITL_KEY: True})

    return decorate


def _signature_without_ctx(fn: Callable[..., Any]) -> Any:
    import inspect

    sig = inspect.signature(fn)
    return sig.replace(parameters=[
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()
    ])
