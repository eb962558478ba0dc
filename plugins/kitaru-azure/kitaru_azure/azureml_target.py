"""The `azureml` execution target: each attempt of an isolated checkpoint call is one Azure ML
command job (azure-ai-ml), named after the task.

The job's name is the task name (unique per execution, call and attempt): `submit` adopts a
job of that name instead of starting a second one, and `find` is one `jobs.get`. The job runs
`<python> -m kitaru_core.worker ...` in an environment built from the stack's image (or the
call's `image=`), on a compute cluster or on serverless compute of an instance type.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from typing import Any

from kitaru_core.errors import ResourceError, TaskError
from kitaru_core.interfaces import ComponentContext, ExecutionTarget, TaskRequest, TaskState, parse_size

from .configs import AzureMLTargetConfig

#: Azure ML job statuses, by the state kitaru reports.
PENDING = {"NotStarted", "Starting", "Provisioning", "Preparing", "Queued", "Scheduled", "Paused"}
RUNNING = {"Running", "Finalizing", "CancelRequested"}
#: A job the service stopped hearing from: its node is gone, the attempt may run again.
LOST = {"NotResponding", "Unknown"}
#: Words of a failed job's error that mean the node, not the code, ended it (a Spot or
#: low-priority node taken back, no capacity for the VM size): reported as lost, so the
#: runner resubmits without spending a retry.
_LOST_ERRORS = re.compile(r"preempt|evict|AllocationFailed|SkuNotAvailable|capacity", re.IGNORECASE)
#: `@checkpoint(options=...)` keys this target understands.
OPTIONS = {"instance_type", "instance_count", "job_tier"}
_VM_SIZE = re.compile(r"Standard_[A-Za-z0-9_]+")
#: Log files of a command job that hold the user's process output (per node and process).
_USER_LOG = re.compile(r"user_logs/std_log[\w.-]*\.txt$")


class AzureMLTarget(ExecutionTarget):
    """Runs each isolated call as an Azure ML command job named after its task."""

    locality = "network"

    def __init__(self, config: AzureMLTargetConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.config = config
        self.poll_cap = config.poll_cap
        self._client: Any = None
        self._environments: dict[str, str] = {}  # image -> the environment version's ARM id

    @property
    def client(self) -> Any:
        """The workspace's `MLClient` (built, and azure-ai-ml imported, on first use)."""
        if self._client is None:
            from .azureml_client import ml_client

            self._client = ml_client(self.config)
        return self._client

    # -- what a call may ask for -------------------------------------------------------------
    def check_resources(self, request: TaskRequest) -> None:
        """Refuse what the stack's compute cannot give, naming the field (see docs/azureml.md), and a
        store secret the job would have to carry in its environment variables."""
        self._placement(request)
        self._job_env(request)

    def _job_env(self, request: TaskRequest) -> dict[str, str]:
        """The job's environment variables: the stack's `env`, `pass_env` from this process, the request's.

        Azure ML shows a job's environment variables to whoever may read the job, so a variable the
        store config names (`request.secret_env`) is copied only when the stack lists it in `pass_env`.
        """
        config = self.config
        secret = [name for name in request.secret_env if name not in config.pass_env]
        if secret:
            raise ResourceError(
                f"the store config names ${{env:{secret[0]}}}, which the azureml target would have to copy "
                "into the job's environment variables, visible to whoever may read the job: let the "
                "job's identity reach the store (account_name only) or, if it is not secret, list it "
                "in the target's `pass_env`"
            )
        missing = [name for name in config.pass_env if name not in os.environ]
        if missing:
            raise ResourceError(f"the azureml target's pass_env names {missing[0]}, which is not set "
                                "in this process's environment; set it or drop it from pass_env")
        return {**config.env, **{name: os.environ[name] for name in config.pass_env}, **request.env}

    def _placement(self, request: TaskRequest) -> dict[str, Any]:
        """The job's instance type, count and tier for `request`, or a `ResourceError`."""
        config, res, options = self.config, request.resources, request.options
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ResourceError(
                f"the azureml target does not understand options {unknown}; it takes {sorted(OPTIONS)}"
            )
        chosen = options.get("instance_type") or res.accelerator
        if chosen is not None:
            field = "options.instance_type" if options.get("instance_type") else "accelerator"
            if config.compute is not None:
                raise ResourceError(
                    f"the azureml target cannot honour {field}={chosen!r}: compute cluster "
                    f"{config.compute!r} has one VM size; drop `compute` for serverless compute or use "
                    "a stack whose cluster has that size"
                )
            if not isinstance(chosen, str) or not _VM_SIZE.fullmatch(chosen):
                raise ResourceError(
                    f"the azureml target needs {field} to be an Azure VM size such as "
                    f"'Standard_NC6s_v3', got {chosen!r}"
                )
        count = options.get("instance_count", config.instance_count)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ResourceError(f"the azureml target needs options.instance_count >= 1, got {count!r}")
        tier = options.get("job_tier", config.job_tier)
        if tier is not None and (tier not in ("Spot", "Basic", "Standard", "Premium") or config.compute):
            raise ResourceError(
                f"the azureml target takes options.job_tier Spot, Basic, Standard or Premium on "
                f"serverless compute only, got {tier!r}"
                + (f" with compute {config.compute!r}" if config.compute else "")
            )
        # The stack's declared node capacity applies to its own instance type only.
        capacity = config.capacity if chosen is None else None
        if res.gpu and chosen is None and (capacity is None or capacity.gpu < res.gpu):
            have = capacity.gpu if capacity is not None else "no declared"
            raise ResourceError(
                f"the azureml target cannot provide gpu={res.gpu}: the stack's nodes have {have} GPUs; "
                "set accelerator to a GPU VM size (serverless) or declare `capacity.gpu` for a GPU cluster"
            )
        if capacity is not None:
            self._check_fits(res.cpu, capacity.cpu, "cpu", str)
            self._check_fits(res.memory, capacity.memory, "memory", parse_size)
            self._check_fits(res.disk, capacity.disk, "disk", parse_size)
        return {"instance_type": chosen or config.instance_type, "instance_count": count, "job_tier": tier}

    def _check_fits(self, wanted: Any, have: Any, field: str, measure: Any) -> None:
        if wanted is None or have is None:
            return
        if (float(wanted) if field == "cpu" else measure(wanted)) > (
                float(have) if field == "cpu" else measure(have)):
            raise ResourceError(
                f"the azureml target cannot provide {field}={wanted}: one node of "
                f"{self.config.compute or self.config.instance_type} has {have} (capacity.{field}); "
                "ask for less or use a larger instance type"
            )

    # -- the job ------------------------------------------------------------------------------
    def command_line(self, request: TaskRequest) -> str:
        """The job's command: the worker's argv, quoted for the job's shell."""
        return shlex.join([self.config.python, *request.argv])

    def job(self, request: TaskRequest, environment: Any) -> Any:
        """The `Command` job this target submits for `request`."""
        from azure.ai.ml import command

        placement = self._placement(request)
        config = self.config
        kwargs: dict[str, Any] = {}
        if request.timeout:
            kwargs["timeout"] = max(1, math.ceil(request.timeout))
        if config.shm_size:
            kwargs["shm_size"] = config.shm_size
        if placement["job_tier"]:
            kwargs["job_tier"] = placement["job_tier"]
        tags = {**config.tags, **request.labels, "kitaru-task": request.task_name}
        return command(
            name=request.task_name,
            display_name=request.task_name,
            experiment_name=config.experiment_name,
            command=self.command_line(request),
            environment=environment,
            environment_variables=self._job_env(request),
            compute=config.compute,
            instance_type=placement["instance_type"],
            instance_count=placement["instance_count"],
            identity=self._identity(),
            tags=tags,
            **kwargs,
        )

    def _identity(self) -> Any:
        from azure.ai.ml.entities import (
            AmlTokenConfiguration,
            ManagedIdentityConfiguration,
            UserIdentityConfiguration,
        )

        kind = self.config.identity
        if kind == "managed":
            return ManagedIdentityConfiguration(client_id=self.config.identity_client_id)
        if kind == "user":
            return UserIdentityConfiguration()
        if kind == "aml_token":
            return AmlTokenConfiguration()
        return None

    def _environment(self, image: str) -> str:
        """The ARM id of the (anonymous) environment of `image`, registered once per process."""
        if image not in self._environments:
            from azure.ai.ml.entities import Environment

            created = self._call(lambda: self.client.environments.create_or_update(
                Environment(image=image)), f"cannot register an environment for image {image!r}")
            self._environments[image] = created.id
        return self._environments[image]

    # -- the protocol --------------------------------------------------------------------------
    def submit(self, request: TaskRequest) -> dict[str, Any]:
        """Create the job under the task's name. The runner has just called `find`, so this does not
        look again first: a workspace holds one job per name, so a PUT of a name that exists
        starts nothing (the service answers the job, or refuses a changed definition, and then the
        existing job is adopted)."""
        self.check_resources(request)
        job = self.job(request, self._environment(request.image or self.config.image))
        from azure.core.exceptions import HttpResponseError

        try:
            self.client.jobs.create_or_update(job)
        except HttpResponseError as exc:
            found = self.find(request.task_name)  # created by an earlier submit: adopt it
            if found is not None:
                return found
            raise self._error(f"cannot create job {request.task_name}", exc) from exc
        return self._handle(request.task_name)

    def find(self, task_name: str) -> dict[str, Any] | None:
        return None if self._get(task_name) is None else self._handle(task_name)

    def poll(self, handle: dict[str, Any]) -> TaskState:
        job = self._get(handle["job"])
        if job is None:
            return TaskState("lost", f"Azure ML job {handle['job']} is gone")
        status = str(getattr(job.status, "value", job.status) or "Unknown")
        if status in PENDING:
            return TaskState("pending", status)
        if status in RUNNING:
            return TaskState("running", status)
        if status == "Completed":
            return TaskState("succeeded")
        if status in LOST:
            return TaskState("lost", f"Azure ML job {handle['job']} is {status}")
        error = self._error_of(handle["job"]) if status == "Failed" else ""
        if error and _LOST_ERRORS.search(error):
            return TaskState("lost", f"Azure ML job {handle['job']} failed: {error}")
        detail = f": {error}" if error else ""
        return TaskState("failed", f"Azure ML job {handle['job']} {status.lower()}{detail}")

    def cancel(self, handle: dict[str, Any]) -> None:
        """Ask Azure ML to cancel the job (without waiting for it to stop); a no-op when it ended
        or is gone."""
        from azure.core.exceptions import HttpResponseError

        job = self._get(handle["job"])
        if job is None or job.status in ("Completed", "Failed", "Canceled", "CancelRequested"):
            return
        try:
            self.client.jobs.begin_cancel(handle["job"], polling=False)
        except HttpResponseError as exc:
            job = self._get(handle["job"])
            if job is None or job.status in ("Completed", "Failed", "Canceled", "CancelRequested"):
                return  # it ended between the read and the cancel
            raise self._error(f"cannot cancel job {handle['job']}", exc) from exc

    def logs(self, handle: dict[str, Any]) -> str:
        """The job's user logs (`user_logs/std_log*.txt`: the worker's stdout and stderr), read
        the way `jobs.stream` reads them: the run's details name the log files, each downloaded
        once. "" when the job or its logs are gone."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        jobs = self.client.jobs
        try:
            details = jobs._runs_operations.get_run_details(handle["job"])
            files = sorted(name for name in (details.log_files or {}) if _USER_LOG.search(name))
            texts = [jobs._requests_pipeline.get(details.log_files[name]).text() for name in files]
        except ResourceNotFoundError:
            return ""
        except HttpResponseError as exc:
            raise self._error(f"cannot read the logs of job {handle['job']}", exc) from exc
        return "".join(texts)

    def close(self) -> None:
        if self._client is not None:
            self._client = None

    # -- helpers -------------------------------------------------------------------------------
    def _handle(self, name: str) -> dict[str, Any]:
        config = self.config
        workspace = f"{config.subscription_id}/{config.resource_group}/{config.workspace}"
        return {"job": name, "workspace": workspace}

    def _get(self, name: str) -> Any:
        """The job, or None when the workspace has no job of that name."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._call(lambda: self.client.jobs.get(name), f"cannot read job {name}",
                              passthrough=ResourceNotFoundError)
        except ResourceNotFoundError:
            return None

    def _error_of(self, name: str) -> str:
        """The failed job's error (from its run's details), one line; "" if none is given."""
        from azure.core.exceptions import HttpResponseError

        try:
            details = self.client.jobs._runs_operations.get_run_details(name)
        except HttpResponseError:
            return ""
        error = getattr(details, "error", None)
        inner = getattr(error, "error", None)
        if inner is None:
            return ""
        text = f"{inner.code or 'Error'}: {inner.message or ''}".strip()
        return " ".join(text.split())

    def _call(self, fn: Any, what: str, passthrough: type[BaseException] | None = None) -> Any:
        from azure.core.exceptions import HttpResponseError

        try:
            return fn()
        except HttpResponseError as exc:
            if passthrough is not None and isinstance(exc, passthrough):
                raise
            raise self._error(what, exc) from exc

    def _error(self, what: str, exc: Exception) -> TaskError:
        error = getattr(exc, "error", None)
        detail = f"{error.code}: {error.message}" if error is not None and error.code else str(exc)
        detail = " ".join(detail.split())[:500]
        config = self.config
        return TaskError(
            f"{what} in Azure ML workspace {config.workspace!r} ({config.resource_group}): "
            f"{getattr(exc, 'status_code', '?')} {detail}; check the workspace exists and the "
            "credential may manage its jobs (AzureML Data Scientist role)"
        )
