"""`KitaruAgent`'s Kitaru 0.21 options, concurrent tool calls, usage across a retry, live streaming.

Models are `FunctionModel` scripts; `calls` counts what ran live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, Span, Tracer, TracerProvider, use_span
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability, Instrumentation
from pydantic_ai.exceptions import UsageLimitExceeded
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.usage import UsageLimits

import kitaru
from kitaru import checkpoint, flow
from kitaru.adapters.pydantic_ai import CapturePolicy, KitaruAgent
from kitaru.client import ExecutionStatus
from kitaru.errors import ConfigError, FlowFailedError

calls: Counter[str] = Counter()
flags: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    flags.clear()


def returns(messages: list[ModelMessage]) -> list[Any]:
    return [p.content for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]


def script(name: str, steps: list[Any]) -> FunctionModel:
    """A model playing `steps`: a list of (tool, args) calls those tools at once; a string answers."""

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls[name] += 1
        step = steps[sum(isinstance(m, ModelRequest) for m in messages) - 1]
        if isinstance(step, str):
            return ModelResponse(parts=[TextPart(f"{step} {returns(messages)}")])
        return ModelResponse(parts=[ToolCallPart(tool, args, tool_call_id=f"{name}-{i}-{len(messages)}")
                                    for i, (tool, args) in enumerate(step)])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        for i, part in enumerate(model(messages, info).parts):
            if isinstance(part, TextPart):
                yield part.content
            else:
                yield {i: DeltaToolCall(name=part.tool_name, json_args=json.dumps(part.args),
                                        tool_call_id=part.tool_call_id)}

    return FunctionModel(model, stream_function=stream)


def failed(handle: kitaru.FlowHandle, match: str) -> str:
    with pytest.raises(FlowFailedError, match=match):
        handle.wait()
    calls.clear()
    return handle.exec_id


@checkpoint
def publish(text: Any) -> Any:
    calls["publish"] += 1
    if flags.pop("publish_fails", False):
        raise RuntimeError("publishing service is down")
    return text


# -- options --------------------------------------------------------------------------------------

basic = Agent(script("model", [[("lookup", {"q": "a"})], "answer"]), name="basic")


@basic.tool_plain
async def lookup(q: str) -> str:
    calls["lookup"] += 1
    if flags.get("lookup_sleeps_once") and calls["lookup"] == 1:
        await asyncio.sleep(5)
    if flags.get("lookup_fails_once") and calls["lookup"] == 1:
        raise RuntimeError("search service is down")
    return f"facts about {q}"


AGENTS: dict[str, KitaruAgent] = {}


@flow
def ask(key: str, prompt: str = "go") -> str:
    return AGENTS[key].run_sync(prompt).output


def ids(client: kitaru.KitaruClient, exec_id: str) -> list[tuple[str, str | None]]:
    return [(c.call_id, c.type) for c in client.executions.get(exec_id).checkpoints]


@pytest.mark.parametrize("how", [{"checkpoint_strategy": "turn"}, {"granular_checkpoints": False},
                                 {"checkpoint_strategy": "turn", "granular_checkpoints": False}])
def test_turn_strategy_and_its_older_name_record_one_checkpoint(how, client):
    AGENTS["a"] = KitaruAgent(basic, turn_checkpoint_config={"type": "turn"}, **how)
    handle = ask.run("a")
    assert handle.wait() == "answer ['facts about a']"
    assert ids(client, handle.exec_id) == [("basic_run#1", "turn")]
    assert not AGENTS["a"].granular_checkpoints


def test_calls_strategy_is_the_default(client):
    AGENTS["a"] = KitaruAgent(basic, checkpoint_strategy="calls")
    handle = ask.run("a")
    assert handle.wait() == "answer ['facts about a']"
    assert ids(client, handle.exec_id) == [("model_request#1", "llm_call"), ("lookup_tool#1", "tool_call"),
                                           ("model_request#2", "llm_call")]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"checkpoint_strategy": "steps"}, "expected 'calls'"),
    ({"checkpoint_strategy": "calls", "granular_checkpoints": False}, "disagree"),
    ({"tool_checkpoint_config": {"retry": 2}}, "unknown option 'retry'"),
    ({"tool_checkpoint_config": {"retries": "2"}}, "has the wrong type"),
    ({"model_checkpoint_config": {"runtime": "isolated"}}, "runtime='isolated' is not supported"),
    ({"tool_checkpoint_config_by_name": {"lookup": True}}, "expects a dict of checkpoint options"),
])
def test_bad_options_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        KitaruAgent(basic, **kwargs)


def test_capture_policy_takes_kitaru_0_21_names_and_values():
    policy = CapturePolicy(tool_capture="metadata_only", tool_capture_overrides={"secret": "off"},
                           save_responses=False, save_stream_transcripts=False, correlate_otel_spans=False)
    assert policy.tool_capture == "metadata"
    assert policy.for_tool("secret") == "none" and policy.for_tool("lookup") == "metadata"


def test_per_tool_retries_rerun_a_failed_tool_within_the_call(client):
    flags["lookup_fails_once"] = True
    AGENTS["a"] = KitaruAgent(basic, tool_checkpoint_config_by_name={
        "lookup": {"retries": 1, "retry_delay": 0}})
    handle = ask.run("a")
    assert handle.wait() == "answer ['facts about a']"
    assert calls == {"model": 2, "lookup": 2}
    lookup_call = client.executions.get(handle.exec_id).checkpoints[1]
    assert (lookup_call.call_id, lookup_call.attempts) == ("lookup_tool#1", 2)


def test_a_tool_timeout_fails_the_call_and_a_retry_runs_it_again(client):
    flags["lookup_sleeps_once"] = True
    AGENTS["a"] = KitaruAgent(basic, tool_checkpoint_config={"timeout": 0.2, "retries": 1, "retry_delay": 0})
    handle = ask.run("a")
    assert handle.wait() == "answer ['facts about a']"
    assert client.executions.get(handle.exec_id).checkpoints[1].attempts == 2

    calls.clear()
    flags["lookup_sleeps_once"] = True
    AGENTS["a"] = KitaruAgent(basic, tool_checkpoint_config={"timeout": 0.2})
    exec_id = failed(ask.run("a"), "TimeoutError")
    assert client.executions.get(exec_id).failure["call_id"] == "lookup_tool#1"


def test_a_tool_configured_false_is_no_checkpoint_and_runs_again(client):
    AGENTS["a"] = KitaruAgent(basic, tool_checkpoint_config_by_name={"lookup": False})
    handle = ask.run("a")
    assert handle.wait() == "answer ['facts about a']"
    assert ids(client, handle.exec_id) == [("model_request#1", "llm_call"), ("model_request#2", "llm_call")]
    calls.clear()
    assert ask.replay(handle.exec_id, at="model_request#2").wait() == "answer ['facts about a']"
    assert calls == {"lookup": 1, "model": 1}


def echo_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    prompts = [p.content for m in messages if isinstance(m, ModelRequest) for p in m.parts
               if getattr(p, "part_kind", "") == "user-prompt"]
    return ModelResponse(parts=[TextPart(" + ".join(prompts))])


chatty = Agent(FunctionModel(echo_model), name="chatty")


@flow
def conversation() -> list[str]:
    agent = KitaruAgent(chatty, persist_message_history=True)
    first = agent.run_sync("Hi, I am Alice.").output
    second = agent.run_sync("What's my name?").output
    return publish([first, second]).load()


def test_persist_message_history_continues_the_conversation_also_after_a_retry(client):
    expected = ["Hi, I am Alice.", "Hi, I am Alice. + What's my name?"]
    flags["publish_fails"] = True
    exec_id = failed(conversation.run(), "publishing service")
    assert client.executions.retry(exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert kitaru.load(exec_id, "output") == expected
    outside = KitaruAgent(chatty, persist_message_history=True)
    outside.run_sync("Hi, I am Alice.")
    assert outside.run_sync("What's my name?").output == expected[1]
    assert outside.run_sync("Again", message_history=[]).output == "Again"


SEEN: list[str] = []


async def remember_events(ctx: Any, events: AsyncIterator[Any]) -> None:
    async for event in events:
        SEEN.append(type(event).__name__)


def test_the_agents_event_stream_handler_option_is_used_when_a_run_passes_none(client):
    SEEN.clear()
    AGENTS["a"] = KitaruAgent(basic, event_stream_handler=remember_events)
    assert ask.run("a").wait() == "answer ['facts about a']"
    assert SEEN.count("FunctionToolCallEvent") == 1 and SEEN.count("FunctionToolResultEvent") == 1


@checkpoint
def basic_step(capture: dict[str, Any]) -> str:
    return KitaruAgent(basic, capture=CapturePolicy(**capture)).run_sync("go").output


@flow
def basic_in_a_step(capture: dict[str, Any]) -> str:
    return basic_step(capture).load()


@pytest.mark.parametrize(("capture", "stored"), [
    ({}, {"model_request#1.prompt", "model_request#1.response", "lookup_tool#1.args",
          "lookup_tool#1.result"}),
    ({"save_responses": False}, {"model_request#1.prompt", "lookup_tool#1.args", "lookup_tool#1.result"}),
    ({"emit_child_events": False}, set()),
])
def test_child_event_capture(capture, stored, client):
    handle = basic_in_a_step.run(capture)
    assert handle.wait() == "answer ['facts about a']"
    step = client.executions.get(handle.exec_id).checkpoints[0]
    assert {a.name for a in step.artifacts if a.name.split(".")[0].endswith("#1")} == stored


# -- tool calls of one response run concurrently, each with its own recorded result -------------------

started: dict[str, asyncio.Event] = {}
parallel = Agent(script("model", [[("slow", {"n": 1}), ("fast", {"n": 2})], "both"]),
                 name="parallel")


@parallel.tool_plain
async def slow(n: int) -> str:
    calls["slow"] += 1
    # Finishes only after `fast` has started and finished: the two overlap, `fast` ends first.
    await asyncio.wait_for(started.setdefault("fast", asyncio.Event()).wait(), 5)
    return f"slow {n}"


@parallel.tool_plain
async def fast(n: int) -> str:
    calls["fast"] += 1
    started.setdefault("fast", asyncio.Event()).set()
    return f"fast {n}"


@flow
def both() -> str:
    started.clear()
    return publish(KitaruAgent(parallel).run_sync("go").output).load()


def test_tool_calls_of_one_response_run_concurrently_and_replay_their_own_results(client):
    flags["publish_fails"] = True
    exec_id = failed(both.run(), "publishing service")  # `slow` would time out if run alone first
    execution = client.executions.get(exec_id)
    by_id = {c.call_id: c for c in execution.checkpoints}
    assert [c.call_id for c in execution.checkpoints] == [
        "model_request#1", "slow_tool#1", "fast_tool#1", "model_request#2", "publish#1"]
    assert by_id["slow_tool#1"].output.load() == "slow 1"
    assert by_id["fast_tool#1"].output.load() == "fast 2"
    assert by_id["slow_tool#1"].seq < by_id["fast_tool#1"].seq  # identity in the response's order
    assert client.executions.retry(exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert kitaru.load(exec_id, "output") == "both ['slow 1', 'fast 2']"
    assert calls == {"publish": 1}


# -- usage a tool adds (delegation) survives a retry ---------------------------------------------------

helper = Agent(script("helper", ["helped"]), name="helper")
delegator = Agent(script("model", [[("delegate", {"q": "x"})], "done"]), name="delegator")


@delegator.tool
async def delegate(ctx: RunContext[None], q: str) -> str:
    return (await helper.run(q, usage=ctx.usage)).output


@flow
def delegation() -> dict[str, int]:
    result = KitaruAgent(delegator).run_sync("go")
    usage = result.usage
    return publish({"requests": usage.requests, "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens, "tool_calls": usage.tool_calls}).load()


def test_usage_added_by_a_delegating_tool_is_restored_on_retry(client):
    plain = asyncio.run(delegator.run("go")).usage
    expected = {"requests": plain.requests, "input_tokens": plain.input_tokens,
                "output_tokens": plain.output_tokens, "tool_calls": plain.tool_calls}
    assert expected["requests"] == 3
    flags["publish_fails"] = True
    exec_id = failed(delegation.run(), "publishing service")
    first = client.executions.get(exec_id).checkpoints[-1]
    assert next(a for a in first.artifacts if a.direction == "input").load() == expected
    assert client.executions.retry(exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert calls == {"publish": 1}
    assert kitaru.load(exec_id, "output") == expected


# -- run_stream streams live on the first run and replays the recorded text -----------------------------

async def live_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    calls["stream"] += 1
    yield "Hello, "
    # The rest comes only once the consumer has seen the first delta: a stream drained before it
    # reaches the consumer would wait here until the timeout.
    try:
        await asyncio.wait_for(flags["first_delta"].wait(), 5)
        yield "world"
    except TimeoutError:
        yield "(not live)"


streamer = Agent(FunctionModel(stream_function=live_stream), name="streamer")


@flow
def stream_it() -> list[str]:
    async def go() -> list[str]:
        flags["first_delta"] = asyncio.Event()
        deltas: list[str] = []
        async with KitaruAgent(streamer).run_stream("hi") as result:
            async for delta in result.stream_text(delta=True):
                deltas.append(delta)
                flags["first_delta"].set()
        return deltas

    deltas = asyncio.run(go())
    return publish(deltas).load()


def test_run_stream_in_a_flow_streams_live_then_replays_the_recorded_text(client):
    flags["publish_fails"] = True
    exec_id = failed(stream_it.run(), "publishing service")
    first = client.executions.get(exec_id)
    assert [c.call_id for c in first.checkpoints] == ["model_request#1", "publish#1"]
    assert next(a for a in first.checkpoints[-1].artifacts if a.direction == "input").load() == [
        "Hello, ", "world"]
    assert client.executions.retry(exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert calls == {"publish": 1}  # the request came from the record
    assert "".join(kitaru.load(exec_id, "output")) == "Hello, world"


# -- telemetry: only live work creates spans ---------------------------------------------------------


class _Span(NonRecordingSpan):
    def __init__(self, name: str, ended: list[str]) -> None:
        super().__init__(INVALID_SPAN_CONTEXT)
        self.name, self._ended = name, ended

    def is_recording(self) -> bool:
        return True

    def update_name(self, name: str) -> None:
        self.name = name

    def end(self, end_time: int | None = None) -> None:
        self._ended.append(self.name)


class _Tracer(Tracer):
    """Records the names of the spans that were ended (an exporter sees only those)."""

    def __init__(self, ended: list[str]) -> None:
        self.ended = ended

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> Span:
        return _Span(name, self.ended)

    @contextlib.contextmanager
    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Iterator[Span]:
        with use_span(self.start_span(name), end_on_exit=True) as span:
            yield span


class _Provider(TracerProvider):
    def __init__(self) -> None:
        self.ended: list[str] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return _Tracer(self.ended)


SPANS = _Provider()
traced = Agent(script("model", [[("lookup", {"q": "a"})], "answer"]), name="traced",
               capabilities=[Instrumentation(settings=InstrumentationSettings(tracer_provider=SPANS))])
traced.tool_plain(lookup)


@flow
def traced_flow() -> str:
    return publish(KitaruAgent(traced).run_sync("go").output).load()


def test_recorded_calls_emit_no_spans_on_retry(client):
    SPANS.ended.clear()
    flags["publish_fails"] = True
    exec_id = failed(traced_flow.run(), "publishing service")
    first = list(SPANS.ended)
    assert any(name.startswith("chat") for name in first) and any("lookup" in name for name in first)
    SPANS.ended.clear()
    assert client.executions.retry(exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert calls == {"publish": 1}
    assert SPANS.ended == []  # every model request and tool call came from the record


@dataclass
class _HoldBack(AbstractCapability[Any]):
    """Holds one tool back before it reaches kitaru's wrapper: the tools of a response then
    start in another order than the model asked for them."""

    async def wrap_tool_execute(self, ctx: Any, *, call: Any, tool_def: Any, args: Any, handler: Any) -> Any:
        if call.tool_name == flags.get("hold_back"):
            await asyncio.sleep(0.05)
        return await handler(args)


racing = Agent(script("model", [[("first", {}), ("second", {})], "raced"]), name="racing",
               capabilities=[_HoldBack()])


@racing.tool_plain
async def first() -> str:
    calls["first"] += 1
    return "one"


@racing.tool_plain
async def second() -> str:
    calls["second"] += 1
    return "two"


@flow
def race() -> str:
    return publish(KitaruAgent(racing).run_sync("go").output).load()


def test_parallel_tool_identity_follows_the_response_not_the_start_order(client):
    flags["hold_back"] = "first"  # `second` reaches kitaru first
    flags["publish_fails"] = True
    exec_id = failed(race.run(), "publishing service")
    tools = [c for c in client.executions.get(exec_id).checkpoints if c.type == "tool_call"]
    assert [(c.call_id, c.output.load()) for c in sorted(tools, key=lambda c: c.seq)] == [
        ("first_tool#1", "one"), ("second_tool#1", "two")]
    flags["hold_back"] = "second"  # the other way round on the retry: the same identities
    assert client.executions.retry(exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert calls == {"publish": 1}
    assert kitaru.load(exec_id, "output") == "raced ['one', 'two']"


boomer = Agent(script("model", [[("delegate", {"q": "x"})], [("boom", {})], "done"]), name="boomer")
boomer.tool(delegate)


@boomer.tool_plain
def boom() -> str:
    calls["boom"] += 1
    if flags.pop("boom_fails", False):
        raise RuntimeError("boom")
    return "ok"


@flow
def limited() -> str:
    return KitaruAgent(boomer).run_sync("go", usage_limits=UsageLimits(request_limit=3)).output


def test_usage_limits_hold_across_a_retry_as_in_one_run(client):
    # In one run: request 1, the helper's request (delegated with usage=ctx.usage), request 3,
    # and request 4 would exceed the limit.
    with pytest.raises(UsageLimitExceeded):
        asyncio.run(boomer.run("go", usage_limits=UsageLimits(request_limit=3)))
    flags["boom_fails"] = True
    exec_id = failed(limited.run(), "boom")
    execution = client.executions.retry(exec_id, background=False)
    # Requests 1-3 came from the record with their usage (the helper's included): the limit
    # stops the retry where it stops the uninterrupted run.
    assert execution.status is ExecutionStatus.FAILED
    assert "UsageLimitExceeded" in str(execution.failure)
    assert calls == {"boom": 1}
