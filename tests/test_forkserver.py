"""The fork server: each task is a new process started as `python -m` would start it, the server
survives its tasks' crashes, reports exit codes as they happen, and outlives no runner's tasks
needlessly; the `process` target starts its workers through it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kitaru_core.forkserver import ForkServer, ForkServerError
from kitaru_core.processes import process_is_running, process_start_token

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the fork server needs os.fork")

PROBE = """
import json, os, sys
import {pkg}.state as state
state.count += 1
out = {{"pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "argv": sys.argv[1:],
        "cwd": os.getcwd(), "path0": sys.path[0], "env": os.environ.get("PROBE_VALUE"),
        "count": state.count, "name": __name__, "stdin": sys.stdin.read()}}
print("probe says", json.dumps(out))
mode = sys.argv[1]
if mode == "exit":
    sys.exit(int(sys.argv[2]))
if mode == "raise":
    raise RuntimeError("probe failed")
if mode == "kill":
    os.kill(os.getpid(), 9)
if mode == "sleep":
    import time
    open(sys.argv[3], "w").write("started")
    time.sleep(float(sys.argv[2]))
    open(sys.argv[3], "w").write("done")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A package with a module to run (`probe`) and a module-level counter (`state`)."""
    pkg = tmp_path / "project" / "fsprobe"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "state.py").write_text("count = 0\n")
    (pkg / "probe.py").write_text(textwrap.dedent(PROBE.format(pkg="fsprobe")))
    (pkg / "threaded.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
    )
    return pkg.parent


@pytest.fixture
def server(project: Path):
    env = {**os.environ, "PYTHONPATH": str(project)}
    started = ForkServer(sys.executable, env=env, cwd=str(project), preload=("fsprobe.state",))
    yield started
    started.close()


def probe(log: Path) -> dict:
    line = next(ln for ln in log.read_text().splitlines() if ln.startswith("probe says "))
    return json.loads(line.removeprefix("probe says "))


def run(server: ForkServer, tmp_path: Path, *args: str, env: dict | None = None, name: str = "t"):
    log = tmp_path / f"{name}.log"
    child = server.spawn(["-m", "fsprobe.probe", *args],
                         env={**server.env, "PROBE_VALUE": name, **(env or {})},
                         cwd=str(tmp_path), log_path=log)
    return child, log


def test_a_task_runs_as_python_m_in_its_own_session_folder_and_environment(server, tmp_path):
    child, log = run(server, tmp_path, "exit", "0", name="first")
    assert child.wait(60) == 0
    seen = probe(log)
    assert seen["pid"] == child.pid and seen["ppid"] == server.pid
    assert seen["sid"] == child.pid  # its own session: a cancel's killpg reaches it alone
    assert seen["name"] == "__main__" and seen["argv"] == ["exit", "0"]
    assert seen["cwd"] == str(tmp_path) and seen["path0"] == str(tmp_path)
    assert seen["env"] == "first" and seen["stdin"] == ""
    assert "RuntimeWarning" not in log.read_text()
    assert child.start is not None


def test_each_task_starts_from_the_servers_state_not_the_last_tasks(server, tmp_path):
    counts = []
    for i in range(3):
        child, log = run(server, tmp_path, "exit", "0", name=f"t{i}")
        assert child.wait(60) == 0
        counts.append(probe(log)["count"])
    assert counts == [1, 1, 1]  # preloaded module, incremented in each child only


def test_exit_codes_exceptions_and_signals_are_reported_and_the_server_survives(server, tmp_path):
    code, _ = run(server, tmp_path, "exit", "3", name="code")
    assert code.wait(60) == 3
    raised, log = run(server, tmp_path, "raise", name="raise")
    assert raised.wait(60) == 1
    assert "RuntimeError: probe failed" in log.read_text()
    killed, _ = run(server, tmp_path, "kill", name="kill")
    assert killed.wait(60) == -signal.SIGKILL
    after, _ = run(server, tmp_path, "exit", "0", name="after")
    assert after.wait(60) == 0
    assert not server.busy


def test_wait_returns_none_while_the_task_runs(server, tmp_path):
    marker = tmp_path / "marker"
    child, _ = run(server, tmp_path, "sleep", "600", str(marker), name="sleeper")
    assert child.wait(0.2) is None and child.poll() is None
    assert server.busy
    os.killpg(child.pid, signal.SIGTERM)
    assert child.wait(60) == -signal.SIGTERM


def test_a_task_can_be_cancelled_as_soon_as_spawn_returns(server, tmp_path):
    for i in range(3):
        child, _ = run(server, tmp_path, "sleep", "600", str(tmp_path / f"m{i}"), name=f"c{i}")
        os.killpg(child.pid, signal.SIGTERM)  # its session and group exist already
        assert child.wait(60) == -signal.SIGTERM


def test_a_server_whose_preload_started_a_thread_refuses_to_fork(project, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(project)}
    threaded = ForkServer(sys.executable, env=env, cwd=str(project), preload=("fsprobe.threaded",))
    try:
        with pytest.raises(ForkServerError, match=r"fsprobe\.threaded started 1 thread"):
            run(threaded, tmp_path, "exit", "0")
    finally:
        threaded.close()


def test_only_module_command_lines_are_taken(server, tmp_path):
    with pytest.raises(ForkServerError, match="-m module"):
        server.spawn(["-c", "pass"], env=server.env, cwd=str(tmp_path), log_path=tmp_path / "x.log")


def test_a_closed_server_refuses_tasks_and_exits(server, tmp_path):
    server.close()
    with pytest.raises(ForkServerError):
        run(server, tmp_path, "exit", "0")
    server._proc.wait(timeout=60)


@pytest.mark.slow
def test_a_killed_runner_leaves_its_tasks_running_and_the_server_exits_after_them(project, tmp_path):
    marker = tmp_path / "marker"
    runner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import os, sys, time
            from kitaru_core.forkserver import ForkServer
            env = {{**os.environ, "PYTHONPATH": {str(project)!r}}}
            server = ForkServer(sys.executable, env=env, cwd={str(project)!r})
            child = server.spawn(["-m", "fsprobe.probe", "sleep", "2", {str(marker)!r}], env=env,
                                 cwd={str(tmp_path)!r}, log_path={str(tmp_path / "t.log")!r})
            print(server.pid, child.pid, child.start, flush=True)
            time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    server_pid, child_pid, start = runner.stdout.readline().split()
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.kill()
    runner.wait()
    server_start = process_start_token(int(server_pid))
    deadline = time.monotonic() + 60
    while marker.read_text() != "done" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.read_text() == "done"  # the task finished although its runner was killed
    while process_is_running(int(server_pid), server_start) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process_is_running(int(server_pid), server_start)  # and its server went away
    assert not process_is_running(int(child_pid), start)


# -- the process target ---------------------------------------------------------------------


def _worker_parents(tmp_path: Path, config: dict, n: int = 2) -> list[int]:
    """Run `n` tasks on a `process` target with `config`; the pid of each worker's parent."""
    import uuid

    from kitaru_core.interfaces import Resources, TaskRequest
    from kitaru_core.runtime.protocol import task_name, task_prefix, task_spec, worker_argv
    from kitaru_core.serializers import deserialize
    from kitaru_core.testing.base import build_component

    store_config = {"root": str(tmp_path / "store")}
    store = build_component("artifact_store", "local", store_config, home=tmp_path)
    target = build_component("execution_target", "process", config, home=tmp_path)
    exec_id = uuid.uuid4().hex
    parents = []
    for i in range(n):
        call = f"parent_pid#{i}"
        prefix = task_prefix(exec_id, call, 1)
        spec = task_spec(exec_id=exec_id, call_id=call, checkpoint="parent_pid", attempt=1,
                         task_name=task_name(exec_id, call, 1), prefix=prefix,
                         function={"module": "kitaru_core.testing.tasks", "qualname": "parent_pid"},
                         inputs={}, positional=False)
        store.write_file(f"{prefix}/spec.json", json.dumps(spec).encode())
        request = TaskRequest(task_name=spec["task_name"], spec_key=f"{prefix}/spec.json",
                              argv=worker_argv("local", store_config, f"{prefix}/spec.json"),
                              env={"KITARU_EXEC_ID": exec_id}, resources=Resources())
        handle = target.submit(request)
        state = target.watch(handle, 120)
        assert state is not None and state.state == "succeeded", (state, target.logs(handle))
        out = json.loads(store.read_file(f"{prefix}/result.json"))["output"]
        parents.append(deserialize(store.get_blob(out["key"]), out["serializer"]))
    return parents


def test_the_process_target_forks_its_workers_from_one_warm_server(tmp_path: Path):
    parents = _worker_parents(tmp_path, {})
    assert parents[0] == parents[1] != os.getpid()


def test_with_fork_server_false_the_runner_starts_each_worker(tmp_path: Path):
    assert _worker_parents(tmp_path, {"fork_server": False}) == [os.getpid(), os.getpid()]


def test_a_fork_server_that_refuses_leaves_the_target_starting_workers_afresh(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PYTHONPATH", str(project))
    parents = _worker_parents(tmp_path, {"preload": ["fsprobe.threaded"]}, n=3)
    assert parents == [os.getpid()] * 3
