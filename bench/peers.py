"""Figure (g): kitaru beside DBOS and Prefect on the same flow, in the same run.

The flow: 100 steps, each returning 100 bytes (a str unique to the step and the run, so no
system can reuse a stored value), every step's output recorded durably by the system:

- `kitaru`: a `@flow` calling a `@checkpoint` on the default local stack (SQLite + folder);
- `dbos`: a `@DBOS.workflow()` calling a `@DBOS.step()`, DBOS's system database on SQLite
  (its default when no Postgres URL is given);
- `prefect`: a `@flow` calling a `@task(persist_result=True)` against Prefect's ephemeral
  local API server (SQLite in `PREFECT_HOME`), what Prefect starts when no server is
  configured; `persist_result=True` makes every task's output durable, as the other two do.

DBOS and Prefect are installed from PyPI into their own virtual environment,
`bench/.peers-venv` (git-ignored), made on first use with `python -m venv` and `pip install
dbos prefect`; `--peers-venv` points elsewhere. Each system runs in fresh child processes
(its own temporary home), round-robin: a warm-up workflow (imports, schema, server start)
and then `rounds` timed workflows. Per step = (workflow time - the same loop of plain
calls) / 100; the figure is the median over every timed workflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NAME = "peers"
SYSTEMS = ("kitaru", "dbos", "prefect")
PEER_PACKAGES = ("dbos", "prefect")
DEFAULT_VENV = Path(__file__).resolve().parent / ".peers-venv"
STEPS = 100
OUTPUT_BYTES = 100


# -- parent side --------------------------------------------------------------------------


def ensure_venv(venv: Path) -> tuple[Path, dict[str, str]]:
    """The peers' Python (making the venv and installing them if needed) and their versions."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with {', '.join(PEER_PACKAGES)} from PyPI ...", file=sys.stderr,
              flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in %r}))"
    found = subprocess.run([str(python), "-c", probe % (PEER_PACKAGES,)], capture_output=True,
                           text=True)
    if found.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)
        found = subprocess.run([str(python), "-c", probe % (PEER_PACKAGES,)], capture_output=True,
                               text=True, check=True)
    import json

    return python, json.loads(found.stdout)


def run(*, repeat: int, venv: Path = DEFAULT_VENV, processes: int = 3) -> dict[str, Any]:
    """`repeat` timed workflows per system, spread over `processes` child processes each."""
    from _harness import median, run_child

    python, versions = ensure_venv(venv)
    processes = max(1, min(processes, repeat))
    rounds_each = [repeat // processes + (1 if i < repeat % processes else 0) for i in range(processes)]
    samples: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    for rounds in rounds_each:
        for system in SYSTEMS:
            child = run_child(NAME, system, {"rounds": rounds},
                              python=None if system == "kitaru" else str(python))
            samples[system].extend(child["per_step_s"])
    per_step = {s: median(v) for s, v in samples.items()}
    return {
        "steps": STEPS,
        "output_bytes": OUTPUT_BYTES,
        "repeat": repeat,
        "versions": {"kitaru": _kitaru_version(), **versions},
        "per_step_s": per_step,
        "best_per_step_s": {s: min(v) for s, v in samples.items()},
        "samples": samples,
        "ratio_to_kitaru": {s: per_step[s] / per_step["kitaru"] for s in SYSTEMS},
    }


def _kitaru_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("kitaru")


# -- child side ---------------------------------------------------------------------------


def _output(run_tag: int, i: int) -> str:
    """100 bytes unique to the step and the workflow."""
    return f"{run_tag:012d}:{i:06d}:".ljust(OUTPUT_BYTES, "x")


def _time_workflows(rounds: int, workflow: Any) -> dict[str, Any]:
    """Warm up once, then time `rounds` workflows; seconds per step above a plain loop."""
    workflow(0)
    per_step = []
    for r in range(1, rounds + 1):
        tag = int(time.time() * 1000) * 10 + r
        began = time.perf_counter()
        plain = [_output(tag, i) for i in range(STEPS)]
        plain_s = time.perf_counter() - began
        began = time.perf_counter()
        result = workflow(tag)
        seconds = time.perf_counter() - began
        assert result == plain[-1], (result, plain[-1])
        per_step.append((seconds - plain_s) / STEPS)
    return {"per_step_s": per_step}


def _kitaru(params: dict[str, Any]) -> dict[str, Any]:
    import kitaru

    @kitaru.checkpoint
    def emit(tag: int, i: int) -> str:
        return _output(tag, i)

    @kitaru.flow
    def hundred(tag: int) -> str:
        last = None
        for i in range(STEPS):
            last = emit(tag, i)
        return last.load()

    return _time_workflows(params["rounds"], lambda tag: hundred.run(tag).wait())


def _dbos(params: dict[str, Any]) -> dict[str, Any]:
    from dbos import DBOS

    home = os.environ["KITARU_HOME"]
    DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{home}/dbos.sqlite",
                 "log_level": "WARNING"})

    @DBOS.step()
    def emit(tag: int, i: int) -> str:
        return _output(tag, i)

    @DBOS.workflow()
    def hundred(tag: int) -> str:
        last = ""
        for i in range(STEPS):
            last = emit(tag, i)
        return last

    DBOS.launch()
    try:
        return _time_workflows(params["rounds"], hundred)
    finally:
        DBOS.destroy()


def _prefect(params: dict[str, Any]) -> dict[str, Any]:
    # Every state file (database, results) in this child's temporary home; no telemetry.
    os.environ["PREFECT_HOME"] = os.path.join(os.environ["KITARU_HOME"], "prefect")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    # Its default of 20 s is too short for a server start on a busy 2-vCPU machine.
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
    from prefect import flow, task

    @task(persist_result=True)
    def emit(tag: int, i: int) -> str:
        return _output(tag, i)

    @flow(persist_result=True)
    def hundred(tag: int) -> str:
        last = ""
        for i in range(STEPS):
            last = emit(tag, i)
        return last

    return _time_workflows(params["rounds"], hundred)


if __name__ == "__main__":
    from _harness import child_main

    child_main({"kitaru": _kitaru, "dbos": _dbos, "prefect": _prefect})
