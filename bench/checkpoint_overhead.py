"""Figure (a): per-checkpoint overhead of a flow on the local stack.

Variants, each timed in its own fresh process and home:

- `plain`: the step functions as a plain Python loop;
- `floor`: the "fsync floor", the least a durable step recorder could do with
  stock tools: per step, pickle the output to a file with fsync, then one
  SQLite insert with default `sqlite3` settings and a commit per insert;
- `kitaru-default`: the flow on the local stack (records survive a SIGKILL);
- `kitaru-strict`: the same on a stack with `durability: strict` (records
  survive a power loss: SQLite synchronous=FULL, blobs and folders fsynced).

Overhead per checkpoint = (variant time - plain loop time) / n.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import tempfile
import time
from typing import Any

NAME = "checkpoint_overhead"
VARIANTS = ("plain", "floor", "kitaru-default", "kitaru-strict")
TARGET_DEFAULT = 0.3  # kitaru default-mode overhead / floor, at most
TARGET_STRICT = 1.5  # kitaru strict-mode overhead / floor, at most


# -- parent side --------------------------------------------------------------------------


def run(*, repeat: int, n: int = 200) -> dict[str, Any]:
    from _harness import median, repeat_interleaved, run_child

    samples = repeat_interleaved(
        VARIANTS, repeat, lambda v: run_child(NAME, v, {"n": n})["seconds"], discard=1
    )
    med = {v: median(s) for v, s in samples.items()}
    per_step = {v: (med[v] - med["plain"]) / n for v in VARIANTS}
    floor = per_step["floor"]
    return {
        "n": n,
        "repeat": repeat,
        "seconds": med,
        "samples": samples,
        "best_per_checkpoint_s": {v: (min(s) - min(samples["plain"])) / n for v, s in samples.items()},
        "per_checkpoint_s": {
            "floor": floor,
            "kitaru-default": per_step["kitaru-default"],
            "kitaru-strict": per_step["kitaru-strict"],
        },
        "ratio_to_floor": {
            "kitaru-default": per_step["kitaru-default"] / floor,
            "kitaru-strict": per_step["kitaru-strict"] / floor,
        },
        "targets": {
            "kitaru-default": f"<= {TARGET_DEFAULT}x floor",
            "kitaru-strict": f"<= {TARGET_STRICT}x floor",
        },
        "met": {
            "kitaru-default": per_step["kitaru-default"] <= TARGET_DEFAULT * floor,
            "kitaru-strict": per_step["kitaru-strict"] <= TARGET_STRICT * floor,
        },
    }


# -- child side ---------------------------------------------------------------------------


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    from _flows import WARM_UP_START, expected_total, plain_loop

    n = params["n"]
    plain_loop(n, WARM_UP_START)  # warm up like the other variants
    start = time.perf_counter()
    total = plain_loop(n)
    seconds = time.perf_counter() - start
    assert total == expected_total(n)
    return {"seconds": seconds}


def _floor(params: dict[str, Any]) -> dict[str, Any]:
    from _flows import INITIAL, WARM_UP_START, plain_step

    n = params["n"]
    folder = tempfile.mkdtemp(dir=os.environ["KITARU_HOME"])
    conn = sqlite3.connect(os.path.join(folder, "floor.db"))  # default settings
    conn.execute("CREATE TABLE steps (i INTEGER, path TEXT)")
    conn.commit()

    def record(i: int, value: Any) -> None:
        path = os.path.join(folder, f"{i}.pkl")
        with open(path, "wb") as fh:
            pickle.dump(value, fh)
            fh.flush()
            os.fsync(fh.fileno())
        conn.execute("INSERT INTO steps (i, path) VALUES (?, ?)", (i, path))
        conn.commit()

    def loop(count: int, offset: int) -> None:
        state = INITIAL
        for i in range(offset, offset + count):
            state = plain_step(i, state)
            record(i, state)

    loop(n, WARM_UP_START)  # warm up like the other variants
    start = time.perf_counter()
    loop(n, 0)
    seconds = time.perf_counter() - start
    conn.close()
    return {"seconds": seconds}


def _kitaru(durability: str) -> Any:
    def measure(params: dict[str, Any]) -> dict[str, Any]:
        from _flows import WARM_UP_START, chain, expected_total

        stack = None
        if durability == "strict":
            stack = _register_strict_stack()
        n = params["n"]
        # Warm up with other values: imports, the stack, the schema, the blob folders.
        chain.run(n, WARM_UP_START, stack=stack).wait()
        start = time.perf_counter()
        total = chain.run(n, stack=stack).wait()
        seconds = time.perf_counter() - start
        assert total == expected_total(n)
        return {"seconds": seconds}

    return measure


def _register_strict_stack() -> str:
    from pathlib import Path

    from kitaru_core.stack import StackStore

    home = Path(os.environ["KITARU_HOME"])
    path = home / "strict.yaml"
    path.write_text("name: strict\ndurability: strict\n")
    StackStore(home).register(path)
    return "strict"


if __name__ == "__main__":
    from _harness import child_main

    child_main({
        "plain": _plain,
        "floor": _floor,
        "kitaru-default": _kitaru("default"),
        "kitaru-strict": _kitaru("strict"),
    })
