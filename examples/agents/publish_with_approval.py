"""An agent that asks a person before it acts: a `hitl_tool` is a durable wait.

The agent drafts a brief, then calls its `approve_publish` tool, which is not run:
the execution waits for a person's answer. With no answer within `timeout` seconds,
the run suspends (its process can leave) until someone answers from any shell:

    python examples/agents/publish_with_approval.py
    kitaru executions input <id> --wait approve_publish --value true

The answer resumes the execution in the background. The agent continues where it
stopped: the model request that chose to ask comes from the record, and the tool
returns the answer to the model.
"""

from __future__ import annotations

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import kitaru
from kitaru.adapters.pydantic_ai import KitaruAgent, hitl_tool


@hitl_tool(question="Publish this brief?", schema=bool, timeout=5)
def approve_publish(summary: str) -> bool:
    """Ask a person whether the brief may be published."""


def publisher_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    answers = [p.content for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
    if not answers:
        summary = "Durable agents keep their work across crashes."
        return ModelResponse(parts=[ToolCallPart("approve_publish", {"summary": summary},
                                                 tool_call_id="ask-1")])
    return ModelResponse(parts=[TextPart("published" if answers[0] is True else "kept as a draft")])


publisher = KitaruAgent(Agent(FunctionModel(publisher_model), name="publisher",
                              tools=[approve_publish]))


@kitaru.flow
def publish(topic: str) -> str:
    return publisher.run_sync(f"Write and publish a brief on {topic}").output


if __name__ == "__main__":
    handle = publish.run("durable agents")
    print(f"execution {handle.exec_id}")
    try:
        print(handle.wait(timeout=10))
    except kitaru.KitaruError as exc:
        print(f"{exc}\nanswer with: kitaru executions input {handle.exec_id} "
              "--wait approve_publish --value true")
