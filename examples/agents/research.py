"""A research flow that calls a durable agent directly in its body.

Each model request and each tool call of the agent is a checkpoint of the flow, so
a crash or a failed tool call resumes from the last completed one:

    python examples/agents/research.py
    kitaru executions get <id>        # model_request#1, search_tool#1, model_request#2, ...
"""

from __future__ import annotations

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import kitaru
from kitaru.adapters.pydantic_ai import KitaruAgent


def researcher_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    found = [p.content for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
    if not found:
        return ModelResponse(parts=[ToolCallPart("search", {"query": "durable agents"}, tool_call_id="s1")])
    return ModelResponse(parts=[TextPart(f"Brief: {found[0]}")])


agent = Agent(
    FunctionModel(researcher_model),  # or "openai:gpt-5-mini"
    name="researcher",
    system_prompt="Research the user's topic and return a concise brief.",
)


@agent.tool_plain
def search(query: str) -> str:
    """Search the web."""
    return f"three sources agree that {query} need checkpoints"


durable_agent = KitaruAgent(agent)


@kitaru.flow
def research_flow(topic: str) -> str:
    result = durable_agent.run_sync(f"Research {topic}")
    return result.output


if __name__ == "__main__":
    handle = research_flow.run("durable agents")
    print(handle.wait(timeout=60))
    calls = kitaru.KitaruClient().executions.get(handle.exec_id).checkpoints
    print("checkpoints:", ", ".join(f"{c.call_id} ({c.type})" for c in calls))
