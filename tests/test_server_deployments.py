"""Deployments over the REST API: admin deploys and moves tags, operator invokes, read lists;
an invocation runs the tagged version's code."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kitaru_server.app import create_app
from kitaru_server.scopes import SCOPES
from kitaru_server.settings import ServerSettings
from test_deployments import write_project

from kitaru import KitaruClient

API = "/api/v1/deployments"


@pytest.fixture
def http(kitaru_home: Path) -> tuple[TestClient, dict[str, dict[str, str]]]:
    app = create_app(ServerSettings(key_cache_seconds=0, input_rate=1000, input_burst=1000))
    keys = app.state.kitaru.keys
    keys.create_account("ci", description="the test")
    headers = {s: {"Authorization": f"Bearer {keys.create_key('ci', scope=s)[1]}"} for s in SCOPES}
    return TestClient(app), headers


def move(client: TestClient, auth: dict[str, dict[str, str]], *, version: int) -> None:
    """Move the exclusive `production` tag to `version` (admin)."""
    moved = client.put(f"{API}/greeter/tags/production", json={"version": version, "exclusive": True},
                       headers=auth["admin"])
    assert moved.status_code == 200, moved.text


def test_rest_deploys_routes_tags_and_deletes(tmp_path: Path, http: Any) -> None:
    client, auth = http
    app = write_project(tmp_path / "proj", "one")
    target = {"target": f"{app}:greeter", "inputs": {"who": "ada"}, "tags": {"production": True}}
    assert client.post(API, json=target, headers=auth["operator"]).status_code == 403
    made = client.post(API, json=target, headers=auth["admin"])
    assert made.status_code == 201, made.text
    assert made.json()["version"] == 1 and made.json()["tags"] == {"default": True, "production": True}
    write_project(tmp_path / "proj", "two")
    v2 = client.post(API, json={"target": f"{app}:greeter"}, headers=auth["admin"]).json()
    assert v2["version"] == 2 and v2["code_package"] != made.json()["code_package"]

    read = auth["read"]
    assert [d["version"] for d in client.get(API, headers=read).json()["items"]] == [1, 2]
    assert client.get(f"{API}/greeter/tags/production", headers=read).json()["version"] == 1
    moved = client.put(f"{API}/greeter/tags/production", json={"version": 2, "exclusive": True},
                       headers=auth["admin"])
    assert moved.status_code == 200 and moved.json()["tags"] == {"production": True}
    flow = client.get(f"{API}/greeter", headers=read).json()
    assert flow["tags"] == {"default": [1], "production": [2]} and len(flow["items"]) == 2
    assert client.get(f"{API}/flows", headers=read).json()["items"][0]["flow"] == "greeter"
    assert client.get(f"{API}/greeter/versions/2", headers=read).json()["defaults"] == {}

    refused = client.delete(f"{API}/greeter/versions/2", headers=auth["admin"])
    assert refused.status_code == 409 and "exclusive tag(s) production" in refused.json()["detail"]
    gone = client.get(f"{API}/greeter/tags/nope", headers=read)
    assert gone.status_code == 404 and gone.json()["error"] == "DeploymentNotFoundError"
    assert client.get(f"{API}/nobody", headers=read).status_code == 404
    bad = client.post(f"{API}/greeter/invoke", json={"inputs": {"topic": 1}}, headers=auth["operator"])
    assert bad.status_code == 422 and "takes no input 'topic'" in bad.json()["detail"]
    untagged = client.delete(f"{API}/greeter/versions/1/tags/default", headers=auth["admin"])
    assert untagged.status_code == 409 and "only moved" in untagged.json()["detail"]
    move(client, auth, version=1)
    assert client.delete(f"{API}/greeter/versions/2", headers=auth["admin"]).json()["deleted"] is True
    left = client.get(API, params={"flow": "greeter"}, headers=read).json()["items"]
    assert [d["version"] for d in left] == [1]


@pytest.mark.slow
def test_rest_invoke_runs_the_tagged_code(tmp_path: Path, http: Any) -> None:
    client, auth = http
    app = write_project(tmp_path / "proj", "one")
    client.post(API, json={"target": f"{app}:greeter", "tags": {"production": True}}, headers=auth["admin"])
    write_project(tmp_path / "proj", "two")
    client.post(API, json={"target": f"{app}:greeter"}, headers=auth["admin"])
    write_project(tmp_path / "proj", "three")
    out = tmp_path / "out.txt"

    def invoked(**selector: Any) -> tuple[Any, str]:
        started = client.post(f"{API}/greeter/invoke", headers=auth["operator"],
                              json={**selector, "inputs": {"out": str(out), "who": "rest"}})
        assert started.status_code == 202, started.text
        exec_id = started.json()["exec_id"]
        deadline = time.monotonic() + 60
        while True:
            got = client.get(f"/api/v1/executions/{exec_id}", headers=auth["read"]).json()
            if got["status"] in ("completed", "failed"):
                break
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        assert got["status"] == "completed", got
        return started.json()["version"], out.read_text()

    assert invoked(tag="production") == (1, "one:rest")
    move(client, auth, version=2)
    assert invoked(tag="production") == (2, "two:rest")
    assert invoked(version=1) == (1, "one:rest")
    assert invoked() == (1, "one:rest")  # the `default` tag
    assert KitaruClient().executions.list(flow="greeter")[0].status.value == "completed"
