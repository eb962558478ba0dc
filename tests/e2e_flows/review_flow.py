"""A publishing flow that asks a human three times, run as a script:

    python review_flow.py WORKDIR TIMEOUT

`approve` takes a bool, `edits` an `Edits` model, and `go` is a plain continue
gate (schema None). Each wait polls for TIMEOUT seconds before the process
leaves and the execution is `waiting`. Checkpoints append their names to
WORKDIR/runs.log.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel

from kitaru import checkpoint, flow, wait


class Edits(BaseModel):
    title: str
    tags: list[str] = []


def note(workdir: str, what: str) -> None:
    with open(Path(workdir) / "runs.log", "a") as fh:
        fh.write(what + "\n")


@checkpoint
def write_draft(workdir: str, topic: str) -> str:
    note(workdir, "write_draft")
    return f"Why {topic} matters"


@checkpoint
def apply_edits(workdir: str, draft: str, edits: Edits) -> str:
    note(workdir, "apply_edits")
    tags = " ".join(f"#{t}" for t in edits.tags)
    return f"{edits.title}: {draft} {tags}".strip()


@checkpoint
def publish(workdir: str, post: str) -> str:
    note(workdir, "publish")
    return f"published: {post}"


@flow
def review(workdir: str, topic: str, timeout: float) -> str:
    draft = write_draft(workdir, topic)
    approved = wait(name="approve", question=f"Publish {draft.load()!r}?", schema=bool,
                    timeout=timeout)
    if not approved:
        return "rejected"
    edits = wait(name="edits", question="Title and tags?", schema=Edits, timeout=timeout)
    post = apply_edits(workdir, draft, edits)
    wait(name="go", question="Go live now?", timeout=timeout)
    return publish(workdir, post)


if __name__ == "__main__":
    work, timeout = sys.argv[1], float(sys.argv[2])
    handle = review.run(work, "durable agents", timeout)
    (Path(work) / "exec_id").write_text(handle.exec_id)
    print(f"started {handle.exec_id}; answer its waits with `kitaru executions input`")
    # The flow body runs in this process; it leaves when the flow ends or suspends.
