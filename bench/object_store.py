"""Figure (f): put/get of 1 MB and 100 MB blobs through the `s3` store vs raw s3fs.

    .venv/bin/python bench/object_store.py            # 1 MB x 60 rounds, 100 MB x 15 rounds
    .venv/bin/python bench/object_store.py --quick    # 1 MB x 5, 100 MB x 1

Both sides talk to the same moto server (started here on 127.0.0.1) from the same process:
`S3ArtifactStore.put_blob` / `get_blob` against `s3fs.S3FileSystem.pipe_file` / `cat_file`
with the same endpoint. Each round puts a new value (fresh bytes, so a new key: the store must
upload it) through each side, then reads it back; the order of the two sides alternates by
round. The figure is the median over rounds of each round's store time / raw time. Target:
at most 1.1x. Prints a table and writes bench/results-object-store.json.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
MiB = 2**20
TARGET = 1.1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.05)


def measure(endpoint: str, size: int, rounds: int) -> dict[str, Any]:
    import s3fs

    from kitaru_core.interfaces import ComponentContext
    from kitaru_core.plugins.manager import PluginManager

    manager = PluginManager()
    manager.load_entry_points()
    flavor = manager.flavor("artifact_store", "s3")
    config = flavor.config.model_validate(
        {"path": "s3://bench/kitaru", "region": "us-east-1", "endpoint_url": endpoint})
    home = Path(tempfile.mkdtemp(prefix="kitaru-bench-"))
    store = flavor.load_class()(config, ComponentContext(home=home, stack_name="bench"))
    raw = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True, use_listings_cache=False,
                            client_kwargs={"region_name": "us-east-1"})
    if not raw.exists("bench"):
        s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir("bench")
    base = bytearray(os.urandom(size))
    store.put_blob(b"warm-up" * 1000, hashlib.sha256(b"warm-up" * 1000).hexdigest())  # build the fs
    raw.pipe_file("bench/raw/warm-up", b"warm-up")
    samples: dict[str, list[float]] = {"store_put": [], "raw_put": [], "store_get": [], "raw_get": []}
    for r in range(rounds):
        sides = ["raw", "store"] if r % 2 == 0 else ["store", "raw"]
        for side in sides:
            base[:16] = os.urandom(16)  # new content, new key: a real upload
            data = bytes(base)
            key = hashlib.sha256(data).hexdigest()
            if side == "raw":
                path = f"bench/raw/{key}"
                t0 = time.perf_counter()
                raw.pipe_file(path, data)
                t1 = time.perf_counter()
                got = raw.cat_file(path)
                t2 = time.perf_counter()
            else:
                t0 = time.perf_counter()
                store.put_blob(data, key)
                t1 = time.perf_counter()
                got = store.get_blob(key)
                t2 = time.perf_counter()
            assert got == data
            del got, data  # neither side pays for freeing the other's buffers
            gc.collect()
            samples[f"{side}_put"].append(t1 - t0)
            samples[f"{side}_get"].append(t2 - t1)
    out: dict[str, Any] = {"size": size, "rounds": rounds, "samples_s": samples}
    for op in ("put", "get"):
        ratios = [s / r for s, r in zip(samples[f"store_{op}"], samples[f"raw_{op}"], strict=True)]
        out[op] = {
            "store_median_s": statistics.median(samples[f"store_{op}"]),
            "raw_median_s": statistics.median(samples[f"raw_{op}"]),
            "ratio": statistics.median(ratios),
            "ratio_of_medians": statistics.median(samples[f"store_{op}"])
            / statistics.median(samples[f"raw_{op}"]),
            "ratio_samples": ratios,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--rounds", type=int, default=60, help="rounds of 1 MB")
    parser.add_argument("--large-rounds", type=int, default=15, help="rounds of 100 MB")
    parser.add_argument("--output", default=str(BENCH / "results-object-store.json"))
    args = parser.parse_args(argv)
    plan = [(1 * MiB, 5 if args.quick else args.rounds), (100 * MiB, 1 if args.quick else args.large_rounds)]
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    load_before = os.getloadavg()
    proc, endpoint = start_moto()
    try:
        results = [measure(endpoint, size, rounds) for size, rounds in plan]
    finally:
        proc.terminate()
        proc.wait()
    print(f"{'figure':<28}{'store (median)':>16}{'raw s3fs':>12}{'ratio':>8}{'of medians':>12}"
          f"{'target':>8}  met")
    failed = False
    for res in results:
        for op in ("put", "get"):
            fig = res[op]
            met = fig["ratio"] <= TARGET
            failed |= not met
            name = f"(f) s3 {op} {res['size'] // MiB} MB"
            print(f"{name:<28}{fig['store_median_s'] * 1000:>13.1f} ms{fig['raw_median_s'] * 1000:>9.1f} ms"
                  f"{fig['ratio']:>7.3f}x{fig['ratio_of_medians']:>11.3f}x{TARGET:>7.1f}x  "
                  f"{'met' if met else 'MISSED'}")
    Path(args.output).write_text(json.dumps({
        "figure": "object_store", "target_ratio": TARGET, "results": results,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "load_before": load_before,
                    "load_after": os.getloadavg()},
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
