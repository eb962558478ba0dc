"""A runner on a `server` stack, as a pod runs one: no database, only the kitaru server's URL,
an API key in the environment and the artifact store. A flow process is SIGKILLed in its
last checkpoint and `kitaru executions resume` from another shell finishes it; every record
lives in the server's registry, none on the runner's side."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, has_exec_id, runs
from services.kitaru_server import KitaruServer

import kitaru
from kitaru_core.stack import StackStore, clear_stack_cache

pytestmark = pytest.mark.slow


def server_stack(home: Path, server: KitaruServer, artifacts: Path) -> None:
    """A stack whose registry is `server`, with the key read from KITARU_API_KEY."""
    path = home.parent / "team.yaml"
    path.write_text(yaml.safe_dump({
        "name": "team",
        "registry": {"flavor": "server",
                     "config": {"url": server.url, "api_key": "${env:KITARU_API_KEY}"}},
        "artifact_store": {"flavor": "local", "config": {"root": str(artifacts)}},
        "orchestrator": {"flavor": "local"}, "execution_target": {"flavor": "inline"},
    }))
    StackStore(home).register(path, activate=True)
    clear_stack_cache()


def test_a_runner_on_a_server_stack_survives_a_crash_and_resumes(
    kitaru_server: KitaruServer, kitaru_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITARU_API_KEY", kitaru_server.tokens["operator"])
    server_stack(kitaru_home, kitaru_server, tmp_path / "artifacts")
    workdir, another_shell = tmp_path / "work", tmp_path / "somewhere-else"
    workdir.mkdir()
    another_shell.mkdir()
    with Processes(tmp_path / "logs") as procs:
        (workdir / "hold").touch()
        proc = procs.python(str(FLOWS / "crash_script.py"), str(workdir), cwd=FLOWS)
        procs.wait_for(lambda: (workdir / "ready").exists() and has_exec_id(workdir),
                       "the last checkpoint to start", watch=proc)
        procs.crash(proc)
        (workdir / "hold").unlink()
    exec_id = (workdir / "exec_id").read_text()
    assert runs(workdir) == Counter(fetch=1, rank=1, summarize=1)

    admin = httpx.Client(base_url=f"{kitaru_server.url}/api/v1",
                         headers={"Authorization": f"Bearer {kitaru_server.token}"}, timeout=30)
    seen = admin.get(f"/executions/{exec_id}").json()
    assert seen["status"] == "running"
    assert [c["status"] for c in seen["checkpoints"]][:2] == ["completed", "completed"]

    resumed = run_cli("executions", "resume", exec_id, cwd=another_shell)
    assert resumed.returncode == 0, resumed.stderr
    assert f"execution {exec_id} is completed" in resumed.stdout
    assert runs(workdir) == Counter(fetch=1, rank=1, summarize=2)  # only the one in flight again
    assert kitaru.load(exec_id, "output") == (
        "kitaru records outputs (2.2) | kitaru is durable (1.7) | kitaru resumes (1.4)")

    final = admin.get(f"/executions/{exec_id}").json()
    assert final["status"] == "completed"
    assert [c["call_id"] for c in final["checkpoints"]] == ["fetch#1", "rank#1", "summarize#1"]
    assert not (kitaru_home / "kitaru.db").exists()  # the runners kept no registry of their own
    assert not any(os.environ["KITARU_API_KEY"] in p.read_text(errors="replace")
                   for p in (kitaru_home / "stacks").glob("*.yaml"))
