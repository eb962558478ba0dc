"""A background runner launched by the local orchestrator is killed (SIGKILL) before it takes
its execution, and after: the watchdog (`kitaru executions recover`, `executions list`)
relaunches it and the execution completes, each completed checkpoint run once. And a cancel
stops a background runner inside a long checkpoint, while a user's own process is never
signalled. Real processes throughout (tests/e2e_flows/watchdog_flow.py)."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, has_exec_id, runs, wait_for_status

from kitaru import KitaruClient
from kitaru_core.runtime.owner import process_is_running, process_start_token

pytestmark = pytest.mark.slow


def suspended_run(procs: Processes, workdir: Path) -> str:
    """watchdog_flow.py up to its `go` wait, which suspends at once; the execution id."""
    code, out = procs.finish(procs.python(str(FLOWS / "watchdog_flow.py"), str(workdir), cwd=FLOWS))
    assert code == 0, out
    exec_id = (workdir / "exec_id").read_text()
    record = KitaruClient()._stack.registry.get_execution(exec_id)
    assert (record.status, record.owner, record.runner) == ("waiting", None, None)
    return exec_id


def kill(procs: Processes, pid: int) -> None:
    """SIGKILL `pid` (a runner the orchestrator launched, not our child) and see it gone."""
    start = process_start_token(pid)
    os.kill(pid, signal.SIGKILL)
    procs.wait_for(lambda: not process_is_running(pid, start), f"process {pid} to die")


def read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def registry_record(exec_id: str) -> Any:
    return KitaruClient()._stack.registry.get_execution(exec_id)


def test_a_runner_killed_before_it_takes_the_execution_is_relaunched(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    hold = tmp_path / "hold-import"
    with Processes(tmp_path / "logs") as procs:
        exec_id = suspended_run(procs, workdir)
        hold.touch()
        answered = run_cli("executions", "input", exec_id, "--value", "true",
                           env={"WATCHDOG_HOLD_IMPORT": str(hold), "KITARU_CONFIRM_SECONDS": "1"})
        assert answered.returncode == 0, answered.stderr
        assert "not started yet" in answered.stdout
        pid = int(procs.wait_for(lambda: read(Path(f"{hold}.pid")), "the runner to import the flow"))
        record = registry_record(exec_id)
        assert record.runner["handle"]["pid"] == pid and record.runner["claimed_at"] is None
        kill(procs, pid)  # before it took the execution
        hold.unlink()
        recovered = run_cli("executions", "recover", exec_id)
        assert recovered.returncode == 0, recovered.stderr
        assert "before it took the execution; relaunched (relaunch 1)" in recovered.stdout
        done = wait_for_status(exec_id, {"completed", "failed"})
        assert done.status.value == "completed", done
        assert done.load_result() == 10
        assert (done.runner["launches"], done.runner["relaunches"]) == (2, 1)
        again = run_cli("executions", "recover", exec_id)
        assert again.returncode == 0 and "nothing to do: completed" in again.stdout
    assert runs(workdir) == Counter(gather=1, crunch=1)


def test_a_runner_killed_after_it_took_the_execution_is_relaunched_by_executions_list(
    tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        exec_id = suspended_run(procs, workdir)
        (workdir / "hold").touch()
        answered = run_cli("executions", "input", exec_id, "--value", "true")
        assert answered.returncode == 0, answered.stderr
        assert "resuming in the background" in answered.stdout
        ready = procs.wait_for(lambda: read(workdir / "ready"), "`crunch` to start in the runner")
        pid = json.loads(ready)["pid"]
        record = registry_record(exec_id)
        assert record.runner["handle"]["pid"] == pid and record.runner["claimed_at"]
        kill(procs, pid)  # inside `crunch`, holding the execution
        (workdir / "hold").unlink()
        listed = run_cli("executions", "list")
        assert listed.returncode == 0, listed.stderr
        done = wait_for_status(exec_id, {"completed", "failed"})
        assert done.status.value == "completed", done
        assert (done.runner["launches"], done.runner["relaunches"]) == (2, 1)
        logs = "".join(e.text for e in KitaruClient().executions.logs(exec_id))
        assert "its runner is lost" in logs and "relaunched it (relaunch 1)" in logs
    # `gather` ran once; `crunch`, in flight when its runner died, ran again (at least once).
    assert runs(workdir) == Counter(gather=1, crunch=2)


def test_cancel_stops_a_background_runner_inside_a_long_checkpoint(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        exec_id = suspended_run(procs, workdir)
        (workdir / "sleep").write_text("600")
        answered = run_cli("executions", "input", exec_id, "--value", "true")
        assert answered.returncode == 0, answered.stderr
        pid = json.loads(procs.wait_for(lambda: read(workdir / "ready"), "`crunch` to start"))["pid"]
        start = process_start_token(pid)
        client = KitaruClient()
        procs.wait_for(lambda: "crunching for 600 s" in "".join(
            e.text for e in client.executions.logs(exec_id)), "`crunch` to print")
        cancelled = run_cli("executions", "cancel", exec_id)
        assert cancelled.returncode == 0, cancelled.stderr
        # The runner stops long before its 600 s checkpoint would have ended.
        procs.wait_for(lambda: not process_is_running(pid, start), "the cancelled runner to exit",
                       timeout=30)
    record = registry_record(exec_id)
    assert (record.status, record.owner, record.lease_expires) == ("cancelled", None, None)
    shown = client.executions.get(exec_id)
    calls = {c.name: c for c in shown.checkpoints}
    assert calls["gather"].status == "completed" and calls["gather"].output.load() == [1, 2, 3, 4]
    assert calls["crunch"].status == "failed"
    assert "cancelled while this call ran" in calls["crunch"].error["message"]
    crunch_logs = "".join(e.text for e in client.executions.logs(exec_id, checkpoint="crunch"))
    assert "crunching for 600 s" in crunch_logs  # what it printed before the cancel is kept
    runner_log = Path(record.runner["handle"]["log"]).read_text()
    assert f"execution {exec_id} is cancelled (its runner was stopped)" in runner_log
    assert runs(workdir) == Counter(gather=1, crunch=1)


def test_cancel_never_signals_the_users_own_process(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "hold").touch()
    with Processes(tmp_path / "logs") as procs:
        script = procs.python(str(FLOWS / "watchdog_flow.py"), str(workdir), "direct", cwd=FLOWS)
        ready = procs.wait_for(lambda: read(workdir / "ready"), "`crunch` to start in the script",
                               watch=script)
        assert json.loads(ready)["pid"] == script.pid  # flow.run() runs it in the user's process
        procs.wait_for(lambda: has_exec_id(workdir), "the execution id", watch=script)
        exec_id = (workdir / "exec_id").read_text()
        assert registry_record(exec_id).runner is None
        cancelled = run_cli("executions", "cancel", exec_id)
        assert cancelled.returncode == 0, cancelled.stderr
        (workdir / "hold").unlink()
        code, out = procs.finish(script)
    # Not signalled: `crunch` ran to its end and was recorded; the body stopped at the next step.
    assert code != 0 and "ExecutionCancelledError" in out, out
    shown = KitaruClient().executions.get(exec_id)
    assert shown.status.value == "cancelled"
    assert {c.name: c.status for c in shown.checkpoints} == {"gather": "completed", "crunch": "completed"}


def test_sigterm_without_a_cancel_lets_the_execution_go_and_the_watchdog_continues_it(
    tmp_path: Path
) -> None:
    """What Kubernetes does to a pod it deletes or evicts: the runner stops in order and the
    execution is resumable at once (no lease to wait for)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        exec_id = suspended_run(procs, workdir)
        (workdir / "hold").touch()
        assert run_cli("executions", "input", exec_id, "--value", "true").returncode == 0
        pid = json.loads(procs.wait_for(lambda: read(workdir / "ready"), "`crunch` to start"))["pid"]
        start = process_start_token(pid)
        os.kill(pid, signal.SIGTERM)
        procs.wait_for(lambda: not process_is_running(pid, start), "the stopped runner to exit")
        record = registry_record(exec_id)
        assert (record.status, record.owner) == ("running", None)  # let go, not cancelled
        # (read from the registry: `executions get` would run the watchdog itself)
        calls = KitaruClient()._stack.registry.get_calls(exec_id)
        crunch = next(c for c in calls if c.name == "crunch")
        assert crunch.status == "failed" and "runs again on resume" in crunch.error["message"]
        (workdir / "hold").unlink()
        recovered = run_cli("executions", "recover", exec_id)
        assert recovered.returncode == 0 and "relaunched" in recovered.stdout, recovered.stdout
        done = wait_for_status(exec_id, {"completed", "failed"})
        assert done.status.value == "completed" and done.load_result() == 10
    assert runs(workdir) == Counter(gather=1, crunch=2)
