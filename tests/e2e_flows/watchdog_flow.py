"""A flow for the runner watchdog and cancel tests, run as a script:

    python watchdog_flow.py WORKDIR [gate|direct]

`gather` runs, then (with `gate`, the default) the `go` wait suspends the run at once:
the script's process leaves and the execution is `waiting` until an input launches a
background runner. With `direct`, `crunch` runs in the script's own process. Files steer
the runs:

- `$WATCHDOG_HOLD_IMPORT` (an environment variable naming a file): a launched runner
  importing this module writes that file's name plus `.pid` (its pid) and blocks while
  the file exists, i.e. before it takes the execution;
- WORKDIR/hold: `crunch` writes WORKDIR/ready (its pid) and blocks while it exists;
- WORKDIR/sleep: `crunch` prints a line, then sleeps that many seconds.

Each checkpoint body appends its name to WORKDIR/runs.log when it really runs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from kitaru import checkpoint, flow, wait

_HOLD_IMPORT = os.environ.get("WATCHDOG_HOLD_IMPORT")
if _HOLD_IMPORT and os.environ.get("KITARU_LAUNCH_ID"):
    Path(_HOLD_IMPORT + ".pid").write_text(str(os.getpid()))
    while Path(_HOLD_IMPORT).exists():
        time.sleep(0.05)


def note(workdir: str, what: str) -> None:
    with open(Path(workdir) / "runs.log", "a") as fh:
        fh.write(what + "\n")


@checkpoint
def gather(workdir: str) -> list[int]:
    note(workdir, "gather")
    return [1, 2, 3, 4]


@checkpoint
def crunch(workdir: str, numbers: list[int]) -> int:
    note(workdir, "crunch")
    work = Path(workdir)
    (work / "ready.tmp").write_text(json.dumps({"pid": os.getpid()}))
    os.replace(work / "ready.tmp", work / "ready")
    while (work / "hold").exists():
        time.sleep(0.05)
    if (work / "sleep").exists():
        seconds = float((work / "sleep").read_text())
        print(f"crunching for {seconds:.0f} s", flush=True)
        time.sleep(seconds)
    return sum(numbers)


@flow
def pipeline(workdir: str, gate: bool) -> int:
    numbers = gather(workdir)
    if gate:
        wait(name="go", question="Crunch now?", schema=bool, timeout=0)
    return crunch(workdir, numbers)


if __name__ == "__main__":
    work = sys.argv[1]
    gate = (sys.argv[2] if len(sys.argv) > 2 else "gate") == "gate"
    handle = pipeline.run(work, gate)
    (Path(work) / "exec_id").write_text(handle.exec_id)
    print(handle.exec_id, flush=True)
    if not gate:
        handle.wait()
