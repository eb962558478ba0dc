"""Flows through the `kubernetes` orchestrator and execution target end to end: kmock's
emulator and the test controller (tests/services/kube.py) run each Job as a real process.
Tasks "run anywhere", so the stack's store is an object store (moto's S3) and, for the
orchestrator, the registry is PostgreSQL: a stack with local state is refused."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, runs, wait_for_execution, wait_for_status
from emulators import Emulator, store_config, worker_env
from services.kube import wait_for

import kitaru
from kitaru import KitaruClient

pytestmark = pytest.mark.slow


@pytest.fixture
def s3(s3_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The S3 emulator, reachable from this process and every process it starts (the
    controller's pods inherit this environment, as pods in a cloud reach the real S3)."""
    for name, value in {**s3_emulator.env, **worker_env(s3_emulator)}.items():
        monkeypatch.setenv(name, value)
    return s3_emulator


def register_k8s_stack(
    tmp_path: Path, server: Any, s3: Emulator, *, registry_url: str | None = None
) -> None:
    """Isolated calls as Jobs on the emulator; with `registry_url` (PostgreSQL) flow bodies too.
    The controller runs each Job's command with this Python (the image is ignored)."""
    k8s = {"namespace": "kitaru", "image": "registry/agents:1.4",
           "kubeconfig": str(server.kubeconfig), "python": sys.executable}
    registry = ({"flavor": "postgres", "config": {"url": registry_url}} if registry_url
                else {"flavor": "sqlite"})
    orchestrator = ({"flavor": "kubernetes", "config": {**k8s, "working_dir": str(FLOWS)}}
                    if registry_url else {"flavor": "local"})
    path = tmp_path / "k8s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "k8s", "registry": registry, "artifact_store": {"flavor": "s3", "config": store_config(s3)},
        "orchestrator": orchestrator, "execution_target": {"flavor": "kubernetes", "config": k8s},
    }))
    registered = run_cli("stack", "register", str(path))
    assert registered.returncode == 0, registered.stderr


def test_isolated_checkpoints_run_as_jobs(tmp_path: Path, kube_cluster: Any, s3: Emulator) -> None:
    server, controller = kube_cluster
    register_k8s_stack(tmp_path, server, s3)
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


def test_flow_body_runs_as_a_job_and_a_wait_ends_it_until_the_input_launches_another(
    tmp_path: Path, kube_cluster: Any, s3: Emulator, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, controller = kube_cluster
    register_k8s_stack(tmp_path, server, s3, registry_url=postgres_url)
    monkeypatch.setenv("KITARU_STACK", "k8s")  # the client and `kitaru executions input` read its record
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        code, out = procs.finish(procs.python(str(FLOWS / "approval_flow.py"), str(workdir), cwd=FLOWS,
                                              env={"KITARU_STACK": "k8s"}))
    assert code == 0, out  # flow.run() returned at once: the body runs in a Job
    exec_id = (workdir / "exec_id").read_text()
    waiting = wait_for_execution(exec_id, lambda e: e.status.value == "waiting"
                                 and e.pending_wait is not None, "the `approve` wait")
    assert waiting.pending_wait.name == "approve"
    # No compute while waiting: the flow-body Job has ended (it completed, it was not killed).
    wait_for(lambda: controller.runs and all(run.ended for run in controller.runs.values()))
    assert len([name for name in controller.started if name.startswith("kitaru-flow-")]) == 1

    answered = run_cli("executions", "input", exec_id, "--wait", "approve", "--value", "true")
    assert answered.returncode == 0, answered.stderr
    done = wait_for_status(exec_id, {"completed", "failed"})
    assert done.status.value == "completed", done
    result = kitaru.load(exec_id, "output")
    assert result["text"] == "WHY DURABLE AGENTS MATTERS"
    # The input launched a second flow-body Job; the isolated call was a Job of its own.
    flows = [name for name in controller.started if name.startswith("kitaru-flow-")]
    calls = [name for name in controller.started if not name.startswith("kitaru-flow-")]
    assert len(flows) == 2 and len(calls) == 1
    assert result["pid"] != result["runner_pid"]
    assert runs(workdir) == Counter(draft=1, finalize=1)
