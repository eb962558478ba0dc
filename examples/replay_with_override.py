"""Replay an execution from a checkpoint, with a corrected upstream output.

The first run's `research` output is wrong; the replay keeps `plan` from the
record, uses the override for `research`, and runs `write` live.
"""

from __future__ import annotations

from kitaru import checkpoint, flow


@checkpoint
def plan(topic: str) -> list[str]:
    print("planning (runs once: the replay reuses it)")
    return [f"{topic}: background", f"{topic}: open problems"]


@checkpoint
def research(outline: list[str]) -> str:
    return "notes with a factual error"


@checkpoint
def write(outline: list[str], notes: str) -> str:
    return f"{len(outline)} sections based on: {notes}"


@flow
def report(topic: str) -> str:
    outline = plan(topic)
    notes = research(outline)
    return write(outline, notes)


if __name__ == "__main__":
    first = report.run("durable agents")
    print("original:", first.wait())
    replayed = report.replay(
        first.exec_id,
        at="research",
        checkpoint_overrides={"research": {"output": "corrected notes"}},
    )
    print("replay:  ", replayed.wait())
    print(f"replay {replayed.exec_id} is linked to {first.exec_id}")
