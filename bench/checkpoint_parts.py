"""Where a checkpoint call's time goes in a running flow, beside the floors.

    .venv/bin/python bench/checkpoint_parts.py [--steps 200] [--rounds 9]

In one process and a temporary kitaru home, round by round: figure (a)'s chain flow of
`--steps` checkpoints on three stacks, and figure (a)'s two floors (`_Floor`):

- `default`: the default local stack;
- `strict`: a stack with `durability: strict`, its own SQLite file;
- `default+fsync`: the default stack, with one `fdatasync` of an unrelated, already
  written 4 KB file after each journal row. Kitaru runs the same code as in `default`,
  so whatever the rest of the call gains here is what waiting for the disk costs the code
  that runs after the wait, and strict mode pays it too.

The `sqlite` registry's journal commit (`_journal_call`: packing and committing one row) and
its fold (`_fold_journal`, every 256 calls and at the flow's end) are timed from inside by
wrapping them; `rest` is the flow's time less those two: the Python runner, the flow's start
and end, and the plain loop's own work. Prints medians in microseconds per call and the rest's
share beside the floor. Not part of `run.py`; it measures and prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
STACKS = ("default", "strict", "default+fsync")


class _Timers:
    """Seconds spent in the registry's journal commit and fold since the last `reset`."""

    def __init__(self, scratch: Path) -> None:
        self.journal = 0.0
        self.fold = 0.0
        self.extra_fsync = False
        self._fd = os.open(scratch, os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(self._fd, b"\0" * 4096, 0)
        os.fsync(self._fd)  # overwritten from now on: an fdatasync flushes data, no metadata

    def reset(self) -> None:
        self.journal = self.fold = 0.0

    def install(self, registry_class: Any) -> None:
        journal_call: Callable[..., None] = registry_class._journal_call
        fold_journal: Callable[..., None] = registry_class._fold_journal

        def timed_journal_call(registry: Any, row: Any, artifacts: Any) -> None:
            began, folded = time.perf_counter(), self.fold
            journal_call(registry, row, artifacts)
            if self.extra_fsync:
                os.pwrite(self._fd, b"x" * 100, 0)
                os.fdatasync(self._fd)
            # A journal row that reaches the 256th folds: that time is the fold's.
            self.journal += time.perf_counter() - began - (self.fold - folded)

        def timed_fold(registry: Any) -> None:
            began = time.perf_counter()
            try:
                fold_journal(registry)
            finally:
                self.fold += time.perf_counter() - began

        registry_class._journal_call = timed_journal_call
        registry_class._fold_journal = timed_fold


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    opts = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    import _flows
    import checkpoint_overhead
    from _harness import median, new_home
    from kitaru_local.sqlite_registry import SqliteRegistry

    home = new_home()
    strict = checkpoint_overhead._register_strict_stack()
    timers = _Timers(home / "scratch")
    timers.install(SqliteRegistry)
    floors = {
        "normal": checkpoint_overhead._Floor(str(home / "floor-normal.db"), "NORMAL"),
        "full": checkpoint_overhead._Floor(str(home / "floor-full.db"), "FULL"),
    }
    n = opts.steps
    # Steady state, as in figure (a): each floor and each registry past its first checkpoint.
    for floor in floors.values():
        floor.loop(1_100, _flows.WARM_UP_START)
    for stack in (None, strict):
        _flows.chain.run(600, _flows.WARM_UP_START, stack=stack).wait()

    parts: dict[str, list[tuple[float, float, float, float]]] = {s: [] for s in STACKS}
    floor_us: dict[str, list[float]] = {f: [] for f in floors}
    plain_us: list[float] = []
    for r in range(opts.rounds):
        start = (r + 1) * 1_000_000  # fresh values every round: artifacts are content-addressed
        for name in STACKS:
            timers.reset()
            timers.extra_fsync = name == "default+fsync"
            began = time.perf_counter()
            _flows.chain.run(n, start, stack=strict if name == "strict" else None).wait()
            total = time.perf_counter() - began
            timers.extra_fsync = False
            rest = total - timers.journal - timers.fold
            parts[name].append(tuple(x / n * 1e6 for x in (total, timers.journal, timers.fold, rest)))
        for name, floor in floors.items():
            began = time.perf_counter()
            floor.loop(n, start)
            floor_us[name].append((time.perf_counter() - began) / n * 1e6)
        began = time.perf_counter()
        _flows.plain_loop(n, start)
        plain_us.append((time.perf_counter() - began) / n * 1e6)
    shutil.rmtree(home, ignore_errors=True)

    print(f"chain flow of {n} checkpoints, {opts.rounds} rounds, medians in µs per call; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"  {'stack':<14} {'total':>7} {'journal':>8} {'fold':>7} {'rest':>7}")
    for name in STACKS:
        total, journal, fold, rest = (median(list(x)) for x in zip(*parts[name], strict=True))
        print(f"  {name:<14} {total:7.1f} {journal:8.1f} {fold:7.1f} {rest:7.1f}")
    normal, full = median(floor_us["normal"]), median(floor_us["full"])
    print(f"  floor-normal {normal:.1f}, floor-full {full:.1f}, plain loop {median(plain_us):.2f} "
          "(included in rest)")
    rest = {name: median([p[3] for p in parts[name]]) for name in STACKS}
    print(f"  rest with an fsync per call / without: {rest['default+fsync'] / rest['default']:.2f}x "
          f"(default+fsync), {rest['strict'] / rest['default']:.2f}x (strict)")


if __name__ == "__main__":
    main()
