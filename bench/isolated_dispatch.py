"""Isolated dispatch overhead on the local `process` target, against a bare process start.

One process (fresh `KITARU_HOME`) runs a flow of N calls of a trivial checkpoint twice:
`runtime="isolated"` on a stack with the `process` target, and inline on the local stack.
The dispatch overhead of one isolated call is (isolated - inline) / N: writing the spec,
recording intent and handle, starting the worker, its imports, store reads and writes, the
poll that sees result.json. The baseline is `python -c pass`, spawned and reaped by the
same process in the same run (medians of interleaved repeats). Target: at most 1.5x.

    .venv/bin/python bench/isolated_dispatch.py [--calls 10] [--repeat 5]
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

TARGET_RATIO = 1.5


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="kitaru-bench-iso-", dir=Path(__file__).parent)
    os.environ["KITARU_HOME"] = home
    import kitaru
    from kitaru_core.stack import StackStore

    stack = Path(home) / "iso.yaml"
    stack.write_text("name: iso\nexecution_target: {flavor: process}\n")
    StackStore().register(stack)

    def add(i: int) -> int:
        return i + 1

    iso_step = kitaru.checkpoint(add, name="iso_step", runtime="isolated")
    inline_step = kitaru.checkpoint(add, name="inline_step")

    @kitaru.flow
    def chain(n: int, isolated: bool, start: int) -> int:
        step = iso_step if isolated else inline_step
        return sum(step(start + i).load() for i in range(n))

    def timed_flow(isolated: bool, start: int) -> float:
        t0 = time.perf_counter()
        chain.run(args.calls, isolated, start, stack="iso" if isolated else "local").wait(timeout=600)
        return time.perf_counter() - t0

    def bare() -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        return time.perf_counter() - t0

    timed_flow(True, -10**6)  # warm: code package uploaded, .pyc files written
    timed_flow(False, -10**6)
    iso, inline, base = [], [], []
    for r in range(args.repeat):
        start = r * 10**4
        iso.append(timed_flow(True, start))
        inline.append(timed_flow(False, start))
        base.append(bare())
    per_call = (statistics.median(iso) - statistics.median(inline)) / args.calls
    bare_s = statistics.median(base)
    ratio = per_call / bare_s
    print(json.dumps({
        "calls": args.calls, "repeat": args.repeat,
        "isolated_dispatch_s": round(per_call, 4), "python_c_pass_s": round(bare_s, 4),
        "ratio": round(ratio, 2), "target": f"<= {TARGET_RATIO}x", "met": ratio <= TARGET_RATIO,
        "load_average": os.getloadavg(),
    }, indent=2))


if __name__ == "__main__":
    main()
