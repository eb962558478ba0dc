"""The `sagemaker` execution target: the request it builds from a call (checked against the
SageMaker API's documented shape), its instance choice and refusals, and submit / find / poll /
cancel / logs against moto's server and the harness that runs each training job's container
command (tests/services/sagemaker.py), including the ExecutionTarget conformance suite."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulators import Emulator, store_config, worker_env
from kitaru_aws.configs import SageMakerTargetConfig
from kitaru_aws.sagemaker_instances import INSTANCES, choose
from kitaru_aws.sagemaker_target import SageMakerTarget, job_state
from services.sagemaker import CAPACITY_REASON, SageMakerHarness, check_request

from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.errors import ResourceError
from kitaru_core.interfaces import ComponentContext, Resources, TaskRequest
from kitaru_core.plugins.manager import default_manager
from kitaru_core.runtime.protocol import task_name, worker_argv
from kitaru_core.stack import StackStore
from kitaru_core.testing import ExecutionTargetConformance

ROLE = "arn:aws:iam::123456789012:role/kitaru-sagemaker"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/agents:1.4"
OUTPUT = "s3://kitaru-tests/sagemaker-output"


def make_config(**extra: Any) -> SageMakerTargetConfig:
    return SageMakerTargetConfig(role_arn=ROLE, image=IMAGE, output_path=OUTPUT, region="eu-west-1", **extra)


def make_target(tmp_path: Path, **extra: Any) -> SageMakerTarget:
    return SageMakerTarget(make_config(**extra), ComponentContext(home=tmp_path / "home", stack_name="sm"))


def request(exec_id: str = "0193a5f2c4e87b1d9e2f3a4b5c6d7e8f", call_id: str = "total#1", *, attempt: int = 1,
            argv: tuple[str, ...] | None = None, **extra: Any) -> TaskRequest:
    """The request the runner makes for one attempt of a call (kitaru_core.runtime.protocol)."""
    key = f"tasks/{exec_id}/{call_id.replace('#', '-')}/{attempt}/spec.json"
    return TaskRequest(
        task_name=task_name(exec_id, call_id, attempt), spec_key=key,
        argv=argv or worker_argv("s3", {"path": "s3://acme-agents/kitaru", "region": "eu-west-1"}, key),
        env={"KITARU_EXEC_ID": exec_id},
        labels={"kitaru-execution": exec_id, "kitaru-call": "total-1", "kitaru-attempt": str(attempt)},
        **extra,
    )


# -- the request, without a server -------------------------------------------------------------


def test_the_flavor_is_registered_and_its_config_refuses_typos_and_half_a_vpc() -> None:
    flavor = default_manager().flavor("execution_target", "sagemaker")
    assert flavor.plugin == "kitaru-aws"
    assert flavor.config(role_arn=ROLE, image=IMAGE, output_path=OUTPUT).instance_type == "ml.m5.large"
    with pytest.raises(ValueError, match="instance_typ"):
        flavor.config(role_arn=ROLE, image=IMAGE, output_path=OUTPUT, instance_typ="ml.m5.large")
    with pytest.raises(ValueError, match="security_group_ids"):
        flavor.config(role_arn=ROLE, image=IMAGE, output_path=OUTPUT, subnets=["subnet-1"])
    # A running job is described at most every 10 s (6 requests a minute) once the backoff is there.
    assert make_target(Path("/nonexistent")).poll_cap == 10.0
    assert make_target(Path("/nonexistent"), poll_interval=30).poll_cap == 30.0


def test_the_request_maps_timeout_spot_vpc_tags_and_passes_the_api_shape(tmp_path: Path) -> None:
    target = make_target(tmp_path, spot=True, subnets=["subnet-0abc"], security_group_ids=["sg-0def"],
                         tags={"team": "agents"}, env={"LOG_LEVEL": "info"}, volume_size_gb=50)
    req = request(timeout=90.5, resources=Resources(disk="100Gi"))
    params = target.training_job(req)
    assert check_request("CreateTrainingJob", params) == []
    assert params["TrainingJobName"] == req.task_name
    spec = params["AlgorithmSpecification"]
    assert spec["ContainerEntrypoint"] == ["python"]
    assert spec["ContainerArguments"] == list(req.argv)
    assert spec["TrainingImage"] == IMAGE
    assert params["StoppingCondition"] == {"MaxRuntimeInSeconds": 91, "MaxWaitTimeInSeconds": 91 + 3600}
    assert params["EnableManagedSpotTraining"] is True
    assert params["VpcConfig"] == {"Subnets": ["subnet-0abc"], "SecurityGroupIds": ["sg-0def"]}
    assert params["ResourceConfig"] == {
        "InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 100}
    assert params["Environment"] == {"LOG_LEVEL": "info", "KITARU_EXEC_ID": req.env["KITARU_EXEC_ID"]}
    tags = {t["Key"]: t["Value"] for t in params["Tags"]}
    assert tags["team"] == "agents" and tags["kitaru-attempt"] == "1" and tags["kitaru-task"] == req.task_name
    # Without a timeout: the stack's max runtime, and no spot fields unless asked.
    plain = make_target(tmp_path).training_job(request())
    assert plain["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    assert "EnableManagedSpotTraining" not in plain and "VpcConfig" not in plain
    assert check_request("CreateTrainingJob", plain) == []
    # The shape check does refuse what the API refuses.
    bad = {**plain, "TrainingJobName": "kitaru_total#1", "Environment": {"1BAD": "x"}}
    problems = check_request("CreateTrainingJob", bad)
    assert any("TrainingJobName" in p for p in problems) and any("1BAD" in p for p in problems)


def test_task_names_are_valid_training_job_names() -> None:
    pattern = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
    for call in ("total#1", "X" * 300, "###", "summarize-the-whole-internet_please#12345"):
        name = task_name(uuid.uuid4().hex, call, 99)
        assert pattern.fullmatch(name) and len(name) <= 63, name


def test_resources_choose_the_smallest_instance_that_has_them_or_are_refused_naming_the_field() -> None:
    assert choose(Resources(), named=None, default="ml.m5.large") == "ml.m5.large"
    assert choose(Resources(cpu=2, memory="8Gi"), named=None, default="ml.m5.large") == "ml.m5.large"
    assert choose(Resources(cpu=4, memory="8Gi"), named=None, default="ml.m5.large") == "ml.c5.xlarge"
    assert choose(Resources(memory="100Gi"), named=None, default="ml.m5.large") == "ml.r5.4xlarge"
    assert choose(Resources(gpu=1), named=None, default="ml.m5.large") == "ml.g4dn.xlarge"
    assert choose(Resources(gpu=4, accelerator="nvidia-a10g"), named=None, default="x") == "ml.g5.12xlarge"
    assert choose(Resources(accelerator="ml.p3.2xlarge"), named=None, default="x") == "ml.p3.2xlarge"
    # an instance type the table does not know is passed on
    assert choose(Resources(cpu=2), named="ml.m6i.xlarge", default="x") == "ml.m6i.xlarge"
    for res, field in [(Resources(cpu=500), "cpu"), (Resources(memory="5Ti"), "memory"),
                       (Resources(gpu=16), "gpu"), (Resources(accelerator="no-such-gpu"), "accelerator")]:
        with pytest.raises(ResourceError, match=field) as err:
            choose(res, named=None, default="ml.m5.large")
        assert "\n" not in str(err.value)
    with pytest.raises(ResourceError, match="memory"):
        choose(Resources(memory="64Gi"), named="ml.m5.xlarge", default="x")
    assert all(i.name.startswith("ml.") for i in INSTANCES)


def test_unknown_options_long_arguments_and_unlisted_store_variables_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = make_target(tmp_path)
    with pytest.raises(ResourceError, match="node_selector"):
        target.check_resources(request(options={"node_selector": {"a": "b"}}))
    with pytest.raises(ResourceError, match="max_wait_seconds"):
        target.check_resources(request(options={"max_wait_seconds": 10}))
    with pytest.raises(ResourceError, match="max_wait_seconds"):
        target.check_resources(request(timeout=600, options={"spot": True, "max_wait_seconds": 60}))
    with pytest.raises(ResourceError, match="256"):
        target.check_resources(request(argv=("-m", "kitaru_core.worker", "--store-config", "x" * 300)))
    ok = target.training_job(request(options={"instance_type": "ml.g5.xlarge", "instance_count": 2,
                                              "spot": True}))
    assert ok["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert ok["ResourceConfig"]["InstanceCount"] == 2
    # A store config's ${env:NAME} would travel in the job's visible Environment: only when listed.
    with pytest.raises(ResourceError, match="pass_env"):
        target.check_resources(request(secret_env=("KITARU_BUCKET",)))
    monkeypatch.setenv("KITARU_BUCKET", "s3://acme-agents")
    listed = make_target(tmp_path, pass_env=["KITARU_BUCKET"])
    passed = listed.training_job(request(secret_env=("KITARU_BUCKET",)))
    assert passed["Environment"]["KITARU_BUCKET"] == "s3://acme-agents"


@pytest.mark.parametrize(("described", "state", "words"), [
    ({"TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting"}, "pending", "Starting"),
    ({"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"}, "running", "Training"),
    ({"TrainingJobStatus": "Stopping", "SecondaryStatus": "Stopping"}, "running", "stopping"),
    ({"TrainingJobStatus": "Completed", "SecondaryStatus": "Completed"}, "succeeded", "without writing"),
    ({"TrainingJobStatus": "Failed", "SecondaryStatus": "Failed", "FailureReason": CAPACITY_REASON}, "lost",
     "CapacityError"),
    ({"TrainingJobStatus": "Stopped", "SecondaryStatus": "Interrupted"}, "lost", "interrupted"),
    ({"TrainingJobStatus": "Failed", "SecondaryStatus": "Failed", "FailureReason": "AlgorithmError: x"},
     "failed", "AlgorithmError"),
    ({"TrainingJobStatus": "Stopped", "SecondaryStatus": "MaxRuntimeExceeded",
      "StoppingCondition": {"MaxRuntimeInSeconds": 5}}, "failed", "MaxRuntimeInSeconds=5"),
    ({"TrainingJobStatus": "Stopped", "SecondaryStatus": "MaxWaitTimeExceeded"}, "failed",
     "max_wait_seconds"),
    ({"TrainingJobStatus": "Stopped", "SecondaryStatus": "Stopped"}, "failed", "StopTrainingJob"),
])
def test_job_states(described: dict[str, Any], state: str, words: str) -> None:
    got = job_state({"TrainingJobName": "kitaru-x", **described})
    assert got.state == state and words in got.message, got


# -- against moto and the harness ----------------------------------------------------------------


@pytest.fixture
def s3(s3_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The S3 emulator, reachable from this process and the harness's containers."""
    for name, value in {**s3_emulator.env, **worker_env(s3_emulator)}.items():
        monkeypatch.setenv(name, value)
    return s3_emulator


def harness_config(harness: SageMakerHarness, **extra: Any) -> dict[str, Any]:
    return {"role_arn": ROLE, "image": IMAGE, "output_path": OUTPUT, "region": harness.region,
            "endpoint_url": harness.endpoint, "logs_endpoint_url": harness.endpoint, "poll_interval": 1.0,
            **extra}


@pytest.mark.slow
class TestSageMakerTarget(ExecutionTargetConformance):
    flavor = "sagemaker"
    store_flavor = "s3"
    task_timeout = 120.0
    unsupported = Resources(gpu=1, accelerator="no-such-accelerator")

    @pytest.fixture
    def config(self, sagemaker_harness: SageMakerHarness, s3: Emulator) -> dict[str, Any]:
        return harness_config(sagemaker_harness)

    @pytest.fixture
    def store_config(self, s3: Emulator) -> dict[str, Any]:
        return store_config(s3)

    @pytest.fixture
    def task_env(self, s3: Emulator) -> dict[str, str]:
        return worker_env(s3)


def finished(target: SageMakerTarget, handle: dict[str, Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = target.poll(handle)
        if state.ended:
            return state
        time.sleep(0.05)
    raise AssertionError(f"{handle} did not end")


def shell_request(tmp_path: Path, body: str, **extra: Any) -> TaskRequest:
    """A request whose container runs `sh -c body` (the real worker runs in the suite above)."""
    return request(uuid.uuid4().hex, "step#1", argv=("-c", body), **extra)


def sh_target(tmp_path: Path, harness: SageMakerHarness, **extra: Any) -> SageMakerTarget:
    cfg = SageMakerTargetConfig(**harness_config(harness, python="/bin/sh", **extra))
    return SageMakerTarget(cfg, ComponentContext(home=tmp_path / "home", stack_name="sm"))


@pytest.mark.parametrize(("fault", "words"), [("capacity_error", "CapacityError"),
                                              ("spot_interrupt", "interrupted")])
def test_a_capacity_error_or_spot_interruption_is_lost(
    tmp_path: Path, sagemaker_harness: SageMakerHarness, s3: Emulator, fault: str, words: str
) -> None:
    target = sh_target(tmp_path, sagemaker_harness, spot=True)
    req = shell_request(tmp_path, "sleep 30")
    handle = target.submit(req)
    deadline = time.monotonic() + 30
    while req.task_name not in sagemaker_harness.started and time.monotonic() < deadline:
        time.sleep(0.05)
    getattr(sagemaker_harness, fault)(req.task_name)
    state = finished(target, handle)
    assert state.state == "lost" and words in state.message, state
    recorded = sagemaker_harness.requests[req.task_name]
    assert recorded["EnableManagedSpotTraining"] is True
    assert recorded["StoppingCondition"]["MaxWaitTimeInSeconds"] >= recorded["StoppingCondition"][
        "MaxRuntimeInSeconds"]


def test_moto_alone_reports_completed_at_once_and_the_target_does_not_call_that_a_result(
    tmp_path: Path, sagemaker_harness: SageMakerHarness, s3: Emulator
) -> None:
    target = sh_target(tmp_path, sagemaker_harness)
    req = shell_request(tmp_path, "exit 0")
    sagemaker_harness.run_workers = False
    try:
        handle = target.submit(req)
    finally:
        sagemaker_harness.run_workers = True
    state = target.poll(handle)
    assert state.state == "succeeded"
    assert "without writing its result" in state.message  # what the runner reports with no result.json
    assert req.task_name not in sagemaker_harness.started  # nothing ran
    # moto kept the request as sent; the harness put back the Environment moto drops.
    described = target.sagemaker.describe_training_job(TrainingJobName=req.task_name)
    assert described["AlgorithmSpecification"]["ContainerArguments"] == list(req.argv)
    assert described["Environment"]["KITARU_EXEC_ID"] == req.env["KITARU_EXEC_ID"]


def test_a_failed_container_is_failed_with_its_output_in_the_logs(
    tmp_path: Path, sagemaker_harness: SageMakerHarness, s3: Emulator
) -> None:
    target = sh_target(tmp_path, sagemaker_harness)
    handle = target.submit(shell_request(tmp_path, 'echo "Traceback: boom"; echo second line >&2; exit 3'))
    state = finished(target, handle)
    assert state.state == "failed" and "AlgorithmError" in state.message and "3" in state.message
    logs = target.logs(handle)
    assert "Traceback: boom\n" in logs and "second line\n" in logs
    target.cancel(handle)  # stopping an ended job is a no-op
    assert target.poll(handle).state == "failed"


def test_a_job_that_is_gone_is_lost_and_logs_of_an_unknown_job_are_empty(
    tmp_path: Path, sagemaker_harness: SageMakerHarness, s3: Emulator
) -> None:
    target = sh_target(tmp_path, sagemaker_harness)
    handle = {"job": task_name(uuid.uuid4().hex, "gone#1", 1), "arn": "arn:x"}
    assert target.poll(handle).state == "lost"
    assert target.logs(handle) == ""
    target.cancel(handle)


@checkpoint(runtime="isolated")
def doubled(x: int) -> int:
    return 2 * x


def test_a_lost_attempt_is_submitted_again_without_using_a_retry(
    tmp_path: Path, sagemaker_harness: SageMakerHarness, s3: Emulator
) -> None:
    stack = tmp_path / "sm.yaml"
    stack.write_text(yaml.safe_dump({
        "name": "sm", "artifact_store": {"flavor": "s3", "config": store_config(s3)},
        "execution_target": {"flavor": "sagemaker", "config": harness_config(sagemaker_harness)},
    }))
    StackStore().register(stack)

    @flow
    def twice(x: int) -> int:
        return doubled(x).load()

    sagemaker_harness.faults_on_start = ["interrupt", "capacity"]
    handle = twice.run(21, stack="sm")
    assert handle.wait(timeout=180) == 42  # `doubled` has no retries: the losses were not charged
    call = KitaruClient().executions.get(handle.exec_id).checkpoints[0]
    assert (call.status, call.attempts) == ("completed", 3)
    jobs = [name for name in sagemaker_harness.started if name.startswith(f"kitaru-{handle.exec_id[:8]}-")]
    assert [re.search(r"-(\d+)-[0-9a-f]{8}$", name).group(1) for name in jobs] == ["1", "2", "3"]
