"""The `azureml` execution target: azure-ai-ml's `MLClient` against the local double of the Azure
ML REST endpoints it calls (tests/services/azureml_double.py), which runs each command job as a
local process, with the artifact store on Azurite. The target passes the ExecutionTarget kit;
the rest checks what the double saw and how resources map."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from emulators import Emulator, store_config
from kitaru_azure.azureml_target import AzureMLTarget
from kitaru_azure.configs import AzureMLTargetConfig
from services.azureml_double import AzureMLDouble

from kitaru_core.errors import ConfigError, ResourceError, TaskError
from kitaru_core.interfaces import ComponentContext, Resources, TaskRequest
from kitaru_core.plugins.manager import default_manager
from kitaru_core.task_names import task_name
from kitaru_core.testing import ExecutionTargetConformance
from kitaru_core.testing.base import build_component


@pytest.fixture
def azurite(azure_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """Azurite, reachable from this process and from the jobs the double starts (they inherit
    this environment, as a job in Azure reaches Blob Storage with its identity)."""
    for name, value in azure_emulator.env.items():
        monkeypatch.setenv(name, value)
    return azure_emulator


@pytest.mark.slow
class TestAzureMLTarget(ExecutionTargetConformance):
    flavor = "azureml"
    store_flavor = "azure"
    task_timeout = 120.0

    @pytest.fixture
    def config(self, azureml_double: AzureMLDouble) -> dict[str, Any]:
        # Azurite's connection string (a documented, public key) goes into the job's variables.
        return azureml_double.target_config(pass_env=["AZURE_STORAGE_CONNECTION_STRING"])

    @pytest.fixture
    def store_config(self, azurite: Emulator) -> dict[str, Any]:
        return store_config(azurite)


def context(tmp_path: Path) -> ComponentContext:
    return ComponentContext(home=tmp_path, stack_name="azureml")


def request(name: str = "", **extra: Any) -> TaskRequest:
    fields: dict[str, Any] = {
        "task_name": name or task_name("0193a5f2c4e87b1d9e2f3a4b5c6d7e8f", "total#1", 1),
        "spec_key": "tasks/e/c/1/spec.json", "argv": ("-c", "print('from the job')"),
        "env": {"KITARU_EXEC_ID": "e"},
    }
    return TaskRequest(**{**fields, **extra})


def target(double: AzureMLDouble, tmp_path: Path, **extra: Any) -> AzureMLTarget:
    built = build_component("execution_target", "azureml", double.target_config(**extra), home=tmp_path)
    assert isinstance(built, AzureMLTarget)
    return built


def test_the_flavor_is_registered_and_its_config_refuses_what_cannot_work() -> None:
    flavor = default_manager().flavor("execution_target", "azureml")
    assert flavor.plugin == "kitaru-azure"
    base = {"subscription_id": "s", "resource_group": "rg", "workspace": "ws", "image": "acme/agents:1"}
    assert flavor.config(**base, compute="cpu-cluster").compute == "cpu-cluster"
    with pytest.raises(ValueError, match="instance_type"):
        flavor.config(**base)  # neither a cluster nor serverless
    with pytest.raises(ValueError, match="job_tier"):
        flavor.config(**base, compute="cpu-cluster", job_tier="Spot")
    with pytest.raises(ValueError, match="must be https"):  # never a token over plain http
        flavor.config(**base, instance_type="Standard_DS3_v2", endpoint="http://proxy.internal:8080")
    with pytest.raises(ValueError, match="not a size"):
        flavor.config(**base, instance_type="Standard_DS3_v2", capacity={"memory": "lots"})


def test_resources_map_to_the_instance_type_or_are_refused_naming_the_field(tmp_path: Path) -> None:
    base = {"subscription_id": "s", "resource_group": "rg", "workspace": "ws", "image": "acme/agents:1"}
    serverless = AzureMLTarget(AzureMLTargetConfig(
        **base, instance_type="Standard_DS3_v2",
        capacity={"cpu": 4, "memory": "14Gi", "disk": "28Gi"}), context(tmp_path))
    cluster = AzureMLTarget(AzureMLTargetConfig(**base, compute="gpu-cluster", capacity={"gpu": 2}),
                            context(tmp_path))
    place = serverless._placement
    assert place(request(resources=Resources(cpu=4, memory="8Gi"))) == {
        "instance_type": "Standard_DS3_v2", "instance_count": 1, "job_tier": None}
    # A GPU VM size as the accelerator (serverless), per call; options pick count and tier.
    assert place(request(resources=Resources(gpu=1, accelerator="Standard_NC6s_v3"),
                         options={"instance_count": 2, "job_tier": "Spot"})) == {
        "instance_type": "Standard_NC6s_v3", "instance_count": 2, "job_tier": "Spot"}
    refused = {
        "cpu": request(resources=Resources(cpu=8)),
        "memory": request(resources=Resources(memory="64Gi")),
        "disk": request(resources=Resources(disk="1Ti")),
        "gpu": request(resources=Resources(gpu=1)),
        "accelerator": request(resources=Resources(accelerator="nvidia-tesla-t4")),
        "options": request(options={"node_selector": {"pool": "gpu"}}),
        "instance_count": request(options={"instance_count": 0}),
    }
    for field, bad in refused.items():
        with pytest.raises(ResourceError, match=field) as err:
            serverless.check_resources(bad)
        assert "\n" not in str(err.value)
    # A cluster has one VM size: a GPU within its declared capacity is fine, another size is not.
    cluster.check_resources(request(resources=Resources(gpu=2)))
    with pytest.raises(ResourceError, match="gpu=3"):
        cluster.check_resources(request(resources=Resources(gpu=3)))
    with pytest.raises(ResourceError, match=r"accelerator.*gpu-cluster"):
        cluster.check_resources(request(resources=Resources(accelerator="Standard_NC6s_v3")))
    with pytest.raises(ResourceError, match="job_tier"):
        cluster.check_resources(request(options={"job_tier": "Spot"}))


@pytest.mark.slow
def test_the_job_the_double_receives_carries_the_call_and_the_stack(
    azureml_double: AzureMLDouble, tmp_path: Path
) -> None:
    t = target(azureml_double, tmp_path, compute="cpu-cluster", instance_type=None, identity="managed",
               identity_client_id="7d1c0b5e-aaaa-4c1e-9a43-1d2b3c4d5e6f", env={"LOG_LEVEL": "info"},
               tags={"team": "agents"})
    req = request(task_name("0193a5f2c4e87b1d9e2f3a4b5c6d7e8f", "total#1", 2), timeout=90.5,
                  image="acme/gpu:2", labels={"kitaru-attempt": "2"})
    handle = t.submit(req)
    assert handle["job"] == req.task_name
    props = azureml_double.jobs[req.task_name].body["properties"]
    assert props["jobType"] == "Command" and props["experimentName"] == "kitaru"
    assert props["command"].endswith("""-c 'print('"'"'from the job'"'"')'""")
    assert props["computeId"].endswith("/workspaces/agents-ml/computes/cpu-cluster")
    assert props["limits"] == {"timeout": "PT1M31S", "jobLimitsType": "Command"}  # 90.5 s, rounded up
    assert props["environmentVariables"] == {"LOG_LEVEL": "info", "KITARU_EXEC_ID": "e"}
    assert props["identity"] == {"identityType": "Managed",
                                 "clientId": "7d1c0b5e-aaaa-4c1e-9a43-1d2b3c4d5e6f"}
    assert props["tags"] == {"team": "agents", "kitaru-attempt": "2", "kitaru-task": req.task_name}
    env_name, version = props["environmentId"].rsplit("/environments/", 1)[1].split("/versions/")
    assert azureml_double.environments[(env_name, version)]["image"] == "acme/gpu:2"
    deadline = time.monotonic() + 60
    while not t.poll(handle).ended:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert t.poll(handle).state == "succeeded"
    assert t.logs(handle) == "from the job\n"
    assert azureml_double.errors == []
    # Every request the double refused was a lookup of a job not created yet (find, then create).
    assert {why.split(":")[0] for _, why in azureml_double.rejected} <= {"UserError"}


@pytest.mark.slow
def test_a_job_the_workspace_lost_is_reported_lost_and_backend_errors_are_one_line(
    azureml_double: AzureMLDouble, tmp_path: Path
) -> None:
    t = target(azureml_double, tmp_path)
    req = request(task_name("0193a5f2c4e87b1d9e2f3a4b5c6d7e8f", "lost#1", 1),
                  argv=("-c", "import time; time.sleep(600)"))
    handle = t.submit(req)
    azureml_double.forget(req.task_name)
    state = t.poll(handle)
    assert state.state == "lost" and req.task_name in state.message
    assert t.find(req.task_name) is None
    t.cancel(handle)  # gone already: nothing to do
    assert t.logs(handle) == ""
    # A cluster the workspace does not have: the service refuses the job, in one line.
    bad = target(azureml_double, tmp_path, compute="no-such-cluster", instance_type=None)
    with pytest.raises(TaskError, match="no-such-cluster") as err:
        bad.submit(request(task_name("0193a5f2c4e87b1d9e2f3a4b5c6d7e8f", "bad#1", 1)))
    assert "\n" not in str(err.value)


def test_a_store_secret_is_never_copied_into_the_job_unless_pass_env_lists_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = {"subscription_id": "s", "resource_group": "rg", "workspace": "ws", "image": "acme/agents:1",
            "instance_type": "Standard_DS3_v2", "env": {"LOG_LEVEL": "info"}}
    monkeypatch.setenv("STORE_URL", "az://agents/kitaru")
    monkeypatch.delenv("NOT_SET", raising=False)
    plain = AzureMLTarget(AzureMLTargetConfig(**base), context(tmp_path))
    with pytest.raises(ResourceError, match=re.escape("${env:STORE_KEY}")) as err:
        plain.check_resources(request(secret_env=("STORE_KEY",)))
    assert "pass_env" in str(err.value) and "\n" not in str(err.value)
    passing = AzureMLTarget(AzureMLTargetConfig(**base, pass_env=["STORE_URL"]), context(tmp_path))
    assert passing._job_env(request(secret_env=("STORE_URL",))) == {
        "LOG_LEVEL": "info", "STORE_URL": "az://agents/kitaru", "KITARU_EXEC_ID": "e"}
    unset = AzureMLTarget(AzureMLTargetConfig(**base, pass_env=["NOT_SET"]), context(tmp_path))
    with pytest.raises(ResourceError, match="NOT_SET"):
        unset.check_resources(request())


def test_the_endpoint_comes_from_the_config_or_the_environment_and_is_never_plain_http_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitaru_azure.azureml_client import endpoint

    base = {"subscription_id": "s", "resource_group": "rg", "workspace": "ws", "image": "acme/agents:1",
            "instance_type": "Standard_DS3_v2"}
    monkeypatch.delenv("KITARU_AZUREML_ENDPOINT", raising=False)
    assert endpoint(AzureMLTargetConfig(**base)) is None  # Azure's own hosts
    monkeypatch.setenv("KITARU_AZUREML_ENDPOINT", "http://127.0.0.1:9")
    assert endpoint(AzureMLTargetConfig(**base)) == "http://127.0.0.1:9"
    assert endpoint(AzureMLTargetConfig(**base, endpoint="https://proxy.internal")) == "https://proxy.internal"
    monkeypatch.setenv("KITARU_AZUREML_ENDPOINT", "http://proxy.internal:8080")
    with pytest.raises(ConfigError, match="KITARU_AZUREML_ENDPOINT"):
        endpoint(AzureMLTargetConfig(**base))


@pytest.mark.slow
def test_a_preempted_node_is_lost_and_a_failed_job_reports_the_runs_error(
    azureml_double: AzureMLDouble, tmp_path: Path
) -> None:
    t = target(azureml_double, tmp_path)
    sleeper = ("-c", "import time; time.sleep(600)")
    preempted = request(task_name("0193a5f2c4e87b1d9e2f3a4b5c6d7e8f", "spot#1", 1), argv=sleeper)
    broken = request(task_name("0193a5f2c4e87b1d9e2f3a4b5c6d7e8f", "oom#1", 1), argv=sleeper)
    handles = {r.task_name: t.submit(r) for r in (preempted, broken)}
    for name in handles:
        deadline = time.monotonic() + 60
        while name not in azureml_double.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    azureml_double.fail(preempted.task_name, "JobPreempted", "The low priority node was preempted.")
    azureml_double.fail(broken.task_name, "UserError", "Out of memory: the process was killed (exit 137).")
    lost = t.poll(handles[preempted.task_name])
    assert lost.state == "lost" and "preempted" in lost.message
    failed = t.poll(handles[broken.task_name])
    assert failed.state == "failed" and "UserError: Out of memory" in failed.message
