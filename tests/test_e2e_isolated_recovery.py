"""Runner crashes during an isolated checkpoint (the remote protocol's recovery).

The worker runs in its own session, so killing the runner leaves it running.
`kitaru executions resume` then looks for the task's result.json first,
reattaches to the task if it still runs, and only submits a new attempt when
the task is lost.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from e2e_flows import recovery_flow
from e2e_flows.harness import FLOWS, Processes, runs

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.runtime.owner import process_is_running, process_start_token
from kitaru_core.stack import StackStore

pytestmark = pytest.mark.slow

STACK_FILE = """\
name: isolated
registry: {flavor: sqlite}
artifact_store: {flavor: local}
orchestrator: {flavor: local}
execution_target: {flavor: process}
"""

EXPECTED_TOTAL = sum(range(1, 11))


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """The flow's work folder; no worker outlives the test."""
    StackStore().register(_stack_file(tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    yield work
    (work / "hold").unlink(missing_ok=True)
    ready = work / "ready"
    if ready.exists():
        worker = json.loads(ready.read_text())
        if process_is_running(worker["pid"], worker.get("start")):
            kill_group(worker["pid"])


def _stack_file(tmp_path: Path) -> Path:
    path = tmp_path / "isolated.yaml"
    path.write_text(STACK_FILE)
    return path


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def crash_runner_mid_call(procs: Processes, workdir: Path) -> dict:
    """Run the flow until its isolated call is under way in a worker, then SIGKILL the runner."""
    (workdir / "hold").touch()
    runner = procs.python(str(FLOWS / "recovery_flow.py"), str(workdir), cwd=FLOWS,
                          env={"KITARU_STACK": "isolated"})
    procs.wait_for(lambda: (workdir / "ready").exists(), "the worker to start", watch=runner)
    procs.crash(runner)
    ready = json.loads((workdir / "ready").read_text())
    ready["start"] = process_start_token(ready["pid"])
    assert process_is_running(ready["pid"], ready["start"])  # the worker outlived its runner
    (workdir / "ready").write_text(json.dumps(ready))  # so the fixture kills only this process
    return ready


def recorded_task(exec_id: str, call_id: str) -> dict:
    """The task the registry holds for a call (what a restarted runner reattaches to)."""
    db = Path(os.environ["KITARU_HOME"]) / "kitaru.db"
    with sqlite3.connect(db) as conn:
        (raw,) = conn.execute("SELECT task FROM calls WHERE exec_id = ? AND call_id = ?",
                              (exec_id, call_id)).fetchone()
    return json.loads(raw)


def task_dir(exec_id: str, attempt: int) -> Path:
    return Path(os.environ["KITARU_HOME"]) / "artifacts" / "tasks" / exec_id / "crunch-1" / str(attempt)


def test_resume_after_runner_crash_uses_the_finished_workers_result(workdir: Path, tmp_path: Path) -> None:
    with Processes(tmp_path / "logs") as procs:
        ready = crash_runner_mid_call(procs, workdir)
        exec_id = ready["exec_id"]
        task = recorded_task(exec_id, "crunch#1")
        assert task["handle"]["pid"] == ready["pid"]

        # With no runner left, the worker finishes and commits its result.json.
        (workdir / "hold").unlink()
        procs.wait_for(lambda: (task_dir(exec_id, 1) / "result.json").exists(), "the worker's result")

    resumed = run_cli("executions", "resume", exec_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"execution {exec_id} is completed" in resumed.stdout

    # The result was picked up: no second worker, no second attempt.
    assert runs(workdir)["crunch"] == 1
    assert runs(workdir)["prepare"] == 1
    assert not task_dir(exec_id, 2).exists()
    execution = KitaruClient().executions.get(exec_id)
    call = next(c for c in execution.checkpoints if c.call_id == "crunch#1")
    assert (call.status, call.attempts) == ("completed", 1)
    assert call.output.type_name == "recovery_flow.Tally"
    assert kitaru.load(exec_id, "output") == {"total": EXPECTED_TOTAL, "worker_pid": ready["pid"]}


def test_resume_reattaches_to_a_worker_that_still_runs(workdir: Path, tmp_path: Path) -> None:
    with Processes(tmp_path / "logs") as procs:
        ready = crash_runner_mid_call(procs, workdir)
        exec_id = ready["exec_id"]

        resume = procs.kitaru("executions", "resume", exec_id, cwd=tmp_path)
        # The resumed flow body reached the isolated call again, and is waiting on the old worker.
        procs.wait_for(lambda: runs(workdir)["crunch-called"] == 2, "the resumed runner to reach crunch",
                       watch=resume)
        assert resume.poll() is None
        assert runs(workdir)["crunch"] == 1
        (workdir / "hold").unlink()
        code, out = procs.finish(resume)

    assert code == 0, out
    assert f"execution {exec_id} is completed" in out
    assert runs(workdir)["crunch"] == 1  # the same worker, polled by the new runner
    assert not task_dir(exec_id, 2).exists()
    execution = KitaruClient().executions.get(exec_id)
    call = next(c for c in execution.checkpoints if c.call_id == "crunch#1")
    assert (call.status, call.attempts) == ("completed", 1)
    assert kitaru.load(exec_id, "output") == {"total": EXPECTED_TOTAL, "worker_pid": ready["pid"]}


def test_resume_resubmits_when_the_worker_died_too(workdir: Path, tmp_path: Path) -> None:
    with Processes(tmp_path / "logs") as procs:
        ready = crash_runner_mid_call(procs, workdir)
        exec_id = ready["exec_id"]
        # The machine running the worker went away as well.
        kill_group(ready["pid"])
        (workdir / "hold").unlink()

    resumed = run_cli("executions", "resume", exec_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"execution {exec_id} is completed" in resumed.stdout

    # No result and no task left: a new attempt ran in a new worker, under its own task prefix.
    assert runs(workdir)["crunch"] == 2
    assert not (task_dir(exec_id, 1) / "result.json").exists()
    assert (task_dir(exec_id, 2) / "result.json").exists()
    execution = KitaruClient().executions.get(exec_id)
    call = next(c for c in execution.checkpoints if c.call_id == "crunch#1")
    assert (call.status, call.attempts) == ("completed", 2)
    second = recorded_task(exec_id, "crunch#1")["handle"]["pid"]
    assert second != ready["pid"]
    assert kitaru.load(exec_id, "output") == {"total": EXPECTED_TOTAL, "worker_pid": second}
    # The call's inputs were recorded once, with its first submission.
    inputs = sorted(a.name for a in call.artifacts if a.direction == "input")
    assert inputs == ["numbers", "workdir"]


def test_a_cloudpickled_checkpoint_gets_the_projects_code_on_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint defined inside a function is shipped by value, but the classes it
    uses are imported by name: the worker finds them in the project's code package,
    even when it runs where the project is not importable."""
    StackStore().register(_stack_file(tmp_path))

    def make_counter(offset: int):
        @checkpoint(runtime="isolated")
        def count(numbers: list[int]) -> recovery_flow.Tally:
            return recovery_flow.Tally(total=sum(numbers) + offset, worker_pid=os.getpid())

        return count

    @flow
    def counting() -> recovery_flow.Tally:
        return make_counter(100)([1, 2, 3]).load()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the worker starts here, where `e2e_flows` is not importable
    handle = counting.run(stack="isolated")
    tally = handle.wait(timeout=60)

    assert tally.total == 106
    assert tally.worker_pid != os.getpid()
    tasks = Path(os.environ["KITARU_HOME"]) / "artifacts" / "tasks" / handle.exec_id
    spec = json.loads((tasks / "count-1" / "1" / "spec.json").read_text())
    assert "pickled" in spec["function"]
    assert "code_package" in spec["function"]
