"""How soon a cancelled background runner stops, inside a long checkpoint.

A fresh `KITARU_HOME`; tests/e2e_flows/watchdog_flow.py suspends at its wait, an input
launches a background runner (the `local` orchestrator), whose `crunch` checkpoint sleeps
600 s. One second into that sleep `kitaru executions cancel` runs; reported: how long the
command took, and how long after it returned the runner's process was gone (0: before).
The command's own run (a Python process importing kitaru) is the baseline: the runner
should be gone by the time it returns.

    .venv/bin/python bench/runner_cancel.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOWS = Path(__file__).resolve().parent.parent / "tests" / "e2e_flows"


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def once() -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="kitaru-bench-cancel-")) / "home"
    work = home.parent / "work"
    work.mkdir()
    env = {**os.environ, "KITARU_HOME": str(home), "KITARU_INTERACTIVE": "0"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kitaru.cli.main", *args], env=env,
                              capture_output=True, text=True, check=True)

    subprocess.run([sys.executable, str(FLOWS / "watchdog_flow.py"), str(work)], cwd=FLOWS, env=env,
                   check=True, capture_output=True)
    exec_id = (work / "exec_id").read_text()
    (work / "sleep").write_text("600")
    cli("executions", "input", exec_id, "--value", "true")
    deadline = time.monotonic() + 120
    while not (work / "ready").exists():
        if time.monotonic() > deadline:
            raise SystemExit("the background runner never reached its checkpoint")
        time.sleep(0.05)
    pid = json.loads((work / "ready").read_text())["pid"]
    time.sleep(1.0)
    t0 = time.monotonic()
    cli("executions", "cancel", exec_id)
    t1 = time.monotonic()
    while _running(pid) and time.monotonic() - t1 < 60:
        time.sleep(0.01)
    t2 = time.monotonic()
    return {"cancel_command_s": t1 - t0, "runner_gone_after_command_s": t2 - t1}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = [once() for _ in range(args.repeat)]
    result = {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
    result["load_average"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
