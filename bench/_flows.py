"""The workload every figure measures: a chain of small steps.

Each step takes the loop index and the previous step's state and returns a
small dict, the shape of an agent loop that passes its state along. The same
plain function runs in the plain-loop baseline, the fsync-floor baseline and,
decorated, as a kitaru checkpoint.

`start` offsets the indexes, so a warm-up run and the timed run write
different values: artifacts are content-addressed, and a timed run that only
repeated the warm-up's values would find every blob stored already.
"""

from __future__ import annotations

from typing import Any

import kitaru

INITIAL: dict[str, int] = {"i": -1, "total": 0}


def plain_step(i: int, state: dict[str, Any]) -> dict[str, int]:
    """One step: a small JSON-able output."""
    return {"i": i, "total": state["total"] + i}


def plain_loop(n: int, start: int = 0) -> int:
    """Baseline: the same steps as ordinary function calls."""
    state = INITIAL
    for i in range(start, start + n):
        state = plain_step(i, state)
    return state["total"]


step = kitaru.checkpoint(plain_step, name="step")

#: Set by the resume figure: make the first run fail after its last checkpoint.
FAIL_AT_END = False


@kitaru.flow
def chain(n: int, start: int = 0) -> int:
    """n checkpoints; each output handle goes into the next call (lineage, no copy)."""
    state: Any = INITIAL
    for i in range(start, start + n):
        state = step(i, state)
    if FAIL_AT_END:
        raise RuntimeError("failing after the last checkpoint, so the record can be retried")
    return state.load()["total"] if n else 0


#: The 100-byte output of `payload_step`, also the row of the bare-database baselines.
PAYLOAD = "x" * 100


@kitaru.checkpoint
def payload_step(i: int) -> str:
    """One step of `many`: a fixed 100-byte string (one input artifact, one output)."""
    return PAYLOAD


@kitaru.flow
def many(n: int) -> int:
    """n checkpoints returning 100 bytes each: the registry benches' workload."""
    for i in range(n):
        payload_step(i)
    return n


#: `start` of warm-up runs: far from the timed runs' values.
WARM_UP_START = 10**9


def expected_total(n: int, start: int = 0) -> int:
    return n * start + n * (n - 1) // 2
