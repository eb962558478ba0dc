"""The `kubernetes` plugin: flavors, Job manifests (checked by kubernetes-validate) and the
execution target's submit / poll / cancel / logs against kmock's emulator and the test
controller (tests/services/kube.py), which runs each Job's command as a local process."""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kitaru_kubernetes.configs import KubernetesOrchestratorConfig, KubernetesTargetConfig
from kitaru_kubernetes.manifests import EXECUTION_LABEL, JOB_LABEL, ROLE_LABEL, TASK_LABEL, job_name
from kitaru_kubernetes.orchestrator import KubernetesOrchestrator
from kitaru_kubernetes.target import KubernetesTarget
from services.kube import wait_for

from kitaru_core.errors import ConfigError, ResourceError
from kitaru_core.interfaces import ComponentContext, Resources, TaskRequest
from kitaru_core.plugins.manager import default_manager
from kitaru_core.runtime.protocol import task_name, worker_argv

#: The Kubernetes versions whose API schemas every manifest is checked against (strict).
CLUSTER_VERSIONS = ["1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0"]

FULL_CONFIG: dict[str, Any] = {
    "namespace": "kitaru",
    "image": "registry/agents:1.4",
    "service_account": "kitaru-runner",
    "node_selector": {"pool": "agents"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "agents", "effect": "NoSchedule"}],
    "image_pull_secrets": ["registry-creds"],
    "image_pull_policy": "IfNotPresent",
    "env": {"LOG_LEVEL": "info"},
    "env_from_secrets": ["openai", "store-creds"],
    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    "labels": {"team": "agents"},
    "ttl_seconds_after_finished": 600,
    "active_deadline_seconds": 3600,
}


def context(tmp_path: Path) -> ComponentContext:
    return ComponentContext(home=tmp_path / "home", stack_name="k8s")


def test_both_flavors_are_registered_with_the_issue_config_keys() -> None:
    manager = default_manager()
    for kind in ("orchestrator", "execution_target"):
        flavor = manager.flavor(kind, "kubernetes")
        assert flavor.plugin == "kitaru-kubernetes"
        config = flavor.config(namespace="kitaru", image="registry/agents:1.4")
        assert (config.namespace, config.image) == ("kitaru", "registry/agents:1.4")
    with pytest.raises(ValueError, match="namspace"):
        KubernetesTargetConfig(namspace="kitaru", image="x")
    with pytest.raises(ValueError, match="image"):
        KubernetesTargetConfig(namespace="kitaru")


@pytest.mark.parametrize("version", CLUSTER_VERSIONS)
def test_manifests_pass_kubernetes_validate(tmp_path: Path, version: str) -> None:
    target = KubernetesTarget(KubernetesTargetConfig(**FULL_CONFIG), context(tmp_path))
    orchestrator = KubernetesOrchestrator(
        KubernetesOrchestratorConfig(**FULL_CONFIG, working_dir="/app"), context(tmp_path)
    )
    exec_id = "0193a5f2c4e87b1d9e2f3a4b5c6d7e8f"
    call_manifest = target.manifest(request(
        exec_id, "total#1", attempt=2, resources=Resources(cpu=2, memory="4Gi", gpu=1), timeout=90.5,
    ))
    flow_manifest = orchestrator.manifest(
        exec_id, command=[sys.executable, "-m", "kitaru_core.entrypoint", "resume", exec_id],
        env={"KITARU_LAUNCH_ID": "l1"},
    )
    for manifest in (call_manifest, flow_manifest):
        kubernetes_validate.validate(manifest, version, strict=True)
        spec = manifest["spec"]
        pod = spec["template"]["spec"]
        assert spec["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
        assert spec["ttlSecondsAfterFinished"] == 600
        assert pod["serviceAccountName"] == "kitaru-runner"
        assert pod["nodeSelector"] == {"pool": "agents"}
        assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]
        container = pod["containers"][0]
        assert container["image"] == "registry/agents:1.4"
        assert container["resources"]["limits"]["memory"] in ("2Gi", "4Gi")
        assert container["envFrom"] == [
            {"secretRef": {"name": "openai"}}, {"secretRef": {"name": "store-creds"}}]
        assert manifest["metadata"]["labels"][EXECUTION_LABEL] == exec_id[:63]
        assert spec["template"]["metadata"]["labels"][JOB_LABEL] == manifest["metadata"]["name"]
    call_container = call_manifest["spec"]["template"]["spec"]["containers"][0]
    assert call_container["command"][:4] == ["python", "-m", "kitaru_core.worker", "--store-flavor"]
    assert call_manifest["metadata"]["labels"]["kitaru.dev/attempt"] == "2"
    assert call_manifest["metadata"]["name"] == task_name(exec_id, "total#1", 2)
    # The call's resources over the stack's: cpu and memory requested, memory and the GPU limits.
    assert call_container["resources"] == {
        "requests": {"cpu": "2000m", "memory": "4Gi"},
        "limits": {"memory": "4Gi", "nvidia.com/gpu": "1"},
    }
    assert call_manifest["spec"]["activeDeadlineSeconds"] == 91
    # The runner's own interpreter path means nothing in the image: its `python` runs the body.
    assert flow_manifest["spec"]["template"]["spec"]["containers"][0]["command"][0] == "python"
    assert flow_manifest["spec"]["template"]["spec"]["containers"][0]["workingDir"] == "/app"
    # The validator does reject what a cluster would: a Job without containers.
    broken_spec = {**call_manifest["spec"], "template": {"spec": {"restartPolicy": "Never"}}}
    broken = dict(call_manifest, spec=broken_spec)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def request(exec_id: str, call_id: str, *, attempt: int = 1, **extra: Any) -> TaskRequest:
    """The request the runner makes for one attempt of a call (kitaru_core.runtime.protocol)."""
    name = task_name(exec_id, call_id, attempt)
    key = f"tasks/{exec_id}/{call_id}/{attempt}/spec.json"
    return TaskRequest(
        task_name=name, spec_key=key,
        argv=worker_argv("s3", {"path": "s3://bucket/kitaru"}, key),
        env={"KITARU_EXEC_ID": exec_id},
        labels={"kitaru-execution": exec_id[:63], "kitaru-call": "total-1", "kitaru-attempt": str(attempt)},
        **extra,
    )


def test_accelerators_and_options_are_refused_before_anything_starts(tmp_path: Path) -> None:
    target = KubernetesTarget(KubernetesTargetConfig(namespace="kitaru", image="x"), context(tmp_path))
    with pytest.raises(ResourceError, match="accelerator"):
        target.submit(request("e1", "c#1", resources=Resources(accelerator="nvidia-tesla-t4")))
    with pytest.raises(ResourceError, match="options"):
        target.submit(request("e1", "c#1", options={"spot": True}))
    target.check_resources(request("e1", "c#1", resources=Resources(gpu=2), image="registry/gpu:1"))


def test_job_names_are_valid_deterministic_and_distinct() -> None:
    names = {job_name("call", task) for task in ("0193a5f2-total#1", "0193a5f2-total#2", "X" * 300, "###")}
    assert len(names) == 4
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) and len(n) <= 63 for n in names)
    assert job_name("call", "0193a5f2-total#1") == job_name("call", "0193a5f2-total#1")
    assert job_name("call", "t") != job_name("flow", "t")


# -- the target against the emulator ---------------------------------------------------------


def fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for the image's `python`: it runs `body` (shell) and
    records the arguments and env it was given; the real worker runs in the e2e tests."""
    path = tmp_path / "fake-python"
    path.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/argv.txt\n'
        f'echo "exec=$KITARU_EXEC_ID secret=$API_TOKEN level=$LOG_LEVEL" >> {tmp_path}/env.txt\n'
        f"{body}\n"
    )
    path.chmod(0o755)
    return str(path)


def make_target(tmp_path: Path, server: Any, body: str, **extra: Any) -> KubernetesTarget:
    config = KubernetesTargetConfig(
        namespace="kitaru", image="registry/agents:1.4", kubeconfig=str(server.kubeconfig),
        python=fake_python(tmp_path, body), env={"LOG_LEVEL": "debug"}, **extra,
    )
    return KubernetesTarget(config, context(tmp_path))


def finished(target: KubernetesTarget, handle: dict[str, Any]) -> Any:
    state = target.poll(handle)
    return state if state.state not in ("pending", "running") else None


def test_submit_runs_the_worker_command_in_a_job_and_reports_success_and_logs(
    tmp_path: Path, kube_cluster: Any
) -> None:
    server, _ = kube_cluster
    target = make_target(tmp_path, server, 'echo "working on it"; exit 0')
    req = request("0193a5f2c4e8", "total#1")
    handle = target.submit(req)
    assert handle["namespace"] == "kitaru" and handle["job"] == req.task_name
    assert target.find(req.task_name) == handle
    assert target.find(task_name("0193a5f2c4e8", "total#1", 2)) is None

    state = wait_for(lambda: finished(target, handle))
    assert state.state == "succeeded", state
    assert "working on it" in target.logs(handle)
    assert (tmp_path / "argv.txt").read_text().split() == list(req.argv)
    assert "exec=0193a5f2c4e8" in (tmp_path / "env.txt").read_text()
    assert "level=debug" in (tmp_path / "env.txt").read_text()

    # A restarted runner that lists the execution's Jobs finds this one by its labels.
    jobs = target.jobs.list_labelled(f"{EXECUTION_LABEL}=0193a5f2c4e8,{ROLE_LABEL}=call")
    assert [j.metadata.name for j in jobs] == [handle["job"]]
    assert jobs[0].metadata.labels[TASK_LABEL] == req.task_name
    assert jobs[0].metadata.labels["kitaru.dev/attempt"] == "1"
    target.close()


def test_a_watch_returns_when_the_job_ends_or_is_gone(tmp_path: Path, kube_cluster: Any) -> None:
    server, _ = kube_cluster
    long = tmp_path / "long"  # a Job started once this exists runs for 30 s
    target = make_target(tmp_path, server, f"if [ -e {long} ]; then sleep 30; else sleep 1; fi")
    handle = target.submit(request("e-watch", "c#1"))
    # One watch of up to 10 minutes: it returns when the Job ends, not when its time is up.
    states = [target.watch(handle, 600)]
    assert [s.state if s else None for s in states] == ["succeeded"]
    quick = target.watch(handle, 0.1)  # an ended Job: the watch's first event says so
    assert quick is not None and quick.state == "succeeded"

    long.touch()
    running = target.submit(request("e-watch", "c#2", attempt=1))
    wait_for(lambda: target.poll(running).state == "running")
    still = target.watch(running, 0.2)  # nothing changes within the timeout: the state it saw
    assert still is not None and still.state == "running"
    target.cancel(running)
    # A Job gone before the watch starts sends no event: seen when the watch's time is up.
    gone = target.watch(running, 0.2)
    assert gone is not None and gone.state == "lost" and "gone" in gone.message
    unknown = target.watch({"namespace": "kitaru", "job": "no-such-job"}, 0.2)
    assert unknown is not None and unknown.state == "lost"


def test_submitting_the_same_task_again_finds_the_job_instead_of_starting_another(
    tmp_path: Path, kube_cluster: Any
) -> None:
    server, controller = kube_cluster
    target = make_target(tmp_path, server, "sleep 0.5")
    first = target.submit(request("e-once", "c#1"))
    second = target.submit(request("e-once", "c#1"))
    assert first == second
    assert wait_for(lambda: finished(target, first)).state == "succeeded"
    assert controller.started == [first["job"]]
    assert len((tmp_path / "argv.txt").read_text().splitlines()) == 1


def test_a_failing_worker_is_failed_and_its_output_kept(tmp_path: Path, kube_cluster: Any) -> None:
    server, _ = kube_cluster
    target = make_target(tmp_path, server, 'echo "Traceback: boom" >&2; exit 3')
    handle = target.submit(request("e1", "t-fail"))
    state = wait_for(lambda: finished(target, handle))
    assert state.state == "failed"
    assert "BackoffLimitExceeded" in state.message
    assert "Traceback: boom" in target.logs(handle)


def test_cancel_deletes_the_job_and_stops_its_process(tmp_path: Path, kube_cluster: Any) -> None:
    server, controller = kube_cluster
    marker = tmp_path / "finished-anyway"
    target = make_target(tmp_path, server, f"sleep 30; touch {marker}")
    handle = target.submit(request("e1", "t-cancel"))
    wait_for(lambda: target.poll(handle).state == "running")
    target.cancel(handle)
    state = wait_for(lambda: finished(target, handle))
    assert state.state == "lost" and "gone" in state.message
    wait_for(lambda: not controller.runs)  # the controller saw the deletion and killed the process
    pods = target.jobs._core().list_namespaced_pod("kitaru", label_selector=f"{JOB_LABEL}={handle['job']}")
    assert pods.items == []
    assert not marker.exists()
    target.cancel(handle)  # cancelling a Job that is gone is fine


@pytest.mark.parametrize(("fault", "expected", "reason"), [
    ("evict", "lost", "Evicted"), ("oom_kill", "failed", "OOMKilled"),
])
def test_a_pod_the_node_kills_is_reported_with_its_reason(
    tmp_path: Path, kube_cluster: Any, fault: str, expected: str, reason: str
) -> None:
    server, controller = kube_cluster
    target = make_target(tmp_path, server, "sleep 30")
    handle = target.submit(request("e1", f"t-{fault}"))
    wait_for(lambda: target.poll(handle).state == "running")
    getattr(controller, fault)("kitaru", handle["job"])
    state = wait_for(lambda: finished(target, handle))
    assert state.state == expected
    assert reason in state.message


def test_env_from_secrets_reaches_the_process(tmp_path: Path, kube_cluster: Any) -> None:
    server, _ = kube_cluster
    target = make_target(tmp_path, server, "exit 0", env_from_secrets=["api"])
    target.jobs._core().create_namespaced_secret("kitaru", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api", "namespace": "kitaru"},
        "data": {"API_TOKEN": base64.b64encode(b"s3cret").decode()},
    })
    handle = target.submit(request("e1", "t-secret"))
    assert wait_for(lambda: finished(target, handle)).state == "succeeded"
    assert "secret=s3cret" in (tmp_path / "env.txt").read_text()


def test_bad_credentials_are_a_config_error(tmp_path: Path) -> None:
    config = KubernetesTargetConfig(namespace="kitaru", image="x", kubeconfig=str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="kubeconfig"):
        KubernetesTarget(config, context(tmp_path)).poll({"namespace": "kitaru", "job": "j"})


def test_env_from_runner_values_go_into_the_jobs_own_secret_never_its_manifest(
    tmp_path: Path, kube_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = kube_cluster
    target = make_target(tmp_path, server, "exit 0", env_from_runner=["API_TOKEN"])
    core = target.jobs._core()
    # A variable the runner does not have: refused before anything is created.
    monkeypatch.delenv("API_TOKEN", raising=False)
    req = request("e1", "t-runner-env")
    with pytest.raises(ConfigError, match="env_from_runner names API_TOKEN, but it is not set"):
        target.check_resources(req)
    with pytest.raises(ConfigError):
        target.submit(req)
    assert target.find(req.task_name) is None and core.list_namespaced_secret("kitaru").items == []

    monkeypatch.setenv("API_TOKEN", "runner-value-81")
    handle = target.submit(req)
    job = target.jobs._batch().read_namespaced_job(handle["job"], "kitaru")
    container = target.jobs.api.sanitize_for_serialization(job)["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": f"{handle['job']}-env"}}]
    assert "runner-value-81" not in repr(target.jobs.api.sanitize_for_serialization(job))
    secret = core.read_namespaced_secret(f"{handle['job']}-env", "kitaru")
    assert base64.b64decode(secret.data["API_TOKEN"]).decode() == "runner-value-81"
    # Owned by its Job: deleting the Job (cancel, TTL) deletes the Secret with it.
    [owner] = secret.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("Job", handle["job"], handle["uid"])
    assert wait_for(lambda: finished(target, handle)).state == "succeeded"
    target.cancel(handle)
    assert core.list_namespaced_secret("kitaru").items == []


def test_a_jobs_secret_reaches_its_process(
    tmp_path: Path, kube_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pod gets the value from the Secret (the runner's environment here does not have it)."""
    server, _ = kube_cluster
    monkeypatch.delenv("API_TOKEN", raising=False)
    target = make_target(tmp_path, server, "exit 0", env_from_runner=["API_TOKEN"])
    manifest = target.manifest(request("e1", "t-own-secret"))
    handle = target.jobs.create(manifest, {"API_TOKEN": "only-in-secret"})
    assert wait_for(lambda: finished(target, handle)).state == "succeeded"
    assert "secret=only-in-secret" in (tmp_path / "env.txt").read_text()


@pytest.mark.parametrize("version", CLUSTER_VERSIONS)
def test_a_job_with_env_from_runner_and_its_secret_pass_kubernetes_validate(
    tmp_path: Path, version: str
) -> None:
    from kitaru_kubernetes.manifests import env_secret_manifest

    config = KubernetesTargetConfig(**{**FULL_CONFIG, "env_from_runner": ["API_TOKEN"]})
    manifest = KubernetesTarget(config, context(tmp_path)).manifest(request("e1", "total#1"))
    name = manifest["metadata"]["name"]
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"][-1] == {"secretRef": {"name": f"{name}-env"}}
    secret = env_secret_manifest("kitaru", name, {"API_TOKEN": "v"})
    for document in (manifest, secret):
        kubernetes_validate.validate(document, version, strict=True)
    with pytest.raises(ValueError, match="not an environment variable name"):
        KubernetesTargetConfig(namespace="kitaru", image="x", env_from_runner=["API-TOKEN"])
