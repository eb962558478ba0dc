"""Figure (e): what the Pydantic AI adapter adds per model request and per tool call.

Two workloads of m short agent runs each, by the bare agent and by `KitaruAgent` (all m
runs in one flow), timed alternately in one process; the model is a scripted
`FunctionModel` that answers at once, so the figures are the adapter's own cost:

- `requests`: each run is one model request that answers;
- `tools`: each run is a model request that calls a trivial tool, the tool call, and a
  second model request that answers.

Each time is the best of three, at m = `small` and m = `large` runs, and the figures are
slopes, (time at large - time at small) / (large - small): the flow's own fixed cost (its
execution record, its thread) cancels out. Reported:

- per model request: kitaru slope - bare slope of `requests`, i.e. what a one-request
  agent run costs more (its checkpoint, and the run's own set-up: an upper bound);
- per tool call: the same of `tools` minus that of `requests`, i.e. what one more turn
  costs (a tool call's checkpoint and the model request's after it).

Short runs keep the message history, and with it the bare agent's own cost, constant.
"""

from __future__ import annotations

import time
from typing import Any

NAME = "adapter_overhead"
WORKLOADS = ("requests", "tools")


def run(*, repeat: int, small: int = 10, large: int = 40) -> dict[str, Any]:
    from _harness import median, repeat_interleaved, run_child

    params = {"small": small, "large": large}
    raw = repeat_interleaved(WORKLOADS, repeat, lambda w: run_child(NAME, w, params), discard=1)
    slopes = {f"{who}-{w}": [r[who] for r in raw[w]] for w in WORKLOADS for who in ("bare", "kitaru")}
    med = {k: median(v) for k, v in slopes.items()}
    extra = {w: median([r["kitaru"] - r["bare"] for r in raw[w]]) for w in WORKLOADS}
    return {
        "k": params,
        "repeat": repeat,
        "slope_s": med,
        "samples": slopes,
        "per_model_request_s": extra["requests"],
        "per_tool_call_s": extra["tools"] - extra["requests"],
        "bare_per_model_request_s": med["bare-requests"],
        "bare_per_tool_turn_s": med["bare-tools"] - med["bare-requests"],
    }


# -- child side ---------------------------------------------------------------------------


def _agents(*, tools: bool) -> tuple[Any, Any]:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel

    from kitaru.adapters.pydantic_ai import KitaruAgent

    def answer(messages: list[Any], info: Any) -> Any:
        return ModelResponse(parts=[TextPart("done")])

    def one_tool_call(messages: list[Any], info: Any) -> Any:
        if any(isinstance(p, ToolReturnPart) for m in messages for p in m.parts):
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart("step", {"i": 1}, tool_call_id="c1")])

    agent = Agent(FunctionModel(one_tool_call if tools else answer), name="bench")

    @agent.tool_plain
    def step(i: int) -> dict[str, int]:
        return {"i": i, "next": i + 1}

    return agent, KitaruAgent(agent)


def _measure(params: dict[str, Any], *, tools: bool) -> dict[str, Any]:
    """Slopes (seconds per extra round) of the bare agent and of KitaruAgent in a flow,
    timed alternately in this one process so that drift hits both alike."""
    import kitaru

    agent, durable_agent = _agents(tools=tools)

    def workload(a: Any, m: int) -> None:
        for i in range(m):
            a.run_sync(f"run {i}")

    @kitaru.flow
    def in_a_flow(k: int) -> None:
        workload(durable_agent, k)

    def once(durable: bool, k: int) -> float:
        start = time.perf_counter()
        if durable:
            in_a_flow.run(k).wait()
        else:
            workload(agent, k)
        return time.perf_counter() - start

    small, large = params["small"], params["large"]
    once(False, small)  # warm up: imports, the stack, the schema, Pydantic AI's schemas
    once(True, small)
    best: dict[tuple[bool, int], float] = {}
    for _ in range(3):  # the best of three: one slow run (a GC pass, a neighbour) is not the cost
        for k in (small, large):
            for durable in (False, True):
                t = once(durable, k)
                best[durable, k] = min(t, best.get((durable, k), t))
    slope = {who: (best[durable, large] - best[durable, small]) / (large - small)
             for who, durable in (("bare", False), ("kitaru", True))}
    return slope


if __name__ == "__main__":
    from _harness import child_main

    child_main({
        "requests": lambda p: _measure(p, tools=False),
        "tools": lambda p: _measure(p, tools=True),
    })
