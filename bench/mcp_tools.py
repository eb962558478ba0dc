"""Calls per second of the MCP tool `kitaru_executions_get` over stdio (`kitaru-mcp`) and over
streamable HTTP (the server's `/mcp`), against `KitaruClient().executions.get` directly and
`GET /api/v1/executions/{id}` of the same server, as ratios, in one run.

    .venv/bin/python bench/mcp_tools.py [--checkpoints 20] [--seconds 5] [--rounds 3]

In a temporary kitaru home it records a flow of `--checkpoints` checkpoints, creates an API key
and starts `kitaru server start` (a separate process) on 127.0.0.1 and `kitaru-mcp` (a
separate process, spoken to over its stdin/stdout). Each round measures, for `--seconds`
each and alternating the order: the direct call in this process, the REST route over one
keep-alive connection, the MCP tool over HTTP (the `mcp` client library, one connection) and
the MCP tool over stdio, one call at a time. Prints the rates per round and the median ratio
of each to the direct call. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server import _record, running_server


async def _rate(call: Callable[[], Awaitable[Any]], seconds: float) -> float:
    await call()
    n = 0
    start = time.perf_counter()
    stop = start + seconds
    while time.perf_counter() < stop:
        await call()
        n += 1
    return n / (time.perf_counter() - start)


async def _measure(args: argparse.Namespace, exec_id: str, base: str, token: str) -> list[dict[str, float]]:
    import httpx
    import httpx2
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client

    from kitaru import KitaruClient

    client = KitaruClient()
    script = Path(sys.executable).parent / "kitaru-mcp"
    stdio = StdioServerParameters(command=str(script), env={
        "KITARU_HOME": os.environ["KITARU_HOME"], "KITARU_INTERACTIVE": "0"})
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers) as rest, \
            httpx2.AsyncClient(headers=headers, timeout=60) as http2, \
            Client(streamable_http_client(f"{base}/mcp", http_client=http2)) as over_http, \
            Client(stdio) as over_stdio:

        async def direct() -> None:
            client.executions.get(exec_id)

        async def rest_get() -> None:
            (await rest.get(f"/api/v1/executions/{exec_id}")).raise_for_status()

        def tool(session: Any) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                result = await session.call_tool("kitaru_executions_get", {"exec_id": exec_id})
                assert not result.is_error, result.content

            return call

        sides = [("direct", direct), ("rest", rest_get), ("mcp_http", tool(over_http)),
                 ("mcp_stdio", tool(over_stdio))]
        rounds = []
        for r in range(args.rounds):
            order = sides if r % 2 == 0 else list(reversed(sides))
            rates = {name: await _rate(call, args.seconds) for name, call in order}
            rounds.append(rates)
            print(f"round {r + 1}: " + ", ".join(f"{n} {rates[n]:.0f}/s" for n, _ in sides), flush=True)
        return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="kitaru-bench-mcp-"))
    os.environ["KITARU_HOME"] = str(home)
    os.environ["KITARU_INTERACTIVE"] = "0"

    exec_id = _record(args.checkpoints)
    with running_server() as (base, token):
        rounds = asyncio.run(_measure(args, exec_id, base, token))
        result: dict[str, Any] = {"checkpoints": args.checkpoints, "seconds": args.seconds}
        for name in ("direct", "rest", "mcp_http", "mcp_stdio"):
            result[f"{name}_per_s"] = statistics.median(r[name] for r in rounds)
        for name in ("rest", "mcp_http", "mcp_stdio"):
            result[f"ratio_{name}_to_direct"] = statistics.median(r[name] / r["direct"] for r in rounds)
        result["ratio_mcp_http_to_rest"] = statistics.median(r["mcp_http"] / r["rest"] for r in rounds)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
