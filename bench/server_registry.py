"""Recording checkpoints through the `server` registry against the direct registry, in one run.

    .venv/bin/python bench/server_registry.py [--steps 200] [--repeat 9]

Starts `kitaru server start` on 127.0.0.1 over a SQLite registry in a temporary home (an
`operator` API key made for it), then in this process, alternating the two sides round by
round so both see the same machine, runs a flow of `--steps` checkpoints returning 100-byte
strings on two stacks that differ only in their registry:

- `direct`: a `sqlite` registry (the same flavor the server serves, in a file of its own);
- `server`: the `server` registry pointed at that server (one HTTP request per checkpoint,
  on a kept-alive connection, to a server that records it in its SQLite file).

Both keep artifacts in the same local folder. A checkpoint's cost is the flow's time divided
by `--steps` (the run's own start and end, a few registry calls, spread over the steps: on a
loaded machine the slope between two flow lengths came out negative for the direct side).
The figure is the median of the per-round ratios server / direct (the ratio of the medians
beside it), plus requests per second of a bare `get_execution` through the flavor. Prints its figures and
writes `bench/results-server-registry.json`. Nothing here is a test; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the server helper the tests use


def _stacks(home: Path, url: str, artifacts: Path) -> None:
    import yaml

    from kitaru_core.stack import StackStore

    store = {"flavor": "local", "config": {"root": str(artifacts)}}
    registries = {
        "direct": {"flavor": "sqlite", "config": {"path": str(home / "direct.db")}},
        "remote": {"flavor": "server", "config": {"url": url, "api_key": "${env:KITARU_API_KEY}"}},
    }
    for name, registry in registries.items():
        path = home / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "registry": registry, "artifact_store": store,
                                        "orchestrator": {"flavor": "local"},
                                        "execution_target": {"flavor": "inline"}}))
        StackStore(home).register(path, force=True)


def per_checkpoint(*, steps: int, repeat: int) -> dict[str, Any]:
    from _flows import many

    def per_step(stack: str) -> float:
        t = time.perf_counter()
        many.run(steps, stack=stack).wait(timeout=600)
        return (time.perf_counter() - t) / steps

    per_step("direct"), per_step("remote")  # warm up: imports, schema, connections
    samples: dict[str, list[float]] = {"direct": [], "remote": []}
    for r in range(repeat):
        for side in (("direct", "remote") if r % 2 == 0 else ("remote", "direct")):
            samples[side].append(per_step(side))
    d, s = statistics.median(samples["direct"]), statistics.median(samples["remote"])
    paired = [sv / dv for sv, dv in zip(samples["remote"], samples["direct"], strict=True)]
    return {"steps": steps, "repeat": repeat, "direct_ms": d * 1e3, "server_ms": s * 1e3,
            "ratio": statistics.median(paired), "ratio_of_medians": s / d, "ratio_per_round": paired,
            "samples_ms": {n: [v * 1e3 for v in vs] for n, vs in samples.items()}}


def reads_per_second(*, seconds: float = 2.0) -> dict[str, Any]:
    from kitaru_core.stack import get_stack

    direct, remote = get_stack("direct").registry, get_stack("remote").registry
    exec_id = direct.list_executions(limit=1)[0].exec_id
    remote_id = remote.list_executions(limit=1)[0].exec_id
    out: dict[str, Any] = {}
    for name, registry, eid in (("direct", direct, exec_id), ("server", remote, remote_id)):
        registry.get_execution(eid)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            registry.get_execution(eid)
            n += 1
        out[f"{name}_per_s"] = n / (time.perf_counter() - t0)
    out["ratio"] = out["direct_per_s"] / out["server_per_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--output", default=str(Path(__file__).with_name("results-server-registry.json")))
    args = parser.parse_args(argv)
    from services.kitaru_server import running_server

    from kitaru_core.stack import clear_stack_cache

    results: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                               "cpus": os.cpu_count(), "load_average_before": os.getloadavg()}
    (ROOT / "bench" / ".kitaru-home").mkdir(exist_ok=True)  # git-ignored, like run.py's homes
    with tempfile.TemporaryDirectory(prefix="kitaru-bench-srv-", dir=ROOT / "bench" / ".kitaru-home") as tmp:
        root = Path(tmp)
        with running_server(root / "server") as server:
            home = root / "client"
            home.mkdir()
            os.environ["KITARU_HOME"] = str(home)
            os.environ["KITARU_INTERACTIVE"] = "0"
            os.environ["KITARU_API_KEY"] = server.tokens["operator"]
            _stacks(home, server.url, root / "artifacts")
            clear_stack_cache()
            results["per_checkpoint"] = per_checkpoint(steps=args.steps, repeat=args.repeat)
            results["get_execution"] = reads_per_second()
            clear_stack_cache()
    results["load_average_after"] = os.getloadavg()
    pc, rd = results["per_checkpoint"], results["get_execution"]
    print(f"server registry, per checkpoint: server {pc['server_ms']:.3f} ms, direct sqlite "
          f"{pc['direct_ms']:.3f} ms -> {pc['ratio']:.2f}x per round ({pc['ratio_of_medians']:.2f}x "
          "of medians)")
    print(f"server registry, get_execution: {rd['server_per_s']:.0f}/s through the server, "
          f"{rd['direct_per_s']:.0f}/s direct -> {rd['ratio']:.2f}x")
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
