"""The server's artifact downloads (HTTP ranges), memory routes and live events (SSE)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from kitaru_server.app import create_app
from kitaru_server.settings import ServerSettings

import kitaru
from kitaru import checkpoint, flow

BIG = bytes(range(256)) * 20_000  # 5 MB: several download chunks, a blob of its own


@checkpoint
def make_blob() -> bytes:
    return BIG


@checkpoint
def small() -> dict:
    return {"answer": 42}


@flow
def blobs() -> int:
    make_blob()
    return small().load()["answer"]


release = threading.Event()


@checkpoint
def chatty(n: int) -> int:
    for i in range(n):
        kitaru.progress(f"step {i}", percent=(i + 1) / n, flush=True)
    release.wait(60)
    return n


@flow
def talker(n: int) -> int:
    return chatty(n).load()


@pytest.fixture
def http(kitaru_home: Path) -> TestClient:
    return TestClient(create_app(ServerSettings(single_user=True)), raise_server_exceptions=False)


def _blob_artifact(http: TestClient) -> tuple[str, dict]:
    handle = blobs.run()
    assert handle.wait() == 42
    items = http.get(f"/api/v1/executions/{handle.exec_id}/artifacts").json()["items"]
    big = next(a for a in items if a["call_id"] == "make_blob#1" and a["direction"] == "output")
    return handle.exec_id, big


def test_download_whole_and_by_range(http: TestClient) -> None:
    from kitaru_core.runtime.artifacts import read_bytes

    _, big = _blob_artifact(http)
    url = f"/api/v1/artifacts/{big['artifact_id']}/download"
    stack = http.app.state.kitaru.stack
    serialized = read_bytes(stack.artifact_store, stack.registry.get_artifact(big["artifact_id"]))
    assert len(serialized) == big["size"] > 2 * 1024 * 1024
    whole = http.get(url)
    assert whole.status_code == 200 and whole.content == serialized
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-length"] == str(len(serialized))
    etag = whole.headers["etag"]
    size = len(serialized)
    for header, first, last in (
        ("bytes=0-99", 0, 99), ("bytes=1048570-2097160", 1048570, 2097160),
        ("bytes=-10", size - 10, size - 1), (f"bytes={size - 5}-", size - 5, size - 1),
        (f"bytes=10-{size * 2}", 10, size - 1),
    ):
        part = http.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == serialized[first:last + 1], header
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        refused = http.get(url, headers={"Range": header})
        assert refused.status_code == 416, header
        assert refused.headers["content-range"] == f"bytes */{size}"
    # A stale copy (another ETag) gets the whole body; malformed or several ranges too.
    assert http.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'}).status_code == 200
    assert http.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}).content == serialized[:10]
    assert http.get(url, headers={"Range": "bytes=0-1,5-6"}).status_code == 200
    assert http.get(url, headers={"Range": "lines=1-2"}).status_code == 200
    assert http.get("/api/v1/artifacts/nothing-here/download").status_code == 404


def test_small_inline_artifact_value_and_range(http: TestClient) -> None:
    exec_id, _ = _blob_artifact(http)
    items = http.get(f"/api/v1/executions/{exec_id}/artifacts").json()["items"]
    out = next(a for a in items if a["call_id"] == "small#1" and a["direction"] == "output")
    shown = http.get(f"/api/v1/artifacts/{out['artifact_id']}", params={"value": True}).json()
    assert shown["value"] == {"answer": 42} and shown["value_json"] is True
    assert "value" not in http.get(f"/api/v1/artifacts/{out['artifact_id']}").json()
    url = f"/api/v1/artifacts/{out['artifact_id']}/download"
    whole = http.get(url).content
    assert len(whole) == out["size"]
    assert http.get(url, headers={"Range": "bytes=1-3"}).content == whole[1:4]
    named = http.get(f"/api/v1/executions/{exec_id}/artifacts", params={"name": "nothing"}).json()
    assert named["items"] == []


def test_memory_routes_read_write_history(http: TestClient) -> None:
    base = "/api/v1/memory"
    scope = {"scope": "team"}
    put = http.put(f"{base}/entries/users/42/prefs", params=scope, json={"value": {"tone": "short"}})
    assert put.status_code == 200 and put.json()["version"] == 1
    http.put(f"{base}/entries/users/42/prefs", params=scope, json={"value": {"tone": "long"}})
    http.put(f"{base}/entries/plain", params=scope, json={"value": 7})
    got = http.get(f"{base}/entries/users/42/prefs", params=scope).json()
    assert got["value"] == {"tone": "long"} and got["version"] == 2
    first = http.get(f"{base}/entries/users/42/prefs", params={**scope, "version": 1}).json()
    assert first["value"] == {"tone": "short"}
    assert kitaru.KitaruClient().memory.get("users/42/prefs", scope="team") == {"tone": "long"}
    keys = [e["key"] for e in http.get(f"{base}/entries", params=scope).json()["items"]]
    assert keys == ["plain", "users/42/prefs"]
    assert http.delete(f"{base}/entries/plain", params=scope).json()["deleted"] is True
    history = http.get(f"{base}/history/plain", params=scope).json()["items"]
    assert [(h["version"], h["deleted"]) for h in history] == [(1, False), (2, True)]
    assert http.delete(f"{base}/entries/plain", params=scope).status_code == 404
    assert http.get(f"{base}/entries/never", params=scope).status_code == 404
    assert http.get(f"{base}/entries/users/42/prefs", params={**scope, "version": 9}).status_code == 404
    assert "namespace:team" in http.get(f"{base}/scopes").json()["items"]
    assert http.get(f"{base}/entries").status_code == 422  # the scope is required


def _sse(text: str) -> list[dict]:
    """The messages of an event stream: {"id", "event", "data"} each."""
    out = []
    for block in text.split("\n\n"):
        fields: dict = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            out.append({"id": fields.get("id"), "event": fields.get("event", "message"),
                        "data": json.loads(fields["data"])})
    return out


def test_events_of_a_finished_execution_and_last_event_id(http: TestClient) -> None:
    release.set()
    handle = talker.run(3)
    assert handle.wait() == 3
    url = f"/api/v1/executions/{handle.exec_id}/events"
    got = http.get(url)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/event-stream")
    messages = _sse(got.text)
    progress = [m for m in messages if m["event"] == "message"]
    assert [m["data"]["payload"]["message"] for m in progress] == ["step 0", "step 1", "step 2"]
    assert messages[-1]["event"] == "end" and messages[-1]["data"]["status"] == "completed"
    resumed = _sse(http.get(url, headers={"Last-Event-ID": progress[0]["id"]}).text)
    assert [m["data"]["payload"]["message"] for m in resumed if m["event"] == "message"] == [
        "step 1", "step 2"]
    assert http.get("/api/v1/executions/nothing-here/events").status_code == 404
    assert http.get(url, params={"since": "garbage"}).status_code in (400, 422)


def test_events_stream_live_from_a_real_server(kitaru_home: Path) -> None:
    release.clear()
    app = create_app(ServerSettings(single_user=True))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        handle = talker.run(2)
        seen: list[dict] = []
        with httpx.stream("GET", f"http://127.0.0.1:{port}/api/v1/executions/{handle.exec_id}/events",
                          timeout=60) as stream:
            buffer = ""
            for chunk in stream.iter_text():
                buffer += chunk
                seen = _sse(buffer)
                if len([m for m in seen if m["event"] == "message"]) == 2 and not release.is_set():
                    # Both arrived while the checkpoint still runs: the stream is live.
                    assert handle._stack.registry.get_execution(handle.exec_id).status == "running"
                    release.set()
                if seen and seen[-1]["event"] == "end":
                    break
        assert seen[-1]["data"]["status"] == "completed"
        assert handle.wait() == 2
    finally:
        release.set()
        server.should_exit = True
        thread.join(10)
