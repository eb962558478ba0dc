"""The remote protocol v2 on the local `process` target, end to end: one task per attempt
across runner crashes around `submit`, cancel reaching the target, and cheap polling."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, runs
from test_e2e_isolated_recovery import (
    EXPECTED_TOTAL,
    crash_runner_mid_call,
    recorded_task,
    task_dir,
    workdir,  # noqa: F401 - the fixture
)

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.runtime.owner import process_is_running
from kitaru_core.runtime.protocol import is_task_name, task_name

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("moment", ["before", "after"])
def test_a_runner_killed_around_submit_runs_the_attempt_exactly_once(
    workdir: Path, tmp_path: Path, moment: str  # noqa: F811
) -> None:
    with Processes(tmp_path / "logs") as procs:
        runner = procs.python(str(FLOWS / "crash_submit_flow.py"), str(workdir), cwd=FLOWS,
                              env={"KITARU_STACK": "isolated", "KITARU_TEST_CRASH": moment})
        code, out = procs.finish(runner)
        assert code == -9, out
    exec_id = KitaruClient().executions.list()[0].exec_id
    task = recorded_task(exec_id, "crunch#1")
    # Only the intent was recorded: the name and attempt, no handle.
    assert task["handle"] is None
    assert task["name"] == task_name(exec_id, "crunch#1", 1) and is_task_name(task["name"])
    if moment == "after":  # the worker it started outlives it and finishes
        deadline = time.monotonic() + 60
        while not (task_dir(exec_id, 1) / "result.json").exists():
            assert time.monotonic() < deadline, "the worker never wrote its result"
            time.sleep(0.05)

    resumed = run_cli("executions", "resume", exec_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert runs(workdir)["crunch"] == 1  # adopted by name (after) or submitted once (before)
    assert runs(workdir)["prepare"] == 1
    assert not task_dir(exec_id, 2).exists()
    call = next(c for c in KitaruClient().executions.get(exec_id).checkpoints if c.call_id == "crunch#1")
    assert (call.status, call.attempts) == ("completed", 1)
    assert kitaru.load(exec_id, "output")["total"] == EXPECTED_TOTAL


def test_cancel_stops_the_isolated_task_of_a_dead_runner(workdir: Path, tmp_path: Path) -> None:  # noqa: F811
    with Processes(tmp_path / "logs") as procs:
        ready = crash_runner_mid_call(procs, workdir)  # the worker holds, its runner is gone
        cancelled = run_cli("executions", "cancel", ready["exec_id"], cwd=tmp_path)
        assert cancelled.returncode == 0, cancelled.stderr
        deadline = time.monotonic() + 30
        while process_is_running(ready["pid"], ready["start"]):
            assert time.monotonic() < deadline, "the worker kept running after cancel"
            time.sleep(0.05)
    assert not (task_dir(ready["exec_id"], 1) / "result.json").exists()


TASK_SECONDS = 7.0


@checkpoint(runtime="isolated")
def slow_answer(seconds: float) -> int:
    time.sleep(seconds)
    return 42


@flow
def waits_for_a_slow_task(seconds: float) -> int:
    return slow_answer(seconds).load()


def test_following_a_7s_task_costs_a_handful_of_store_and_target_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitaru_local.folder_store import LocalArtifactStore
    from kitaru_local.targets import ProcessTarget

    from kitaru_core.stack import StackStore

    stack = tmp_path / "iso.yaml"
    stack.write_text("name: iso-poll\nexecution_target: {flavor: process}\n")
    StackStore().register(stack)
    counts = {"result_reads": 0, "polls": 0}
    read_file, poll = LocalArtifactStore.read_file, ProcessTarget.poll

    def counted_read(self, path):  # type: ignore[no-untyped-def]
        if path.endswith("/result.json"):
            counts["result_reads"] += 1
        return read_file(self, path)

    def counted_poll(self, handle):  # type: ignore[no-untyped-def]
        counts["polls"] += 1
        return poll(self, handle)

    monkeypatch.setattr(LocalArtifactStore, "read_file", counted_read)
    monkeypatch.setattr(ProcessTarget, "poll", counted_poll)
    started = time.monotonic()
    assert waits_for_a_slow_task.run(TASK_SECONDS, stack="iso-poll").wait(timeout=120) == 42
    assert time.monotonic() - started >= TASK_SECONDS
    # Backoff 0.1 s doubling to the 5 s cap: about 8 ticks for 7 s (a fixed 0.1 s would be ~70),
    # one store read and one target request each.
    print("requests for a 7 s task:", counts)
    assert 4 <= counts["result_reads"] <= 10, counts
    assert 3 <= counts["polls"] <= 10, counts
    assert counts["polls"] <= counts["result_reads"]
    assert os.environ.get("KITARU_HOME")


@checkpoint(runtime="isolated")
def read_package_data() -> list[str]:
    here = Path(__file__).resolve().parent
    return [str(here), (here / "e2e_flows" / "README.md").read_text()]


@flow
def reads_package_data() -> list[str]:
    return read_package_data().load()


def test_package_data_next_to_the_code_reaches_the_worker(tmp_path: Path) -> None:
    from kitaru_core.stack import StackStore

    stack = tmp_path / "iso.yaml"
    stack.write_text("name: iso-data\nexecution_target: {flavor: process}\n")
    StackStore().register(stack)
    folder, text = reads_package_data.run(stack="iso-data").wait(timeout=120)
    here = Path(__file__).resolve().parent
    assert Path(folder) != here  # the worker ran from the unpacked code package
    assert text == (here / "e2e_flows" / "README.md").read_text()
