"""`kitaru executions get` of an execution with 10,000 checkpoint calls.

    .venv/bin/python bench/executions_get.py [--calls 10000] [--repeat 3]

Builds the execution straight through the registry (each call with an inline output and one
`kitaru.log` entry) in a temporary kitaru home, then runs, each in a fresh process:
`kitaru status` (the baseline: start-up and one registry open), `executions get ID` (the
table: a summary and at most 50 rows), `--calls all` (every row) and `-o json`. Prints the
median wall and CPU (user + sys) seconds of each and the ratio to the baseline. Not part of
`run.py`'s figures; it measures and prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(home: Path, calls: int) -> str:
    os.environ["KITARU_HOME"] = str(home)
    from kitaru_core.records import ArtifactRecord, CallRecord, ExecutionRecord, MetadataEntry
    from kitaru_core.runtime.artifacts import new_id
    from kitaru_core.stack import get_stack

    registry = get_stack().registry
    exec_id, now = new_id(), time.time()
    registry.create_execution(ExecutionRecord(exec_id=exec_id, flow_name="big", status="completed",
                                              created_at=now, started_at=now, ended_at=now + 5))
    for n in range(1, calls + 1):
        call_id = f"step#{n}"
        art = ArtifactRecord(artifact_id=new_id(), exec_id=exec_id, name=call_id, direction="output",
                             key="0" * 64, serializer="json", type_name="int", size=len(str(n)),
                             call_id=call_id, created_at=now, data=str(n).encode())
        registry.save_call(
            CallRecord(exec_id=exec_id, call_id=call_id, name="step", seq=n, status="completed",
                       attempts=1, started_at=now, ended_at=now + 0.001,
                       output_artifact=art.artifact_id),
            artifacts=[art], metadata=[MetadataEntry(exec_id, call_id, "tokens", n, now)],
        )
    registry.close()
    return exec_id


def measure(args: list[str], home: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of `kitaru ARGS` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kitaru.cli.main", *args], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "KITARU_HOME": str(home)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
        home = Path(tmp)
        exec_id = build(home, opts.calls)
        variants = {"status (baseline)": ["status"], "get (table)": ["executions", "get", exec_id],
                    "get --calls all": ["executions", "get", exec_id, "--calls", "all"],
                    "get -o json": ["executions", "get", exec_id, "-o", "json"]}
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        measure(["status"], home)  # warm the page cache and bytecode
        for _ in range(opts.repeat):  # round-robin: a slow minute hits every variant alike
            for name, args in variants.items():
                samples[name].append(measure(args, home))
    base_wall = statistics.median(w for w, _ in samples["status (baseline)"])
    print(f"kitaru executions get, {opts.calls:,} checkpoint calls, median of {opts.repeat}; "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, runs in samples.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"  {name:<18} {wall:6.2f} s wall  {cpu:6.2f} s cpu  {wall / base_wall:5.1f}x baseline")


if __name__ == "__main__":
    main()
