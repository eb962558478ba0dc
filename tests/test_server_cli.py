"""`kitaru server start` and `kitaru auth ...` as a user runs them, and a flow's waits
answered over HTTP through a running server until the execution completes."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import httpx
import pytest
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, wait_for_execution

from kitaru.cli import extensions
from kitaru_core.errors import ConfigError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_missing_extension_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extensions, "GROUP", "kitaru.cli.nothing-installed")
    with pytest.raises(ConfigError, match=r"pip install 'kitaru\[server\]'"):
        extensions.load("server")


def test_single_user_mode_refuses_a_public_address() -> None:
    result = run_cli("server", "start", "--single-user", "--host", "0.0.0.0")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "--single-user" in result.stderr and "127.0.0.1" in result.stderr


def test_auth_commands_create_show_rotate_and_delete() -> None:
    made = run_cli("auth", "service-accounts", "create", "ci", "-d", "pipelines")
    assert made.returncode == 0, made.stderr
    bad = run_cli("auth", "service-accounts", "create", "CI!")
    assert bad.returncode == 1 and "lowercase" in bad.stderr
    created = run_cli("auth", "api-keys", "create", "ci", "--scope", "operator", "--expires-in",
                      "30d", "-o", "json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["token"].startswith("kitaru_") and key["scope"] == "operator"
    listed = run_cli("auth", "api-keys", "list")
    assert key["key_id"] in listed.stdout and key["token"] not in listed.stdout
    shown = run_cli("auth", "api-keys", "show", key["key_id"], "-o", "json")
    assert json.loads(shown.stdout)["expired"] is False and "token" not in shown.stdout
    rotated = run_cli("auth", "api-keys", "rotate", key["key_id"], "-o", "json")
    assert json.loads(rotated.stdout)["token"] != key["token"]
    wrong = run_cli("auth", "api-keys", "create", "ci", "--scope", "root")
    assert wrong.returncode == 1 and "read, operator, admin" in wrong.stderr
    bad_expiry = run_cli("auth", "api-keys", "create", "ci", "--expires-in", "soon")
    assert bad_expiry.returncode == 1 and "--expires-in" in bad_expiry.stderr
    gone = run_cli("auth", "service-accounts", "delete", "ci")
    assert gone.returncode == 0 and "1 API key" in gone.stdout
    missing = run_cli("auth", "api-keys", "show", key["key_id"])
    assert missing.returncode == 1 and "no API key" in missing.stderr


@pytest.mark.slow
def test_waits_answered_over_http_complete_the_flow(tmp_path: Path) -> None:
    made = run_cli("auth", "service-accounts", "create", "hooks")
    assert made.returncode == 0, made.stderr
    token = json.loads(run_cli("auth", "api-keys", "create", "hooks", "--scope", "operator",
                               "-o", "json").stdout)["token"]
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        server, base = procs.server(cwd=tmp_path)

        code, out = procs.finish(procs.python(str(FLOWS / "review_flow.py"), str(workdir), "0.3",
                                              cwd=FLOWS))
        assert code == 0, out
        exec_id = (workdir / "exec_id").read_text()
        http = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"},
                            timeout=30)
        assert http.get(f"/executions/{exec_id}").json()["status"] == "waiting"
        assert http.get(f"/executions/{exec_id}", headers={"Authorization": ""}).status_code == 401

        refused = http.post(f"/executions/{exec_id}/waits/approve", json="maybe")
        assert refused.status_code == 422 and "schema" in refused.json()["detail"]
        assert http.post(f"/executions/{exec_id}/waits/approve", json=True).status_code == 200
        wait_for_execution(exec_id, lambda e: e.pending_wait is not None
                           and e.pending_wait.name == "edits", "the `edits` wait")
        edits = {"title": "Field notes", "tags": ["kitaru"]}
        answered = http.post(f"/executions/{exec_id}/input", json={"wait": "edits", "value": edits})
        assert answered.status_code == 200, answered.text
        wait_for_execution(exec_id, lambda e: e.pending_wait is not None
                           and e.pending_wait.name == "go", "the `go` gate")
        assert http.post(f"/executions/{exec_id}/waits/go", json=None).status_code == 200
        wait_for_execution(exec_id, lambda e: e.status.value == "completed", "completion")
        final = http.get(f"/executions/{exec_id}").json()
        assert [c["call_id"] for c in final["checkpoints"]] == [
            "write_draft#1", "apply_edits#1", "publish#1"]
        assert (workdir / "runs.log").read_text().split() == ["write_draft", "apply_edits", "publish"]
        listed = http.get("/executions", params={"status": "completed"}).json()["items"]
        assert [e["exec_id"] for e in listed] == [exec_id]

        os.kill(server.pid, signal.SIGTERM)  # graceful shutdown: exits 0
        assert server.wait(timeout=60) == 0, procs.output(server)
        assert "Finished server process" in procs.output(server)
