"""A flow the MCP tests drive: a checkpoint that prints, an optional wait, a checkpoint
that saves an artifact.

`brief(topic, ask=True, timeout=0.3)`: with `ask` the `approve` wait (a bool) polls for
`timeout` seconds before the runner suspends; an aborted wait holds the brief.
"""

from __future__ import annotations

from kitaru import checkpoint, flow, save, wait
from kitaru.errors import WaitAbortedError


@checkpoint
def research(topic: str) -> str:
    print(f"researching {topic}")
    return f"notes on {topic}"


@checkpoint
def publish(topic: str, approved: bool) -> str:
    save("summary", {"topic": topic, "approved": approved})
    return "published" if approved else "held"


@flow
def brief(topic: str, ask: bool = True, timeout: float = 0.3) -> dict:
    notes = research(topic)
    try:
        approved = wait(name="approve", question=f"Publish the brief on {topic}?", schema=bool,
                        timeout=timeout) if ask else True
    except WaitAbortedError:  # nobody will answer: hold the brief
        approved = False
    return {"notes": notes.load(), "outcome": publish(topic, approved).load()}
