"""The server's read routes and replay: cursor pages stable under inserts, stacks shown
without secret values, statistics, replay from a checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from kitaru_server.app import create_app
from kitaru_server.settings import ServerSettings

import kitaru
from kitaru import checkpoint, flow
from kitaru_core.stack import StackStore


@checkpoint
def double(x: int) -> int:
    return x * 2


@checkpoint
def shout(x: int) -> str:
    if x < 0:
        raise ValueError("negative")
    return f"{x}!"


@flow
def numbers(x: int) -> str:
    return shout(double(x)).load()


@pytest.fixture
def http(kitaru_home: Path) -> TestClient:
    return TestClient(create_app(ServerSettings(single_user=True)), raise_server_exceptions=False)


def run(x: int) -> str:
    handle = numbers.run(x)
    try:
        handle.wait()
    except Exception:
        pass
    return handle.exec_id


def ids(page: dict) -> list[str]:
    return [e["exec_id"] for e in page["items"]]


def test_pages_follow_the_cursor_and_ignore_new_executions(http: TestClient) -> None:
    made = [run(i) for i in range(5)]
    newest_first = made[::-1]
    first = http.get("/api/v1/executions", params={"limit": 2}).json()
    assert ids(first) == newest_first[:2] and first["next_cursor"]
    newer = run(100)  # created after the first page was read: never shifts the next ones
    second = http.get("/api/v1/executions", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert ids(second) == newest_first[2:4]
    third = http.get("/api/v1/executions", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert ids(third) == newest_first[4:] and third["next_cursor"] is None
    fresh = http.get("/api/v1/executions", params={"limit": 10}).json()
    assert ids(fresh) == [newer, *newest_first] and fresh["next_cursor"] is None


def test_pages_with_a_status_filter_and_a_bad_cursor(http: TestClient) -> None:
    failed = [run(-1), run(-2)]
    run(3)
    page = http.get("/api/v1/executions", params={"status": "failed", "limit": 1}).json()
    assert ids(page) == [failed[1]]
    rest = http.get("/api/v1/executions",
                    params={"status": "failed", "limit": 1, "cursor": page["next_cursor"]}).json()
    assert ids(rest) == [failed[0]] and rest["next_cursor"] is None
    for bad in ("nope", "W10", "x" * 600):
        got = http.get("/api/v1/executions", params={"cursor": bad})
        assert got.status_code == 422 and "cursor" in got.json()["detail"], got.text


def test_statistics_count_by_status_and_flow(http: TestClient) -> None:
    run(1)
    run(2)
    run(-1)
    stats = http.get("/api/v1/statistics").json()
    assert stats["executions"] == 3
    assert stats["by_status"]["completed"] == 2 and stats["by_status"]["failed"] == 1
    assert stats["by_flow"]["numbers"]["executions"] == 3
    assert stats["checkpoints"]["calls"] == 6
    assert stats["checkpoints"]["by_status"] == {"completed": 5, "failed": 1}
    assert stats["checkpoints"]["by_name"] == {"double": 3, "shout": 3}
    assert stats["durations_s"]["count"] == 3 and stats["durations_s"]["max"] >= stats["durations_s"]["p50"]
    assert stats["window"]["complete"] is True
    one = http.get("/api/v1/statistics", params={"limit": 1}).json()
    assert one["executions"] == 1 and one["window"]["complete"] is False
    assert http.get("/api/v1/statistics", params={"flow": "other"}).json()["executions"] == 0


def test_replay_route_starts_a_linked_execution(http: TestClient) -> None:
    original = run(4)
    got = http.post(f"/api/v1/executions/{original}/replay",
                    json={"at": "shout", "checkpoint_overrides": {"double": {"output": 21}}})
    assert got.status_code == 200, got.text
    [result] = got.json()["results"]
    assert result["original_exec_id"] == original
    replay_id = result["replay_exec_id"]
    deadline = time.monotonic() + 60
    while (status := http.get(f"/api/v1/executions/{replay_id}").json()["status"]) == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status == "completed"
    assert kitaru.load(replay_id, "output") == "21!"
    bad = http.post(f"/api/v1/executions/{original}/replay", json={"at": "nowhere"})
    assert bad.status_code in (400, 422) and "nowhere" in bad.json()["detail"]


def test_stacks_show_references_never_values(http: TestClient, kitaru_home: Path,
                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TEAM_DB_PASSWORD", "hunter2-secret")
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump({
        "name": "team",
        "registry": {"flavor": "postgres",
                     "config": {"url": "postgresql://kitaru:${env:TEAM_DB_PASSWORD}@db/kitaru"}},
        "artifact_store": {"flavor": "local"}, "orchestrator": {"flavor": "local"},
        "execution_target": {"flavor": "inline"},
    }))
    StackStore(kitaru_home).register(path)
    listed = http.get("/api/v1/stacks").json()["items"]
    by_name = {s["name"]: s for s in listed}
    assert by_name["local"]["served"] is True and by_name["team"]["served"] is False
    assert by_name["team"]["registry"] == "postgres"
    shown = http.get("/api/v1/stacks/team")
    assert shown.status_code == 200
    assert shown.json()["registry"]["config"]["url"] == \
        "postgresql://kitaru:${env:TEAM_DB_PASSWORD}@db/kitaru"
    assert "hunter2" not in shown.text and "hunter2" not in http.get("/api/v1/stacks").text
    assert http.get("/api/v1/stacks/local").json()["served"] is True
    assert http.get("/api/v1/stacks/missing").status_code == 404


def test_literal_secrets_in_a_stack_are_masked() -> None:
    from kitaru_server.redaction import redact

    spec = {"registry": {"config": {"url": "postgresql://kitaru:letmein@db:5432/kitaru"}},
            "artifact_store": {"config": {"storage_options": {
                "secret": "abc", "key": "${env:AWS_KEY}", "account_key": "${env:AZ}",
                "password": "plain", "region": "eu-west-1", "token": "${secret:store.TOKEN}"}}}}
    shown = redact(spec)
    assert shown["registry"]["config"]["url"] == "postgresql://kitaru:***@db:5432/kitaru"
    opts = shown["artifact_store"]["config"]["storage_options"]
    assert opts == {"secret": "***", "key": "${env:AWS_KEY}", "account_key": "${env:AZ}",
                    "password": "***", "region": "eu-west-1", "token": "${secret:store.TOKEN}"}


@checkpoint
def scored(x: int) -> int:
    kitaru.log(score=float("nan"), when=x)
    return x


@flow
def scoring(x: int) -> int:
    return scored(x).load()


def test_execution_json_holds_recorded_nan_as_null(http: TestClient) -> None:
    handle = scoring.run(5)
    assert handle.wait() == 5
    got = http.get(f"/api/v1/executions/{handle.exec_id}")
    assert got.status_code == 200, got.text
    [call] = got.json()["checkpoints"]
    assert call["metadata"]["score"] is None and call["metadata"]["when"] == 5
    assert got.json()["started_at"].startswith("20")
