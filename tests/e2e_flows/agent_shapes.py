"""Agents shaped like Pydantic AI's own examples, run durably and killed mid-tool-call:

    python agent_shapes.py SHAPE WORKDIR        (KITARU_TEST_KILL_AT=tool:n to die there)

Each shape is one function `run_<shape>(wrap)` that runs its agent bare (`wrap=False`) or
under `KitaruAgent` (`wrap=True`, from the `agent_shape` flow) and returns the output and the
run's usage. Every completed model request and tool call appends a line to WORKDIR/runs.log
(so a test counts what ran live), the event stream handler appends each event to
WORKDIR/events.log. With KITARU_TEST_KILL_AT=search:2 the process SIGKILLs itself inside
the 2nd call of `search` it makes, as a power cut would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_ai import Agent, ModelRetry, RunContext
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from kitaru import flow
from kitaru.adapters.pydantic_ai import KitaruAgent, KitaruDurability, hitl_tool

WORKDIR = Path(".")
_started: Counter[str] = Counter()


def note(line: str, log: str = "runs.log") -> None:
    with open(WORKDIR / log, "a") as fh:
        fh.write(line + "\n")


def tool_started(name: str) -> None:
    """Die here (SIGKILL) if this is the call KITARU_TEST_KILL_AT names."""
    _started[name] += 1
    if os.environ.get("KITARU_TEST_KILL_AT") == f"{name}:{_started[name]}":
        os.kill(os.getpid(), signal.SIGKILL)


# -- scripted models (text and tool calls, also streamed) ------------------------------------------


def scripted(name: str, steps: list[Any]) -> FunctionModel:
    """Plays `steps`, one per request: a list of (tool, args) calls them at once; a string is
    the answer, followed by the tool results seen so far."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        note(f"model:{name}")
        turn = sum(isinstance(m, ModelRequest) for m in messages)
        step = steps[min(turn, len(steps)) - 1]
        if isinstance(step, str):
            seen = [p.content for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
            if info.output_tools:  # structured output: answer through the output tool
                return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name,
                                                         {"text": f"{step} {seen}", "turn": turn})])
            return ModelResponse(parts=[TextPart(f"{step} {seen}")])
        return ModelResponse(parts=[ToolCallPart(tool, args, tool_call_id=f"{name}-{turn}-{i}")
                                    for i, (tool, args) in enumerate(step)])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        for i, part in enumerate(respond(messages, info).parts):
            if isinstance(part, TextPart):
                for word in part.content.split(" "):
                    yield word + " "
            else:
                yield {i: DeltaToolCall(name=part.tool_name, json_args=json.dumps(part.args),
                                        tool_call_id=part.tool_call_id)}

    return FunctionModel(respond, stream_function=stream, model_name=f"scripted-{name}")


async def log_events(ctx: RunContext[Any], events: AsyncIterator[Any]) -> None:
    async for event in events:
        if isinstance(event, FunctionToolCallEvent):
            note(f"call {event.part.tool_name} {json.dumps(event.part.args)}", "events.log")
        elif isinstance(event, FunctionToolResultEvent):
            note(f"result {event.part.content}", "events.log")
        elif isinstance(event, PartStartEvent):
            note(f"start {type(event.part).__name__}", "events.log")
        elif isinstance(event, PartDeltaEvent):
            note(f"delta {getattr(event.delta, 'content_delta', None)!r}", "events.log")
        else:
            note(type(event).__name__, "events.log")


def usage_of(result: Any) -> dict[str, int]:
    usage = result.usage
    return {"requests": usage.requests, "tool_calls": usage.tool_calls,
            "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}


def durable(agent: Agent[Any, Any], wrap: bool) -> Any:
    return KitaruAgent(agent) if wrap else agent


# -- 1. deps and several tools (the bank-support / weather examples) -------------------------------


@dataclass
class Deps:
    city_prefix: str


weather = Agent(scripted("weather", [[("geocode", {"city": "Paris"})], [("forecast", {"lat": 48})],
                                     [("forecast", {"lat": 49}), ("geocode", {"city": "Lyon"})],
                                     "report"]),
                deps_type=Deps, name="weather")


@weather.tool
async def geocode(ctx: RunContext[Deps], city: str) -> str:
    tool_started("geocode")
    note("tool:geocode")
    return f"{ctx.deps.city_prefix}{city}@48"


@weather.tool
async def forecast(ctx: RunContext[Deps], lat: int) -> str:
    tool_started("forecast")
    await asyncio.sleep(0.01)
    note("tool:forecast")
    return f"sunny at {lat} for {ctx.deps.city_prefix}"


def run_deps_tools(wrap: bool) -> dict[str, Any]:
    result = durable(weather, wrap).run_sync("Weather in Paris?", deps=Deps("city:"))
    return {"output": result.output, "usage": usage_of(result)}


# -- 2. delegation with shared usage (the flight-booking example) ---------------------------------

searcher = Agent(scripted("searcher", ["flight AK456"]), name="searcher")
booker = Agent(scripted("booker", [[("find_flight", {"route": "SFO-ANC"})], [("book", {"flight": "AK456"})],
                                   "booked"]), name="booker")


@booker.tool
async def find_flight(ctx: RunContext[None], route: str) -> str:
    tool_started("find_flight")
    helper = KitaruAgent(searcher) if FLAGS.get("wrap") else searcher
    found = (await helper.run(f"Find {route}", usage=ctx.usage)).output
    note("tool:find_flight")
    return found


@booker.tool_plain
def book(flight: str) -> str:
    tool_started("book")
    note("tool:book")
    return f"seat 1A on {flight}"


FLAGS: dict[str, Any] = {}


def run_delegation(wrap: bool) -> dict[str, Any]:
    FLAGS["wrap"] = wrap
    result = durable(booker, wrap).run_sync("Book SFO-ANC")
    return {"output": result.output, "usage": usage_of(result)}


# -- 3. structured output with an output validator that asks for a retry -----------------------------


class Answer(BaseModel):
    text: str
    turn: int


sql = Agent(scripted("sql", [[("schema", {})], "SELECT 1", "SELECT 2"]), output_type=Answer, name="sql")


@sql.tool_plain
def schema() -> str:
    tool_started("schema")
    note("tool:schema")
    return "table t(a int)"


@sql.output_validator
def only_after_a_retry(output: Answer) -> Answer:
    if output.turn < 3:
        raise ModelRetry("try again")
    return output


def run_output_validator(wrap: bool) -> dict[str, Any]:
    result = durable(sql, wrap).run_sync("query")
    return {"output": result.output.model_dump(), "usage": usage_of(result)}


# -- 4. streaming: run_stream, with tool calls before the streamed answer ------------------------------

writer = Agent(scripted("writer", [[("outline", {"topic": "rivers"})], [("outline", {"topic": "lakes"})],
                                   "a poem about water"]), name="writer")


@writer.tool_plain
def outline(topic: str) -> str:
    tool_started("outline")
    note("tool:outline")
    return f"outline of {topic}"


def run_streaming(wrap: bool) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with durable(writer, wrap).run_stream("Write a poem") as result:
            deltas = [delta async for delta in result.stream_text(delta=True)]
        return {"output": "".join(deltas), "usage": usage_of(result)}

    return asyncio.run(go())


# -- 5. iter: driving the run node by node -----------------------------------------------------------

stepper = Agent(scripted("stepper", [[("measure", {"x": 1})], [("measure", {"x": 2})], "measured"]),
                name="stepper")


@stepper.tool_plain
def measure(x: int) -> int:
    tool_started("measure")
    note("tool:measure")
    return x * 10


def run_iter(wrap: bool) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        nodes: list[str] = []
        async with durable(stepper, wrap).iter("measure twice") as run:
            async for node in run:
                nodes.append(type(node).__name__)
        assert run.result is not None
        return {"output": f"{run.result.output} via {len(nodes)} nodes", "usage": usage_of(run.result)}

    return asyncio.run(go())


# -- 6. an event stream handler --------------------------------------------------------------------

narrator = Agent(scripted("narrator", [[("lookup", {"q": "a"}), ("lookup", {"q": "b"})],
                                       [("lookup", {"q": "c"})], "narrated"]), name="narrator")


@narrator.tool_plain
async def lookup(q: str) -> str:
    tool_started("lookup")
    note("tool:lookup")
    return f"facts about {q}"


def run_event_handler(wrap: bool) -> dict[str, Any]:
    result = durable(narrator, wrap).run_sync("Narrate", event_stream_handler=log_events)
    return {"output": result.output, "usage": usage_of(result)}


# -- 7. human in the loop ---------------------------------------------------------------------------


@hitl_tool(question="Send this reply?", schema=bool, timeout=0)
def approve(reply: str) -> bool:
    """Ask a human to approve the reply."""


def plain_approve(reply: str) -> bool:
    """The bare agent's stand-in for the human: always approves."""
    return True


def support_agent(wrap: bool) -> Agent[Any, Any]:
    agent = Agent(scripted("support", [[("ticket", {"id": 1})], [("approve", {"reply": "fixed"})],
                                       [("ticket", {"id": 2})], "resolved"]),
                  name="support", tools=[approve] if wrap else [])
    if not wrap:
        agent.tool_plain(name="approve")(plain_approve)

    @agent.tool_plain
    def ticket(id: int) -> str:
        tool_started("ticket")
        note("tool:ticket")
        return f"ticket {id} open"

    return agent


def run_hitl(wrap: bool) -> dict[str, Any]:
    result = durable(support_agent(wrap), wrap).run_sync("Handle tickets")
    return {"output": result.output, "usage": usage_of(result)}


# -- 8. the same agent made durable by a capability (Pydantic AI's durable_exec shape) ------------


def capable_agent(wrap: bool) -> Agent[Any, Any]:
    capabilities = [KitaruDurability(event_stream_handler=log_events)] if wrap else []
    agent = Agent(scripted("capable", [[("fact", {"n": 1}), ("fact", {"n": 2})], [("fact", {"n": 3})],
                                       "noted"]), name="capable", capabilities=capabilities)

    @agent.tool_plain
    async def fact(n: int) -> str:
        tool_started("fact")
        note("tool:fact")
        return f"fact {n}"

    return agent


def run_capability(wrap: bool) -> dict[str, Any]:
    agent = capable_agent(wrap)
    # The bare agent gets the handler per run; the durable one has it on its capability.
    handler = None if wrap else log_events
    result = agent.run_sync("Note facts", event_stream_handler=handler)
    return {"output": result.output, "usage": usage_of(result)}


SHAPES = {
    "deps_tools": run_deps_tools, "delegation": run_delegation, "output_validator": run_output_validator,
    "streaming": run_streaming, "iter": run_iter, "event_handler": run_event_handler, "hitl": run_hitl,
    "capability": run_capability,
}


@flow
def agent_shape(shape: str, workdir: str) -> dict[str, Any]:
    global WORKDIR
    WORKDIR = Path(workdir)
    return SHAPES[shape](wrap=True)


if __name__ == "__main__":
    shape, work = sys.argv[1], sys.argv[2]
    WORKDIR = Path(work)
    handle = agent_shape.run(shape, work)
    print(f"started {handle.exec_id}", flush=True)
    # The flow body runs in this process; it leaves when the flow ends, suspends or is killed.
