"""A flow with one long isolated checkpoint, for killing its runner mid-call:

    KITARU_STACK=isolated python recovery_flow.py WORKDIR

`prepare` runs in the runner; `crunch` runs in a worker process. While
WORKDIR/hold exists, `crunch` writes WORKDIR/ready (its pid and execution id
as JSON) and blocks, so a test can kill the runner, the worker, or both. Each
checkpoint body appends its name to WORKDIR/runs.log when it really runs, and
the flow body appends `crunch-called` just before it calls `crunch`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from pydantic import BaseModel

import kitaru
from kitaru import checkpoint, flow


class Tally(BaseModel):
    total: int
    worker_pid: int


def note(workdir: str, what: str) -> None:
    with open(Path(workdir) / "runs.log", "a") as fh:
        fh.write(what + "\n")


@checkpoint
def prepare(workdir: str, size: int) -> list[int]:
    note(workdir, "prepare")
    return list(range(1, size + 1))


@checkpoint(runtime="isolated")
def crunch(workdir: str, numbers: list[int]) -> Tally:
    note(workdir, "crunch")
    hold = Path(workdir) / "hold"
    if hold.exists():
        ready = {"pid": os.getpid(), "exec_id": kitaru.current_execution_id()}
        (Path(workdir) / "ready.tmp").write_text(json.dumps(ready))
        os.replace(Path(workdir) / "ready.tmp", Path(workdir) / "ready")
        while hold.exists():
            time.sleep(0.05)
    return Tally(total=sum(numbers), worker_pid=os.getpid())


@flow
def pipeline(workdir: str, size: int) -> dict:
    numbers = prepare(workdir, size)
    note(workdir, "crunch-called")
    tally = crunch(workdir, numbers)
    return tally.load().model_dump()


if __name__ == "__main__":
    handle = pipeline.run(sys.argv[1], 10)
    print(json.dumps({"exec_id": handle.exec_id, "result": handle.wait()}))
