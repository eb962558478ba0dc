"""News Scout: a Pydantic AI agent whose model and tool calls are durable checkpoints.

The agent searches news, investigates articles and fetches pages through three
tools, then writes a briefing, which a checkpoint promotes to a named
`final_report` artifact. The model is a scripted `FunctionModel` (no network, no
key); swap in a real one (`Agent("openai:gpt-5-mini", ...)`) and nothing else
changes. `fetch_url` is flaky: its first call for `FLAKY_URL` times out, so the
8th tool call of the first run fails. Then:

    python examples/news_scout/scout.py            # runs, fails at tool call 8, retries
    kitaru executions retry <id>                    # (the same, from a shell)

The retry reuses model requests 1-8 and tool calls 1-7 from the record and runs
tool call 8 again.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import kitaru
from kitaru.adapters.pydantic_ai import CapturePolicy, KitaruAgent

#: Live calls made in this process, per tool and for the model (the tests count them).
CALLS: Counter[str] = Counter()
FLAKY_URL = "https://news.example/agents-runtime"
# The flaky page times out once per kitaru home: a marker file records that it did.
_FAILED_ONCE = "news_scout_fetch_failed_once"

# The tool calls the scripted model makes, one per model turn, in order.
PLAN: list[tuple[str, dict[str, str]]] = [
    ("search_news", {"query": "durable agents"}),
    ("search_news", {"query": "agent runtimes"}),
    ("investigate", {"url": "https://news.example/durable-agents"}),
    ("investigate", {"url": "https://news.example/checkpoints"}),
    ("investigate", {"url": FLAKY_URL}),
    ("fetch_url", {"url": "https://news.example/durable-agents"}),
    ("fetch_url", {"url": "https://news.example/checkpoints"}),
    ("fetch_url", {"url": FLAKY_URL}),
]


def scripted_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Calls the next tool of PLAN until all have answered, then writes the briefing."""
    CALLS["model"] += 1
    results = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
    if len(results) < len(PLAN):
        tool, args = PLAN[len(results)]
        return ModelResponse(parts=[ToolCallPart(tool, args, tool_call_id=f"call-{len(results) + 1}")])
    pages = [str(r.content) for r in results if r.tool_name == "fetch_url"]
    lines = [f"- {page.splitlines()[0]}" for page in pages]
    return ModelResponse(parts=[TextPart("News briefing: durable agents\n" + "\n".join(lines))])


scout = Agent(
    FunctionModel(scripted_model),  # or "anthropic:claude-sonnet-4-6", "openai:gpt-5-mini", ...
    name="news_scout",
    system_prompt="Search the news on the user's interests, investigate, and brief them.",
)


@scout.tool_plain
def search_news(query: str) -> list[dict[str, str]]:
    """Search news articles."""
    CALLS["search_news"] += 1
    slug = query.replace(" ", "-")
    return [{"title": f"{query}: what changed", "url": f"https://news.example/{slug}"}]


@scout.tool_plain
def investigate(url: str) -> str:
    """Summarise what an article claims."""
    CALLS["investigate"] += 1
    return f"{url} argues that agents need checkpoints"


@scout.tool_plain
def fetch_url(url: str) -> str:
    """Fetch a page's text."""
    CALLS["fetch_url"] += 1
    marker = Path(os.environ.get("KITARU_HOME", Path.home() / ".kitaru")) / _FAILED_ONCE
    if url == FLAKY_URL and not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        raise TimeoutError(f"fetching {url} timed out")
    return f"Page {url.rsplit('/', 1)[-1]}\n(full text)"


scout_agent = KitaruAgent(scout, capture=CapturePolicy(tool_capture="full"))


@kitaru.checkpoint(type="report")
def publish_report(report: str) -> str:
    kitaru.save("final_report", report, type="report")
    return report


@kitaru.flow
def news_scout(interests: str) -> str:
    briefing = scout_agent.run_sync(f"Brief me on: {interests}").output
    return publish_report(briefing).load()


def main() -> None:
    handle = news_scout.run("durable agents")
    try:
        handle.wait(timeout=60)
    except kitaru.KitaruError as exc:
        print(f"first run failed: {exc}".splitlines()[0])
    print(f"live calls so far: {dict(CALLS)}")
    before = CALLS.copy()
    kitaru.KitaruClient().executions.retry(handle.exec_id, background=False)
    print(f"live calls during the retry: {dict(CALLS - before)}")
    print(kitaru.load(handle.exec_id, "final_report"))


if __name__ == "__main__":
    sys.exit(main())
