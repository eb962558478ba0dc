"""Figure (a): per-checkpoint overhead of a flow on the local stack, against SQLite floors.

One child process measures every variant, round-robin, several rounds:

- `plain`: the step functions as a plain Python loop;
- `floor-normal`: per step, one insert of a call-record-sized row into a WAL-mode SQLite
  database with `synchronous=NORMAL`, committed on its own: what surviving a kill of the
  process costs at the least (the default mode's floor);
- `floor-full`: the same with `synchronous=FULL`, a WAL fsync per commit: what surviving
  a power loss costs at the least (the strict mode's floor);
- `kitaru-default`: the flow on the local stack (records survive a SIGKILL);
- `kitaru-strict`: the same on a stack with `durability: strict` (records survive a power
  loss: SQLite synchronous=FULL, blobs and folders fsynced).

Every variant is measured in its steady state: a new SQLite WAL file grows by every commit, and
a commit that extends the file costs more (under FULL about 1.5-2x: its fsync also commits the
file system's metadata) than one that reuses frames of a file SQLite has started over. So each
floor first makes 1,100 commits (past SQLite's own checkpoint at 1,000 pages, after which its
WAL is reused), and each kitaru variant first runs a 600-checkpoint flow (past the registry's
first background checkpoint and the catch-up that starts its WAL over).

Each variant is also timed in CPU seconds of the child process (all threads; `process_time`),
reported beside the wall time: on a machine where other work takes the CPUs, the wall time of a
run that spans several scheduler slices grows with the load while a short floor loop may not,
and CPU time shows the work itself. (CPU time leaves out waiting for the disk, so for the
strict floor, whose cost is the fsync, only the wall time means anything.)

Every variant writes its own SQLite file in the same folder (the child's kitaru home), in
the same process and minutes, so the floors see the disk, the Python and the SQLite the
flows see. Overhead per checkpoint = (variant time - plain loop time) / n. The ratios are
paired: each round's kitaru time over the same round's floor, median over the rounds.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

NAME = "checkpoint_overhead"
VARIANTS = ("plain", "floor-normal", "floor-full", "kitaru-default", "kitaru-strict")
#: kitaru mode -> the floor it is compared with, and the most it may cost in floors.
TARGETS = {"kitaru-default": ("floor-normal", 3.0), "kitaru-strict": ("floor-full", 1.2)}


# -- parent side --------------------------------------------------------------------------


def run(*, repeat: int, n: int = 200, processes: int = 3) -> dict[str, Any]:
    """`repeat` rounds in total, spread over `processes` fresh child processes."""
    from _harness import run_child

    processes = max(1, min(processes, repeat))
    rounds_each = [repeat // processes + (1 if i < repeat % processes else 0) for i in range(processes)]
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for rounds in rounds_each:
        child = run_child(NAME, "all", {"n": n, "rounds": rounds})
        for v in VARIANTS:
            samples[v].extend(child["seconds"][v])
            cpu[v].extend(child["cpu_seconds"][v])
    result = summarize(samples, n=n, repeat=repeat, processes=processes)
    cpu_result = summarize(cpu, n=n, repeat=repeat, processes=processes)
    result["cpu"] = {k: cpu_result[k] for k in
                     ("samples", "per_checkpoint_s", "ratio_samples", "ratio_to_floor")}
    return result


def summarize(samples: dict[str, list[float]], *, n: int, repeat: int, processes: int) -> dict[str, Any]:
    from _harness import median

    per_round = [
        {v: (samples[v][i] - samples["plain"][i]) / n for v in VARIANTS}
        for i in range(len(samples["plain"]))
    ]
    per_step = {v: median([r[v] for r in per_round]) for v in VARIANTS if v != "plain"}
    ratios = {
        mode: [r[mode] / r[floor] for r in per_round] for mode, (floor, _) in TARGETS.items()
    }
    ratio = {mode: median(values) for mode, values in ratios.items()}
    return {
        "n": n,
        "repeat": repeat,
        "processes": processes,
        "seconds": {v: median(s) for v, s in samples.items()},
        "samples": samples,
        "per_checkpoint_s": per_step,
        "best_per_checkpoint_s": {
            v: min((s - p) / n for s, p in zip(samples[v], samples["plain"], strict=True))
            for v in VARIANTS if v != "plain"
        },
        "ratio_samples": ratios,
        "ratio_to_floor": ratio,
        "floors": {mode: floor for mode, (floor, _) in TARGETS.items()},
        "targets": {mode: f"<= {most:g}x {floor}" for mode, (floor, most) in TARGETS.items()},
        "met": {mode: ratio[mode] <= most for mode, (_, most) in TARGETS.items()},
    }


# -- child side ---------------------------------------------------------------------------


_OUTPUT = b"x" * 100
#: Commits a floor makes before it is timed, and checkpoint calls of kitaru's warm-up flow.
_STEADY_COMMITS = 1_100
_KITARU_WARM_UP = 600


class _Floor:
    """The least a durable step recorder does: one row per step, committed on its own.

    The row has the columns and sizes of a completed call record as kitaru writes it
    (ids, name, position, status, times, the output artifact's id) plus the step's
    serialized output (a fixed 100 bytes: the floor does no serializing), which is what a
    recorder that keeps outputs inline stores.
    """

    def __init__(self, path: str, synchronous: str) -> None:
        # Autocommit: one statement, one commit. Any thread may use it (bench/flow_overhead.py).
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        self.conn.execute(
            "CREATE TABLE steps (exec_id TEXT, call_id TEXT, name TEXT, seq INTEGER, "
            "status TEXT, attempts INTEGER, started_at REAL, ended_at REAL, "
            "output_artifact TEXT, output BLOB)"
        )
        self.exec_id = os.urandom(16).hex()
        # Past SQLite's automatic checkpoint (1,000 pages) once: from then on the WAL file is
        # reused, not extended, as in any process that has been writing for a while.
        self.loop(_STEADY_COMMITS, -_STEADY_COMMITS)

    def loop(self, count: int, start: int) -> None:
        from _flows import INITIAL, plain_step

        insert = (
            "INSERT INTO steps (exec_id, call_id, name, seq, status, attempts, started_at, "
            "ended_at, output_artifact, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        conn, exec_id = self.conn, self.exec_id
        state = INITIAL
        for i in range(start, start + count):
            began = time.time()
            state = plain_step(i, state)
            conn.execute(insert, (exec_id, f"step#{i}", "step", i, "completed", 1, began,
                                  time.time(), f"{i:032x}", _OUTPUT))


def _all(params: dict[str, Any]) -> dict[str, Any]:
    from _flows import WARM_UP_START, chain, expected_total, plain_loop

    n, rounds = params["n"], params["rounds"]
    home = os.environ["KITARU_HOME"]
    strict = _register_strict_stack()
    floors = {
        "floor-normal": _Floor(os.path.join(home, "floor-normal.db"), "NORMAL"),
        "floor-full": _Floor(os.path.join(home, "floor-full.db"), "FULL"),
    }

    def measure(variant: str, start: int) -> tuple[float, float]:
        """(wall seconds, CPU seconds of this process, all its threads)."""
        cpu = time.process_time()
        began = time.perf_counter()
        if variant == "plain":
            total = plain_loop(n, start)
        elif variant in floors:
            floors[variant].loop(n, start)
            total = expected_total(n, start)
        else:
            stack = strict if variant == "kitaru-strict" else None
            total = chain.run(n, start, stack=stack).wait()
        seconds = time.perf_counter() - began
        cpu_seconds = time.process_time() - cpu
        assert total == expected_total(n, start)
        return seconds, cpu_seconds

    # Warm up with other values: imports, the stacks, the schemas, the blob folders, and each
    # registry's WAL past its first checkpoint (steady state, as the floors are).
    for variant in VARIANTS:
        measure(variant, WARM_UP_START)
    for stack in (None, strict):
        chain.run(_KITARU_WARM_UP, WARM_UP_START + n, stack=stack).wait()
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(rounds):
        # Fresh values every round: artifacts are content-addressed.
        for variant in VARIANTS:
            seconds, cpu_seconds = measure(variant, (r + 1) * 1_000_000)
            samples[variant].append(seconds)
            cpu[variant].append(cpu_seconds)
    return {"seconds": samples, "cpu_seconds": cpu}


def _register_strict_stack() -> str:
    """A strict stack with its own SQLite file (the default stack keeps kitaru.db)."""
    from pathlib import Path

    from kitaru_core.stack import StackStore

    home = Path(os.environ["KITARU_HOME"])
    path = home / "strict.yaml"
    path.write_text(
        "name: strict\ndurability: strict\n"
        f"registry: {{flavor: sqlite, config: {{path: '{home / 'strict.db'}'}}}}\n"
    )
    StackStore(home).register(path)
    return "strict"


if __name__ == "__main__":
    from _harness import child_main

    child_main({"all": _all})
