"""The runner watchdog on the `kubernetes` orchestrator, against kmock's emulator and the test
controller (tests/services/kube.py): a flow-body Job that fails before its runner takes the
execution, and one that never starts, are replaced by a new Job, and the execution completes
with each checkpoint run once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, runs, wait_for_execution, wait_for_status
from emulators import Emulator
from services.kube import wait_for
from test_e2e_kubernetes import register_k8s_stack, s3  # noqa: F401 - `s3` is a fixture

import kitaru
from kitaru import KitaruClient

pytestmark = pytest.mark.slow


def flow_jobs(controller: Any) -> list[dict[str, Any]]:
    """Every flow-body Job the emulator holds, in creation order (name, failed, started)."""
    jobs = controller.batch.list_namespaced_job("kitaru", label_selector="kitaru.dev/role=flow").items
    return [{"name": j.metadata.name, "failed": bool(j.status and j.status.failed),
             "started": j.metadata.name in controller.started} for j in jobs]


def waiting_for_approval(tmp_path: Path, workdir: Path, controller: Any) -> str:
    """approval_flow.py's first Job, up to its `approve` wait (the Job then ends)."""
    with Processes(tmp_path / "logs") as procs:
        code, out = procs.finish(procs.python(str(FLOWS / "approval_flow.py"), str(workdir),
                                              cwd=FLOWS, env={"KITARU_STACK": "k8s"}))
    assert code == 0, out
    exec_id = (workdir / "exec_id").read_text()
    wait_for_execution(exec_id, lambda e: e.status.value == "waiting" and e.pending_wait is not None,
                       "the `approve` wait")
    wait_for(lambda: controller.runs and all(run.ended for run in controller.runs.values()))
    return exec_id


def is_flow_job(name: str) -> bool:
    return name.startswith("kitaru-flow-")


def test_a_flow_job_that_fails_before_its_runner_starts_is_replaced(
    tmp_path: Path, kube_cluster: Any, s3: Emulator, postgres_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, controller = kube_cluster
    register_k8s_stack(tmp_path, server, s3, registry_url=postgres_url)
    monkeypatch.setenv("KITARU_STACK", "k8s")
    workdir = tmp_path / "work"
    workdir.mkdir()
    exec_id = waiting_for_approval(tmp_path, workdir, controller)
    controller.fail_at_start(is_flow_job)
    answered = run_cli("executions", "input", exec_id, "--wait", "approve", "--value", "true",
                       env={"KITARU_CONFIRM_SECONDS": "2"})
    assert answered.returncode == 0, answered.stderr
    assert "not started yet" in answered.stdout
    wait_for(lambda: any(j["failed"] for j in flow_jobs(controller)))
    # `executions get` runs the watchdog: the Job failed, so a new one is launched.
    shown = run_cli("executions", "get", exec_id)
    assert shown.returncode == 0, shown.stderr
    done = wait_for_status(exec_id, {"completed", "failed"})
    assert done.status.value == "completed", done
    assert kitaru.load(exec_id, "output")["text"] == "WHY DURABLE AGENTS MATTERS"
    jobs = flow_jobs(controller)
    failed = [j for j in jobs if j["failed"]]
    assert len(jobs) == 3 and len(failed) == 1 and not failed[0]["started"]
    replacement = [name for name in controller.started if is_flow_job(name)][-1]
    runner = KitaruClient().executions.get(exec_id).runner
    assert (runner["launches"], runner["relaunches"]) == (3, 1)  # flow.run(), the input, the watchdog
    assert runner["handle"]["job"] == replacement != failed[0]["name"]
    assert runner["handle"]["log"] == f"kubectl logs -n kitaru job/{replacement}"
    assert runs(workdir) == Counter(draft=1, finalize=1)


def test_a_flow_job_that_never_starts_is_deleted_and_replaced(
    tmp_path: Path, kube_cluster: Any, s3: Emulator, postgres_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, controller = kube_cluster
    register_k8s_stack(tmp_path, server, s3, registry_url=postgres_url)
    monkeypatch.setenv("KITARU_STACK", "k8s")
    workdir = tmp_path / "work"
    workdir.mkdir()
    exec_id = waiting_for_approval(tmp_path, workdir, controller)
    controller.never_start(is_flow_job)
    answered = run_cli("executions", "input", exec_id, "--wait", "approve", "--value", "true",
                       env={"KITARU_CONFIRM_SECONDS": "2"})
    assert answered.returncode == 0, answered.stderr
    wait_for(lambda: controller.held)
    (held,) = controller.held
    # Within the grace period it is left alone; past it, cancelled (deleted) and replaced.
    waiting = run_cli("executions", "recover", exec_id)
    assert waiting.returncode == 0 and "nothing to do: its runner is starting" in waiting.stdout
    recovered = run_cli("executions", "recover", exec_id, env={"KITARU_RUNNER_START_GRACE": "0"})
    assert recovered.returncode == 0, recovered.stderr
    assert "has not started within 0 s" in recovered.stdout and "relaunched" in recovered.stdout
    done = wait_for_status(exec_id, {"completed", "failed"})
    assert done.status.value == "completed", done
    names = [j["name"] for j in flow_jobs(controller)]
    assert held[1] not in names and len(names) == 2  # the first Job, and the replacement
    assert runs(workdir) == Counter(draft=1, finalize=1)
