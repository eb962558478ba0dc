"""The example flows run unchanged on each managed ML job target's shipped stack file
(`stacks/<target>.yaml`), against its local double (tests/services/), which runs each submitted
job's worker command as a local process:

- `approval_flow.py` (a checkpoint, a wait, an isolated checkpoint): the runner suspends at
  the wait, the input resumes it, and the isolated call runs once, as one job;
- `recovery_flow.py`: the runner is SIGKILLed while its isolated call runs as a job; the
  resumed runner reattaches to that job by its recorded handle and records its result, so the
  call's body runs once.

Each target adds one `Managed` factory to `MANAGED` (the environment that points its stack
file's SDK at the double, and how to see which jobs the double started).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from e2e_flows.harness import FLOWS, Processes, runs, wait_for_execution, wait_for_status
from emulators import worker_env

import kitaru
from kitaru import KitaruClient

pytestmark = pytest.mark.slow


@dataclass
class Managed:
    """One managed target's double, as the tests below use it."""

    stack: str  # the shipped stack file is stacks/<stack>.yaml, and the stack's name
    env: dict[str, str]  # what points the stack's SDKs (and the jobs' workers) at the doubles
    started: Callable[[], list[str]]  # the task names whose worker the double started, in order


def _gcp(request: pytest.FixtureRequest, double_fixture: str, stack: str, override: str) -> Managed:
    """A Google Cloud double, found through gcloud's endpoint override variables, with
    Application Default Credentials whose tokens the double issues; fake-gcs-server for the store."""
    double = request.getfixturevalue(double_fixture)
    gcs = request.getfixturevalue("gcs_emulator")
    folder = request.getfixturevalue("tmp_path")
    env = {**gcs.env, **worker_env(gcs), override: double.url,
           "CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING": double.url,
           "GOOGLE_APPLICATION_CREDENTIALS": str(double.adc_file(folder))}
    from gcsfs.core import GCSFileSystem

    fs = GCSFileSystem(endpoint_url=gcs.endpoint, token="anon", skip_instance_cache=True)
    if not fs.exists("acme-agents"):  # the bucket the shipped stack files name
        fs.mkdir("acme-agents")
    return Managed(stack, env, double.started)


def vertex(request: pytest.FixtureRequest) -> Managed:
    return _gcp(request, "vertex_double", "vertex", "CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM")


def cloud_run(request: pytest.FixtureRequest) -> Managed:
    return _gcp(request, "cloud_run_double", "cloud-run", "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN")


def azureml(request: pytest.FixtureRequest) -> Managed:
    """The Azure ML double (it runs each command job's worker as a local process); Azurite for the
    store. `KITARU_AZUREML_ENDPOINT` points the target's SDK at the double and
    `AZURE_STORAGE_CONNECTION_STRING` the store (the runner's and, inherited, the jobs') at Azurite."""
    double = request.getfixturevalue("azureml_double")
    azurite = request.getfixturevalue("azure_emulator")
    import adlfs

    fs = adlfs.AzureBlobFileSystem(connection_string=azurite.env["AZURE_STORAGE_CONNECTION_STRING"],
                                   skip_instance_cache=True)
    try:
        fs.mkdir("agents")  # the container stacks/azureml.yaml names
    except FileExistsError:
        pass
    return Managed("azureml", {**azurite.env, "KITARU_AZUREML_ENDPOINT": double.url},
                   lambda: list(double.started))


def sagemaker(request: pytest.FixtureRequest) -> Managed:
    """moto's SageMaker and CloudWatch Logs with the job runner; moto's S3 for the store."""
    harness = request.getfixturevalue("sagemaker_harness")
    s3 = request.getfixturevalue("s3_emulator")
    env = {**s3.env, **harness.env, "AWS_ENDPOINT_URL_S3": s3.endpoint}
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint, region_name="eu-west-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    for bucket in ("acme-agents",):  # the bucket stacks/sagemaker.yaml names
        try:
            client.create_bucket(Bucket=bucket,
                                 CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
    return Managed("sagemaker", env, lambda: list(harness.started))


#: target name -> its factory (each target's engineer adds one line here).
MANAGED: dict[str, Callable[[pytest.FixtureRequest], Managed]] = {
    "vertex": vertex,
    "cloud-run": cloud_run,
    "azureml": azureml,
    "sagemaker": sagemaker,
}


@pytest.fixture(params=sorted(MANAGED))
def managed(request: pytest.FixtureRequest, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Managed:
    """The target's double, its stack file registered unchanged and active, the record in PostgreSQL."""
    backend = MANAGED[request.param](request)
    for name, value in {**backend.env, "KITARU_DB_URL": postgres_url}.items():
        monkeypatch.setenv(name, value)  # the runner, the CLI and (through the double) the workers
    registered = run_cli("stack", "register", str(REPO / "stacks" / f"{backend.stack}.yaml"))
    assert registered.returncode == 0, registered.stderr
    monkeypatch.setenv("KITARU_STACK", backend.stack)
    return backend


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def jobs_of(managed: Managed, exec_id: str) -> list[str]:
    """The jobs the double started for one execution (task names start with its first 8 characters)."""
    return [name for name in managed.started() if name.startswith(f"kitaru-{exec_id[:8]}-")]


def test_the_example_flow_runs_unchanged_on_the_stack(
    managed: Managed, workdir: Path, tmp_path: Path
) -> None:
    with Processes(tmp_path / "logs") as procs:
        code, out = procs.finish(procs.python(str(FLOWS / "approval_flow.py"), str(workdir), cwd=FLOWS))
    assert code == 0, out
    exec_id = (workdir / "exec_id").read_text()
    waiting = wait_for_execution(
        exec_id, lambda e: e.status.value == "waiting" and e.pending_wait is not None, "the `approve` wait")
    assert waiting.pending_wait.name == "approve"
    assert jobs_of(managed, exec_id) == []  # nothing runs while waiting

    answered = run_cli("executions", "input", exec_id, "--wait", "approve", "--value", "true")
    assert answered.returncode == 0, answered.stderr
    done = wait_for_status(exec_id, {"completed", "failed"}, timeout=180)
    assert done.status.value == "completed", done
    result = kitaru.load(exec_id, "output")
    assert result["text"] == "WHY DURABLE AGENTS MATTERS"
    assert result["pid"] != result["runner_pid"]  # the isolated call ran in the job's process
    assert runs(workdir) == {"draft": 1, "finalize": 1}
    assert len(jobs_of(managed, exec_id)) == 1
    # The job's output came back through the target's logs.
    assert "finalizing 'Why durable agents matters'" in str(KitaruClient().executions.logs(exec_id))


def test_a_runner_killed_while_its_job_runs_resumes_without_running_it_twice(
    managed: Managed, workdir: Path, tmp_path: Path
) -> None:
    (workdir / "hold").touch()  # the isolated call blocks in its job until the test lets it go
    with Processes(tmp_path / "logs") as procs:
        runner = procs.python(str(FLOWS / "recovery_flow.py"), str(workdir), cwd=FLOWS)
        procs.wait_for(lambda: (workdir / "ready").exists(), "the job's worker to start", watch=runner,
                       timeout=120)
        procs.crash(runner)
        exec_id = json.loads((workdir / "ready").read_text())["exec_id"]
        assert len(jobs_of(managed, exec_id)) == 1
        # The resumed runner reattaches to the running job; the job then ends and is recorded.
        resumed = procs.kitaru("executions", "resume", exec_id, cwd=tmp_path)
        (workdir / "hold").unlink()
        code, out = procs.finish(resumed, timeout=180)
        assert code == 0, out
    done = wait_for_status(exec_id, {"completed", "failed"})
    assert done.status.value == "completed", done
    assert kitaru.load(exec_id, "output")["total"] == 55
    assert runs(workdir) == {"prepare": 1, "crunch-called": 2, "crunch": 1}
    assert len(jobs_of(managed, exec_id)) == 1
    call = next(c for c in KitaruClient().executions.get(exec_id).checkpoints if c.call_id == "crunch#1")
    assert (call.status, call.attempts) == ("completed", 1)

