"""`KitaruDurability`: kitaru as a Pydantic AI durability capability (`Agent(capabilities=[...])`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import FunctionToolCallEvent, FunctionToolResultEvent
from test_pydantic_ai_options import _reset, calls, failed, flags, publish, script  # noqa: F401

import kitaru
from kitaru import flow
from kitaru.adapters.pydantic_ai import KitaruDurability
from kitaru.client import ExecutionStatus

SEEN: list[str] = []


async def remember(ctx: RunContext[Any], events: AsyncIterator[Any]) -> None:
    async for event in events:
        if isinstance(event, FunctionToolCallEvent):
            SEEN.append(f"call {event.part.args_as_dict()['q']}")
        elif isinstance(event, FunctionToolResultEvent):
            SEEN.append(f"result {event.part.content}")


helper = Agent(script("helper", ["helped"]), name="helper")
agent = Agent(script("model", [[("lookup", {"q": "a"}), ("lookup", {"q": "b"})], "answer"]), name="durable",
              capabilities=[KitaruDurability(event_stream_handler=remember)])


@agent.tool
async def lookup(ctx: RunContext[None], q: str) -> str:
    calls["lookup"] += 1
    if q == "b":  # delegates, adding the helper's usage to this run's
        await helper.run("help", usage=ctx.usage)
    return f"facts about {q}"


@flow
def research() -> dict[str, Any]:
    result = agent.run_sync("go")
    return publish({"output": result.output, "requests": result.usage.requests}).load()


def test_each_model_request_tool_call_and_tool_event_is_a_checkpoint_answered_on_retry(client):
    SEEN.clear()
    flags["publish_fails"] = True
    exec_id = failed(research.run(), "publishing service")
    execution = client.executions.get(exec_id)
    assert [(c.call_id, c.type) for c in execution.checkpoints if c.type != "event"] == [
        ("model_request#1", "llm_call"), ("lookup_tool#1", "tool_call"), ("lookup_tool#2", "tool_call"),
        ("model_request#2", "llm_call"), ("publish#1", None),
    ]
    assert len([c for c in execution.checkpoints if c.type == "event"]) == 4
    first = next(a for a in execution.checkpoints[-1].artifacts if a.direction == "input").load()
    assert first == {"output": "answer ['facts about a', 'facts about b']", "requests": 3}
    assert SEEN == ["call a", "call b", "result facts about a", "result facts about b"]

    assert client.executions.retry(exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert calls == {"publish": 1}  # nothing else ran again
    assert kitaru.load(exec_id, "output") == first  # the helper's request is counted once more
    assert len(SEEN) == 4  # and no event was delivered twice


def test_outside_a_flow_the_agent_runs_as_without_the_capability(client):
    result = asyncio.run(agent.run("go"))
    assert result.output == "answer ['facts about a', 'facts about b']"
    assert calls == {"model": 2, "lookup": 2, "helper": 1}
    assert client.executions.list() == []
