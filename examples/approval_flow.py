"""A flow that pauses for people: a yes/no approval and a structured edit.

Run it, then answer from another shell (the run suspends after `timeout` seconds):

    python examples/approval_flow.py
    kitaru executions input <id> --wait approve --value true
    kitaru executions input <id> --wait edits --value '{"title": "Shorter", "tags": ["agents"]}'

Each input resumes the execution in the background; `draft` never runs twice.
"""

from __future__ import annotations

from pydantic import BaseModel

from kitaru import checkpoint, flow, wait


class Edits(BaseModel):
    title: str
    tags: list[str] = []


@checkpoint
def draft(topic: str) -> str:
    print(f"drafting a post about {topic}")
    return f"Why {topic} need a runtime"


@checkpoint
def publish(title: str, tags: list[str]) -> str:
    return f"published {title!r} with tags {tags}"


@flow
def publish_post(topic: str, timeout: float = 5) -> str:
    title = draft(topic)
    approved = wait(name="approve", question=f"Publish {title.load()!r}?", schema=bool,
                    timeout=timeout)
    if not approved:
        return "rejected"
    edits = wait(name="edits", question="Final title and tags?", schema=Edits, timeout=timeout)
    return publish(edits.title, edits.tags).load()


if __name__ == "__main__":
    handle = publish_post.run("durable agents")
    print(f"execution {handle.exec_id}")
    try:
        print(handle.wait(timeout=10))
    except Exception as exc:  # still waiting for input: answer it from another shell
        print(f"{exc}\nanswer with: kitaru executions input {handle.exec_id} --wait approve --value true")
