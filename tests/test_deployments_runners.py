"""An invoked deployment keeps running its snapshot's code: on a runner on another machine (it
unpacks the package from the store), and after a wait suspended it and an input resumed it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_deployments import write_project
from test_remote_launch import RecordingOrchestrator, far, register, run_elsewhere  # noqa: F401

from kitaru import KitaruClient
from kitaru.flow_targets import load_flow_target


@pytest.mark.slow
def test_a_remote_runner_unpacks_the_deployed_package_not_the_project(
    far: dict[str, Path], tmp_path: Path,  # noqa: F811 - the fixture
) -> None:
    register(tmp_path, "far")
    app = write_project(tmp_path / "work", "one")
    v1 = load_flow_target(f"{app}:greeter").deploy(stack="far", tags=["production"])
    write_project(tmp_path / "work", "two")  # the working tree changes after the deploy
    out = tmp_path / "out.txt"
    handle = KitaruClient(stack="far").deployments.invoke(
        flow="greeter", tag="production", inputs={"out": str(out), "who": "far"})
    command = RecordingOrchestrator.launches[-1]["command"]
    assert command[command.index("--code-package") + 1] == v1.code_package
    done = run_elsewhere(tmp_path, RecordingOrchestrator.launches[-1])
    assert done.returncode == 0, done.stderr
    assert handle.wait(timeout=60) == "one" and out.read_text() == "one:far"


@pytest.mark.slow
def test_a_resume_after_a_wait_runs_the_deployed_code(tmp_path: Path, client: KitaruClient) -> None:
    app = write_project(tmp_path / "proj", "one")
    load_flow_target(f"{app}:approver").deploy()
    write_project(tmp_path / "proj", "two")
    out = tmp_path / "out.txt"
    handle = client.deployments.invoke(flow="approver", inputs={"out": str(out)})
    deadline = time.monotonic() + 60
    while not client.executions.pending_waits(handle.exec_id):  # the runner reaches the wait
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.executions.input(handle.exec_id, wait="approve", value="yes")
    assert handle.wait(timeout=60) == "one" and out.read_text() == "one:yes"
    record = client._stack.registry.get_execution(handle.exec_id)
    assert record.flow_ref["deployment"] == {"flow": "approver", "version": 1}


SCRIPT = '''\
from kitaru import checkpoint, flow


@checkpoint
def times(x: int) -> int:
    return x * 10


@flow
def scripted(x: int = 1) -> int:
    return times(x)


if __name__ == "__main__":
    print(scripted.deploy(x=4, tags=["prod"]).entrypoint)
'''


@pytest.mark.slow
def test_a_flow_deployed_from_a_script_runs_from_its_snapshot(tmp_path: Path, client: KitaruClient) -> None:
    script = tmp_path / "tool.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tool:scripted"
    script.write_text(SCRIPT.replace("x * 10", "x * 99"))
    assert client.deployments.invoke(flow="scripted", tag="prod").wait(timeout=60) == 40
    assert client.deployments.invoke(flow="scripted", inputs={"x": 2}).wait(timeout=60) == 20
