"""Flows through the `kubernetes` execution target end to end: kmock's emulator and the test
controller (tests/services/kube.py) run each isolated call's Job as a real worker process."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes

from kitaru import KitaruClient

pytestmark = pytest.mark.slow


def register_k8s_stack(tmp_path: Path, server: Any) -> None:
    k8s = {"namespace": "kitaru", "image": "registry/agents:1.4",
           "kubeconfig": str(server.kubeconfig), "python": sys.executable}
    path = tmp_path / "k8s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "k8s", "registry": {"flavor": "sqlite"}, "artifact_store": {"flavor": "local"},
        "orchestrator": {"flavor": "local"}, "execution_target": {"flavor": "kubernetes", "config": k8s},
    }))
    registered = run_cli("stack", "register", str(path))
    assert registered.returncode == 0, registered.stderr


def test_isolated_checkpoints_run_as_jobs(tmp_path: Path, kube_cluster: Any) -> None:
    server, controller = kube_cluster
    register_k8s_stack(tmp_path, server)
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        proc = procs.python(str(FLOWS / "isolated_flow.py"), str(workdir), cwd=FLOWS,
                            env={"KITARU_STACK": "k8s"})
        code, out = procs.finish(proc)
    assert code == 0, out
    run = json.loads(out.strip().splitlines()[-1])
    result = run["result"]
    assert result["summary"]["gross"] == 60.0
    assert result["formatted"]["text"] == "ACME owes 60.00 EUR"
    # Each isolated call was a Job of its own, run by a process other than the runner.
    assert len(controller.started) == 2
    assert result["summary"]["computed_in"] != result["runner_pid"]
    assert (workdir / "runs.log").read_text().splitlines() == ["gather"]
    # The call's output came back from the pod's log through the target.
    logs = KitaruClient().executions.logs(run["exec_id"])
    assert "totalling 3 lines for ACME" in str(logs)
