"""The `vertex` and `cloud-run` execution targets (kitaru-gcp): how a call's resources map to a
custom job / a Cloud Run job and what is refused, and the targets against their local doubles
(tests/services/vertex_double.py, cloud_run_double.py) through the official REST clients: the
ExecutionTarget conformance kit, lost jobs, the doubles' request checks, Cloud Logging."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from emulators import Emulator, store_config, worker_env
from kitaru_gcp.cloud_run_target import CloudRunTarget
from kitaru_gcp.configs import CloudRunTargetConfig, VertexTargetConfig
from kitaru_gcp.vertex_target import VertexTarget

from kitaru_core.errors import ResourceError
from kitaru_core.interfaces import ComponentContext, Resources, TaskRequest
from kitaru_core.plugins.manager import default_manager
from kitaru_core.task_names import task_name
from kitaru_core.testing import ExecutionTargetConformance

GCP = {"project": "kitaru-tests", "region": "europe-west4", "image": "registry/agents:1.4"}


def context(tmp_path: Path, stack: str = "gcp") -> ComponentContext:
    return ComponentContext(home=tmp_path / "home", stack_name=stack)


def request(call: str = "embed#1", *, attempt: int = 1, **extra: Any) -> TaskRequest:
    exec_id = "0193a5f2c4e87b1d9e2f3a4b5c6d7e8f"
    name = task_name(exec_id, call, attempt)
    key = f"tasks/{exec_id}/{call}/{attempt}/spec.json"
    return TaskRequest(
        task_name=name, spec_key=key,
        argv=("-m", "kitaru_core.worker", "--store-flavor", "gcs", "--store-config",
              '{"path": "gs://acme/kitaru"}', "--spec", key),
        env={"KITARU_EXEC_ID": exec_id},
        labels={"kitaru-execution": exec_id, "kitaru-call": "embed-1", "kitaru-attempt": str(attempt)},
        **extra,
    )


def test_both_targets_are_registered_and_their_configs_refuse_typos_and_bad_labels() -> None:
    manager = default_manager()
    for name, model in (("vertex", VertexTargetConfig), ("cloud-run", CloudRunTargetConfig)):
        flavor = manager.flavor("execution_target", name)
        assert flavor.plugin == "kitaru-gcp" and flavor.config is model
        assert flavor.config(**GCP).credentials == "default"
        with pytest.raises(ValueError, match="machine_typo"):
            model(**GCP, machine_typo="x")
        with pytest.raises(ValueError, match="not a GCP label"):
            model(**GCP, labels={"Team": "agents"})
    # an empty endpoint (an unset ${env:...} default) means Google's own
    assert VertexTargetConfig(**GCP, api_endpoint="").api_endpoint is None


def test_listing_the_flavors_imports_no_google_sdk() -> None:
    code = ("import sys; from kitaru_core.plugins.manager import default_manager; "
            "default_manager().flavor('execution_target', 'vertex'); "
            "print([m for m in sys.modules if m.startswith(('google.cloud.', 'google.api_core'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- vertex: the custom job ---------------------------------------------------------------------


def vertex(tmp_path: Path, **config: Any) -> VertexTarget:
    return VertexTarget(VertexTargetConfig(**{**GCP, **config}), context(tmp_path))


def test_a_custom_job_carries_the_worker_machine_accelerators_disk_timeout_and_identity(
    tmp_path: Path,
) -> None:
    target = vertex(tmp_path, machine_type="n1-standard-4",
                    service_account="worker@p.iam.gserviceaccount.com",
                    network="projects/123/global/networks/agents", spot=True, labels={"team": "agents"},
                    env={"LOG_LEVEL": "info"})
    big = Resources(cpu=6, memory="20Gi", gpu=2, accelerator="nvidia-tesla-t4", disk="250Gi")
    req = request(resources=big, timeout=90.5)
    job = target.custom_job(req)
    assert job["display_name"] == req.task_name and job["labels"]["kitaru-task"] == req.task_name
    assert job["labels"]["team"] == "agents" and job["labels"]["kitaru-attempt"] == "1"
    spec = job["job_spec"]
    pool = spec["worker_pool_specs"][0]
    # 6 cpus and 20 GiB do not fit n1-standard-4 (15 GiB): the smallest n1-standard that does
    assert pool["machine_spec"] == {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4",
                                    "accelerator_count": 2}
    assert pool["replica_count"] == 1
    assert pool["disk_spec"] == {"boot_disk_type": "pd-ssd", "boot_disk_size_gb": 250}
    container = pool["container_spec"]
    assert container["image_uri"] == "registry/agents:1.4"
    assert container["command"] == ["python"] and container["args"] == list(req.argv)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"LOG_LEVEL": "info", "KITARU_EXEC_ID": req.env["KITARU_EXEC_ID"],
                   "KITARU_TASK_NAME": req.task_name}
    assert spec["scheduling"] == {"timeout": {"seconds": 91}, "strategy": "SPOT"}
    assert spec["service_account"] == "worker@p.iam.gserviceaccount.com"
    assert spec["network"] == "projects/123/global/networks/agents"
    # no resources: the stack's machine type and Vertex AI's default boot disk; a call's image wins
    plain = target.custom_job(request(image="registry/gpu:2"))["job_spec"]["worker_pool_specs"][0]
    assert plain["machine_spec"] == {"machine_type": "n1-standard-4"}
    assert plain["disk_spec"]["boot_disk_size_gb"] == 100
    assert plain["container_spec"]["image_uri"] == "registry/gpu:2"
    # options={"machine_type": ...} picks the machine
    chosen = target.custom_job(request(options={"machine_type": "a2-highgpu-1g"}))
    assert chosen["job_spec"]["worker_pool_specs"][0]["machine_spec"]["machine_type"] == "a2-highgpu-1g"


@pytest.mark.parametrize(("resources", "options", "field"), [
    (Resources(gpu=1), {}, "accelerator"),
    (Resources(accelerator="nvidia-tesla-x9"), {}, "accelerator"),
    (Resources(cpu=200), {}, "cpu"),
    (Resources(disk="70000Gi"), {}, "disk"),
    (Resources(cpu=2), {"machine_type": "a2-highgpu-1g"}, "cpu"),
    (Resources(), {"spot": True}, "options"),
])
def test_vertex_refuses_what_it_cannot_give_naming_the_field(
    tmp_path: Path, resources: Resources, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ResourceError, match=field) as err:
        vertex(tmp_path).check_resources(request(resources=resources, options=options))
    assert "\n" not in str(err.value)


def test_secret_variables_are_refused_rather_than_written_into_a_job(tmp_path: Path) -> None:
    secret = request(secret_env=("STORE_KEY",))
    with pytest.raises(ResourceError, match="STORE_KEY"):
        vertex(tmp_path).check_resources(secret)
    with pytest.raises(ResourceError, match="STORE_KEY"):
        CloudRunTarget(CloudRunTargetConfig(**GCP), context(tmp_path)).check_resources(secret)


# -- cloud-run: the job and the run's overrides ----------------------------------------------------


def cloud_run(tmp_path: Path, stack: str = "gcp", **config: Any) -> CloudRunTarget:
    return CloudRunTarget(CloudRunTargetConfig(**{**GCP, **config}), context(tmp_path, stack))


def test_one_cloud_run_job_per_stack_and_task_shape(tmp_path: Path) -> None:
    target = cloud_run(tmp_path, service_account="worker@p.iam.gserviceaccount.com",
                       vpc_connector="projects/p/locations/europe-west4/connectors/c")
    job_id, job = target.job(request(resources=Resources(cpu=3, memory="1Gi")))
    assert job_id.startswith("kitaru-gcp-") and len(job_id) <= 63
    task = job["template"]["template"]
    container = task["containers"][0]
    assert container["image"] == "registry/agents:1.4" and container["command"] == ["python"]
    assert container["resources"] == {"limits": {"cpu": "4", "memory": "2048Mi"}}  # 4 cpus need 2 GiB
    assert task["max_retries"] == 0 and task["timeout"] == {"seconds": 86400}
    assert task["service_account"] == "worker@p.iam.gserviceaccount.com"
    assert task["vpc_access"] == {"connector": "projects/p/locations/europe-west4/connectors/c"}
    assert job["labels"]["kitaru-stack"] == "gcp"
    # the same shape is the same job, whatever the call; another image, cpu or stack is another
    assert target.job(request("other#3", attempt=2, resources=Resources(cpu=4, memory="2Gi")))[0] == job_id
    assert target.job(request(image="registry/agents:1.5"))[0] != job_id
    assert target.job(request(resources=Resources(cpu=1)))[0] != job_id
    prod = cloud_run(tmp_path, stack="prod")
    assert prod.job(request(resources=Resources(cpu=3, memory="1Gi")))[0] != job_id


@pytest.mark.parametrize(("resources", "options", "field"), [
    (Resources(gpu=1), {}, "gpu"),
    (Resources(cpu=16), {}, "cpu"),
    (Resources(memory="64Gi"), {}, "memory"),
    (Resources(disk="10Gi"), {}, "disk"),
    (Resources(), {"machine_type": "x"}, "options"),
])
def test_cloud_run_refuses_what_it_cannot_give_naming_the_field(
    tmp_path: Path, resources: Resources, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ResourceError, match=field) as err:
        cloud_run(tmp_path).check_resources(request(resources=resources, options=options))
    assert "\n" not in str(err.value)


# -- against the doubles -------------------------------------------------------------------------


def double_config(double: Any, **extra: Any) -> dict[str, Any]:
    return {**GCP, "python": sys.executable, "api_endpoint": double.url, "logging_endpoint": double.url,
            "credentials": "anonymous", **extra}


@pytest.fixture
def gcs(gcs_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The GCS emulator, reachable from this process and the doubles' job processes."""
    for name, value in {**gcs_emulator.env, **worker_env(gcs_emulator)}.items():
        monkeypatch.setenv(name, value)
    return gcs_emulator


class GcpConformance(ExecutionTargetConformance):
    """The kit on a GCS store (fake-gcs-server) that the double's job processes reach."""

    store_flavor = "gcs"

    @pytest.fixture
    def store_config(self, gcs: Emulator) -> dict[str, Any]:
        return store_config(gcs)

    @pytest.fixture
    def task_env(self, gcs: Emulator) -> dict[str, str]:
        return {**gcs.env, **worker_env(gcs)}

    @pytest.fixture(autouse=True)
    def _no_request_refused(self, double: Any) -> Any:
        """Every request the target sent had the API's documented shape."""
        before = len(double.refused)
        yield
        assert [r for r in double.refused[before:] if "does not exist" not in r[2]] == []


@pytest.mark.slow
class TestVertexTarget(GcpConformance):
    flavor = "vertex"

    @pytest.fixture
    def double(self, vertex_double: Any) -> Any:
        return vertex_double

    @pytest.fixture
    def config(self, vertex_double: Any) -> dict[str, Any]:
        return double_config(vertex_double)


@pytest.mark.slow
class TestCloudRunTarget(GcpConformance):
    flavor = "cloud-run"

    @pytest.fixture
    def double(self, cloud_run_double: Any) -> Any:
        return cloud_run_double

    @pytest.fixture
    def config(self, cloud_run_double: Any) -> dict[str, Any]:
        return double_config(cloud_run_double)


def sleeper(tmp_path: Path, seconds: float = 600) -> TaskRequest:
    """A request whose "worker" just sleeps (the doubles run whatever the job says)."""
    code = f"import time; print('zzz', flush=True); time.sleep({seconds})"
    return dataclasses.replace(request(f"sleep#{uuid.uuid4().hex[:6]}"), argv=("-c", code))


def wait_state(target: Any, handle: dict[str, Any], states: set[str], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = target.poll(handle)
        if state.state in states:
            return state
        time.sleep(0.05)
    raise AssertionError(f"never reached {states}: {state}")


@pytest.mark.slow
def test_a_deleted_or_stocked_out_vertex_job_is_lost_and_resubmitted_without_a_retry(
    tmp_path: Path, vertex_double: Any
) -> None:
    target = VertexTarget(VertexTargetConfig(**double_config(vertex_double)), context(tmp_path))
    first = target.submit(sleeper(tmp_path))
    wait_state(target, first, {"running"})
    deadline = time.monotonic() + 30
    while "zzz" not in target.logs(first):  # the job's output so far, from Cloud Logging
        assert time.monotonic() < deadline, "the job's output never reached its logs"
        time.sleep(0.1)
    vertex_double.fail_capacity(first["job"])
    lost = wait_state(target, first, {"lost"})
    assert "RESOURCE_EXHAUSTED" in lost.message
    second = target.submit(sleeper(tmp_path))
    vertex_double.lose(second["job"])
    assert target.poll(second).state == "lost"
    target.cancel(second)  # nothing left to stop: no error


@pytest.mark.slow
def test_a_deleted_cloud_run_execution_is_lost_and_calls_share_one_job(
    tmp_path: Path, cloud_run_double: Any
) -> None:
    stack = f"s{uuid.uuid4().hex[:8]}"
    target = CloudRunTarget(CloudRunTargetConfig(**double_config(cloud_run_double)), context(tmp_path, stack))
    handles = [target.submit(sleeper(tmp_path)) for _ in range(2)]
    jobs = {h["execution"].split("/executions/")[0] for h in handles}
    assert len(jobs) == 1 and len(set(map(json.dumps, handles))) == 2  # two executions of one job
    cloud_run_double.lose(handles[0]["execution"])
    assert target.poll(handles[0]).state == "lost"
    target.cancel(handles[1])
    assert wait_state(target, handles[1], {"failed"}).message == "The execution was cancelled."
    assert len([j for j in cloud_run_double.jobs if f"kitaru-{stack}-" in j]) == 1


def test_the_doubles_refuse_requests_missing_required_fields(
    vertex_double: Any, cloud_run_double: Any
) -> None:
    from google.api_core import exceptions
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform_v1.services.job_service import JobServiceClient
    from google.cloud.run_v2.services.jobs import JobsClient

    jobs = JobServiceClient(credentials=AnonymousCredentials(), transport="rest",
                            client_options=ClientOptions(api_endpoint=vertex_double.url))
    parent = "projects/p/locations/europe-west4"
    with pytest.raises(exceptions.BadRequest, match="displayName"):
        jobs.create_custom_job(parent=parent, custom_job={"job_spec": {"worker_pool_specs": [{}]}})
    with pytest.raises(exceptions.BadRequest, match="machineType"):
        jobs.create_custom_job(parent=parent, custom_job={
            "display_name": "x", "job_spec": {"worker_pool_specs": [{"replica_count": 1}]}})
    with pytest.raises(exceptions.BadRequest, match="filter"):
        list(jobs.list_custom_jobs(request={"parent": parent, "filter": "displayName ~ x"}))
    with pytest.raises(exceptions.NotFound):
        jobs.get_custom_job(name=f"{parent}/customJobs/404")
    run = JobsClient(credentials=AnonymousCredentials(), transport="rest",
                     client_options=ClientOptions(api_endpoint=cloud_run_double.url))
    with pytest.raises(exceptions.BadRequest, match="image"):
        run.create_job(parent=parent, job_id="kitaru-x", job={"template": {"template": {"containers": [{}]}}})
    with pytest.raises(exceptions.BadRequest, match="job_id"):
        run.create_job(parent=parent, job_id="Not_Valid", job={
            "template": {"template": {"containers": [{"image": "x"}]}}})


def test_endpoints_come_from_the_config_else_gclouds_override_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kitaru_gcp.gcp_clients import endpoint

    name = "CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM"
    monkeypatch.delenv(name, raising=False)
    default = "europe-west4-aiplatform.googleapis.com"
    assert endpoint(None, name, default) == default
    monkeypatch.setenv(name, "https://private-aiplatform.example.com/")  # gcloud's form: a trailing path
    assert endpoint(None, name, "x") == "https://private-aiplatform.example.com"
    assert endpoint("http://127.0.0.1:8080", name, "x") == "http://127.0.0.1:8080"


@pytest.mark.slow
def test_application_default_credentials_reach_the_api_with_a_token(
    tmp_path: Path, vertex_double: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`credentials: default` goes through google.auth's ADC chain: here a service account key
    whose token endpoint is the double, so every request carries a bearer token."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(vertex_double.adc_file(tmp_path)))
    monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM", vertex_double.url)
    monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING", vertex_double.url)
    target = VertexTarget(VertexTargetConfig(**GCP, python=sys.executable), context(tmp_path))
    before = len(vertex_double.authorized)
    handle = target.submit(sleeper(tmp_path, seconds=0))
    assert wait_state(target, handle, {"succeeded"}).state == "succeeded"
    assert "zzz" in target.logs(handle)
    signed = vertex_double.authorized[before:]
    assert any("/customJobs" in p for p in signed) and "/v2/entries:list" in signed
