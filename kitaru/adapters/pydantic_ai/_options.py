"""What `KitaruAgent` records and how: `CapturePolicy`, per-call checkpoint configs, the strategy.

The names follow Kitaru 0.21 (`checkpoint_strategy`, `turn_checkpoint_config`,
`tool_checkpoint_config_by_name`, `CapturePolicy(save_prompts=, save_responses=, ...)`);
kitaru's own earlier names (`granular_checkpoints`, capture values) keep working as aliases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from kitaru_core.errors import ConfigError

ToolCapture = Literal["full", "metadata", "none"]
CheckpointStrategy = Literal["calls", "turn"]

_TOOL_CAPTURES = ("full", "metadata", "none")
#: Kitaru 0.21's legacy capture values.
_CAPTURE_ALIASES = {"metadata_only": "metadata", "off": None}
_STRATEGIES = {"calls": "calls", "granular": "calls", "turn": "turn", "per_turn": "turn", "per-turn": "turn"}


@dataclass(frozen=True)
class CapturePolicy:
    """What the adapter stores of each call, beyond what replay needs.

    `tool_capture` (per tool in `tool_capture_overrides`):
    - "full": the tool's arguments (artifact `args`) and its result;
    - "metadata": its result (replay needs it) and timing, not its arguments;
    - "none" (or None; Kitaru's "off"): nothing; the tool is not a checkpoint and runs
      again on every resume or replay (for tools that handle secrets, or are cheap and pure).
    `save_prompts`: store each model request's new messages (artifact `prompt`).
    `save_responses`: store each model response where it is not the replay record itself
    (inside a checkpoint, the child event's `response` artifact); a flow-body model request's
    response is its checkpoint's output, always stored, since a resume returns it.
    `emit_child_events`: inside a `@checkpoint`, record model and tool calls as child events.
    `save_stream_transcripts` and `correlate_otel_spans` are accepted for Kitaru 0.21 flows;
    kitaru records a streamed request's final response, not its events.
    """

    tool_capture: ToolCapture | None = "full"
    tool_capture_overrides: Mapping[str, ToolCapture | None] = field(default_factory=dict)
    save_prompts: bool = True
    save_responses: bool = True
    emit_child_events: bool = True
    save_stream_transcripts: bool = True
    correlate_otel_spans: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_capture", _capture("tool_capture", self.tool_capture))
        object.__setattr__(self, "tool_capture_overrides", {
            name: _capture(f"tool_capture_overrides[{name!r}]", value)
            for name, value in self.tool_capture_overrides.items()
        })

    def for_tool(self, name: str) -> str:
        value = self.tool_capture_overrides.get(name, self.tool_capture)
        return value or "none"


def _capture(where: str, value: Any) -> Any:
    value = _CAPTURE_ALIASES.get(value, value) if isinstance(value, str) else value
    if value is not None and value not in _TOOL_CAPTURES:
        raise ConfigError(
            f"CapturePolicy({where}={value!r}): expected one of "
            f"{', '.join(map(repr, _TOOL_CAPTURES))} or None"
        )
    return value


class CheckpointConfig(TypedDict, total=False):
    """Options of a checkpoint the adapter opens (a model request, a tool call, a turn).

    `retries` (with `retry_delay` and `backoff`) re-runs a failed call; `timeout` (seconds)
    fails a call that takes longer (then retried like any failure); `type` labels it.
    `cache` is accepted for Kitaru 0.21 flows and has no effect: an agent's calls are answered
    from their own execution's record, never reused across executions. `runtime` is
    "inline" only: a model request or tool call runs in the flow's own process.
    """

    retries: int
    retry_delay: float
    backoff: float
    timeout: float | None
    type: str
    cache: bool | None
    runtime: Literal["inline"]


_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "retries": (int,), "retry_delay": (int, float), "backoff": (int, float),
    "timeout": (int, float, type(None)), "type": (str,), "cache": (bool, type(None)), "runtime": (str,),
}


def checkpoint_config(value: Any, where: str) -> dict[str, Any]:
    """A validated `CheckpointConfig` (a ConfigError names the bad key and the fix)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} expects a dict of checkpoint options, got {type(value).__name__}")
    for key, item in value.items():
        if key not in _CONFIG_TYPES:
            raise ConfigError(
                f"{where}: unknown option {key!r}; expected one of {', '.join(sorted(_CONFIG_TYPES))}"
            )
        if (isinstance(item, bool) and key != "cache") or not isinstance(item, _CONFIG_TYPES[key]):
            raise ConfigError(f"{where}[{key!r}]={item!r} has the wrong type")
    if value.get("runtime", "inline") != "inline":
        raise ConfigError(
            f"{where}: runtime={value['runtime']!r} is not supported for an agent's calls; use "
            "runtime='inline', or wrap the whole agent run in @kitaru.checkpoint(runtime='isolated')"
        )
    if value.get("retries", 0) < 0 or (value.get("timeout") or 1) <= 0:
        raise ConfigError(f"{where}: retries must be >= 0 and timeout > 0")
    return dict(value)


def tool_configs(value: Any) -> dict[str, dict[str, Any] | Literal[False]]:
    """`tool_checkpoint_config_by_name`: a config per tool, or False (the tool is no checkpoint)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            "tool_checkpoint_config_by_name expects a dict of tool name to config, got "
            f"{type(value).__name__}"
        )
    return {name: False if config is False else
            checkpoint_config(config, f"tool_checkpoint_config_by_name[{name!r}]")
            for name, config in value.items()}


def strategy(checkpoint_strategy: str | None, granular_checkpoints: bool | None) -> CheckpointStrategy:
    """The checkpoint strategy from Kitaru 0.21's `checkpoint_strategy` or the older boolean."""
    from_flag = None if granular_checkpoints is None else ("calls" if granular_checkpoints else "turn")
    if checkpoint_strategy is None:
        return from_flag or "calls"  # type: ignore[return-value]
    chosen = _STRATEGIES.get(checkpoint_strategy)
    if chosen is None:
        raise ConfigError(
            f"KitaruAgent(checkpoint_strategy={checkpoint_strategy!r}): expected 'calls' (a checkpoint "
            "per model request and tool call) or 'turn' (one checkpoint per agent run)"
        )
    if from_flag is not None and from_flag != chosen:
        raise ConfigError(
            f"KitaruAgent(checkpoint_strategy={checkpoint_strategy!r}, granular_checkpoints="
            f"{granular_checkpoints!r}) disagree; pass only checkpoint_strategy"
        )
    return chosen  # type: ignore[return-value]
