"""The `sagemaker` execution target: each attempt of an isolated call is one SageMaker training job.

The job's name is the task name (a DNS-1123 label of at most 63 characters, which SageMaker's
`^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}` accepts), so `find` is one DescribeTrainingJob and a submit
repeated after a runner crash meets `ResourceInUse` and adopts the job instead of starting a
second one. The job runs `<python> -m kitaru_core.worker ...` as its container entrypoint and
arguments in the stack's image; the worker's result.json in the artifact store, never the
job's "Completed", decides whether the call succeeded. boto3 is imported on first use.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from kitaru_core.errors import ResourceError, TaskError
from kitaru_core.interfaces import ComponentContext, ExecutionTarget, TaskRequest, TaskState

from .configs import SageMakerTargetConfig
from .sagemaker_instances import choose

#: Where SageMaker writes a training job's output: one stream per instance, `<job>/algo-<n>-<ts>`.
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
#: ContainerArguments and ContainerEntrypoint items are at most this long (the API's limit).
MAX_ARGUMENT = 256
#: `options` a call may give this target.
OPTIONS = ("instance_type", "instance_count", "spot", "max_wait_seconds", "volume_size_gb")
#: Extra time a spot job may wait for capacity when `max_wait_seconds` is not set.
DEFAULT_SPOT_WAIT = 3600
#: Secondary statuses of a job that has not started its container yet.
_PENDING = {"Starting", "Pending", "LaunchingMLInstances", "PreparingTrainingStack", "Downloading",
            "DownloadingTrainingImage"}
#: Failure reasons (prefixes, lowercased) that mean AWS, not the code, ended the job.
_CAPACITY = ("capacityerror", "insufficientinstancecapacity", "insufficient capacity",
             "unable to provision requested ml compute capacity")


class SageMakerTarget(ExecutionTarget):
    """Runs `<python> -m kitaru_core.worker ...` as a training job named after the task."""

    locality = "network"

    def __init__(self, config: SageMakerTargetConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.config = config
        self.poll_cap = config.poll_interval
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- clients ---------------------------------------------------------------------------
    def _client(self, service: str) -> Any:
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                import boto3
                from botocore.config import Config

                session = boto3.session.Session(profile_name=self.config.profile,
                                                region_name=self.config.region)
                config = self.config
                endpoint = config.endpoint_url if service == "sagemaker" else config.logs_endpoint_url
                client = session.client(service, endpoint_url=endpoint,
                                        config=Config(retries={"mode": "standard", "max_attempts": 5}))
                self._clients[service] = client
            return client

    @property
    def sagemaker(self) -> Any:
        return self._client("sagemaker")

    @property
    def logs_client(self) -> Any:
        return self._client("logs")

    # -- mapping a request -----------------------------------------------------------------
    def check_resources(self, request: TaskRequest) -> None:
        """Refuses unknown options, resources no instance provides, arguments longer than the
        API allows and store variables that would have to travel as the job's (visible)
        Environment without being listed in `pass_env`."""
        self.training_job(request)

    def training_job(self, request: TaskRequest) -> dict[str, Any]:
        """The CreateTrainingJob parameters for `request` (raises `ResourceError` first)."""
        config = self.config
        options = dict(request.options)
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ResourceError(
                f"the sagemaker target does not know the option(s) {unknown}; it takes {list(OPTIONS)}"
            )
        named = options.get("instance_type")
        instance_type = choose(request.resources, named=named, default=config.instance_type)
        count = _positive_int(options, "instance_count", config.instance_count)
        volume = _positive_int(options, "volume_size_gb", config.volume_size_gb)
        disk = request.resources.disk_bytes()
        if disk is not None:
            volume = max(volume, math.ceil(disk / 2**30))
        runtime = max(1, math.ceil(request.timeout)) if request.timeout else config.max_runtime_seconds
        stopping: dict[str, int] = {"MaxRuntimeInSeconds": runtime}
        spot = options.get("spot", config.spot)
        if not isinstance(spot, bool):
            raise ResourceError(f"options spot={spot!r} must be true or false")
        if spot:
            wait = options.get("max_wait_seconds", config.max_wait_seconds)
            wait = runtime + DEFAULT_SPOT_WAIT if wait is None else wait
            if not isinstance(wait, int) or wait < runtime:
                raise ResourceError(
                    f"max_wait_seconds={wait!r} must be a whole number of seconds >= the runtime "
                    f"({runtime} s, the call's timeout or max_runtime_seconds); raise it"
                )
            stopping["MaxWaitTimeInSeconds"] = wait
        elif "max_wait_seconds" in options:
            raise ResourceError(
                "options max_wait_seconds applies to spot jobs only; add spot=True or drop it"
            )
        env = {**config.env, **request.env, **self._passed_env(request)}
        arguments = list(request.argv)
        for item in (config.python, *arguments):
            if len(item) > MAX_ARGUMENT:
                raise ResourceError(
                    f"a worker argument is {len(item)} characters, over SageMaker's {MAX_ARGUMENT} "
                    f"({item[:60]}...); shorten the artifact store's config in the stack file"
                )
        tags = {**config.tags, **{key: value for key, value in request.labels.items()},
                "kitaru-task": request.task_name}
        params: dict[str, Any] = {
            "TrainingJobName": request.task_name,
            "RoleArn": config.role_arn,
            "AlgorithmSpecification": {
                "TrainingImage": request.image or config.image,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": [config.python],
                "ContainerArguments": arguments,
            },
            "OutputDataConfig": {"S3OutputPath": config.output_path},
            "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": count,
                               "VolumeSizeInGB": volume},
            "StoppingCondition": stopping,
            "Environment": env,
            "Tags": [{"Key": key, "Value": value} for key, value in sorted(tags.items())],
        }
        if spot:
            params["EnableManagedSpotTraining"] = True
        if config.subnets:
            params["VpcConfig"] = {"Subnets": list(config.subnets),
                                   "SecurityGroupIds": list(config.security_group_ids)}
        return params

    def _passed_env(self, request: TaskRequest) -> dict[str, str]:
        """The store config's `${env:NAME}` values the job needs, from this process's environment:
        only names listed in `pass_env` (a job's Environment is visible to anyone who may
        describe it, so a secret never goes there; the job's role gives it AWS credentials)."""
        import os

        missing = [name for name in request.secret_env if name not in self.config.pass_env]
        if missing:
            raise ResourceError(
                f"the artifact store's config refers to ${{env:{missing[0]}}}, which the sagemaker target "
                "would have to copy into the job's visible Environment; if it is not a secret list it "
                "in the target's `pass_env`, else let the job's role provide access and drop it"
            )
        unset = [name for name in request.secret_env if name not in os.environ]
        if unset:
            raise ResourceError(f"`pass_env` names {unset[0]}, which is not set in the runner's environment")
        return {name: os.environ[name] for name in request.secret_env}

    # -- the protocol ----------------------------------------------------------------------
    def submit(self, request: TaskRequest) -> dict[str, Any]:
        params = self.training_job(request)
        from botocore.exceptions import ClientError

        try:
            created = self.sagemaker.create_training_job(**params)
        except ClientError as exc:
            if _code(exc) != "ResourceInUse":
                raise self._error(f"cannot create training job {request.task_name}", exc) from exc
            found = self.find(request.task_name)  # submitted before (a runner that crashed): adopt it
            if found is None:
                raise self._error(f"training job {request.task_name} is in use but not found", exc) from exc
            return found
        return self._handle(request.task_name, created["TrainingJobArn"])

    def find(self, task_name: str) -> dict[str, Any] | None:
        job = self._describe(task_name)
        return None if job is None else self._handle(task_name, job["TrainingJobArn"])

    def poll(self, handle: dict[str, Any]) -> TaskState:
        job = self._describe(handle["job"])
        if job is None:
            return TaskState("lost", f"training job {handle['job']} is gone")
        return job_state(job)

    def cancel(self, handle: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        try:
            self.sagemaker.stop_training_job(TrainingJobName=handle["job"])
        except ClientError as exc:
            # Ended already ("... is in status Completed") or gone: nothing to stop.
            if _code(exc) not in ("ValidationException", "ResourceNotFound"):
                raise self._error(f"cannot stop training job {handle['job']}", exc) from exc

    def logs(self, handle: dict[str, Any]) -> str:
        """The job's CloudWatch Logs streams (`<job>/algo-<n>-<ts>`), oldest instance first."""
        from botocore.exceptions import ClientError

        client = self.logs_client
        lines: list[str] = []
        try:
            streams: list[str] = []
            for page in client.get_paginator("describe_log_streams").paginate(
                logGroupName=LOG_GROUP, logStreamNamePrefix=f"{handle['job']}/"
            ):
                streams.extend(s["logStreamName"] for s in page.get("logStreams", []))
            for stream in sorted(streams):
                token = None
                while True:
                    kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream,
                                              "startFromHead": True}
                    if token:
                        kwargs["nextToken"] = token
                    page = client.get_log_events(**kwargs)
                    lines.extend(event["message"] for event in page.get("events", []))
                    if not page.get("events") or page.get("nextForwardToken") in (None, token):
                        break
                    token = page["nextForwardToken"]
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":  # no log group yet: no output yet
                raise self._error(f"cannot read the logs of training job {handle['job']}", exc) from exc
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    # -- helpers ---------------------------------------------------------------------------
    def _describe(self, name: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.sagemaker.describe_training_job(TrainingJobName=name)
        except ClientError as exc:
            # AWS says "Requested resource not found."; moto "Could not find training job ..."
            text = str(exc).lower()
            if _code(exc) in ("ValidationException", "ResourceNotFound") and (
                "not found" in text or "could not find" in text
            ):
                return None
            raise self._error(f"cannot describe training job {name}", exc) from exc

    def _handle(self, name: str, arn: str) -> dict[str, Any]:
        return {"job": name, "arn": arn}

    def _error(self, what: str, exc: Exception) -> TaskError:
        message = str(exc).replace("\n", " ")
        return TaskError(
            f"{what}: {message}; check the stack's AWS credentials and region and that they may "
            "call sagemaker:*TrainingJob (docs/sagemaker.md lists the policy)"
        )


def job_state(job: dict[str, Any]) -> TaskState:
    """kitaru's view of one DescribeTrainingJob answer.

    "Completed" is reported as succeeded, but the runner records the call only from the
    worker's result.json; a job that completed without one fails the attempt with this
    message. A capacity error or a spot interruption is `lost`: the runner submits the call
    again as a new attempt.
    """
    name = job.get("TrainingJobName", "?")
    status = job.get("TrainingJobStatus", "")
    secondary = job.get("SecondaryStatus", "")
    reason = job.get("FailureReason") or ""
    if status == "InProgress":
        if secondary in _PENDING:
            return TaskState("pending", f"training job {name}: {secondary}")
        return TaskState("running", f"training job {name}: {secondary or status}")
    if status == "Stopping":
        return TaskState("running", f"training job {name} is stopping")
    if status == "Completed":
        return TaskState("succeeded", f"SageMaker reports training job {name} Completed, so the worker "
                         "exited 0 without writing its result: check the image runs `python -m "
                         "kitaru_core.worker` (the entrypoint) and can reach the artifact store")
    if status == "Failed" and (secondary == "Interrupted" or reason.lower().startswith(_CAPACITY)):
        return TaskState("lost", f"training job {name}: {reason or 'spot capacity was interrupted'}")
    if status == "Failed":
        return TaskState("failed", f"training job {name} failed: {reason or secondary}")
    if status == "Stopped":
        if secondary == "Interrupted":
            return TaskState("lost", f"training job {name}: the spot instance was interrupted")
        if secondary == "MaxRuntimeExceeded":
            limit = (job.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
            return TaskState("failed", f"training job {name} ran past its timeout "
                             f"(MaxRuntimeInSeconds={limit}) and was stopped")
        if secondary == "MaxWaitTimeExceeded":
            limit = (job.get("StoppingCondition") or {}).get("MaxWaitTimeInSeconds")
            return TaskState("failed", f"training job {name} waited past MaxWaitTimeInSeconds={limit} for "
                             "spot capacity; raise max_wait_seconds or turn spot off")
        return TaskState("failed", f"training job {name} was stopped (StopTrainingJob)")
    if status == "Deleting":
        return TaskState("lost", f"training job {name} is being deleted")
    return TaskState("pending", f"training job {name}: {status or 'unknown status'}")


def _positive_int(options: dict[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ResourceError(f"options {key}={value!r} must be a whole number >= 1")
    return value


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
