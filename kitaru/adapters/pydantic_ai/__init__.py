"""Durable Pydantic AI agents: `KitaruAgent` wraps an existing `pydantic_ai.Agent`.

    from kitaru.adapters.pydantic_ai import KitaruAgent
    durable = KitaruAgent(agent)          # the agent itself is not changed

    @kitaru.flow
    def research(topic: str) -> str:
        return durable.run_sync(f"Research {topic}").output

How a run is recorded depends on where it runs (`kitaru_core.runtime.state.where`):

- in a flow body, `checkpoint_strategy="calls"` (the default): every model request is a
  checkpoint (`model_request#n`, type `llm_call`) and every tool call one too
  (`<tool>_tool#n`, type `tool_call`; MCP server tools included). A resume or a replay
  returns the recorded responses and tool results instead of calling the model or the tool
  again, so "fail at call 8" reruns call 8 only.
- in a flow body, `checkpoint_strategy="turn"`: the whole run is one checkpoint
  (`<agent>_run#n`, type `agent_run`), its model and tool calls child events of it.
- inside a `@checkpoint`: checkpoints do not nest, so model and tool calls are recorded as
  child events of the enclosing checkpoint, which stays the replay unit.
- outside any flow: `run_sync` opens a flow around the run by itself; the other entry points
  (`run`, `run_stream`, `iter`) run the agent unrecorded.

The wrapping is thin: a run-time capability puts a model wrapper and a toolset wrapper around
whatever model and toolsets the run uses (so `agent.override(...)`, a run-time `model=` or
`toolsets=` are covered too). The modules: `_options` (CapturePolicy, CheckpointConfig),
`_agent` (KitaruAgent), `_model` and `_toolset` (the wrappers), `_events` (the event stream
handler's once-only delivery), `_run` (a run's shared state), `_loops`, `_hitl`.
"""

from ._agent import KitaruAgent
from ._durability import KitaruDurability
from ._hitl import hitl_tool
from ._options import CapturePolicy, CheckpointConfig
from ._toolset import _ToolAnswer, _ToolResult  # noqa: F401  (recorded outcomes are pickled by this path)

__all__ = ["CapturePolicy", "CheckpointConfig", "KitaruAgent", "KitaruDurability", "hitl_tool"]
