"""Figure (i): the `postgres` registry against bare psycopg on the same server, in one run.

    .venv/bin/python bench/postgres.py [--steps 200] [--repeat 9] [--executions 100000]
                                       [--servers durable,fsync-off]

Starts a throwaway PostgreSQL server on 127.0.0.1 (Debian's binaries, as the tests do), once
per `--servers` entry: `durable` keeps the server's own defaults (fsync, synchronous_commit
and full-page writes on: what a production server runs with), `fsync-off` uses the test
suite's settings (all three off, so a commit costs no disk flush). On each it measures,
alternating the two sides round by round so both see the same machine:

- per checkpoint: flows of `--steps` and 2 x `--steps` checkpoints returning 100-byte
  strings on a stack whose registry is `postgres` (artifacts in a local folder); the
  difference divided by the steps is a checkpoint's cost without the run's start and end;
  baseline: one psycopg INSERT of a 100-byte row plus COMMIT per step (what recording
  a step in PostgreSQL costs at the least). The figure is the median of the per-round
  ratios (the ratio of the medians beside it). Target: at most 1.5x.
- at scale (on the first server): with `--executions` executions recorded, the registry
  reads behind `kitaru executions list --limit 50` and `kitaru executions get ID` (by full
  id and by an 8-character prefix, with the execution's calls). Target: under 50 ms each.

Prints its figures and writes `bench/results-postgres.json`. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the PostgreSQL server helper the tests use


def _flow_stack(home: Path, url: str) -> None:
    import yaml

    from kitaru_core.stack import StackStore

    path = home / "pg.yaml"
    path.write_text(yaml.safe_dump({
        "name": "pg", "registry": {"flavor": "postgres", "config": {"url": url}},
        "artifact_store": {"flavor": "local"}, "orchestrator": {"flavor": "local"},
        "execution_target": {"flavor": "inline"},
    }))
    StackStore(home).register(path, activate=True, force=True)


def per_checkpoint(url: str, *, steps: int, repeat: int) -> dict[str, Any]:
    import psycopg
    from _flows import PAYLOAD as payload
    from _flows import many

    conn = psycopg.connect(url)
    conn.execute("CREATE TABLE IF NOT EXISTS bare_steps (id TEXT PRIMARY KEY, body TEXT)")
    conn.commit()

    def bare() -> float:
        t = time.perf_counter()
        for _ in range(steps):
            conn.execute("INSERT INTO bare_steps VALUES (%s, %s)", (uuid.uuid4().hex, payload))
            conn.commit()
        return (time.perf_counter() - t) / steps

    def kitaru_flow() -> float:
        # The slope between a flow of `steps` and one of 2 x `steps` checkpoints: the cost of a
        # checkpoint, without the run's own start and end (create, claim, finish).
        t = time.perf_counter()
        many(steps)
        short = time.perf_counter() - t
        t = time.perf_counter()
        many(2 * steps)
        return (time.perf_counter() - t - short) / steps

    kitaru_flow(), bare()  # warm up: imports, pool, prepared statements
    samples: dict[str, list[float]] = {"bare": [], "kitaru": []}
    for r in range(repeat):
        for side in (("bare", "kitaru") if r % 2 == 0 else ("kitaru", "bare")):
            samples[side].append(bare() if side == "bare" else kitaru_flow())
    conn.close()
    b, k = statistics.median(samples["bare"]), statistics.median(samples["kitaru"])
    paired = [kv / bv for kv, bv in zip(samples["kitaru"], samples["bare"], strict=True)]
    ratio = statistics.median(paired)
    return {"steps": steps, "repeat": repeat, "bare_ms": b * 1e3, "kitaru_ms": k * 1e3,
            "ratio": ratio, "ratio_of_medians": k / b, "ratio_per_round": paired,
            "target": 1.5, "met": ratio <= 1.5,
            "samples_ms": {n: [v * 1e3 for v in vs] for n, vs in samples.items()}}


def at_scale(url: str, *, executions: int) -> dict[str, Any]:
    import psycopg

    from kitaru_core.stack import get_stack

    registry = get_stack().registry
    one = None
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        now = time.time()
        with cur.copy("COPY executions (exec_id, flow_name, status, flow_ref, stack, created_at, "
                      "started_at, ended_at, version) FROM STDIN") as copy:
            for i in range(executions):
                eid = uuid.uuid4().hex
                one = one or eid
                copy.write_row((eid, f"flow{i % 20}", ("completed", "failed", "waiting")[i % 3],
                                "{}", "{}", now - executions + i, now, now, 1))
        with cur.copy("COPY calls (exec_id, call_id, name, seq, status) FROM STDIN") as copy:
            for j in range(20):
                copy.write_row((one, f"step#{j + 1}", "step", j + 1, "completed"))
    assert one is not None

    def timed(fn: Any, n: int = 21) -> float:
        fn()
        values = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            values.append(time.perf_counter() - t)
        return statistics.median(values) * 1e3

    figures = {
        "list_limit_50_ms": timed(lambda: registry.list_executions(limit=50)),
        "list_status_limit_50_ms": timed(lambda: registry.list_executions(status="waiting", limit=50)),
        "get_full_id_with_calls_ms": timed(
            lambda: (registry.get_execution(one), registry.get_calls(one))),
        "get_prefix_with_calls_ms": timed(
            lambda: (registry.get_execution(one[:8]), registry.get_calls(one))),
    }
    return {"executions": executions, **figures, "target_ms": 50,
            "met": all(v < 50 for v in figures.values())}


SERVERS = {
    "durable": "the server's own defaults: fsync, synchronous_commit and full-page writes on",
    "fsync-off": "the test suite's throwaway settings: fsync, synchronous_commit, full-page writes off",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--servers", default="durable,fsync-off",
                        help="comma-separated: durable (a production server's settings), fsync-off")
    parser.add_argument("--output", default=str(Path(__file__).with_name("results-postgres.json")))
    args = parser.parse_args(argv)
    from services.postgres import running_postgres

    from kitaru_core.stack import clear_stack_cache

    results: dict[str, Any] = {"load_average_before": os.getloadavg(), "per_checkpoint": {}}
    servers = [name for name in args.servers.split(",") if name]
    with tempfile.TemporaryDirectory(prefix="kitaru-bench-pg-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        os.environ["KITARU_HOME"] = str(home)
        os.environ["KITARU_INTERACTIVE"] = "0"
        for name in servers:
            with running_postgres(durable=name == "durable") as server:
                url = server.create_database("bench")
                _flow_stack(home, url)
                clear_stack_cache()
                figure = per_checkpoint(url, steps=args.steps, repeat=args.repeat)
                results["per_checkpoint"][name] = {"server": SERVERS[name], **figure}
                if name == servers[0] and args.executions:
                    scale_url = server.create_database("scale")
                    _flow_stack(home, scale_url)
                    clear_stack_cache()
                    results["at_scale"] = at_scale(scale_url, executions=args.executions)
                clear_stack_cache()
    results["load_average_after"] = os.getloadavg()
    for name, pc in results["per_checkpoint"].items():
        print(f"(i) postgres ({name}), per checkpoint: kitaru {pc['kitaru_ms']:.3f} ms, bare "
              f"INSERT+COMMIT {pc['bare_ms']:.3f} ms -> {pc['ratio']:.2f}x per round "
              f"({pc['ratio_of_medians']:.2f}x of medians; target <= 1.5x: "
              f"{'met' if pc['met'] else 'MISSED'})")
    sc = results.get("at_scale")
    if sc:
        print(f"(i) postgres, {sc['executions']:,} executions: list --limit 50 "
              f"{sc['list_limit_50_ms']:.2f} ms, list --status --limit 50 "
              f"{sc['list_status_limit_50_ms']:.2f} ms, "
              f"get (full id) {sc['get_full_id_with_calls_ms']:.2f} ms, "
              f"get (prefix) {sc['get_prefix_with_calls_ms']:.2f} ms (target < 50 ms: "
              f"{'met' if sc['met'] else 'MISSED'})")
    print(f"load average {results['load_average_before']} before, {results['load_average_after']} after")
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
