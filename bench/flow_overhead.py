"""What one short flow costs as a whole: a one-checkpoint flow against its floor.

    .venv/bin/python bench/flow_overhead.py [--flows 50] [--rounds 15]

In one process and a temporary kitaru home, round by round: `--flows` runs of the chain flow
with one checkpoint (`chain.run(1).wait()` on the `local` stack), and as many runs of the
floor: what any recorder of an asynchronous run does at the least, namely three
floor-normal commits (the execution with its inputs, the call, the outcome; figure (a)'s
`_Floor`) and one thread started and joined (`.run()` returns at once, so the body runs
in a thread of its own). Prints the median wall and CPU milliseconds per flow and their
ratio (kitaru / floor, paired per round). Not part of `run.py`; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=15)
    opts = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    import _flows
    import checkpoint_overhead
    from _harness import new_home

    home = new_home()

    floor = checkpoint_overhead._Floor(str(home / "floor.db"), "NORMAL")

    def floor_flow(start: int) -> None:
        thread = threading.Thread(target=floor.loop, args=(3, start))
        thread.start()
        thread.join()

    def kitaru_flow(start: int) -> None:
        _flows.chain.run(1, start).wait()

    for r in range(20):  # warm-up: imports, statements, the stack
        kitaru_flow(_flows.WARM_UP_START + r)
    wall: dict[str, list[float]] = {"kitaru": [], "floor": []}
    cpu: dict[str, list[float]] = {"kitaru": [], "floor": []}
    for r in range(opts.rounds):
        for name, run in (("kitaru", kitaru_flow), ("floor", floor_flow)):
            began, began_cpu = time.perf_counter(), time.process_time()
            for i in range(opts.flows):
                run((r * opts.flows + i) * 10)
            wall[name].append((time.perf_counter() - began) / opts.flows)
            cpu[name].append((time.process_time() - began_cpu) / opts.flows)
    shutil.rmtree(home, ignore_errors=True)
    print(f"one-checkpoint flow, {opts.flows} flows x {opts.rounds} rounds; load average "
          f"{os.getloadavg()[0]:.1f}")
    for label, samples in (("wall", wall), ("CPU", cpu)):
        ratio = statistics.median(k / f for k, f in zip(samples["kitaru"], samples["floor"], strict=True))
        print(f"  {label:<4} kitaru {statistics.median(samples['kitaru']) * 1e3:6.3f} ms   floor "
              f"{statistics.median(samples['floor']) * 1e3:6.3f} ms   {ratio:5.2f}x")


if __name__ == "__main__":
    main()
