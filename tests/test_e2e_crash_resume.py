"""Crash recovery end to end: a flow process is SIGKILLed mid-flow, and
`kitaru executions resume` from another shell finishes it without re-running
the checkpoints that had completed."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, has_exec_id, runs

import kitaru
from kitaru import KitaruClient
from kitaru_core.errors import ExecutionOwnedError

pytestmark = pytest.mark.slow


def start_and_kill(procs: Processes, workdir: Path, *args: str) -> str:
    """Run a flow program until its last checkpoint is under way, then SIGKILL it."""
    (workdir / "hold").touch()
    proc = procs.python(*args, str(workdir), cwd=FLOWS)
    procs.wait_for(
        lambda: (workdir / "ready").exists() and has_exec_id(workdir),
        "the last checkpoint to start", watch=proc,
    )
    procs.crash(proc)
    (workdir / "hold").unlink()
    return (workdir / "exec_id").read_text()


def set_owner(exec_id: str, owner: str, lease_expires: float) -> None:
    """Pretend another machine owns the execution (what a runner there would have written)."""
    db = Path(os.environ["KITARU_HOME"]) / "kitaru.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE executions SET owner = ?, lease_expires = ? WHERE exec_id = ?",
                     (owner, lease_expires, exec_id))


def test_killed_script_flow_resumes_from_another_shell(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    another_shell = tmp_path / "somewhere-else"
    another_shell.mkdir()
    with Processes(tmp_path / "logs") as procs:
        exec_id = start_and_kill(procs, workdir, str(FLOWS / "crash_script.py"))
    assert runs(workdir) == Counter(fetch=1, rank=1, summarize=1)

    # The owner process is gone: on the same machine that is visible at once.
    listed = run_cli("executions", "list", "-o", "json", cwd=another_shell)
    assert listed.returncode == 0, listed.stderr
    entry = next(e for e in json.loads(listed.stdout) if e["exec_id"] == exec_id)
    assert entry["status"] == "running"
    assert entry["resumable"] is True

    resumed = run_cli("executions", "resume", exec_id, cwd=another_shell)
    assert resumed.returncode == 0, resumed.stderr
    assert f"execution {exec_id} is completed" in resumed.stdout
    # Only the checkpoint that was in flight ran again.
    assert runs(workdir) == Counter(fetch=1, rank=1, summarize=2)
    assert kitaru.load(exec_id, "output") == (
        "kitaru records outputs (2.2) | kitaru is durable (1.7) | kitaru resumes (1.4)"
    )


def test_killed_module_flow_owned_by_another_host_waits_for_its_lease(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    another_shell = tmp_path / "somewhere-else"
    another_shell.mkdir()
    with Processes(tmp_path / "logs") as procs:
        exec_id = start_and_kill(procs, workdir, "-m", "shop.orders")

    # A runner on another host still holds a valid lease: resuming is refused.
    set_owner(exec_id, "build-box-7:4242:123456", time.time() + 600)
    refused = run_cli("executions", "resume", exec_id, cwd=another_shell)
    assert refused.returncode == ExecutionOwnedError.exit_code != 0
    assert "owned by process 4242 on build-box-7" in refused.stderr
    assert KitaruClient().executions.get(exec_id).resumable is False
    assert runs(workdir) == Counter(load_order=1, price=1, charge=1)

    # Its lease expired: the execution is resumable and finishes here.
    set_owner(exec_id, "build-box-7:4242:123456", time.time() - 1)
    assert KitaruClient().executions.get(exec_id).resumable is True
    resumed = run_cli("executions", "resume", exec_id, cwd=another_shell)
    assert resumed.returncode == 0, resumed.stderr
    assert runs(workdir) == Counter(load_order=1, price=1, charge=2)
    assert kitaru.load(exec_id, "output") == "charged order 7: 21.00"
