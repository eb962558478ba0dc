"""`KitaruAgent`: a Pydantic AI agent whose runs are durable inside kitaru flows.

The models are `FunctionModel` scripts (never a real provider); counters show
what ran live and what came back from the record.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import until_suspended
from pydantic import BaseModel
from pydantic_ai import Agent, DeferredToolRequests, ModelRetry, RunContext, Tool
from pydantic_ai.agent import AgentRunResult
from pydantic_ai.exceptions import ApprovalRequired, ToolFailed
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartStartEvent,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

import kitaru
from kitaru import checkpoint, flow
from kitaru.adapters.pydantic_ai import CapturePolicy, KitaruAgent, hitl_tool
from kitaru.client import ExecutionStatus
from kitaru.errors import (
    ConfigError,
    ContextError,
    FlowFailedError,
    KitaruDivergenceError,
    SerializationError,
    WaitInputError,
)
from kitaru.model_calls import dump_response
from kitaru.usage import usages_in

#: Live calls of each model and tool (what a replay must not repeat).
calls: Counter[str] = Counter()
#: Switches the tests flip to change what tools and models do between runs.
flags: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    flags.clear()


# -- scripted models ------------------------------------------------------------------------

#: A script step: `(tool, args)` calls a tool, a list of them calls several at once; a
#: string is the final answer (the tool results seen so far are appended to it).
Call = tuple[str, dict[str, Any]]
Step = Call | list[Call] | str


def tool_returns(messages: Sequence[ModelMessage]) -> list[Any]:
    return [p.content for m in messages for p in m.parts
            if isinstance(p, ToolReturnPart) and p.outcome != "retried"]


def retry_prompts(messages: Sequence[ModelMessage]) -> list[Any]:
    """What tools asked the model to retry (a tool's `ModelRetry`)."""
    return [p.content for m in messages for p in m.parts
            if (isinstance(p, ToolReturnPart) and p.outcome == "retried")
            or (isinstance(p, RetryPromptPart) and p.tool_name)]


def scripted(name: str, steps: Sequence[Step]) -> Callable[[list[ModelMessage], AgentInfo], ModelResponse]:
    """A model that plays `steps` (or `flags[name]` when a test sets it), one per request."""

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls[name] += 1
        script = flags.get(name, steps)
        turn = sum(isinstance(m, ModelRequest) for m in messages)
        step = script[turn - 1]
        if isinstance(step, str):
            seen = tool_returns(messages) + [f"retry: {r}" for r in retry_prompts(messages)]
            return ModelResponse(parts=[TextPart(f"{step} {seen}")])
        batch = step if isinstance(step, list) else [step]
        return ModelResponse(parts=[ToolCallPart(tool, args, tool_call_id=f"{name}-{turn}-{i}")
                                    for i, (tool, args) in enumerate(batch)])

    return model


def streamed(script: Callable[[list[ModelMessage], AgentInfo], ModelResponse]) -> Callable[..., Any]:
    """The same script as a `stream_function`: text in two deltas, tool calls as one delta."""

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        for part in script(messages, info).parts:
            if isinstance(part, TextPart):
                half = len(part.content) // 2
                yield part.content[:half]
                yield part.content[half:]
            else:
                yield {0: DeltaToolCall(name=part.tool_name, json_args=json.dumps(part.args),
                                        tool_call_id=part.tool_call_id)}

    return stream


# -- the research agent: two lookups, then an answer ------------------------------------------

RESEARCH = [("lookup", {"q": "a"}), ("lookup", {"q": "b"}), "answer"]
research_model = scripted("model", RESEARCH)
researcher = Agent(FunctionModel(research_model, stream_function=streamed(research_model)),
                   name="researcher")


@researcher.tool_plain
def lookup(q: str) -> str:
    """Look a query up."""
    calls["lookup"] += 1
    if flags.get("lookup_fails_at") == calls["lookup"]:
        del flags["lookup_fails_at"]  # fails once
        raise RuntimeError("search service is down")
    return f"facts about {q}"


@researcher.tool_plain
def fetch(url: str) -> str:
    """Fetch a page."""
    calls["fetch"] += 1
    return f"page at {url}"


ANSWER = "answer ['facts about a', 'facts about b']"
CHECKPOINTS = [
    ("model_request#1", "llm_call"), ("lookup_tool#1", "tool_call"),
    ("model_request#2", "llm_call"), ("lookup_tool#2", "tool_call"),
    ("model_request#3", "llm_call"),
]


def durable(capture: dict[str, Any] | None = None, granular: bool = True) -> KitaruAgent:
    return KitaruAgent(researcher, granular_checkpoints=granular,
                       capture=CapturePolicy(**capture) if capture is not None else None)


async def _via_run(agent: KitaruAgent, prompt: str) -> str:
    return (await agent.run(prompt)).output


async def _via_stream(agent: KitaruAgent, prompt: str) -> str:
    async with agent.run_stream(prompt) as result:
        return await result.get_output()


async def _via_iter(agent: KitaruAgent, prompt: str) -> str:
    async with agent.iter(prompt) as run:
        async for _node in run:
            pass
    assert run.result is not None
    return run.result.output


async def _via_stream_text(agent: KitaruAgent, prompt: str) -> str:
    async with agent.run_stream(prompt) as result:
        return "".join([delta async for delta in result.stream_text(delta=True)])


ENTRY_POINTS: dict[str, Callable[[KitaruAgent, str], str]] = {
    "run_sync": lambda agent, prompt: agent.run_sync(prompt).output,
    "run (asyncio)": lambda agent, prompt: asyncio.run(_via_run(agent, prompt)),
    "run (anyio)": lambda agent, prompt: anyio.run(_via_run, agent, prompt),
    "run_stream": lambda agent, prompt: asyncio.run(_via_stream(agent, prompt)),
    "run_stream (text)": lambda agent, prompt: asyncio.run(_via_stream_text(agent, prompt)),
    "iter": lambda agent, prompt: asyncio.run(_via_iter(agent, prompt)),
}


@flow
def research(topic: str, entry: str = "run_sync", capture: dict[str, Any] | None = None,
             granular: bool = True) -> str:
    return ENTRY_POINTS[entry](durable(capture, granular), f"Research {topic}")


@checkpoint
def publish(text: str) -> str:
    calls["publish"] += 1
    if flags.get("publish_fails"):
        raise RuntimeError("publishing service is down")
    return f"published: {text}"


@flow
def research_and_publish(topic: str, granular: bool = True) -> str:
    answer = durable(granular=granular).run_sync(f"Research {topic}").output
    return publish(answer).load()


def checkpoints_of(client: kitaru.KitaruClient, exec_id: str) -> list[tuple[str, str | None]]:
    return [(c.call_id, c.type) for c in client.executions.get(exec_id).checkpoints]


def artifacts_of(call: Any) -> dict[str, Any]:
    return {a.name: a.load() for a in call.artifacts}


def failed_run(handle: kitaru.FlowHandle, match: str) -> str:
    with pytest.raises(FlowFailedError, match=match):
        handle.wait()
    calls.clear()
    return handle.exec_id




# -- 1. granular: every model request and tool call is a checkpoint ---------------------------


def test_each_model_request_and_tool_call_is_a_checkpoint(client):
    model, toolsets = researcher.model, list(researcher.toolsets)
    tools = dict(researcher.toolsets[0].tools)

    handle = research.run("agents")
    assert handle.wait() == ANSWER
    assert calls == {"model": 3, "lookup": 2}

    execution = client.executions.get(handle.exec_id)
    assert execution.status is ExecutionStatus.COMPLETED
    assert [(c.call_id, c.type) for c in execution.checkpoints] == CHECKPOINTS
    by_id = {c.call_id: c for c in execution.checkpoints}

    first = by_id["model_request#1"]
    stored = artifacts_of(first)
    assert set(stored) == {"prompt", "model_request"}
    assert stored["prompt"][0]["parts"][0]["content"] == "Research agents"
    assert stored["model_request"]["parts"][0]["tool_name"] == "lookup"
    usage = first.metadata["llm_usage"]
    assert set(usage) == {"model", "provider", "input_tokens", "output_tokens", "latency_s", "cost_usd"}
    assert usage["model"].startswith("function:")
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["cost_usd"] is None  # a test model has no price
    assert len(usages_in(by_id["model_request#3"].metadata)) == 1

    lookup_call = by_id["lookup_tool#2"]
    assert artifacts_of(lookup_call) == {"args": {"q": "b"}, "lookup_tool": "facts about b"}
    assert lookup_call.metadata["tool"] == "lookup"
    assert "mcp_server" not in lookup_call.metadata

    # The wrapped agent is left as it was, and still works on its own.
    assert researcher.model is model
    assert [id(t) for t in researcher.toolsets] == [id(t) for t in toolsets]
    assert researcher.toolsets[0].tools == tools
    calls.clear()
    assert researcher.run_sync("Research plain").output == ANSWER
    assert calls == {"model": 3, "lookup": 2}


@flow
def unwrapped_research(topic: str) -> str:
    return researcher.run_sync(f"Research {topic}").output


def test_the_unwrapped_agent_in_a_flow_records_nothing(client):
    handle = unwrapped_research.run("agents")
    assert handle.wait() == ANSWER
    assert client.executions.get(handle.exec_id).checkpoints == []


# -- 2. resume after a failure; replay from a tool call ---------------------------------------


def test_retry_reuses_recorded_calls_and_reruns_the_failed_tool(client):
    flags["lookup_fails_at"] = 2
    exec_id = failed_run(research.run("agents"), "search service is down")
    failed = client.executions.get(exec_id)
    assert failed.status is ExecutionStatus.FAILED
    assert failed.failure["call_id"] == "lookup_tool#2"

    execution = client.executions.retry(exec_id, background=False)
    assert execution.status is ExecutionStatus.COMPLETED
    assert kitaru.load(exec_id, "output") == ANSWER
    assert calls == {"lookup": 1, "model": 1}  # the failed tool call and the request after it
    by_id = {c.call_id: c for c in execution.checkpoints}
    assert [c.call_id for c in execution.checkpoints] == [cid for cid, _ in CHECKPOINTS]
    assert by_id["lookup_tool#2"].attempts == 2
    assert by_id["model_request#1"].attempts == 1


def test_replay_from_a_tool_call_reruns_from_there(client):
    original = research.run("agents")
    assert original.wait() == ANSWER
    calls.clear()

    handle = research.replay(original.exec_id, at="lookup_tool#2")
    assert handle.wait() == ANSWER
    assert calls == {"lookup": 1, "model": 1}
    replayed = {c.call_id: c for c in client.executions.get(handle.exec_id).checkpoints}
    assert list(replayed) == [cid for cid, _ in CHECKPOINTS]
    assert replayed["model_request#2"].attempts == 0  # reused from the original
    assert replayed["model_request#2"].output.metadata["replayed_from"] == original.exec_id
    assert replayed["lookup_tool#2"].attempts == 1


# -- 3. every entry point records the same checkpoints and replays ----------------------------


@pytest.mark.parametrize("entry", ["run (asyncio)", "run (anyio)", "run_stream", "run_stream (text)",
                                   "iter"])
def test_every_entry_point_records_and_resumes_the_same_way(entry, client):
    flags["lookup_fails_at"] = 2
    exec_id = failed_run(research.run("agents", entry=entry), "search service is down")
    assert checkpoints_of(client, exec_id) == CHECKPOINTS[:4]

    execution = client.executions.retry(exec_id, background=False)
    assert execution.status is ExecutionStatus.COMPLETED
    assert kitaru.load(exec_id, "output") == ANSWER
    assert calls == {"lookup": 1, "model": 1}
    assert checkpoints_of(client, exec_id) == CHECKPOINTS

    calls.clear()
    replayed = research.replay(exec_id, at="model_request#3")
    assert replayed.wait() == ANSWER
    assert calls == {"model": 1}


# -- 4. not granular: the whole run is one checkpoint ------------------------------------------


def test_not_granular_records_one_agent_run_with_child_events(client):
    flags["publish_fails"] = True
    exec_id = failed_run(research_and_publish.run("agents", granular=False), "publishing service")
    execution = client.executions.get(exec_id)
    assert [(c.call_id, c.type) for c in execution.checkpoints] == [
        ("researcher_run#1", "agent_run"), ("publish#1", None),
    ]
    agent_run = execution.checkpoints[0]
    events = {k.removeprefix("event:"): v for k, v in agent_run.metadata.items() if k.startswith("event:")}
    assert list(events) == [cid for cid, _ in CHECKPOINTS]
    assert [e["kind"] for e in events.values()] == [kind for _, kind in CHECKPOINTS]
    assert len(usages_in(agent_run.metadata)) == 3
    stored = {a.name: a for a in agent_run.artifacts}
    assert stored["lookup_tool#1.args"].load() == {"q": "a"}
    assert stored["lookup_tool#1.result"].load() == "facts about a"
    assert stored["model_request#1.prompt"].load()[0]["parts"][0]["content"] == "Research agents"
    assert stored["model_request#3.response"].load()["parts"][0]["content"] == ANSWER

    flags["publish_fails"] = False
    execution = client.executions.retry(exec_id, background=False)
    assert execution.status is ExecutionStatus.COMPLETED
    assert kitaru.load(exec_id, "output") == f"published: {ANSWER}"
    assert calls == {"publish": 1}  # the agent's result came from the record


def test_not_granular_async_run_is_one_checkpoint_too(client):
    handle = research.run("agents", entry="run (asyncio)", granular=False)
    assert handle.wait() == ANSWER
    assert checkpoints_of(client, handle.exec_id) == [("researcher_run#1", "agent_run")]


# -- 5. inside a user checkpoint: child events, no nested checkpoints ---------------------------


@checkpoint
def research_step(topic: str, capture: dict[str, Any]) -> str:
    return durable(capture).run_sync(f"Research {topic}").output


@flow
def research_in_a_step(topic: str, capture: dict[str, Any]) -> str:
    return research_step(topic, capture).load()


def _events(call: Any) -> dict[str, dict[str, Any]]:
    return {k.removeprefix("event:"): v for k, v in call.metadata.items() if k.startswith("event:")}


def test_inside_a_checkpoint_calls_are_child_events(client):
    handle = research_in_a_step.run("agents", {"tool_capture": "full"})
    assert handle.wait() == ANSWER
    execution = client.executions.get(handle.exec_id)
    assert [c.call_id for c in execution.checkpoints] == ["research_step#1"]
    step = execution.checkpoints[0]
    events = _events(step)
    assert [(eid, e["kind"]) for eid, e in events.items()] == CHECKPOINTS
    assert events["lookup_tool#2"]["tool"] == "lookup"
    assert events["model_request#1"]["usage"]["input_tokens"] > 0
    stored = artifacts_of(step)
    assert stored["lookup_tool#2.args"] == {"q": "b"}
    assert stored["lookup_tool#2.result"] == "facts about b"
    assert stored["model_request#2.prompt"][0]["parts"][0]["content"] == "facts about a"


@pytest.mark.parametrize(("capture", "tool_events", "tool_parts"), [
    ({"tool_capture": "metadata"}, ["lookup_tool#1", "lookup_tool#2"], set()),
    ({"tool_capture": "none"}, [], set()),
    ({"tool_capture": "full", "save_prompts": False}, ["lookup_tool#1", "lookup_tool#2"],
     {"args", "result"}),
])
def test_capture_modes_inside_a_checkpoint(capture, tool_events, tool_parts, client):
    handle = research_in_a_step.run("agents", capture)
    assert handle.wait() == ANSWER
    step = client.executions.get(handle.exec_id).checkpoints[0]
    events = _events(step)
    assert [eid for eid, e in events.items() if e["kind"] == "tool_call"] == tool_events
    for eid in tool_events:
        assert set(events[eid]["artifacts"]) == tool_parts
        assert events[eid]["tool"] == "lookup"
    prompts = [a.name for a in step.artifacts if a.name.endswith(".prompt")]
    assert bool(prompts) == capture.get("save_prompts", True)


# -- 6. outside any flow ---------------------------------------------------------------------


def test_run_sync_outside_a_flow_opens_its_own_execution(client):
    result = durable().run_sync("Research solo")
    assert isinstance(result, AgentRunResult)
    assert result.output == ANSWER
    [execution] = client.executions.list()
    assert execution.flow_name == "researcher"
    assert execution.status is ExecutionStatus.COMPLETED
    assert checkpoints_of(client, execution.exec_id) == CHECKPOINTS


def test_run_sync_outside_a_flow_raises_the_agents_own_error(client):
    flags["lookup_fails_at"] = 2
    with pytest.raises(RuntimeError, match="search service is down") as info:
        durable().run_sync("Research solo")
    [execution] = client.executions.list()
    assert execution.status is ExecutionStatus.FAILED
    assert info.value.__notes__ == [
        f"kitaru recorded this agent run as failed execution {execution.exec_id}"
    ]
    assert [c.call_id for c in client.executions.get(execution.exec_id).checkpoints][-1] == "lookup_tool#2"


def test_run_outside_a_flow_just_runs(client):
    assert asyncio.run(_via_run(durable(), "Research solo")) == ANSWER
    assert asyncio.run(_via_stream(durable(), "Research solo")) == ANSWER
    assert calls == {"model": 6, "lookup": 4}
    assert client.executions.list() == []


def test_an_unnamed_agent_runs_as_a_flow_named_agent_or_as_told(client):
    anonymous = Agent(FunctionModel(lambda messages, info: ModelResponse(parts=[TextPart("hi")])))
    assert KitaruAgent(anonymous).run_sync("hello").output == "hi"
    assert KitaruAgent(anonymous, name="greeter").run_sync("hello").output == "hi"
    assert [e.flow_name for e in client.executions.list()] == ["greeter", "agent"]
    assert anonymous.name is None


# -- 7. capture policy -----------------------------------------------------------------------


def test_metadata_capture_records_results_but_not_arguments(client):
    flags["lookup_fails_at"] = 2
    exec_id = failed_run(research.run("agents", capture={"tool_capture": "metadata"}), "search service")
    execution = client.executions.retry(exec_id, background=False)
    assert execution.status is ExecutionStatus.COMPLETED
    assert calls == {"lookup": 1, "model": 1}  # lookup_tool#1 replayed from its recorded result
    lookup_call = {c.call_id: c for c in execution.checkpoints}["lookup_tool#1"]
    assert artifacts_of(lookup_call) == {"lookup_tool": "facts about a"}
    assert lookup_call.metadata["tool"] == "lookup" and "latency_s" in lookup_call.metadata


@pytest.mark.parametrize("capture", [
    {"tool_capture": "none"},
    {"tool_capture": None},
    {"tool_capture": "full", "tool_capture_overrides": {"lookup": "none"}},
    {"tool_capture": "full", "tool_capture_overrides": {"lookup": None}},
])
def test_uncaptured_tools_are_not_checkpoints_and_run_again_on_resume(capture, client):
    flags["lookup_fails_at"] = 2
    exec_id = failed_run(research.run("agents", capture=capture), "search service")
    assert checkpoints_of(client, exec_id) == [("model_request#1", "llm_call"),
                                               ("model_request#2", "llm_call")]
    execution = client.executions.retry(exec_id, background=False)
    assert execution.status is ExecutionStatus.COMPLETED
    assert kitaru.load(exec_id, "output") == ANSWER
    assert calls == {"lookup": 2, "model": 1}  # both lookups ran again
    assert [c.call_id for c in execution.checkpoints] == [
        "model_request#1", "model_request#2", "model_request#3",
    ]
    # Nor do its results reach the record through the next request's prompt.
    prompt = artifacts_of(execution.checkpoints[1])["prompt"]
    assert prompt[0]["parts"][0]["content"] == "<not recorded: tool_capture 'none'>"


def test_per_tool_override_of_the_default_capture(client):
    handle = research.run("agents", capture={"tool_capture": "none",
                                             "tool_capture_overrides": {"lookup": "metadata"}})
    assert handle.wait() == ANSWER
    execution = client.executions.get(handle.exec_id)
    assert [(c.call_id, c.type) for c in execution.checkpoints] == CHECKPOINTS
    assert artifacts_of(execution.checkpoints[1]) == {"lookup_tool": "facts about a"}


def test_without_saved_prompts_only_responses_are_stored(client):
    handle = research.run("agents", capture={"save_prompts": False})
    assert handle.wait() == ANSWER
    for call in client.executions.get(handle.exec_id).checkpoints:
        if call.type == "llm_call":
            assert [a.name for a in call.artifacts] == ["model_request"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tool_capture": "all"}, "tool_capture='all'"),
    ({"tool_capture_overrides": {"lookup": "args"}}, "tool_capture_overrides['lookup']='args'"),
])
def test_invalid_capture_values_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=r"expected one of 'full', 'metadata', 'none'") as info:
        CapturePolicy(**kwargs)
    assert message in str(info.value)


def test_kitaru_agent_checks_its_arguments():
    with pytest.raises(ConfigError, match=r"expects a pydantic_ai\.Agent, got str"):
        KitaruAgent("openai:gpt-5")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="expects a CapturePolicy, got dict"):
        KitaruAgent(researcher, capture={"tool_capture": "full"})  # type: ignore[arg-type]


# -- 8. human in the loop ----------------------------------------------------------------------


@hitl_tool(question="Publish this summary?", schema=bool, timeout=0)
def approve(summary: str) -> bool:
    """Ask a human whether to publish the summary."""


@hitl_tool(schema=str, timeout=0)
def ask_human(question: str) -> str:
    """Ask a human a question."""


REVIEW = [("lookup", {"q": "a"}), ("approve", {"summary": "facts about a"}), "done"]
review_model = scripted("model", REVIEW)
reviewer = Agent(FunctionModel(review_model), name="reviewer", tools=[approve, ask_human])
reviewer.tool_plain(lookup)


@flow
def review(topic: str) -> str:
    return KitaruAgent(reviewer).run_sync(f"Review {topic}").output


def test_hitl_tool_suspends_and_continues_at_the_same_point(client):
    handle = review.run("agents")
    until_suspended(handle)
    assert calls == {"model": 2, "lookup": 1}
    execution = client.executions.get(handle.exec_id)
    assert execution.status is ExecutionStatus.WAITING
    pending = execution.pending_wait
    assert pending.name == "approve"
    assert pending.question == "Publish this summary?"
    assert pending.metadata == {"tool": "approve", "args": {"summary": "facts about a"}}
    assert [c.call_id for c in execution.checkpoints] == [
        "model_request#1", "lookup_tool#1", "model_request#2",
    ]

    with pytest.raises(WaitInputError):
        client.executions.input(handle.exec_id, wait="approve", value="maybe", resume=False)
    assert client.executions.get(handle.exec_id).pending_wait.name == "approve"

    calls.clear()
    client.executions.input(handle.exec_id, wait="approve", value=True, resume=False)
    execution = client.executions.resume(handle.exec_id, background=False)
    assert execution.status is ExecutionStatus.COMPLETED
    assert kitaru.load(handle.exec_id, "output") == "done ['facts about a', True]"
    assert calls == {"model": 1}  # only the request after the answer
    assert [c.call_id for c in execution.checkpoints][-1] == "model_request#3"


def test_hitl_tool_asks_the_models_question(client):
    flags["model"] = [("ask_human", {"question": "Which region?"}), "done"]
    handle = review.run("agents")
    until_suspended(handle)
    pending = client.executions.get(handle.exec_id).pending_wait
    assert (pending.name, pending.question) == ("ask_human", "Which region?")
    client.executions.input(handle.exec_id, wait="ask_human", value="eu", resume=False)
    assert client.executions.resume(handle.exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert kitaru.load(handle.exec_id, "output") == "done ['eu']"


@checkpoint
def review_step(topic: str) -> str:
    return KitaruAgent(reviewer).run_sync(f"Review {topic}").output


@flow
def review_in_a_step(topic: str) -> str:
    notes = publish(topic).load()
    return review_step(notes).load()


def test_hitl_tool_inside_a_checkpoint_is_a_context_error(client):
    handle = review_in_a_step.run("agents")
    with pytest.raises(FlowFailedError, match="hitl_tool 'approve'") as info:
        handle.wait()
    assert isinstance(info.value.__cause__, ContextError)
    assert "inside checkpoint 'review_step#1'" in str(info.value)
    execution = client.executions.get(handle.exec_id)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.checkpoints[0].call_id == "publish#1"
    assert execution.checkpoints[0].output.load() == "published: agents"
    assert execution.failure["call_id"] == "review_step#1"


@flow
def review_as_one_run(topic: str) -> str:
    return KitaruAgent(reviewer, granular_checkpoints=False).run_sync(f"Review {topic}").output


def test_hitl_tool_in_a_whole_run_checkpoint_is_a_context_error(client):
    handle = review_as_one_run.run("agents")
    with pytest.raises(FlowFailedError, match="inside checkpoint 'reviewer_run#1'") as info:
        handle.wait()
    assert isinstance(info.value.__cause__, ContextError)
    assert calls == {"model": 2, "lookup": 1}
    execution = client.executions.get(handle.exec_id)
    assert execution.failure["call_id"] == "reviewer_run#1"
    assert execution.pending_wait is None


def test_hitl_tool_outside_a_flow_is_a_context_error(client):
    with pytest.raises(ContextError, match="hitl_tool 'approve' was reached outside a flow"):
        asyncio.run(KitaruAgent(reviewer).run("Review agents"))
    assert client.executions.list() == []


@pytest.mark.slow
def test_run_sync_outside_a_flow_blocks_at_a_hitl_tool_and_resumes_here_once_answered(client):
    outcome: dict[str, object] = {}

    def run() -> None:
        outcome["result"] = KitaruAgent(reviewer).run_sync("Review agents")

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 30
    while not [e for e in client.executions.list(status="waiting")]:
        assert time.monotonic() < deadline, "the agent's own execution never suspended"
        time.sleep(0.02)
    (execution,) = client.executions.list(status="waiting")
    assert execution.flow_name == "reviewer"
    # The default input resumes in the background; that process can't import the agent's
    # closure flow and hands it back, and the blocked run_sync resumes it here.
    client.executions.input(execution.exec_id, wait="approve", value=True)
    runner.join(60)
    assert not runner.is_alive(), "run_sync did not return after the answer"
    assert outcome["result"].output == "done ['facts about a', True]"
    assert client.executions.get(execution.exec_id).status is ExecutionStatus.COMPLETED
    assert calls == {"model": 3, "lookup": 1}  # nothing ran twice


# -- 9. a tool result kitaru cannot store -------------------------------------------------------


def _generator() -> Any:
    yield 1


keeper = Agent(FunctionModel(scripted("model", [("make_handle", {}), "kept"])), name="keeper")


@keeper.tool_plain
def make_handle() -> Any:
    calls["make_handle"] += 1
    return threading.Lock() if flags.get("handle") == "lock" else _generator()


@flow
def keep(where: str) -> str:
    if where == "checkpoint":
        return keep_step().load()
    return KitaruAgent(keeper).run_sync("keep it").output


@checkpoint
def keep_step() -> str:
    return KitaruAgent(keeper).run_sync("keep it").output


@pytest.mark.parametrize("kind", ["lock", "generator"])
@pytest.mark.parametrize("where", ["flow", "checkpoint"])
def test_an_unstorable_tool_result_is_a_serialization_error_naming_the_tool(kind, where, client):
    flags["handle"] = kind
    handle = keep.run(where)
    with pytest.raises(FlowFailedError, match="make_handle") as info:
        handle.wait()
    assert isinstance(info.value.__cause__, SerializationError)
    assert "tool 'make_handle' returned a value kitaru cannot store" in str(info.value.__cause__)
    execution = client.executions.get(handle.exec_id)
    assert execution.status is ExecutionStatus.FAILED
    if where == "flow":
        first = execution.checkpoints[0]
        assert (first.call_id, first.status) == ("model_request#1", "completed")
        assert first.output.load()["parts"][0]["tool_name"] == "make_handle"


# -- 10. ModelRetry is an outcome, replayed as such ---------------------------------------------


fussy = Agent(FunctionModel(scripted("model", [("picky", {"q": "vague"}), ("picky", {"q": "exact"}),
                                               "found"])), name="fussy")


@fussy.tool_plain
def picky(q: str) -> str:
    calls["picky"] += 1
    if q == "vague":
        raise ModelRetry("be more specific")
    return f"result for {q}"


@flow
def fussy_then_publish() -> str:
    answer = KitaruAgent(fussy).run_sync("find it").output
    return publish(answer).load()


FUSSY_ANSWER = "found ['result for exact', 'retry: be more specific']"


def test_a_model_retry_is_recorded_and_raised_again_on_resume(client):
    flags["publish_fails"] = True
    exec_id = failed_run(fussy_then_publish.run(), "publishing service")
    execution = client.executions.get(exec_id)
    assert [(c.call_id, c.status) for c in execution.checkpoints] == [
        ("model_request#1", "completed"), ("picky_tool#1", "completed"),
        ("model_request#2", "completed"), ("picky_tool#2", "completed"),
        ("model_request#3", "completed"), ("publish#1", "failed"),
    ]

    flags["publish_fails"] = False
    assert client.executions.retry(exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert kitaru.load(exec_id, "output") == f"published: {FUSSY_ANSWER}"
    assert calls == {"publish": 1}

    # A replay from the last request rebuilds its history from the records: the model
    # sees the same retry prompt, though the tool did not run.
    calls.clear()
    handle = fussy_then_publish.replay(exec_id, at="model_request#3")
    assert handle.wait() == f"published: {FUSSY_ANSWER}"
    assert calls == {"model": 1, "publish": 1}


@checkpoint
def fussy_step() -> str:
    return KitaruAgent(fussy).run_sync("find it").output


@flow
def fussy_in_a_step() -> str:
    return fussy_step().load()


def test_a_tool_call_that_raises_inside_a_checkpoint_is_a_child_event_too(client):
    handle = fussy_in_a_step.run()
    assert handle.wait() == FUSSY_ANSWER
    events = _events(client.executions.get(handle.exec_id).checkpoints[0])
    assert events["picky_tool#1"]["error"] == "ModelRetry: be more specific"
    assert set(events["picky_tool#1"]["artifacts"]) == {"args"}
    assert "error" not in events["picky_tool#2"]
    assert set(events["picky_tool#2"]["artifacts"]) == {"args", "result"}


careful = Agent(FunctionModel(scripted("model", [("save_file", {"path": "a.txt"}), "saved"])), name="careful")


@careful.tool_plain
def save_file(path: str) -> str:
    calls["save_file"] += 1
    if calls["save_file"] == 1:
        raise ToolFailed("the disk is full")
    return f"saved {path}"


@flow
def careful_then_publish() -> str:
    answer = KitaruAgent(careful).run_sync("save it").output
    return publish(answer).load()


def test_a_tool_failure_shown_to_the_model_is_recorded_as_the_outcome(client):
    flags["publish_fails"] = True
    exec_id = failed_run(careful_then_publish.run(), "publishing service")
    execution = client.executions.get(exec_id)
    assert [(c.call_id, c.status) for c in execution.checkpoints] == [
        ("model_request#1", "completed"), ("save_file_tool#1", "completed"),
        ("model_request#2", "completed"), ("publish#1", "failed"),
    ]
    request = artifacts_of(execution.checkpoints[2])["prompt"][0]["parts"][0]
    assert (request["content"], request["outcome"]) == ("the disk is full", "failed")

    flags["publish_fails"] = False
    assert client.executions.retry(exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert calls == {"publish": 1}  # the tool did not run again
    assert kitaru.load(exec_id, "output") == "published: saved ['the disk is full']"


cleaner = Agent(FunctionModel(scripted("model", [("delete_file", {"path": "old.txt"}), "cleaned"])),
                name="cleaner", output_type=[str, DeferredToolRequests])


@cleaner.tool
def delete_file(ctx: RunContext[None], path: str) -> str:
    calls["delete_file"] += 1
    if not ctx.tool_call_approved:
        raise ApprovalRequired(metadata={"reason": "deletes a file"})
    return f"deleted {path}"


@flow
def clean_up() -> str:
    agent = KitaruAgent(cleaner)
    asked = agent.run_sync("clean up")
    assert isinstance(asked.output, DeferredToolRequests)
    approved = asked.output.build_results(approve_all=True)
    done = agent.run_sync(message_history=asked.all_messages(), deferred_tool_results=approved)
    return publish(done.output).load()


def test_a_deferred_tool_call_is_an_outcome_and_the_approved_call_a_checkpoint(client):
    flags["publish_fails"] = True
    exec_id = failed_run(clean_up.run(), "publishing service")
    execution = client.executions.get(exec_id)
    assert [(c.call_id, c.status) for c in execution.checkpoints] == [
        ("model_request#1", "completed"), ("delete_file_tool#1", "completed"),
        ("delete_file_tool#2", "completed"), ("model_request#2", "completed"),
        ("publish#1", "failed"),
    ]
    assert execution.checkpoints[2].output.load() == "deleted old.txt"

    flags["publish_fails"] = False
    assert client.executions.retry(exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert calls == {"publish": 1}
    assert kitaru.load(exec_id, "output") == "published: cleaned ['deleted old.txt']"


# -- 11. MCP server tools ------------------------------------------------------------------------

MCP_SERVER = '''
from pathlib import Path
from mcp.server.mcpserver import MCPServer

server = MCPServer("calculator")
HITS = Path({hits!r})


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    HITS.write_text(str(int(HITS.read_text() or 0) + 1) if HITS.exists() else "1")
    return a + b


if __name__ == "__main__":
    server.run()
'''

mcp_agents: dict[str, Agent[Any, Any]] = {}


@flow
def calculate() -> str:
    answer = KitaruAgent(mcp_agents["calculator"]).run_sync("2 + 3?").output
    return publish(answer).load()


@pytest.mark.slow
def test_mcp_server_tool_calls_are_checkpoints_and_replay(tmp_path: Path, client):
    from pydantic_ai.mcp import MCPToolset

    hits = tmp_path / "hits"
    script = tmp_path / "calculator_server.py"
    script.write_text(MCP_SERVER.format(hits=str(hits)))
    mcp_agents["calculator"] = Agent(
        FunctionModel(scripted("model", [("add", {"a": 2, "b": 3}), "sum"])), name="calculator",
        toolsets=[MCPToolset(script, init_timeout=60)],  # a loaded CI machine starts Python slowly
    )
    flags["publish_fails"] = True
    exec_id = failed_run(calculate.run(), "publishing service")
    assert hits.read_text() == "1"
    execution = client.executions.get(exec_id)
    assert [(c.call_id, c.type) for c in execution.checkpoints] == [
        ("model_request#1", "llm_call"), ("add_tool#1", "tool_call"),
        ("model_request#2", "llm_call"), ("publish#1", None),
    ]
    add_call = execution.checkpoints[1]
    assert add_call.metadata["mcp_server"]
    assert artifacts_of(add_call)["args"] == {"a": 2, "b": 3}

    flags["publish_fails"] = False
    execution = client.executions.retry(exec_id, background=False)
    assert execution.status is ExecutionStatus.COMPLETED, execution.failure
    assert kitaru.load(exec_id, "output") == "published: sum [5]"
    assert hits.read_text() == "1"  # the server's tool did not run again
    assert calls == {"publish": 1}


# -- 12. divergence -----------------------------------------------------------------------------


def test_a_different_tool_at_a_recorded_position_is_a_divergence(client):
    original = research.run("agents")
    assert original.wait() == ANSWER
    # Edit the second model response so it calls another tool than the one recorded after it.
    other = dump_response(ModelResponse(parts=[ToolCallPart("fetch", {"url": "x"}, tool_call_id="f")]))
    handle = research.replay(original.exec_id, at="model_request#3",
                             checkpoint_overrides={"model_request#2": {"output": other}})
    with pytest.raises(FlowFailedError, match="diverged") as info:
        handle.wait()
    assert isinstance(info.value.__cause__, KitaruDivergenceError)
    assert "'lookup_tool#2'" in str(info.value) and "'fetch_tool#1'" in str(info.value)


# -- the rest of the agent's surface ------------------------------------------------------------


def test_tool_calls_of_one_response_are_recorded_in_order_and_replay(client):
    flags["model"] = [[("lookup", {"q": "a"}), ("fetch", {"url": "u"}), ("lookup", {"q": "b"})], "answer"]
    handle = research.run("agents")
    assert handle.wait() == "answer ['facts about a', 'page at u', 'facts about b']"
    execution = client.executions.get(handle.exec_id)
    assert [(c.call_id, artifacts_of(c).get("args")) for c in execution.checkpoints] == [
        ("model_request#1", None), ("lookup_tool#1", {"q": "a"}), ("fetch_tool#1", {"url": "u"}),
        ("lookup_tool#2", {"q": "b"}), ("model_request#2", None),
    ]
    calls.clear()
    replayed = research.replay(handle.exec_id, at="model_request#2")
    assert replayed.wait() == "answer ['facts about a', 'page at u', 'facts about b']"
    assert calls == {"model": 1}


class Verdict(BaseModel):
    topic: str
    score: int


def judge_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    calls["judge"] += 1
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"topic": "agents", "score": 7})])


judge = Agent(FunctionModel(judge_model), name="judge", output_type=Verdict)


@flow
def judge_and_publish(topic: str) -> str:
    verdict = KitaruAgent(judge).run_sync(f"Judge {topic}").output
    assert isinstance(verdict, Verdict)
    return publish(verdict.model_dump_json()).load()


def test_structured_output_is_replayed_from_the_recorded_response(client):
    flags["publish_fails"] = True
    exec_id = failed_run(judge_and_publish.run("agents"), "publishing service")
    assert checkpoints_of(client, exec_id) == [("model_request#1", "llm_call"), ("publish#1", None)]
    flags["publish_fails"] = False
    assert client.executions.retry(exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert kitaru.load(exec_id, "output") == 'published: {"topic":"agents","score":7}'
    assert calls == {"publish": 1}


@flow
def research_with_another_model(topic: str, how: str) -> str:
    other = FunctionModel(scripted("other", [("lookup", {"q": "z"}), "other answer"]))
    agent = durable()
    if how == "override":
        with agent.override(model=other):
            return agent.run_sync(f"Research {topic}").output
    return agent.run_sync(f"Research {topic}", model=other).output


@pytest.mark.parametrize("how", ["run-time model", "override"])
def test_another_model_for_the_run_is_recorded_too(how, client):
    handle = research_with_another_model.run("agents", how)
    assert handle.wait() == "other answer ['facts about z']"
    assert calls == {"other": 2, "lookup": 1}
    assert checkpoints_of(client, handle.exec_id) == [*CHECKPOINTS[:2], ("model_request#2", "llm_call")]
    calls.clear()
    assert research_with_another_model.replay(handle.exec_id, at="model_request#2").wait() == (
        "other answer ['facts about z']"
    )
    assert calls == {"other": 1}
    assert researcher.model is not None and calls["model"] == 0


@flow
def research_with_events(topic: str) -> list[str]:
    seen: list[str] = []

    async def handler(ctx: Any, events: AsyncIterator[Any]) -> None:
        async for event in events:
            if isinstance(event, FunctionToolCallEvent):
                seen.append(f"call {event.part.tool_name}")
            elif isinstance(event, FunctionToolResultEvent):
                seen.append(f"result {event.part.content}")
            elif isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                seen.append("text")

    durable().run_sync(f"Research {topic}", event_stream_handler=handler)
    return publish(" | ".join(seen)).load().split(": ", 1)[1].split(" | ")


def test_an_event_stream_handler_sees_each_event_once_across_a_retry(client):
    flags["publish_fails"] = True
    exec_id = failed_run(research_with_events.run("agents"), "publishing service")
    first = client.executions.get(exec_id)
    live = next(a for a in first.checkpoints[-1].artifacts if a.direction == "input").load()
    assert live == "call lookup | result facts about a | call lookup | result facts about b | text"
    # Each tool event was delivered as a durable unit of its own.
    assert [c.call_id for c in first.checkpoints if c.type == "event"] == [
        f"event_stream_handler#{n}" for n in range(1, 5)
    ]
    flags["publish_fails"] = False
    assert client.executions.retry(exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert calls == {"publish": 1}
    # The retry answered every call from the record, and delivered none of their events again.
    assert kitaru.load(exec_id, "output") == [""]


@flow
def research_with_a_renamed_tool(topic: str) -> str:
    tool = Tool(lookup, name=flags.get("tool_name", "lookup"))
    agent = Agent(FunctionModel(research_model), name="renamed", tools=[tool])
    return KitaruAgent(agent).run_sync(f"Research {topic}").output


def test_a_tool_renamed_before_a_resume_is_a_divergence(client):
    flags["lookup_fails_at"] = 2
    exec_id = failed_run(research_with_a_renamed_tool.run("agents"), "search service")
    # The recorded response calls `lookup`, which the agent no longer has: the model is
    # asked again where the record has the tool call.
    flags["tool_name"] = "search"
    with pytest.raises(KitaruDivergenceError) as info:
        client.executions.retry(exec_id, background=False)
    assert "'lookup_tool#1'" in str(info.value) and "'model_request#2'" in str(info.value)
    assert calls == {}
    execution = client.executions.get(exec_id)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.checkpoints[1].output.load() == "facts about a"  # the record is intact


def flaky_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if flags.get("model_fails_at") == calls["model"] + 1:
        del flags["model_fails_at"]
        raise RuntimeError("the provider is overloaded")
    return research_model(messages, info)


@flow
def research_with_a_flaky_model(topic: str) -> str:
    return durable().run_sync(f"Research {topic}", model=FunctionModel(flaky_model)).output


def test_a_failed_model_request_is_the_one_rerun_on_retry(client):
    flags["model_fails_at"] = 2
    exec_id = failed_run(research_with_a_flaky_model.run("agents"), "the provider is overloaded")
    assert client.executions.get(exec_id).failure["call_id"] == "model_request#2"
    execution = client.executions.retry(exec_id, background=False)
    assert execution.status is ExecutionStatus.COMPLETED
    assert calls == {"model": 2, "lookup": 1}  # model_request#2 and #3, lookup_tool#2
    assert [c.call_id for c in execution.checkpoints] == [cid for cid, _ in CHECKPOINTS]


logging_agent = Agent(FunctionModel(scripted("model", [("measure", {"x": 3}), "measured"])), name="meter")


@logging_agent.tool_plain
def measure(x: int) -> int:
    kitaru.log(units="cm", raw=x)  # lands on this tool call's checkpoint
    return x * 2


@flow
def meter() -> str:
    return KitaruAgent(logging_agent).run_sync("measure").output


def test_a_tool_can_log_metadata_on_its_own_checkpoint(client):
    handle = meter.run()
    assert handle.wait() == "measured [6]"
    call = client.executions.get(handle.exec_id).checkpoints[1]
    assert call.call_id == "measure_tool#1"
    assert (call.metadata["units"], call.metadata["raw"]) == ("cm", 3)


# -- overlapping runs in one flow body ------------------------------------------------------------


@flow
def two_runs_at_once() -> list[str]:
    async def both() -> list[str]:
        return list(await asyncio.gather(_via_run(durable(), "one"), _via_run(durable(), "two")))

    return asyncio.run(both())


def test_overlapping_agent_runs_in_one_flow_body_are_refused(client):
    handle = two_runs_at_once.run()
    with pytest.raises(FlowFailedError, match="another KitaruAgent run is already in progress") as info:
        handle.wait()
    assert isinstance(info.value.__cause__, ContextError)


helper_agent = Agent(FunctionModel(scripted("helper_model", ["helped"])), name="helper")
delegating = Agent(FunctionModel(scripted("model", [("ask_helper", {"q": "x"}), "done"])),
                   name="delegating")


@delegating.tool_plain
async def ask_helper(q: str) -> str:
    """Ask the helper agent (a nested run, not a parallel one)."""
    return (await KitaruAgent(helper_agent).run(q)).output


@flow
def delegate() -> str:
    capture = CapturePolicy(tool_capture_overrides={"ask_helper": "none"})
    return KitaruAgent(delegating, capture=capture).run_sync("go").output


def test_a_run_nested_in_an_unrecorded_tool_is_allowed_and_recorded_in_order(client):
    handle = delegate.run()
    assert handle.wait() == "done ['helped []']"
    # The outer request, the helper's request made from inside the tool, the outer answer.
    assert [c.call_id for c in client.executions.get(handle.exec_id).checkpoints] == [
        "model_request#1", "model_request#2", "model_request#3",
    ]
    calls.clear()  # a replay of the last request reuses both earlier ones, the helper's included
    assert delegate.replay(handle.exec_id, at="model_request#3").wait() == "done ['helped []']"
    assert calls == {"model": 1}
