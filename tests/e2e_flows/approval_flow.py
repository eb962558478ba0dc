"""An approval flow: a checkpoint, a wait, an isolated checkpoint. Runs unchanged on any stack:

    KITARU_STACK=k8s python approval_flow.py WORKDIR [WAIT_SECONDS]

`flow.run()` returns at once on an orchestrator that runs the body elsewhere; the script
writes the execution id to WORKDIR/exec_id. Checkpoints append their names to WORKDIR/runs.log.
The wait polls for WAIT_SECONDS (default 0.2) before it suspends the execution.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kitaru import checkpoint, flow, wait


def note(workdir: str, what: str) -> None:
    with open(Path(workdir) / "runs.log", "a") as fh:
        fh.write(what + "\n")


@checkpoint
def draft(workdir: str, topic: str) -> str:
    note(workdir, "draft")
    return f"Why {topic} matters"


@checkpoint(runtime="isolated")
def finalize(workdir: str, text: str) -> dict:
    note(workdir, "finalize")
    print(f"finalizing {text!r}")
    return {"text": text.upper(), "pid": os.getpid()}


@flow
def approval(workdir: str, topic: str, wait_seconds: float = 0.2) -> dict:
    text = draft(workdir, topic)
    approved = wait(name="approve", question=f"Publish {text.load()!r}?", schema=bool,
                    timeout=wait_seconds)
    if not approved:
        return {"text": None, "runner_pid": os.getpid()}
    final = finalize(workdir, text).load()
    return {**final, "runner_pid": os.getpid()}


if __name__ == "__main__":
    handle = approval.run(sys.argv[1], "durable agents", float(sys.argv[2]) if len(sys.argv) > 2 else 0.2)
    (Path(sys.argv[1]) / "exec_id").write_text(handle.exec_id)
    print(handle.exec_id)
