"""A compliance review: an agent drafts, a person approves, the flow returns the draft.

The agent is any Pydantic AI agent wrapped in `KitaruAgent`; here its model is a
scripted `FunctionModel` so the example runs without a key (use
`Agent("openai:gpt-5-mini", ...)` for a real one). The approval is a durable wait:

    python examples/agents/compliance_review.py
    kitaru executions input <id> --wait approve --value true     # or false: "rejected"

After `timeout` seconds without an answer the run suspends (nothing keeps running);
the answer resumes it in the background, and the drafting model call is not made
again: it is returned from the record.
"""

from __future__ import annotations

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import kitaru
from kitaru import flow, wait
from kitaru.adapters.pydantic_ai import KitaruAgent


def reviewer_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    case = next(p.content for m in messages for p in m.parts if isinstance(p, UserPromptPart))
    return ModelResponse(parts=[TextPart(f"Draft review of {case}: no sanctions hits; approve.")])


reviewer = KitaruAgent(
    Agent(FunctionModel(reviewer_model), name="reviewer", system_prompt="You're a compliance reviewer."),
)


@flow
def review(case: dict, timeout: float = 5) -> str:
    draft = reviewer.run_sync(str(case)).output
    approved = wait(name="approve", question=draft, schema=bool, timeout=timeout)
    return draft if approved else "rejected"


if __name__ == "__main__":
    handle = review.run({"id": "C-001", "customer": "ACME"})
    print(f"execution {handle.exec_id}")
    try:
        print(handle.wait(timeout=10))
    except kitaru.KitaruError as exc:
        print(f"{exc}\nanswer with: kitaru executions input {handle.exec_id} --wait approve --value true")
