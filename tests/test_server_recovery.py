"""Server-side recovery: a real `kitaru server start` process continues an execution whose
runner was SIGKILLed, with nobody asking for it, re-running only the call in flight."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from e2e_flows.harness import FLOWS, Processes, has_exec_id, runs
from test_server_cli import free_port

import kitaru
from kitaru_core.records import ExecutionRecord

pytestmark = pytest.mark.slow


def test_the_server_resumes_an_execution_whose_runner_was_killed(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    port = free_port()
    with Processes(tmp_path / "logs") as procs:
        server = procs.kitaru("server", "start", "--single-user", "--port", str(port),
                              "--recovery-interval", "0.5", cwd=tmp_path)
        base = f"http://127.0.0.1:{port}"
        procs.wait_for(lambda: _ready(base), "the server to be ready", watch=server)

        (workdir / "hold").touch()
        # A short lease: the server resumes once it expired (30 s by default).
        runner = procs.python(str(FLOWS / "crash_script.py"), str(workdir), cwd=FLOWS,
                              env={"KITARU_LEASE_SECONDS": "3"})
        procs.wait_for(lambda: (workdir / "ready").exists() and has_exec_id(workdir),
                       "the last checkpoint to start", watch=runner)
        procs.crash(runner)
        killed_at = time.time()
        (workdir / "hold").unlink()
        exec_id = (workdir / "exec_id").read_text()
        lease = kitaru.KitaruClient()._stack.registry.get_execution(exec_id).lease_expires
        assert lease is not None and lease <= killed_at + 3.5
        while time.time() < lease - 0.3:  # until the dead owner's lease expires, nobody resumes
            assert runs(workdir)["summarize"] == 1
            time.sleep(0.05)

        def completed() -> bool:
            got = httpx.get(f"{base}/api/v1/executions/{exec_id}", timeout=10).json()
            assert got["status"] in ("running", "completed"), got
            return got["status"] == "completed"

        procs.wait_for(completed, "the server to resume and complete the execution", watch=server)
    # Only the checkpoint that was in flight ran again.
    assert runs(workdir) == Counter(fetch=1, rank=1, summarize=2)
    assert kitaru.load(exec_id, "output").startswith("kitaru records outputs")


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_orphaned_means_running_with_its_owner_gone_and_no_launched_runner() -> None:
    from kitaru_core.runtime.watchdog import orphaned

    now = time.time()
    dead = "another-host:1:1"  # another machine's owner: judged by its lease
    base = {"exec_id": "e" * 32, "flow_name": "f", "status": "running", "created_at": now - 600}
    assert orphaned(ExecutionRecord(**base, owner=dead, lease_expires=now - 1))
    assert not orphaned(ExecutionRecord(**base, owner=dead, lease_expires=now + 30))
    assert orphaned(ExecutionRecord(**base, owner=dead, lease_expires=now + 30), now=now + 31)
    assert not orphaned(ExecutionRecord(**{**base, "status": "waiting"}, owner=dead, lease_expires=0))
    assert not orphaned(ExecutionRecord(**base, owner=dead, lease_expires=0, runner={"launch": "x"}))
    assert not orphaned(ExecutionRecord(**base, owner=dead, lease_expires=0,
                                        failure={"resume_failed": True}))
    # Created for a launcher that has not claimed it yet: left alone for a while.
    fresh = {**base, "created_at": now}
    assert not orphaned(ExecutionRecord(**fresh, owner=None, lease_expires=None))
    assert orphaned(ExecutionRecord(**base, owner=None, lease_expires=None))
