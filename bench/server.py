"""Requests per second for one execution: `GET /api/v1/executions/{id}` through a real
kitaru server against `KitaruClient().executions.get` directly, as a ratio, in one run.

    .venv/bin/python bench/server.py [--checkpoints 20] [--seconds 5] [--rounds 3] [--threads 1]

In a temporary kitaru home it runs a flow of `--checkpoints` checkpoints, creates an API key
and starts `kitaru server start` (uvicorn, a separate process) on 127.0.0.1. Each round
then measures, for `--seconds` each and alternating the sides so both see the same
machine: `KitaruClient().executions.get(ID)` in this process (the direct figure) and
`GET /api/v1/executions/ID` with the key over one keep-alive httpx connection per thread
(the server figure: authentication, the same `executions.get`, JSON encoding and HTTP).
Prints both rates per round and the median ratio server/direct (1.0: the server costs
nothing; 0.5: half the rate). Not a test: it asserts nothing.
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
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _record(checkpoints: int) -> str:
    from kitaru import checkpoint, flow

    @checkpoint
    def step(n: int) -> str:
        return f"step {n}: " + "x" * 100

    @flow
    def bench_flow(count: int) -> int:
        for n in range(count):
            step(n)
        return count

    handle = bench_flow.run(checkpoints)
    handle.wait()
    return handle.exec_id


@contextlib.contextmanager
def running_server() -> Iterator[tuple[str, str]]:
    """`kitaru server start` (no recovery sweeps) on a free port of this kitaru home, with a
    new `read` key, once `/ready` answers: (base URL, key). Stopped on exit."""
    import httpx

    cli = [sys.executable, "-m", "kitaru.cli.main"]
    subprocess.run([*cli, "auth", "service-accounts", "create", "bench"], capture_output=True, check=True)
    token = json.loads(subprocess.run([*cli, "auth", "api-keys", "create", "bench", "--scope", "read",
                                       "-o", "json"], capture_output=True, text=True,
                                      check=True).stdout)["token"]
    port = _free_port()
    server = subprocess.Popen([*cli, "server", "start", "--port", str(port), "--recovery-interval", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        yield base, token
    finally:
        server.terminate()
        server.wait(timeout=60)


def _rate(call: Any, seconds: float, threads: int) -> float:
    """Calls per second of `call` (a factory of per-thread callables) over `seconds`."""
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        one = call()
        n = 0
        while time.perf_counter() < stop:
            one()
            n += 1
        counts[i] = n

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="kitaru-bench-server-"))
    os.environ["KITARU_HOME"] = str(home)
    os.environ["KITARU_INTERACTIVE"] = "0"
    import httpx

    from kitaru import KitaruClient

    exec_id = _record(args.checkpoints)
    with running_server() as (base, token):
        client = KitaruClient()
        client.executions.get(exec_id)

        def direct() -> Any:
            return lambda: client.executions.get(exec_id)

        def over_http() -> Any:
            http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
            url = f"/api/v1/executions/{exec_id}"

            def one() -> None:
                http.get(url).raise_for_status()

            return one

        over_http()()  # the first request builds the server's state
        rounds = []
        for r in range(args.rounds):
            order = [("direct", direct), ("server", over_http)]
            if r % 2:
                order.reverse()
            rates = {name: _rate(make, args.seconds, args.threads) for name, make in order}
            rounds.append(rates)
            print(f"round {r + 1}: direct {rates['direct']:.0f}/s, server {rates['server']:.0f}/s, "
                  f"ratio {rates['server'] / rates['direct']:.2f}", flush=True)
        ratios = [r["server"] / r["direct"] for r in rounds]
        result = {
            "checkpoints": args.checkpoints, "threads": args.threads, "seconds": args.seconds,
            "direct_per_s": statistics.median(r["direct"] for r in rounds),
            "server_per_s": statistics.median(r["server"] for r in rounds),
            "ratio_server_to_direct": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
