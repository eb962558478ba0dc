"""Does recording a checkpoint call cost more as the `sqlite` registry's history grows?

    .venv/bin/python bench/registry_growth.py [--history 2000,20000,150000] [--calls 256] [--rounds 3]

For each history size H, in a fresh temporary kitaru home: H chain-shaped completed calls
(`registry_parts._records`: three inline artifact references each), 200 per execution, are
recorded and folded; then one more execution's `--calls` calls are committed (journal rows)
and folded into `calls` and `artifacts`. Printed per call of that last fold, the best of
`--rounds` fresh homes: CPU microseconds and the bytes SQLite wrote to its WAL, for two ways
of making artifact ids:

- `execution`: kitaru's (`new_artifact_id`): the first two hex digits are the execution's,
  so one execution's artifacts sit in one 256th of the id index;
- `random`: 32 random hex digits (what kitaru made before), each artifact in its own place.

The ratio column is each size's figure over the smallest history's, in the same run: 1.0
means recording does not get dearer as history grows. Not part of `run.py` (building the
largest history takes a while); it measures and prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from _harness import new_home

PER_EXECUTION = 200


def measure(history: int, calls: int, make_id: Callable[[str], str]) -> tuple[float, float]:
    """(CPU seconds, WAL bytes) per call of folding `calls` calls after `history` calls."""
    import kitaru_local.sqlite_registry as sqlite_registry
    from kitaru_local.configs import SqliteRegistryConfig
    from registry_parts import _records

    from kitaru_core.interfaces import ComponentContext
    from kitaru_core.runtime.artifacts import new_id

    home = new_home(use=False)
    registry = sqlite_registry.SqliteRegistry(SqliteRegistryConfig(), ComponentContext(home, "local"))
    try:
        for start in range(0, history, PER_EXECUTION):
            for call, arts in _records(new_id(), min(PER_EXECUTION, history - start), start, make_id):
                registry.save_call(call, arts)
        with registry._tx():  # folds what the journal still holds
            pass
        batch = _records(new_id(), calls, 10**9, make_id)
        for call, arts in batch:
            registry.save_call(call, arts)
        registry._checkpointer.close()  # no background checkpoint from here on
        conn = registry._conn
        wal = Path(f"{registry.path}-wal")
        with registry._lock:
            # An empty WAL, so its size afterwards is what the fold wrote.
            while conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                time.sleep(0.01)
            began = time.process_time()
            with registry._tx():  # folds the journal, as the first write or read after it does
                pass
            cpu = time.process_time() - began
        return cpu / calls, wal.stat().st_size / calls
    finally:
        registry.close()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", default="2000,20000,150000",
                        help="comma-separated history sizes, in calls (default: 2000,20000,150000)")
    parser.add_argument("--calls", type=int, default=256, help="the registry folds every 256")
    parser.add_argument("--rounds", type=int, default=3, help="each figure is the best of these")
    opts = parser.parse_args()
    sizes = sorted(int(s) for s in opts.history.split(","))
    new_home()
    from kitaru_local import sqlite_registry

    from kitaru_core.runtime.artifacts import new_artifact_id, new_id

    sqlite_registry._FOLD_EVERY = 10**9  # each fold below runs on its own clock
    schemes = {"execution": new_artifact_id, "random": lambda _exec_id: new_id()}
    print(f"sqlite registry: folding {opts.calls:,} chain-shaped calls (3 artifacts each) after "
          f"H calls of history; per call; load average {os.getloadavg()[0]:.1f}")
    print(f"  {'ids':<10} {'H calls':>8} {'CPU µs':>8} {'x':>5} {'WAL KB':>8} {'x':>5}")
    measure(200, opts.calls, new_artifact_id)  # warm-up: imports, statements, the file cache
    for scheme, make_id in schemes.items():
        base: tuple[float, float] | None = None
        for size in sizes:
            runs = [measure(size, opts.calls, make_id) for _ in range(opts.rounds)]
            cpu, wal = min(r[0] for r in runs), min(r[1] for r in runs)
            base = base or (cpu, wal)
            print(f"  {scheme:<10} {size:>8,} {cpu * 1e6:>8.1f} {cpu / base[0]:>5.2f} "
                  f"{wal / 1024:>8.2f} {wal / base[1]:>5.2f}")


if __name__ == "__main__":
    main()
