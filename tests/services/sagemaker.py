"""SageMaker and CloudWatch Logs on 127.0.0.1 for the tests: moto's server plus a job runner.

moto records a CreateTrainingJob request and answers DescribeTrainingJob, ListTrainingJobs
and the CloudWatch Logs API, but runs nothing: alone, it reports every job `Completed` the
moment it is created, drops the request's `Environment`, accepts a second job under a name in
use (AWS refuses it with `ResourceInUse`) and has no StopTrainingJob. `SageMakerHarness` serves
moto's own server (`ThreadedMotoServer`, in this process so it can change moto's job records)
and adds exactly those parts:

- each CreateTrainingJob is checked against botocore's SageMaker model (required members,
  lengths, patterns, enums: what the AWS API checks and the client does not), refused with
  `ResourceInUse` when the name is taken, recorded whole (`requests`), and started
  `InProgress`/`Starting` instead of `Completed`;
- a runner thread plays the training container: it runs `ContainerEntrypoint +
  ContainerArguments` as a local process with the request's `Environment` over this
  process's (the image is ignored, and an entrypoint `python` is this interpreter), writes
  the process's output to CloudWatch Logs through boto3 (group `/aws/sagemaker/TrainingJobs`,
  stream `<job>/algo-1-<unix time>`), and ends the job `Completed` (exit 0) or `Failed`
  (`AlgorithmError`), `Stopped`/`MaxRuntimeExceeded` past `StoppingCondition`, or `Stopped`
  after StopTrainingJob;
- `capacity_error` and `spot_interrupt` end a job the way AWS does (`Failed` with a
  `CapacityError` reason; `Stopped`/`Interrupted`), or `faults_on_start` for the next jobs;
- `run_workers = False` leaves created jobs to moto alone (Completed at once, nothing runs).

So the target's requests, name checks and DescribeTrainingJob answers are moto's; the states
after creation, the container and the logs' content are the harness's. Not emulated: instance
provisioning time, images, VPC and IAM (recorded, never enforced), more than one instance.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
ACCOUNT = "123456789012"  # moto's default account
CAPACITY_REASON = ("CapacityError: Unable to provision requested ML compute capacity. "
                   "Please retry using a different ML instance type.")


@dataclass
class _Run:
    name: str
    job: Any  # moto's FakeTrainingJob
    request: dict[str, Any]
    created: float
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    offset: int = 0
    partial: bytes = b""
    stream: str = ""
    started: float = 0.0
    ended: bool = False
    stop: bool = False
    fault: str | None = None


@dataclass
class Counts:
    """Requests the target made, per training job: for the polling tests and the benchmark."""

    creates: list[str] = field(default_factory=list)
    describes: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    stops: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _utcnow() -> Any:
    import datetime

    return datetime.datetime.now(tz=datetime.UTC)


class SageMakerHarness:
    """moto's server with the additions above; `env` points boto3 clients at it."""

    def __init__(self, root: Path, *, region: str = "eu-west-1", interval: float = 0.05) -> None:
        self.root = root
        self.region = region
        self.interval = interval
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.requests: dict[str, dict[str, Any]] = {}
        self.started: list[str] = []  # job names, in the order their containers started
        self.counts = Counts()
        self.run_workers = True
        #: Faults ("capacity" or "interrupt") for the next jobs to start, one each, in order.
        self.faults_on_start: list[str] = []
        self.problems: list[str] = []  # requests refused by the shape check, for the tests to show
        self._runs: dict[str, _Run] = {}
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sagemaker-harness", daemon=True)
        self._server: Any = None
        self._patched: dict[str, Any] = {}
        self._logs: Any = None

    @property
    def env(self) -> dict[str, str]:
        """What a boto3 client (the runner's, through the stack's ambient chain) needs."""
        return {"AWS_ENDPOINT_URL_SAGEMAKER": self.endpoint,
                "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": self.endpoint,
                "AWS_DEFAULT_REGION": self.region}

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> SageMakerHarness:
        from moto.server import ThreadedMotoServer

        self._patch()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        import boto3

        self._logs = boto3.client("logs", endpoint_url=self.endpoint, region_name=self.region,
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
        with contextlib.suppress(self._logs.exceptions.ResourceAlreadyExistsException):
            self._logs.create_log_group(logGroupName=LOG_GROUP)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(10)
        with self._lock:
            for run in self._runs.values():
                self._kill(run)
        if self._server is not None:
            self._server.stop()
        self._unpatch()

    # -- test hooks ---------------------------------------------------------------------
    def capacity_error(self, name: str) -> None:
        """End the job as AWS does when it cannot provide the instances."""
        self._fault(name, "capacity")

    def spot_interrupt(self, name: str) -> None:
        """End the job as AWS does when its spot instances are reclaimed."""
        self._fault(name, "interrupt")

    def _fault(self, name: str, kind: str) -> None:
        with self._lock:
            self._runs[name].fault = kind

    def job(self, name: str) -> Any:
        """moto's record of the job."""
        return self._backend().training_jobs[name]

    # -- moto, extended -----------------------------------------------------------------
    def _backend(self) -> Any:
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[ACCOUNT][self.region]

    def _patch(self) -> None:
        from moto.core.responses import ActionResult
        from moto.sagemaker.exceptions import ResourceInUseException, ValidationError
        from moto.sagemaker.responses import SageMakerResponse

        harness = self
        create = SageMakerResponse.create_training_job
        describe = SageMakerResponse.describe_training_job

        def create_training_job(resp: Any) -> Any:
            params = json.loads(resp.body or b"{}")
            problems = check_request("CreateTrainingJob", params)
            if problems:
                harness.problems.extend(problems)
                raise ValidationError("; ".join(problems))
            name = params["TrainingJobName"]
            backend = resp.sagemaker_backend
            with harness._lock:
                if name in backend.training_jobs:
                    arn = backend.training_jobs[name].arn
                    raise ResourceInUseException(
                        f"Training job names must be unique within an AWS account and region, and a "
                        f"training job with this name already exists ({arn})")
                result = create(resp)
                harness.counts.creates.append(name)
                harness._created(backend.training_jobs[name], params)
            return result

        def describe_training_job(resp: Any) -> Any:
            name = resp._get_param("TrainingJobName")
            with harness._lock:
                harness.counts.describes[name].append(time.monotonic())
            return describe(resp)

        def stop_training_job(resp: Any) -> Any:
            name = resp._get_param("TrainingJobName")
            backend = resp.sagemaker_backend
            with harness._lock:
                job = backend.training_jobs.get(name)
                if job is None:
                    raise ValidationError(f"Could not find training job '{name}'.")
                if job.training_job_status != "InProgress":
                    raise ValidationError(f"The request was rejected because the training job is in "
                                          f"status {job.training_job_status}.")
                harness.counts.stops.append(name)
                job.training_job_status = job.secondary_status = "Stopping"
                run = harness._runs.get(name)
                if run is not None:
                    run.stop = True
            return ActionResult({})

        self._patched = {"create_training_job": create, "describe_training_job": describe}
        SageMakerResponse.create_training_job = create_training_job  # type: ignore[method-assign]
        SageMakerResponse.describe_training_job = describe_training_job  # type: ignore[method-assign]
        SageMakerResponse.stop_training_job = stop_training_job  # type: ignore[attr-defined]

    def _unpatch(self) -> None:
        from moto.sagemaker.responses import SageMakerResponse

        for name, original in self._patched.items():
            setattr(SageMakerResponse, name, original)
        with contextlib.suppress(AttributeError):
            del SageMakerResponse.stop_training_job  # type: ignore[attr-defined]

    def _created(self, job: Any, params: dict[str, Any]) -> None:
        name = params["TrainingJobName"]
        self.requests[name] = params
        job.environment = dict(params.get("Environment") or {})
        job.enable_managed_spot_training = bool(params.get("EnableManagedSpotTraining"))
        if not self.run_workers:
            return  # moto's own view: Completed at once, nothing runs
        job.training_job_status = "InProgress"
        job.secondary_status = "Starting"
        job.training_end_time = None
        job.final_metric_data_list = None
        self._runs[name] = _Run(name, job, params, time.monotonic())

    # -- the training containers --------------------------------------------------------
    def _loop(self) -> None:
        while not self._halt.is_set():
            with self._lock:
                runs = [run for run in self._runs.values() if not run.ended]
            for run in runs:
                with contextlib.suppress(Exception):  # the server going away at the end
                    self._step(run)
            self._halt.wait(self.interval)

    def _step(self, run: _Run) -> None:
        with self._lock:
            if run.proc is None and not run.stop and run.fault is None:
                self._start(run)
                return
            fault, stop = run.fault, run.stop
        limit = (run.request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        if fault is not None:
            self._kill(run)
            self._flush(run)
            if fault == "capacity":
                self._finish(run, "Failed", "Failed", CAPACITY_REASON)
            else:
                self._finish(run, "Stopped", "Interrupted", None)
        elif stop:
            self._kill(run)
            self._flush(run)
            self._finish(run, "Stopped", "Stopped", None)
        elif run.proc is not None and run.proc.poll() is not None:
            self._flush(run)
            code = run.proc.returncode
            if code == 0:
                self._finish(run, "Completed", "Completed", None)
            else:
                self._finish(run, "Failed", "Failed",
                             f"AlgorithmError: the training container exited with code {code}; see the logs")
        elif limit and time.monotonic() - run.started > limit:
            self._kill(run)
            self._flush(run)
            self._finish(run, "Stopped", "MaxRuntimeExceeded", None)
        else:
            self._flush(run)

    def _start(self, run: _Run) -> None:
        spec = run.request["AlgorithmSpecification"]
        argv = [*spec["ContainerEntrypoint"], *(spec.get("ContainerArguments") or [])]
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable  # the image's Python is this machine's
        env = {**os.environ, **(run.request.get("Environment") or {})}
        run.log = self.root / f"{run.name}.log"
        run.stream = f"{run.name}/algo-1-{int(time.time())}"
        self._logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=run.stream)
        with open(run.log, "wb") as out:
            run.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        run.started = time.monotonic()
        self.started.append(run.name)
        if self.faults_on_start:
            run.fault = self.faults_on_start.pop(0)
        run.job.secondary_status = "Training"
        run.job.training_start_time = _utcnow()

    def _flush(self, run: _Run) -> None:
        """Send the container's new complete lines to CloudWatch Logs (all of it once it ended)."""
        if run.log is None:
            return
        with open(run.log, "rb") as fh:
            fh.seek(run.offset)
            data = fh.read()
        run.offset += len(data)
        data = run.partial + data
        ended = run.proc is not None and run.proc.poll() is not None
        lines = data.split(b"\n")
        run.partial = lines.pop()  # the text after the last newline: all of it once ended
        if ended and run.partial:
            lines.append(run.partial)
            run.partial = b""
        stamp = int(time.time() * 1000)
        events = [{"timestamp": stamp, "message": line.decode(errors="replace")} for line in lines]
        if events:
            self._logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=run.stream, logEvents=events)

    def _finish(self, run: _Run, status: str, secondary: str, reason: str | None) -> None:
        with self._lock:
            run.ended = True
            job = run.job
            job.training_job_status = status
            job.secondary_status = secondary
            if reason:
                job.failure_reason = reason
            job.training_end_time = job.last_modified_time = _utcnow()

    def _kill(self, run: _Run) -> None:
        if run.proc is not None and run.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait(10)


# -- the request's shape, as the API documents it --------------------------------------------


def check_request(operation: str, params: dict[str, Any]) -> list[str]:
    """What the SageMaker API would refuse in `params` (botocore's model: required members,
    min/max lengths and values, patterns, enums); [] when nothing."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    problems: list[str] = []
    _check(model.operation_model(operation).input_shape, params, operation, problems)
    spot = params.get("EnableManagedSpotTraining")
    stopping = params.get("StoppingCondition") or {}
    if spot and stopping.get("MaxWaitTimeInSeconds", 0) < stopping.get("MaxRuntimeInSeconds", 86400):
        problems.append("MaxWaitTimeInSeconds must be set and >= MaxRuntimeInSeconds for managed spot")
    return problems


def _check(shape: Any, value: Any, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object")
            return
        for name in shape.required_members:
            if name not in value:
                problems.append(f"{path}.{name} is required")
        for name, item in value.items():
            if name not in shape.members:
                problems.append(f"{path}.{name} is not a member")
            else:
                _check(shape.members[name], item, f"{path}.{name}", problems)
    elif kind == "list":
        _bounds(len(value), meta, path, problems, "items")
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]", problems)
    elif kind == "map":
        _bounds(len(value), meta, path, problems, "entries")
        for key, item in value.items():
            _check(shape.key, key, f"{path} key {key!r}", problems)
            _check(shape.value, item, f"{path}[{key!r}]", problems)
    elif kind == "string":
        _bounds(len(value), meta, path, problems, "characters")
        pattern = meta.get("pattern")
        if pattern and "\\p{" not in pattern and not re.fullmatch(pattern, value, re.DOTALL):
            problems.append(f"{path}={value!r} does not match {pattern}")
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}={value!r} is not one of the API's values")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: expected an integer")
        else:
            _bounds(value, meta, path, problems, "")


def _bounds(n: int, meta: dict[str, Any], path: str, problems: list[str], unit: str) -> None:
    if "min" in meta and n < meta["min"]:
        problems.append(f"{path}: {n} {unit} is under the minimum {meta['min']}".replace("  ", " "))
    if "max" in meta and n > meta["max"]:
        problems.append(f"{path}: {n} {unit} is over the maximum {meta['max']}".replace("  ", " "))


@contextlib.contextmanager
def running_sagemaker(root: Path) -> Iterator[SageMakerHarness]:
    """The harness, started; stopped at the end."""
    harness = SageMakerHarness(root).start()
    try:
        yield harness
    finally:
        harness.stop()
