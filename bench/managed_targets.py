"""Managed ML job targets against their local doubles: the per-call overhead their client code adds,
as a ratio to the `process` target, and how often they poll a long job.

Both stacks share one artifact store (moto's S3 server), and each double runs a job's worker as
a local process, as the `process` target does; so the difference per call is the target's
client code (submit, polling with the runner's backoff, logs) and the double's answers. A flow
of N trivial isolated calls runs on each stack, interleaved, median of the repeats:

    ratio = (seconds per call on the target) / (seconds per call on the `process` target)

Then one long call (default 150 s) runs on each target with the target's shipped defaults;
the double counts its status requests, and the figure is requests per minute after the first
minute (target: at most 12).

    .venv/bin/python bench/managed_targets.py [--calls 5] [--repeat 3] [--long-seconds 150]
    .venv/bin/python bench/run.py --only managed

Each target adds a `Double` factory to `DOUBLES`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))

MAX_POLLS_PER_MINUTE = 12
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
          "AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "eu-west-1"}


@dataclass
class Double:
    """A running double: the target's stack section, the environment it needs, and its counter."""

    execution_target: dict[str, Any]  # {"flavor": ..., "config": {...}} as a stack file writes it
    env: dict[str, str]
    status_requests: Callable[[str], list[float]]  # monotonic times of the status requests for a task
    stop: Callable[[], None]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_s3(root: Path) -> Iterator[str]:
    """moto's server for the shared artifact store; its endpoint."""
    port = _free_port()
    exe = Path(sys.executable).parent / "moto_server"
    with open(root / "moto-s3.log", "wb") as log:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def sagemaker_double(root: Path, s3_endpoint: str) -> Double:
    """moto's SageMaker and CloudWatch Logs plus the job runner (tests/services/sagemaker.py),
    with the target's shipped defaults (poll_interval 10 s)."""
    from services.sagemaker import SageMakerHarness

    root.mkdir(parents=True, exist_ok=True)
    harness = SageMakerHarness(root).start()
    config: dict[str, Any] = {
        "role_arn": "arn:aws:iam::123456789012:role/kitaru-bench", "image": "bench/agents:1",
        "output_path": "s3://kitaru-bench/sagemaker-output", "region": harness.region,
    }
    return Double({"flavor": "sagemaker", "config": config}, harness.env,
                  lambda name: list(harness.counts.describes.get(name, [])), harness.stop)


def _gcp_double(flavor: str, root: Path) -> Double:
    """The Vertex AI or Cloud Run double (tests/services/), with the target's shipped defaults
    (poll_cap 10 s); each job's worker runs as a local process."""
    from services.cloud_run_double import CloudRunDouble
    from services.vertex_double import VertexDouble

    double = (VertexDouble if flavor == "vertex" else CloudRunDouble)(root).start()
    config: dict[str, Any] = {
        "project": "kitaru-bench", "region": "europe-west4", "image": "bench/agents:1",
        "api_endpoint": double.url, "logging_endpoint": double.url, "credentials": "anonymous",
    }
    return Double({"flavor": flavor, "config": config}, {}, double.status_times, double.stop)


def vertex_double(root: Path, s3_endpoint: str) -> Double:
    return _gcp_double("vertex", root)


def cloud_run_double(root: Path, s3_endpoint: str) -> Double:
    return _gcp_double("cloud-run", root)


def azureml_double(root: Path, s3_endpoint: str) -> Double:
    """The Azure ML double (tests/services/azureml_double.py), which runs each command job's
    worker as a local process, with the target's shipped defaults (poll_cap 10 s)."""
    from services.azureml_double import AzureMLDouble

    root.mkdir(parents=True, exist_ok=True)
    double = AzureMLDouble(root).start()
    config = {key: value for key, value in double.target_config().items() if key != "poll_cap"}
    return Double({"flavor": "azureml", "config": config}, {}, double.status_requests, double.stop)


#: target name -> factory(folder for its files, the S3 endpoint) (each target adds one line).
DOUBLES: dict[str, Callable[[Path, str], Double]] = {
    "vertex": vertex_double,
    "cloud-run": cloud_run_double,
    "sagemaker": sagemaker_double,
    "azureml": azureml_double,
}


def _register(name: str, store: dict[str, Any], target: dict[str, Any]) -> None:
    import yaml

    from kitaru_core.stack import StackStore

    path = Path(os.environ["KITARU_HOME"]) / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"name": name, "artifact_store": store, "execution_target": target}))
    StackStore().register(path, force=True)


def run(repeat: int = 3, calls: int = 5, long_seconds: float = 150.0,
        targets: list[str] | None = None) -> dict[str, Any]:
    """The figure for each target in `targets` (default all of `DOUBLES`)."""
    chosen = targets or sorted(DOUBLES)
    root = Path(tempfile.mkdtemp(prefix="kitaru-bench-managed-"))
    os.environ["KITARU_HOME"] = str(root / "home")
    os.environ["KITARU_INTERACTIVE"] = "0"
    os.environ.update(S3_ENV)
    out: dict[str, Any] = {"calls": calls, "repeat": repeat, "long_seconds": long_seconds, "targets": {}}
    with moto_s3(root) as s3_endpoint:
        os.environ["AWS_ENDPOINT_URL_S3"] = s3_endpoint
        import boto3

        boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(
            Bucket="kitaru-bench", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        store = {"flavor": "s3", "config": {"path": f"s3://kitaru-bench/{uuid.uuid4().hex}",
                                            "region": "eu-west-1", "endpoint_url": s3_endpoint}}
        _register("bench-process", store, {"flavor": "process"})
        for name in chosen:
            out["targets"][name] = _one_target(name, root, s3_endpoint, store, repeat, calls, long_seconds)
    out["load_average"] = os.getloadavg()
    return out


def _one_target(name: str, root: Path, s3_endpoint: str, store: dict[str, Any], repeat: int, calls: int,
                long_seconds: float) -> dict[str, Any]:
    import kitaru
    from kitaru_core.testing import tasks

    step = kitaru.checkpoint(tasks.echo, name="echo_step", runtime="isolated")
    hold = kitaru.checkpoint(tasks.sleep_then, name="long_step", runtime="isolated")

    @kitaru.flow
    def chain(n: int, start: int) -> int:
        return sum(step(start + i).load() for i in range(n))

    @kitaru.flow
    def long_call(seconds: float) -> str:
        return hold(seconds, "done").load()

    def timed(stack: str, start: int) -> float:
        t0 = time.perf_counter()
        chain.run(calls, start, stack=stack).wait(timeout=600)
        return time.perf_counter() - t0

    double = DOUBLES[name](root / name, s3_endpoint)
    try:
        os.environ.update(double.env)
        _register(f"bench-{name}", store, double.execution_target)
        timed("bench-process", -10**6)  # warm both: imports, .pyc files, the bucket
        timed(f"bench-{name}", -10**6)
        on_target, on_process = [], []
        for r in range(repeat):
            on_target.append(timed(f"bench-{name}", r * 10**4))
            on_process.append(timed("bench-process", r * 10**4))
    finally:
        double.stop()
    per_target = statistics.median(on_target) / calls
    per_process = statistics.median(on_process) / calls
    result: dict[str, Any] = {
        "per_call_s": {name: round(per_target, 4), "process": round(per_process, 4)},
        "added_per_call_s": round(per_target - per_process, 4),
        "ratio_to_process": round(per_target / per_process, 2),
    }
    if long_seconds > 0:
        shipped = DOUBLES[name](root / f"{name}-long", s3_endpoint)
        try:
            os.environ.update(shipped.env)
            _register(f"bench-{name}-long", store, shipped.execution_target)
            handle = long_call.run(long_seconds, stack=f"bench-{name}-long")
            handle.wait(timeout=long_seconds + 600)
            times = shipped.status_requests(_task_name(handle.exec_id))
        finally:
            shipped.stop()
        result["long_call"] = _polls(times, long_seconds)
    return result


def _task_name(exec_id: str) -> str:
    from kitaru_core.task_names import task_name

    return task_name(exec_id, "long_step#1", 1)


def _polls(times: list[float], seconds: float) -> dict[str, Any]:
    """Status requests per minute after the first minute of the job."""
    if not times:
        return {"status_requests": 0, "per_minute_after_first": 0.0, "met": True}
    first = times[0]
    late = [t for t in times if t - first >= 60.0]
    span = (times[-1] - first) - 60.0
    rate = 60.0 * len(late) / span if span > 0 else 0.0
    return {"status_requests": len(times), "per_minute_after_first": round(rate, 2),
            "target": f"<= {MAX_POLLS_PER_MINUTE}", "met": rate <= MAX_POLLS_PER_MINUTE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--long-seconds", type=float, default=150.0,
                        help="length of the long call whose polling is counted (0: skip)")
    parser.add_argument("--targets", help=f"comma-separated subset of: {', '.join(sorted(DOUBLES))}")
    args = parser.parse_args()
    targets = args.targets.split(",") if args.targets else None
    print(json.dumps(run(args.repeat, args.calls, args.long_seconds, targets), indent=2))


if __name__ == "__main__":
    main()
