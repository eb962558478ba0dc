"""`KitaruAgent`: an existing `pydantic_ai.Agent` whose runs are durable inside kitaru flows."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import anyio.to_thread
from pydantic_ai.agent import AbstractAgent, WrapperAgent
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.durable_exec import replay_scope
from pydantic_ai.models import Model
from pydantic_ai.toolsets import AbstractToolset

import kitaru
from kitaru_core.errors import ConfigError, FlowFailedError
from kitaru_core.runtime.state import current_execution, where

from ._events import durable_handler
from ._loops import check_no_nested_sync_run, flow_run_loop, one_run_at_a_time, result_resuming_here
from ._model import KitaruModel
from ._options import CapturePolicy, CheckpointConfig, checkpoint_config, strategy, tool_configs
from ._run import AgentRunState, current_run
from ._toolset import is_mcp, wrap_toolset


class KitaruAgent(WrapperAgent[Any, Any]):
    """An existing Pydantic AI agent whose runs are durable inside kitaru flows.

    `run`, `run_sync`, `run_stream` and `iter` behave like the agent's own; see
    `docs/agents.md` for what is recorded where. Options (Kitaru 0.21's names):

    - `checkpoint_strategy`: "calls" (default; a checkpoint per model request and tool call in
      a flow body) or "turn" (one checkpoint per `run`/`run_sync`, its calls child events).
      `granular_checkpoints=True/False` is the same choice under kitaru's older name.
    - `turn_checkpoint_config`, `model_checkpoint_config`, `tool_checkpoint_config`,
      `mcp_checkpoint_config`: a `CheckpointConfig` (retries, retry_delay, backoff, timeout,
      type) for those checkpoints; `tool_checkpoint_config_by_name` per tool, where False
      makes the tool no checkpoint at all (it runs again on a resume).
    - `capture`: a `CapturePolicy` (what is stored besides what replay needs).
    - `event_stream_handler`: used when a run passes none; under a flow each event reaches it
      once, across crashes and resumes.
    - `persist_message_history`: each run continues the conversation of the previous one
      (its `all_messages()`), unless it passes `message_history`. Inside a flow the history
      belongs to that run of the flow body, so a resume rebuilds it from the record.
    """

    def __init__(
        self,
        agent: AbstractAgent[Any, Any],
        *,
        name: str | None = None,
        capture: CapturePolicy | None = None,
        event_stream_handler: Any = None,
        checkpoint_strategy: Literal["calls", "turn"] | None = None,
        granular_checkpoints: bool | None = None,
        turn_checkpoint_config: CheckpointConfig | None = None,
        model_checkpoint_config: CheckpointConfig | None = None,
        tool_checkpoint_config: CheckpointConfig | None = None,
        tool_checkpoint_config_by_name: Mapping[str, CheckpointConfig | Literal[False]] | None = None,
        mcp_checkpoint_config: CheckpointConfig | None = None,
        persist_message_history: bool = False,
    ) -> None:
        if not isinstance(agent, AbstractAgent):
            raise ConfigError(
                f"KitaruAgent(agent=...) expects a pydantic_ai.Agent, got {type(agent).__name__}"
            )
        if capture is not None and not isinstance(capture, CapturePolicy):
            raise ConfigError(
                f"KitaruAgent(capture=...) expects a CapturePolicy, got {type(capture).__name__}"
            )
        if event_stream_handler is not None and not callable(event_stream_handler):
            raise ConfigError("KitaruAgent(event_stream_handler=...) expects an async function (ctx, events)")
        super().__init__(agent)
        self.checkpoint_strategy = strategy(checkpoint_strategy, granular_checkpoints)
        self.capture = capture or CapturePolicy()
        self.label = name or agent.name or "agent"
        self.turn_checkpoint_config = checkpoint_config(turn_checkpoint_config, "turn_checkpoint_config")
        self.model_checkpoint_config = checkpoint_config(model_checkpoint_config, "model_checkpoint_config")
        self.tool_checkpoint_config = checkpoint_config(tool_checkpoint_config, "tool_checkpoint_config")
        self.mcp_checkpoint_config = checkpoint_config(mcp_checkpoint_config, "mcp_checkpoint_config")
        self.tool_checkpoint_config_by_name = tool_configs(tool_checkpoint_config_by_name)
        self._event_stream_handler = event_stream_handler
        self.persist_message_history = persist_message_history
        self._history: list[Any] | None = None
        self._history_in_flow: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()

    @property
    def granular_checkpoints(self) -> bool:
        """kitaru's older name: True for `checkpoint_strategy="calls"`."""
        return self.checkpoint_strategy == "calls"

    @property
    def event_stream_handler(self) -> Any:
        return self._event_stream_handler or self.wrapped.event_stream_handler

    def tool_config(self, name: str, tool: Any) -> dict[str, Any] | Literal[False]:
        """A tool call's checkpoint options, or False when the tool is no checkpoint."""
        by_name = self.tool_checkpoint_config_by_name.get(name)
        if by_name is False or self.capture.for_tool(name) == "none":
            return False
        base = self.mcp_checkpoint_config if is_mcp(tool) else self.tool_checkpoint_config
        return {**base, **(by_name or {})}

    # -- the one funnel: every run goes through iter() ---------------------------------
    @asynccontextmanager
    async def iter(self, *args: Any, capabilities: Sequence[Any] | None = None,
                   **kwargs: Any) -> AsyncIterator[Any]:
        if self.persist_message_history and kwargs.get("message_history") is None:
            kwargs["message_history"] = self._remembered()
        run = AgentRunState(self)
        caps = [_KitaruCapability(run), *(capabilities or [])]
        token = current_run.set(run)
        try:
            # Tool calls of one response run concurrently; their events and results settle in
            # the response's order, and their checkpoints are identified in that order too.
            # In a flow body, spans (OpenTelemetry, Logfire) that covered only recorded calls are
            # not exported again on a resume or replay: only live work creates spans.
            telemetry = replay_scope() if where() == "flow" else contextlib.nullcontext()
            with one_run_at_a_time(), telemetry, \
                    self.parallel_tool_call_execution_mode("parallel_ordered_events"):
                async with super().iter(*args, capabilities=caps, **kwargs) as agent_run:
                    yield agent_run
            if agent_run.result is not None:
                self._remember(agent_run.result)
        finally:
            current_run.reset(token)

    # -- entry points that choose the recording unit -----------------------------------
    def run_sync(self, *args: Any, **kwargs: Any) -> Any:
        kwargs = self._with_durable_handler(kwargs)
        scope = where()
        if scope is None:
            return self._run_in_own_flow(args, kwargs)
        if scope == "flow" and not self.granular_checkpoints:
            return self._whole_run_checkpoint(lambda: self._run_on_own_loop(args, kwargs))
        return self._run_on_own_loop(args, kwargs)

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        kwargs = self._with_durable_handler(kwargs)
        if where() == "flow" and not self.granular_checkpoints:
            def whole_run() -> Any:
                return self._run_on_own_loop(args, kwargs)

            return await anyio.to_thread.run_sync(lambda: self._whole_run_checkpoint(whole_run))
        return await super().run(*args, **kwargs)

    @asynccontextmanager
    async def run_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with super().run_stream(*args, **self._with_durable_handler(kwargs)) as result:
            yield result

    def _with_durable_handler(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        handler = kwargs.get("event_stream_handler") or self.event_stream_handler
        return {**kwargs, "event_stream_handler": durable_handler(handler)} if handler else kwargs

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
            check_no_nested_sync_run()
            coro = super().run(*args, **{"infer_name": False, **kwargs})
            execution = current_execution.get()
            if execution is None:  # an isolated worker: no run of a flow body to end the loop
                return asyncio.run(coro)
            return flow_run_loop(execution).run_until_complete(coro)
        return super().run_sync(*args, **kwargs)  # Pydantic AI's own error: a sync run in async code

    def _whole_run_checkpoint(self, run: Callable[[], Any]) -> Any:
        config = self.turn_checkpoint_config
        # No cache: the closure has no inputs, so every run would share one cache key.
        step = kitaru.checkpoint(
            run, name=f"{self.label}_run", type=config.get("type", "agent_run"), cache=False,
            retries=config.get("retries", 0), retry_delay=config.get("retry_delay", 1.0),
            backoff=config.get("backoff", 2.0),
        )
        result = step().load()
        self._remember(result)  # a turn answered from the record continues the conversation too
        return result

    def _run_in_own_flow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Outside any flow, `run_sync` runs as a flow of its own (named after the agent).

        The flow body is a closure over this call's arguments, so no other process can
        import it: when the run suspends (a `hitl_tool` with no answer yet), this call
        keeps blocking, and resumes the execution here once the wait is answered
        (`kitaru executions input` from any shell). Define a `@kitaru.flow` for runs that
        other processes should resume.
        """
        prompt = args[0] if args else kwargs.get("user_prompt")
        if self.persist_message_history and kwargs.get("message_history") is None:
            kwargs = {**kwargs, "message_history": self._history}

        def agent_run(prompt: Any = None) -> Any:
            return self.run_sync(*args, **kwargs)

        agent_run.__qualname__ = f"KitaruAgent.<locals>.{self.label}"
        flow = kitaru.flow(agent_run, name=self.label)
        recorded_prompt = prompt if isinstance(prompt, str) else None
        handle = flow.run(recorded_prompt)
        try:
            result = result_resuming_here(handle, flow.__kitaru_flow__)
        except FlowFailedError as failed:
            # Raise what the agent's own run_sync would (UsageLimitExceeded, a tool's error);
            # `kitaru executions retry` can't import this closure flow, so don't suggest it.
            error = failed.__cause__
            if not isinstance(error, Exception):
                raise
        else:
            self._remember(result)
            return result
        error.add_note(f"kitaru recorded this agent run as failed execution {handle.exec_id}")
        raise error

    # -- persist_message_history -------------------------------------------------------
    def _remembered(self) -> list[Any] | None:
        execution = current_execution.get()
        if execution is None:
            return self._history
        return self._history_in_flow.get(execution)

    def _remember(self, result: Any) -> None:
        if not self.persist_message_history or not hasattr(result, "all_messages"):
            return
        execution = current_execution.get()
        if execution is None:
            self._history = list(result.all_messages())
        else:
            self._history_in_flow[execution] = list(result.all_messages())


@dataclass
class _KitaruCapability(AbstractCapability[Any]):
    """Added to each run: wraps whatever model and toolsets the run uses."""

    run: AgentRunState

    def get_wrapper_model(self, model: Model) -> Model | None:
        return KitaruModel(model, self.run)

    def get_wrapper_toolset(self, toolset: AbstractToolset[Any]) -> AbstractToolset[Any] | None:
        return wrap_toolset(toolset, self.run)
