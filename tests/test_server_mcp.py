"""The MCP tools over streamable HTTP at the server's `/mcp`: the REST API's API keys and
scopes, in process and against a real `kitaru server start` process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from conftest import run_cli
from e2e_flows.harness import Processes
from kitaru_server.app import create_app
from kitaru_server.settings import ServerSettings
from test_mcp import BRIEF, KITARU_TOOLS, Session


@pytest.fixture
def app(kitaru_home: Path):
    return create_app(ServerSettings(key_cache_seconds=0, input_rate=0.01, input_burst=2))


@pytest.fixture
def tokens(app) -> dict[str, str]:
    keys = app.state.kitaru.keys
    keys.create_account("agent")
    return {scope: keys.create_key("agent", scope=scope)[1] for scope in ("read", "operator")}


@asynccontextmanager
async def mcp_session(url: str, token: str | None, *, app: Any = None) -> AsyncIterator[Session]:
    """An MCP client session over streamable HTTP (to `app` in process when given)."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx2.ASGITransport(app=app) if app is not None else None
    async with httpx2.AsyncClient(headers=headers, transport=transport, timeout=60) as http, \
            Client(streamable_http_client(url, http_client=http)) as client:
        yield Session(client)


def test_mcp_refuses_a_request_without_a_valid_key(app) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as http:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        plain = http.post("/mcp", json=ping)
        assert plain.status_code == 401 and plain.headers["www-authenticate"] == "Bearer"
        assert "kitaru auth api-keys create" in plain.json()["detail"]
        junk = http.post("/mcp", json=ping, headers={"Authorization": "Bearer kitaru_0123456789abcdef_"
                                                     + "x" * 43})
        assert junk.status_code == 401
    assert "/mcp" not in app.openapi()["paths"]


def test_mcp_tools_run_within_the_keys_scope_on_the_servers_stack(app, tokens: dict[str, str]) -> None:
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with app.router.lifespan_context(app):
            async with mcp_session("http://testserver/mcp", tokens["read"], app=app) as s:
                out["tools"] = {t.name for t in (await s.client.list_tools()).tools}
                out["status"] = await s.call("kitaru_status")
                out["listed"] = await s.call("kitaru_executions_list")
                out["cancel"] = await s.error("kitaru_executions_cancel", exec_id="abc")
                out["set"] = await s.error("kitaru_memory_set", key="k", value=1, scope="team")
            async with mcp_session("http://testserver/mcp", tokens["operator"], app=app) as s:
                out["written"] = await s.call("kitaru_memory_set", key="k", value=1, scope="team")
                out["secret"] = await s.error("kitaru_secrets_create", name="s", values={"a": "b"})
                out["deploy"] = await s.error("kitaru_deployments_deploy", target="flows.py:brief")
                out["inputs"] = [await s.error("kitaru_executions_input", exec_id="abc", wait="go",
                                               value=True) for _ in range(3)]
        return out

    out = asyncio.run(main())
    assert out["tools"] == KITARU_TOOLS
    assert out["status"]["connection"] == "server" and out["status"]["stack"] == "local"
    assert out["listed"] == []
    assert "needs an API key with the 'operator' scope; this key has 'read'" in out["cancel"]
    assert "'operator' scope" in out["set"]
    assert out["written"]["version"] == 1
    assert "'admin' scope" in out["secret"] and "'admin' scope" in out["deploy"]
    assert ["too many inputs" in m for m in out["inputs"]] == [False, False, True]
    assert "abc" in out["inputs"][0]


@pytest.mark.slow
def test_mcp_over_http_against_a_server_process_runs_a_flow_through_its_wait(tmp_path: Path) -> None:
    assert run_cli("auth", "service-accounts", "create", "agent").returncode == 0
    made = run_cli("auth", "api-keys", "create", "agent", "--scope", "operator", "-o", "json")
    token = json.loads(made.stdout)["token"]
    with Processes(tmp_path / "logs") as procs:
        server, base = procs.server(cwd=tmp_path)
        assert httpx.post(f"{base}/mcp", json={}).status_code == 401

        async def main() -> dict[str, Any]:
            out: dict[str, Any] = {}
            async with mcp_session(f"{base}/mcp", token) as s:
                out["tools"] = {t.name for t in (await s.client.list_tools()).tools}
                started = await s.call("kitaru_executions_run", target=BRIEF,
                                       args={"topic": "http", "timeout": 0.2})
                eid = started["exec_id"]
                waiting = await s.until("kitaru_executions_get", lambda e: e["pending_wait"],
                                        "the approve wait", exec_id=eid)
                out["wait"] = waiting["pending_wait"]
                await s.call("kitaru_executions_input", exec_id=eid, wait="approve", value=True)
                out["done"] = await s.until("kitaru_executions_get",
                                            lambda e: e["status"] not in ("running", "waiting"),
                                            "the end", exec_id=eid)
                out["logs"] = await s.call("get_execution_logs", exec_id=eid)
                outputs = await s.call("kitaru_artifacts_list", exec_id=eid, kind="output")
                out["outputs"] = {a["producing_call"]: (await s.call(
                    "kitaru_artifacts_get", artifact_id=a["artifact_id"]))["value"] for a in outputs}
            return out

        out = asyncio.run(main())
        assert out["tools"] == KITARU_TOOLS
        assert out["wait"]["question"] == "Publish the brief on http?"
        assert out["done"]["status"] == "completed", out["done"]["failure"]
        assert "researching http" in out["logs"]
        assert out["outputs"] == {"research#1": "notes on http", "publish#1": "published", None:
                                  {"notes": "notes on http", "outcome": "published"}}
        os.kill(server.pid, signal.SIGTERM)
        assert server.wait(timeout=60) == 0, procs.output(server)
