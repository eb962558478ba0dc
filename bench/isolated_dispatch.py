"""Isolated dispatch overhead on the local `process` target, against a bare process start.

One process (fresh `KITARU_HOME`) runs a flow of N calls of a trivial checkpoint on three
stacks, round-robin, `--repeat` rounds:

- `forked`: `runtime="isolated"` on the `process` target as configured by default, whose
  workers are forks of a warm fork server (started by the warm-up run, before any timing);
- `fresh`: the same with `fork_server: false`, a new `python -m kitaru_core.worker` per call;
- `inline`: the same checkpoint in the flow's own process, on the local stack.

The dispatch overhead of one isolated call is (isolated flow - inline flow) / N: writing the
spec, recording intent and handle, starting the worker, its imports, store reads and writes,
noticing its exit, reading result.json. The baseline is `python -c pass`, spawned and reaped
by the same process in the same rounds. Figures are medians over the rounds, and the median
of the per-round ratios beside the ratio of the medians. Target: at most 1.5x for the default
(`forked`). The first isolated call of a runner, which starts the fork server, is reported
apart (the fresh runner's first flow minus a warm one, per the first call).

    .venv/bin/python bench/isolated_dispatch.py [--calls 10] [--repeat 7] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_RATIO = 1.5
BENCH = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--output", default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    load_before = os.getloadavg()
    home = tempfile.mkdtemp(prefix="kitaru-bench-iso-", dir=BENCH)
    try:
        result = measure(Path(home), args.calls, args.repeat)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


def measure(home: Path, calls: int, repeat: int) -> dict[str, Any]:
    os.environ["KITARU_HOME"] = str(home)
    import kitaru
    from kitaru_core.stack import StackStore

    for name, target in (("forked", "{flavor: process}"),
                         ("fresh", "{flavor: process, config: {fork_server: false}}")):
        stack = home / f"{name}.yaml"
        stack.write_text(f"name: {name}\nexecution_target: {target}\n")
        StackStore().register(stack)

    def add(i: int) -> int:
        return i + 1

    iso_step = kitaru.checkpoint(add, name="iso_step", runtime="isolated")
    inline_step = kitaru.checkpoint(add, name="inline_step")

    @kitaru.flow
    def chain(n: int, isolated: bool, start: int) -> int:
        step = iso_step if isolated else inline_step
        return sum(step(start + i).load() for i in range(n))

    def timed_flow(variant: str, start: int, n: int = calls) -> float:
        stack = "local" if variant == "inline" else variant
        t0 = time.perf_counter()
        chain.run(n, variant != "inline", start, stack=stack).wait(timeout=600)
        return time.perf_counter() - t0

    def bare() -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        return time.perf_counter() - t0

    # Warm-up: imports, SQLite schema, the code package uploaded, .pyc files written. The first
    # isolated call of this runner starts the fork server: timed apart, against a warm call.
    timed_flow("inline", -(10**6))
    timed_flow("fresh", -(10**6))
    first = timed_flow("forked", -(2 * 10**6), n=1)
    second = timed_flow("forked", -(3 * 10**6), n=1)
    samples: dict[str, list[float]] = {"forked": [], "fresh": [], "inline": [], "python_c_pass": []}
    for r in range(repeat):
        order = ["forked", "fresh", "inline"]
        order = order[r % 3:] + order[:r % 3]  # each variant in each slot of the round
        for variant in order:
            samples[variant].append(timed_flow(variant, r * 10**4))
        samples["python_c_pass"].append(bare())
    bare_s = statistics.median(samples["python_c_pass"])
    out: dict[str, Any] = {"calls": calls, "repeat": repeat, "python_c_pass_s": round(bare_s, 4)}
    for variant in ("forked", "fresh"):
        per_call = [(iso - inl) / calls for iso, inl in zip(samples[variant], samples["inline"], strict=True)]
        paired = [pc / b for pc, b in zip(per_call, samples["python_c_pass"], strict=True)]
        overhead = (statistics.median(samples[variant]) - statistics.median(samples["inline"])) / calls
        out[variant] = {
            "dispatch_s": round(overhead, 4),
            "ratio": round(overhead / bare_s, 2),
            "ratio_per_round_median": round(statistics.median(paired), 2),
            "ratio_per_round": [round(p, 2) for p in paired],
        }
    out["forked"].update(target=f"<= {TARGET_RATIO}x", met=out["forked"]["ratio"] <= TARGET_RATIO)
    out["first_forked_call_extra_s"] = round(first - second, 4)
    out["inline_call_s"] = round(statistics.median(samples["inline"]) / calls, 5)
    out["samples_s"] = {k: [round(v, 4) for v in vs] for k, vs in samples.items()}
    return out


if __name__ == "__main__":
    main()
