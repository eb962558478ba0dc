"""Peak memory of a checkpoint whose output is one large `str` (default 200 MB).

Each variant runs in a fresh process (`_harness`) with its own kitaru home:

- `save`: a flow whose checkpoint builds the string and returns it, so kitaru
  serializes it, hashes it and writes it to the artifact store;
- `load`: a fresh process loads that artifact back (`KitaruClient().artifacts.get(id).load()`).

The figure is the process's peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) less its
RSS just before the step, as a ratio to the value's size: the value itself counts once, so
1.0 means kitaru held no copy. Target: below 2.0 for `save` (the issue's figure before
streaming: 651 MB for 200 MB, 3.3x).

    .venv/bin/python bench/large_value.py            # both variants, 200 MB
    .venv/bin/python bench/large_value.py --mb 50
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from typing import Any

NAME = "large_value"
TARGET_RATIO = 2.0


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _save(params: dict[str, Any]) -> dict[str, Any]:
    import kitaru
    from kitaru import checkpoint, flow

    size = params["bytes"]

    @checkpoint
    def produce(n: int) -> str:
        return "x" * n

    @flow
    def large_output(n: int) -> int:
        return len(produce(n).load())

    assert large_output.run(10).wait() == 10  # warm-up: imports, stack, schema
    before = _rss_bytes()
    handle = large_output.run(size)
    assert handle.wait() == size
    peak = _peak_bytes()
    art = kitaru.KitaruClient().executions.get(handle.exec_id).checkpoints[0].output
    return {"bytes": size, "rss_before": before, "peak": peak,
            "ratio": (peak - before) / size, "artifact_id": art.artifact_id}


def _load(params: dict[str, Any]) -> dict[str, Any]:
    import kitaru

    client = kitaru.KitaruClient()
    art = client.artifacts.get(params["artifact_id"])
    before = _rss_bytes()
    value = art.load()
    peak = _peak_bytes()
    assert len(value) == params["bytes"]
    return {"bytes": params["bytes"], "rss_before": before, "peak": peak,
            "ratio": (peak - before) / params["bytes"]}


def _child(variant: str, params: dict[str, Any]) -> None:
    result = {"save": _save, "load": _load}[variant](params)
    print(json.dumps(result))


def run(*, mb: int = 200) -> dict[str, Any]:
    import subprocess
    import tempfile

    size = mb * 1_000_000
    out: dict[str, Any] = {"bytes": size, "target": f"save < {TARGET_RATIO}x the value's size"}
    with tempfile.TemporaryDirectory(prefix="kitaru-bench-large-") as home:
        env = {**os.environ, "KITARU_HOME": home, "KITARU_INTERACTIVE": "0"}
        env.pop("KITARU_STACK", None)
        saved: dict[str, Any] = {}
        for variant in ("save", "load"):
            params = {"bytes": size, **({"artifact_id": saved["artifact_id"]} if saved else {})}
            proc = subprocess.run(
                [sys.executable, __file__, "--child", variant, json.dumps(params)],
                env=env, capture_output=True, text=True, check=True,
            )
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            if variant == "save":
                saved = result
            out[variant] = {k: v for k, v in result.items() if k != "artifact_id"}
    out["met"] = out["save"]["ratio"] < TARGET_RATIO
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the string, in MB")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "PARAMS"), help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.child:
        _child(ns.child[0], json.loads(ns.child[1]))
        return 0
    result = run(mb=ns.mb)
    mb = result["bytes"] / 1e6
    for variant in ("save", "load"):
        r = result[variant]
        print(f"{variant}: peak {(r['peak'] - r['rss_before']) / 1e6:.0f} MB above the "
              f"{r['rss_before'] / 1e6:.0f} MB before, for a {mb:.0f} MB str: {r['ratio']:.2f}x")
    print(f"target {result['target']}: {'met' if result['met'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
