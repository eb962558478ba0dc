"""A flow the MCP tests drive: a checkpoint that prints, an optional wait, a checkpoint
that saves an artifact.

`brief(topic, ask=True, timeout=0.3)`: with `ask` the `approve` wait (a bool) polls for
`timeout` seconds before the runner suspends.
"""

from __future__ import annotations

from kitaru import checkpoint, flow, save, wait


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
    approved = wait(name="approve", question=f"Publish the brief on {topic}?", schema=bool,
                    timeout=timeout) if ask else True
    return {"notes": notes.load(), "outcome": publish(topic, approved).load()}
