"""A research report flow, run as a script: `python crash_script.py WORKDIR`.

Three checkpoints; each appends its name to WORKDIR/runs.log when its body
runs. While WORKDIR/hold exists, `summarize` writes WORKDIR/ready and blocks,
so a test can kill the process in the middle of the flow.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pydantic import BaseModel

from kitaru import checkpoint, flow


class Fact(BaseModel):
    text: str
    score: float


def note(workdir: str, what: str) -> None:
    with open(Path(workdir) / "runs.log", "a") as fh:
        fh.write(what + "\n")


def hold_while_told(workdir: str) -> None:
    """Signal readiness, then block as long as the test keeps WORKDIR/hold."""
    hold = Path(workdir) / "hold"
    if hold.exists():
        (Path(workdir) / "ready").write_text("summarize is running")
        while hold.exists():
            time.sleep(0.05)


@checkpoint
def fetch(workdir: str, topic: str) -> list[str]:
    note(workdir, "fetch")
    return [f"{topic} is durable", f"{topic} resumes", f"{topic} records outputs"]


@checkpoint
def rank(workdir: str, facts: list[str]) -> list[Fact]:
    note(workdir, "rank")
    return sorted((Fact(text=f, score=len(f) / 10) for f in facts), key=lambda f: -f.score)


@checkpoint
def summarize(workdir: str, facts: list[Fact]) -> str:
    note(workdir, "summarize")
    hold_while_told(workdir)
    return " | ".join(f"{f.text} ({f.score:.1f})" for f in facts)


@flow
def report(workdir: str, topic: str) -> str:
    facts = fetch(workdir, topic)
    ranked = rank(workdir, facts)
    return summarize(workdir, ranked)


if __name__ == "__main__":
    work = sys.argv[1]
    handle = report.run(work, "kitaru")
    (Path(work) / "exec_id").write_text(handle.exec_id)
    print(handle.wait())
