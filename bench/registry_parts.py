"""Where the `sqlite` registry's share of a checkpoint call goes, beside the floor.

    .venv/bin/python bench/registry_parts.py [--calls 2560] [--rounds 3]

In one process, in a temporary kitaru home: `--calls` completed calls shaped like the chain
flow's (three inline artifact references: an int input, a linked input, a small JSON output)
are committed through `SqliteRegistry.save_call` (each one journal row), then folded into
`calls` and `artifacts`; beside them the same number of floor-normal inserts (figure (a)'s
`_Floor`). Prints CPU microseconds per call (`process_time`, the best of `--rounds`) for the
commit, the fold and the floor, Not part of `run.py`; it measures and
prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def _records(
    exec_id: str, count: int, base: int, make_id: Callable[[str], str] | None = None
) -> list[tuple]:
    """`count` chain-shaped completed calls of `exec_id`, each with its three artifacts;
    artifact ids from `make_id(exec_id)` (default: kitaru's `new_artifact_id`)."""
    from kitaru_core.records import ArtifactRecord, CallRecord
    from kitaru_core.runtime.artifacts import new_artifact_id

    new = make_id or new_artifact_id
    out = []
    for i in range(base, base + count):
        now = time.time()
        state = f'{{"i":{i},"total":{i * 7}}}'.encode()
        arts = [
            ArtifactRecord(new(exec_id), exec_id, "i", "input", os.urandom(32).hex(), "json", "int",
                           len(str(i)), f"step#{i}", created_at=now, data=str(i).encode()),
            ArtifactRecord(new(exec_id), exec_id, "state", "input", os.urandom(32).hex(), "json",
                           "dict", len(state), f"step#{i}", created_at=now,
                           metadata={"source_artifact": new(exec_id)}, data=state),
            ArtifactRecord(new(exec_id), exec_id, "step", "output", os.urandom(32).hex(), "json",
                           "dict", len(state), f"step#{i}", created_at=now, data=state),
        ]
        call = CallRecord(exec_id, f"step#{i}", "step", i, "completed", None, 1, now, now,
                          arts[2].artifact_id)
        out.append((call, arts))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2560)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    from _harness import new_home

    home = new_home()
    import checkpoint_overhead
    import kitaru_local.sqlite_registry as sqlite_registry
    from kitaru_local.configs import SqliteRegistryConfig

    from kitaru_core.interfaces import ComponentContext
    from kitaru_core.runtime.artifacts import new_id

    registry = sqlite_registry.SqliteRegistry(SqliteRegistryConfig(), ComponentContext(home, "local"))
    floor = checkpoint_overhead._Floor(str(home / "floor.db"), "NORMAL")
    sqlite_registry._FOLD_EVERY = 10**9  # folded below, on its own clock
    exec_id, n = new_id(), opts.calls
    for call, arts in _records(exec_id, 300, 0):  # warm up: statements, pages, the floor's table
        registry.save_call(call, arts)
    with registry._tx():  # folds
        pass
    floor.loop(300, 10**9)
    best: dict[str, float] = {}
    for r in range(opts.rounds):
        batch = _records(exec_id, n, (r + 1) * 1_000_000)
        began = time.process_time()
        for call, arts in batch:
            registry.save_call(call, arts)
        commit = time.process_time() - began
        began = time.process_time()
        with registry._tx():  # folds the journal, as the first write or read after it does
            pass
        fold = time.process_time() - began
        began = time.process_time()
        floor.loop(n, (r + 1) * 1_000_000)
        floor_s = time.process_time() - began  # includes the floor's plain step, a few µs
        for name, seconds in (("commit (one journal row)", commit), ("fold", fold),
                              ("floor-normal insert+commit", floor_s)):
            best[name] = min(best.get(name, float("inf")), seconds / n)
    registry.close()
    shutil.rmtree(home, ignore_errors=True)
    base = best["floor-normal insert+commit"]
    print(f"sqlite registry, {n:,} chain-shaped calls, CPU per call, best of {opts.rounds}; "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, seconds in best.items():
        print(f"  {name:<28} {seconds * 1e6:7.1f} µs  {seconds / base:5.2f}x floor-normal")


if __name__ == "__main__":
    main()
