"""Figure (e): what the Pydantic AI adapter adds per model request and per tool call.

Two workloads, each one agent run, by the bare agent and by `KitaruAgent` in a flow, in
fresh processes and homes; the model is a scripted `FunctionModel` that answers at once,
so the figures are the adapter's own cost (records, serialization), not a model's:

- `requests`: model requests and no tool call: the agent has a structured output, and
  the model gives an invalid one k times (each time Pydantic AI asks again) before a
  valid one: k + 1 requests.
- `tools`: the model calls a trivial tool k times, one per turn, then answers: k tool
  calls and k + 1 model requests.

Each child times its workload at k = `small` and k = `large` in the same process, and the
figures are slopes: (adapter - bare) at `large` minus the same at `small`, over the
difference in k. What a run costs once (a flow's execution record and thread, a new event
loop) cancels out; it is reported separately as the per-run figure at `small`.
"""

from __future__ import annotations

import time
from typing import Any

NAME = "adapter_overhead"
VARIANTS = ("bare-requests", "kitaru-requests", "bare-tools", "kitaru-tools")


def run(*, repeat: int, small: int = 5, large: int = 25) -> dict[str, Any]:
    from _harness import median, repeat_interleaved, run_child

    params = {"small": small, "large": large}
    samples = repeat_interleaved(
        VARIANTS, repeat, lambda v: run_child(NAME, v, params)["slope_s"], discard=1
    )
    med = {v: median(s) for v, s in samples.items()}
    per_request = med["kitaru-requests"] - med["bare-requests"]  # per extra model request
    per_turn = med["kitaru-tools"] - med["bare-tools"]  # per extra (tool call + model request)
    return {
        "k": params,
        "repeat": repeat,
        "slope_s": med,
        "samples": samples,
        "per_model_request_s": per_request,
        "per_tool_call_s": per_turn - per_request,
        "bare_per_model_request_s": med["bare-requests"],
        "bare_per_tool_turn_s": med["bare-tools"],
    }


# -- child side ---------------------------------------------------------------------------


def _agents(*, tools: bool) -> tuple[Any, Any]:
    """The agent for a workload; the user prompt says how many times (k) to go round."""
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart, UserPromptPart
    from pydantic_ai.models.function import FunctionModel

    from kitaru.adapters.pydantic_ai import KitaruAgent

    def rounds(messages: list[Any]) -> int:
        return int(next(p.content for m in messages for p in m.parts if isinstance(p, UserPromptPart)))

    def tool_calls(messages: list[Any], info: Any) -> Any:
        done = sum(isinstance(p, ToolReturnPart) for m in messages for p in m.parts)
        if done < rounds(messages):
            return ModelResponse(parts=[ToolCallPart("step", {"i": done}, tool_call_id=f"c{done}")])
        return ModelResponse(parts=[TextPart(f"done after {done} tool calls")])

    def invalid_outputs(messages: list[Any], info: Any) -> Any:
        answers = sum(isinstance(m, ModelResponse) for m in messages)
        value = "not a number" if answers < rounds(messages) else 42
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"response": value},
                                                 tool_call_id=f"o{answers}")])

    if tools:
        agent = Agent(FunctionModel(tool_calls), name="bench")
    else:
        agent = Agent(FunctionModel(invalid_outputs), name="bench", output_type=int,
                      retries={"output": 1000})

    @agent.tool_plain
    def step(i: int) -> dict[str, int]:
        return {"i": i, "next": i + 1}

    return agent, KitaruAgent(agent)


def _measure(params: dict[str, Any], *, durable: bool, tools: bool) -> dict[str, Any]:
    from pydantic_ai.usage import UsageLimits

    import kitaru

    agent, durable_agent = _agents(tools=tools)

    def workload(a: Any, k: int) -> None:
        a.run_sync(str(k), usage_limits=UsageLimits(request_limit=k + 2))

    @kitaru.flow
    def in_a_flow(k: int) -> None:
        workload(durable_agent, k)

    def once(k: int) -> float:
        start = time.perf_counter()
        if durable:
            in_a_flow.run(k).wait()
        else:
            workload(agent, k)
        return time.perf_counter() - start

    small, large = params["small"], params["large"]
    once(small)  # warm up: imports, the stack, the schema, Pydantic AI's schemas
    return {"slope_s": (once(large) - once(small)) / (large - small)}


if __name__ == "__main__":
    from _harness import child_main

    child_main({
        "bare-requests": lambda p: _measure(p, durable=False, tools=False),
        "kitaru-requests": lambda p: _measure(p, durable=True, tools=False),
        "bare-tools": lambda p: _measure(p, durable=False, tools=True),
        "kitaru-tools": lambda p: _measure(p, durable=True, tools=True),
    })
