"""Runner crashes around an isolated checkpoint whose task is a Kubernetes Job (kmock's emulator
and the test controller), on PostgreSQL and S3: (a) the runner is SIGKILLed while the Job runs,
(b) between `submit` and recording the handle. Each resume ends with every checkpoint body run
exactly once (counted in runs.log), except when the Job itself was lost (evicted): then its
attempt runs again, as a new Job. Crash (c), a flow-body Job killed at its wait, is in
tests/test_e2e_kubernetes.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, runs
from emulators import Emulator
from services.kube import wait_for
from test_e2e_kubernetes import call_jobs, register_k8s_stack, s3  # noqa: F401 - the fixture

import kitaru
from kitaru import KitaruClient
from kitaru_core.runtime.protocol import task_name

pytestmark = pytest.mark.slow

EXPECTED_TOTAL = sum(range(1, 11))


@pytest.fixture
def cluster(
    tmp_path: Path, kube_cluster: Any, s3: Emulator, postgres_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """The `k8s` stack (postgres, S3, kubernetes target; the runner a local process), active;
    yields the Job controller."""
    server, controller = kube_cluster
    register_k8s_stack(tmp_path, server, s3, registry_url=postgres_url, flow_jobs=False)
    monkeypatch.setenv("KITARU_STACK", "k8s")
    yield controller


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    work = tmp_path / "work"
    work.mkdir()
    yield work
    (work / "hold").unlink(missing_ok=True)  # a held Job ends (the controller kills the rest)


def crunch_task(exec_id: str) -> dict[str, Any]:
    """The task the registry holds for `crunch#1` (what a restarted runner reattaches to)."""
    calls = KitaruClient()._stack.registry.get_calls(exec_id)
    task = next(c for c in calls if c.call_id == "crunch#1").task
    assert task is not None
    return task


def crunch_call(exec_id: str) -> Any:
    return next(c for c in KitaruClient().executions.get(exec_id).checkpoints if c.call_id == "crunch#1")


@pytest.mark.parametrize("meanwhile", ["job finishes", "job still runs", "job evicted"])
def test_a_runner_killed_while_its_isolated_job_runs(
    cluster: Any, workdir: Path, tmp_path: Path, meanwhile: str
) -> None:
    """Crash (a). The Job outlives its runner; the resumed runner uses its result.json, or
    follows the same Job, or (the pod evicted) runs the attempt again as a new Job."""
    controller = cluster
    (workdir / "hold").touch()
    with Processes(tmp_path / "logs") as procs:
        runner = procs.python(str(FLOWS / "recovery_flow.py"), str(workdir), cwd=FLOWS)
        procs.wait_for(lambda: (workdir / "ready").exists(), "crunch to start in its Job", watch=runner)
        procs.crash(runner)
        exec_id = json.loads((workdir / "ready").read_text())["exec_id"]
        task = crunch_task(exec_id)
        job = task["handle"]["job"]
        assert job == task_name(exec_id, "crunch#1", 1)
        assert call_jobs(controller) == [job]
        run = controller.runs[("kitaru", job)]
        assert not run.ended  # the Job outlived its runner

        if meanwhile == "job finishes":
            (workdir / "hold").unlink()
            wait_for(lambda: run.ended)
            resumed = run_cli("executions", "resume", exec_id, cwd=tmp_path)
            assert resumed.returncode == 0, resumed.stderr
            out = resumed.stdout
        elif meanwhile == "job still runs":
            resume = procs.kitaru("executions", "resume", exec_id, cwd=tmp_path)
            # The resumed flow body reached crunch again and follows the Job still running.
            procs.wait_for(lambda: runs(workdir)["crunch-called"] == 2, "the resumed runner to reach crunch",
                           watch=resume)
            assert resume.poll() is None and not run.ended
            (workdir / "hold").unlink()
            code, out = procs.finish(resume)
            assert code == 0, out
        else:
            controller.evict("kitaru", job)  # the node reclaims the pod: no result.json
            wait_for(lambda: run.ended)
            (workdir / "hold").unlink()
            resumed = run_cli("executions", "resume", exec_id, cwd=tmp_path)
            assert resumed.returncode == 0, resumed.stderr
            out = resumed.stdout
    assert f"execution {exec_id} is completed" in out
    assert kitaru.load(exec_id, "output")["total"] == EXPECTED_TOTAL
    assert runs(workdir)["prepare"] == 1
    call = crunch_call(exec_id)
    assert call.status == "completed"
    if meanwhile == "job evicted":
        # The lost attempt ran again, as a new Job under the next attempt's name.
        assert runs(workdir)["crunch"] == 2 and call.attempts == 2
        assert call_jobs(controller) == [job, task_name(exec_id, "crunch#1", 2)]
    else:
        assert runs(workdir)["crunch"] == 1 and call.attempts == 1  # one Job, run once
        assert call_jobs(controller) == [job]


@pytest.mark.parametrize("moment", ["before", "after"])
def test_a_runner_killed_around_submit_runs_the_job_exactly_once(
    cluster: Any, workdir: Path, tmp_path: Path, moment: str
) -> None:
    """Crash (b). Killed after recording its intent and before `submit` (no Job yet), or after
    `submit` created the Job and before the handle was recorded (the Job runs on): the
    resumed runner finds the Job by its name, or submits it under that name, once."""
    controller = cluster
    with Processes(tmp_path / "logs") as procs:
        runner = procs.python(str(FLOWS / "crash_submit_flow.py"), str(workdir), cwd=FLOWS,
                              env={"KITARU_TEST_CRASH": moment})
        code, out = procs.finish(runner)
        assert code == -9, out
    exec_id = KitaruClient().executions.list()[0].exec_id
    task = crunch_task(exec_id)
    assert task["handle"] is None  # only the intent was recorded: the name and the attempt
    name = task_name(exec_id, "crunch#1", 1)
    assert task["name"] == name
    if moment == "after":  # the Job it created runs on without its runner, to its end
        assert call_jobs(controller) == [name]
        wait_for(lambda: controller.runs[("kitaru", name)].ended)
    else:
        assert call_jobs(controller) == []

    resumed = run_cli("executions", "resume", exec_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert call_jobs(controller) == [name]  # adopted by name (after) or submitted once (before)
    assert runs(workdir)["crunch"] == 1
    assert runs(workdir)["prepare"] == 1
    call = crunch_call(exec_id)
    assert (call.status, call.attempts) == ("completed", 1)
    assert kitaru.load(exec_id, "output")["total"] == EXPECTED_TOTAL
