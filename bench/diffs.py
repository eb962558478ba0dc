"""What a diff costs beside reading the two executions: `executions.diff(a, b)` of a replay
against its original (N checkpoints, the second half changed) over two `executions.get`, and
`diff_matrix` of the original and three replays over four `get`s; medians of --repeat runs,
measured alternately in one process with its own temporary kitaru home.

    .venv/bin/python bench/diffs.py [--n 200] [--repeat 7]

Prints one JSON line. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
state = {"tone": "calm", "n": 200}

from kitaru import KitaruClient, checkpoint, flow  # noqa: E402  (cheap: loaded on first use)


@checkpoint
def step(i: int) -> dict:
    tone = state["tone"] if i >= state["n"] // 2 else "calm"
    return {"i": i, "text": f"a {tone} answer to question {i}\n" * 5, "scores": [i, i * 2]}


@flow
def many(n: int) -> int:
    for i in range(n):
        step(i)
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    (HERE / ".kitaru-home").mkdir(exist_ok=True)
    os.environ["KITARU_HOME"] = tempfile.mkdtemp(dir=HERE / ".kitaru-home")
    state["n"] = args.n
    client = KitaruClient()
    original = many.run(args.n)
    original.wait()
    replays = []
    for tone in ("calm", "bold", "terse"):
        state["tone"] = tone
        replays.append(client.executions.replay(original.exec_id, at=f"step#{args.n // 2 + 1}",
                                                wait=True).results[0].replay_exec_id)
    a, b = original.exec_id, replays[1]
    times: dict[str, list[float]] = {"get2": [], "diff": [], "get4": [], "matrix": []}
    for _ in range(args.repeat):
        for name, fn in (
            ("get2", lambda: [client.executions.get(x) for x in (a, b)]),
            ("diff", lambda: client.executions.diff(a, b)),
            ("get4", lambda: [client.executions.get(x) for x in (a, *replays)]),
            ("matrix", lambda: client.executions.diff_matrix(a)),
        ):
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    med = {k: statistics.median(v) for k, v in times.items()}
    d = client.executions.diff(a, b)
    print(json.dumps({
        "checkpoints": args.n, "changed": d.summary["changed"],
        "diff_s": round(med["diff"], 4), "two_gets_s": round(med["get2"], 4),
        "diff_over_two_gets": round(med["diff"] / med["get2"], 2),
        "matrix_s": round(med["matrix"], 4), "four_gets_s": round(med["get4"], 4),
        "matrix_over_four_gets": round(med["matrix"] / med["get4"], 2),
        "load": os.getloadavg()[0], "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
