"""Flows through the `kubernetes` orchestrator and execution target end to end: kmock's
emulator and the test controller (tests/services/kube.py) run each Job as a real process.
Tasks "run anywhere", so the stack's store is an object store (moto's S3, fake-gcs-server,
Azurite) and, for the orchestrator, the registry is PostgreSQL: a stack with local state is
refused. One example flow runs unchanged on the local, process and kubernetes stacks."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, runs, wait_for_execution, wait_for_status
from emulators import EMULATORS, Emulator, store_config, worker_env
from services.kube import can_own_hostnames, running_cluster, wait_for

import kitaru
from kitaru import KitaruClient, checkpoint, flow

pytestmark = pytest.mark.slow


def reach(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """Make the object-store emulator reachable from this process and every process it
    starts (the controller's pods inherit this environment, as pods in a cloud reach the
    real service)."""
    for name, value in {**emulator.env, **worker_env(emulator)}.items():
        monkeypatch.setenv(name, value)
    return emulator


@pytest.fixture
def s3(s3_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The S3 emulator, reachable from here and from the Jobs' processes."""
    return reach(s3_emulator, monkeypatch)


def register_k8s_stack(
    tmp_path: Path, server: Any, store: Emulator, *, registry_url: str | None = None,
    flow_jobs: bool | None = None,
) -> None:
    """The stack `k8s`: isolated calls as Jobs on the emulator, with `store`'s object store; with
    `registry_url` the registry is PostgreSQL and (unless `flow_jobs=False`) flow bodies are
    Jobs too. The controller runs each Job's command with this Python (the image is ignored)."""
    k8s = {"namespace": "kitaru", "image": "registry/agents:1.4",
           "kubeconfig": str(server.kubeconfig), "python": sys.executable}
    registry = ({"flavor": "postgres", "config": {"url": registry_url}} if registry_url
                else {"flavor": "sqlite"})
    flow_jobs = bool(registry_url) if flow_jobs is None else flow_jobs
    orchestrator = ({"flavor": "kubernetes", "config": {**k8s, "working_dir": str(FLOWS)}}
                    if flow_jobs else {"flavor": "local"})
    path = tmp_path / "k8s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "k8s", "registry": registry,
        "artifact_store": {"flavor": store.flavor, "config": store_config(store)},
        "orchestrator": orchestrator, "execution_target": {"flavor": "kubernetes", "config": k8s},
    }))
    registered = run_cli("stack", "register", str(path))
    assert registered.returncode == 0, registered.stderr


def flow_jobs(controller: Any) -> list[str]:
    """The flow-body Jobs the controller started, in order (the rest are isolated calls)."""
    return [name for name in controller.started if name.startswith("kitaru-flow-")]


def call_jobs(controller: Any) -> list[str]:
    return [name for name in controller.started if not name.startswith("kitaru-flow-")]


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


#: Where the example flow runs: the default `local` stack (everything in the runner's process),
#: `process` (the isolated call in a worker process) and kubernetes + PostgreSQL with each
#: object store (the flow body and the isolated call as Jobs).
EXAMPLE_STACKS = ["local", "process", *(f"kubernetes-{cloud}" for cloud in sorted(EMULATORS))]

PROCESS_STACK = """\
name: process
registry: {flavor: sqlite}
artifact_store: {flavor: local}
orchestrator: {flavor: local}
execution_target: {flavor: process}
"""


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_the_example_flow_runs_unchanged_on_every_stack(
    stack: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """approval_flow.py (a checkpoint, a wait, an isolated checkpoint): started, suspended at
    its wait, answered from the command line, resumed to its end with each checkpoint run once."""
    kube = stack.startswith("kubernetes-")
    controller = None
    if kube:
        server, controller = request.getfixturevalue("kube_cluster")
        store = reach(request.getfixturevalue(EMULATORS[stack.removeprefix("kubernetes-")]), monkeypatch)
        register_k8s_stack(tmp_path, server, store, registry_url=request.getfixturevalue("postgres_url"))
        name = "k8s"
    elif stack == "process":
        (tmp_path / "process.yaml").write_text(PROCESS_STACK)
        registered = run_cli("stack", "register", str(tmp_path / "process.yaml"))
        assert registered.returncode == 0, registered.stderr
        name = "process"
    else:
        name = "local"
    monkeypatch.setenv("KITARU_STACK", name)  # the client and `kitaru executions input` read its record
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        code, out = procs.finish(procs.python(str(FLOWS / "approval_flow.py"), str(workdir), cwd=FLOWS))
    assert code == 0, out
    exec_id = (workdir / "exec_id").read_text()
    waiting = wait_for_execution(exec_id, lambda e: e.status.value == "waiting"
                                 and e.pending_wait is not None, "the `approve` wait")
    assert waiting.pending_wait.name == "approve"
    if controller is not None:
        # No compute while waiting: the flow-body Job has ended (it completed, it was not killed).
        wait_for(lambda: controller.runs and all(run.ended for run in controller.runs.values()))
        assert len(flow_jobs(controller)) == 1 and call_jobs(controller) == []

    answered = run_cli("executions", "input", exec_id, "--wait", "approve", "--value", "true")
    assert answered.returncode == 0, answered.stderr
    done = wait_for_status(exec_id, {"completed", "failed"})
    assert done.status.value == "completed", done
    result = kitaru.load(exec_id, "output")
    assert result["text"] == "WHY DURABLE AGENTS MATTERS"
    assert runs(workdir) == Counter(draft=1, finalize=1)
    # The isolated call ran in the runner's process only on the `local` stack (inline target).
    assert (result["pid"] == result["runner_pid"]) is (stack == "local")
    if controller is not None:
        # The input launched a second flow-body Job; the isolated call was a Job of its own.
        assert len(flow_jobs(controller)) == 2 and len(call_jobs(controller)) == 1
        frozen = KitaruClient()._stack.registry.get_execution(exec_id).stack
        assert frozen["artifact_store"]["flavor"] == stack.removeprefix("kubernetes-")


@pytest.mark.parametrize("pods", ["on this host", "own hostnames"])
def test_a_flow_job_killed_at_its_wait_is_resumed_by_the_input(
    pods: str, tmp_path: Path, s3: Emulator, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crash (c): the runner in the flow-body Job is SIGKILLed while it polls its wait; the
    input finds it dead and launches a new flow-body Job, which runs nothing twice. With each
    pod on a host of its own (as in a cluster) the input sees the runner only through its
    lease, so it launches the new Job once the lease has expired."""
    own = pods == "own hostnames"
    if own and not can_own_hostnames():
        pytest.skip("`unshare --uts` is not permitted on this machine")
    monkeypatch.setenv("KITARU_LEASE_SECONDS", "3")  # the runners' leases (read by each process)
    root = tmp_path / "kube"
    root.mkdir()
    with running_cluster(root, own_hostnames=own) as (server, controller):
        register_k8s_stack(tmp_path, server, s3, registry_url=postgres_url)
        monkeypatch.setenv("KITARU_STACK", "k8s")
        workdir = tmp_path / "work"
        workdir.mkdir()
        with Processes(tmp_path / "logs") as procs:
            code, out = procs.finish(procs.python(str(FLOWS / "approval_flow.py"), str(workdir), "600",
                                                  cwd=FLOWS))
        assert code == 0, out
        exec_id = (workdir / "exec_id").read_text()
        # The flow-body Job's runner records the pending wait and keeps polling it (it holds the lease).
        wait_for_execution(exec_id, lambda e: e.status.value == "waiting" and e.pending_wait is not None,
                           "the `approve` wait")
        owner = KitaruClient()._stack.registry.get_execution(exec_id).owner
        [job] = flow_jobs(controller)
        run = controller.runs[("kitaru", job)]
        assert owner is not None and not run.ended and run.proc is not None
        assert (owner.split(":")[0] == run.pod) is own  # the runner's host: the pod, or this machine
        os.killpg(run.proc.pid, signal.SIGKILL)  # the runner dies as a node or the OOM killer would end it
        wait_for(lambda: run.ended)

        answered = run_cli("executions", "input", exec_id, "--wait", "approve", "--value", "true")
        assert answered.returncode == 0, answered.stderr
        done = wait_for_status(exec_id, {"completed", "failed"})
        assert done.status.value == "completed", done
        assert kitaru.load(exec_id, "output")["text"] == "WHY DURABLE AGENTS MATTERS"
        assert runs(workdir) == Counter(draft=1, finalize=1)  # the recorded draft was replayed
        assert len(flow_jobs(controller)) == 2 and len(call_jobs(controller)) == 1


TASK_SECONDS = 7.0


@checkpoint(runtime="isolated")
def slow_answer(seconds: float) -> int:
    time.sleep(seconds)
    return 42


@flow
def waits_for_a_slow_job(seconds: float) -> int:
    return slow_answer(seconds).load()


def test_following_a_7s_job_costs_one_watch_request_per_tick(
    tmp_path: Path, kube_cluster: Any, s3: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The target follows a Job with a watch: each of the runner's ticks (0.1 s doubling to
    5 s) is one watch request (that a watch returns as soon as the Job ends is in
    tests/test_kubernetes.py)."""
    from kitaru_kubernetes.target import KubernetesTarget
    from kubernetes.client import ApiClient

    server, controller = kube_cluster
    register_k8s_stack(tmp_path, server, s3)
    requests: list[tuple[str, str, bool]] = []
    request, watch = ApiClient.request, KubernetesTarget.watch
    watched: list[str] = []

    def counted_request(self, method, url, query_params=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self is not controller.api:  # the target's requests, not the test controller's
            is_watch = any(key == "watch" for key, _ in query_params or [])
            requests.append((method, url.split("/namespaces/kitaru/", 1)[-1], is_watch))
        return request(self, method, url, query_params, *args, **kwargs)

    def counted_watch(self, handle, timeout):  # type: ignore[no-untyped-def]
        state = watch(self, handle, timeout)
        watched.append(state.state if state is not None else "none")
        return state

    monkeypatch.setattr(ApiClient, "request", counted_request)
    monkeypatch.setattr(KubernetesTarget, "watch", counted_watch)
    assert waits_for_a_slow_job.run(TASK_SECONDS, stack="k8s").wait(timeout=120) == 42
    print("target requests for a 7 s Job:", Counter((m, path.split("/")[0], w) for m, path, w in requests))
    print("watch outcomes:", watched)
    watches = [r for r in requests if r[2]]
    others = [r for r in requests if not r[2]]
    # About 8 ticks for 7 s (a fixed 0.1 s poll would be ~70), each one watch request ...
    assert 4 <= len(watches) <= 10, requests
    assert len(watches) == len(watched) and set(watched) <= {"pending", "running", "succeeded"}, watched
    # (the last saw the Job end, or result.json, written before the process exits, came first)
    assert watched.count("succeeded") <= 1, watched
    # Besides: find (404) and create, then the pod list and the pod's log once at the end (4 on
    # an idle machine); a watch the server did not answer within its tick falls back to a read.
    assert [m for m, _, _ in others].count("POST") == 1
    assert len(others) <= 4 + len(watches), others


@checkpoint(runtime="isolated", retries=1, retry_delay=0.05)
def held_step(hold: str) -> str:
    while Path(hold).exists():
        time.sleep(0.05)
    return "done"


@flow
def node_fault(hold: str) -> str:
    return held_step(hold).load()


@pytest.mark.parametrize(("fault", "reason"), [
    ("evict", "Evicted"), ("oom_kill", "OOMKilled (exit code 137)"),
])
def test_a_pod_the_node_kills_fails_its_attempt_with_the_reason_and_the_retry_runs(
    tmp_path: Path, kube_cluster: Any, s3: Emulator, fault: str, reason: str
) -> None:
    """An evicted pod (`lost`) or an OOM-killed container (`failed`) under a live runner: the
    node's reason is in the call's log and the call runs again as a new Job. A lost attempt is
    submitted again without using a retry (as a spot interruption is, docs/remote-protocol.md);
    a failed one uses the retry."""
    server, controller = kube_cluster
    register_k8s_stack(tmp_path, server, s3)
    hold = tmp_path / "hold"
    hold.touch()
    handle = node_fault.run(str(hold), stack="k8s")
    [job] = wait_for(lambda: call_jobs(controller))
    run = wait_for(lambda: controller.runs.get(("kitaru", job)))
    getattr(controller, fault)("kitaru", job)
    wait_for(lambda: run.ended)
    hold.unlink()
    assert handle.wait(timeout=120) == "done"
    assert len(call_jobs(controller)) == 2  # the retry was a Job of its own
    execution = KitaruClient().executions.get(handle.exec_id)
    assert [(c.status, c.attempts) for c in execution.checkpoints] == [("completed", 2)]
    logs = str(KitaruClient().executions.logs(handle.exec_id))
    assert reason in logs, logs
    if fault == "evict":
        assert "submitting it again (not counted as a retry)" in logs, logs
    else:
        assert "attempt 1 failed" in logs, logs
