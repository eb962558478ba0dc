"""The `cloud-run` execution target: one Cloud Run job per stack and task shape (image,
cpu/memory, settings), created when first needed; each attempt of an isolated checkpoint
call is one execution of it, started with per-call overrides of the container's args and env
(google-cloud-run's `JobsClient` and `ExecutionsClient` over REST).

A run request cannot label its execution, but the execution records the overrides it was
started with (`template.containers[].env`): the task name travels there as `KITARU_TASK_NAME`,
and `find` looks it up among the executions of the stack's jobs. `submit` looks first, so a
runner that crashed between submitting and recording the handle adopts the execution instead
of starting a second one.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from kitaru_core.errors import ResourceError, TaskError
from kitaru_core.interfaces import ComponentContext, ExecutionTarget, TaskRequest, TaskState

from .cloud_logs import read_logs
from .configs import CloudRunTargetConfig
from .gcp_clients import (
    client_options,
    credentials,
    endpoint,
    gcp_label,
    is_not_found,
    job_labels,
    task_error,
)

SERVICE = "Cloud Run"
CONTAINER = "kitaru"
TASK_ENV = "KITARU_TASK_NAME"
STACK_LABEL = "kitaru-stack"
#: The cpu counts a Cloud Run job's container may have, and the least memory each needs.
CPUS = (1, 2, 4, 6, 8)
MIN_MEMORY = {1: 512 * 2**20, 2: 512 * 2**20, 4: 2 * 2**30, 6: 4 * 2**30, 8: 4 * 2**30}
MAX_MEMORY = 32 * 2**30
#: Seconds to wait for Cloud Run to create a job (a long-running operation).
CREATE_TIMEOUT = 300.0


class CloudRunTarget(ExecutionTarget):
    """Runs `<python> -m kitaru_core.worker ...` as one execution of a Cloud Run job."""

    locality = "network"

    def __init__(self, config: CloudRunTargetConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.config = config
        self.poll_cap = config.poll_cap
        self.parent = f"projects/{config.project}/locations/{config.region}"
        self.stack_label = gcp_label(context.stack_name) or "default"
        self._jobs_client: Any = None
        self._executions_client: Any = None
        self._ready: set[str] = set()  # jobs known to exist

    def _options(self) -> dict[str, Any]:
        api = endpoint(self.config.api_endpoint, "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN", "run.googleapis.com")
        return {"credentials": credentials(self.config), "transport": "rest",
                "client_options": client_options(api)}

    @property
    def jobs(self) -> Any:
        if self._jobs_client is None:
            from google.cloud.run_v2.services.jobs import JobsClient

            self._jobs_client = JobsClient(**self._options())
        return self._jobs_client

    @property
    def executions(self) -> Any:
        if self._executions_client is None:
            from google.cloud.run_v2.services.executions import ExecutionsClient

            self._executions_client = ExecutionsClient(**self._options())
        return self._executions_client

    # -- resources and the job ----------------------------------------------------------
    def check_resources(self, request: TaskRequest) -> None:
        self.job(request)

    def limits(self, request: TaskRequest) -> dict[str, str]:
        """The container's cpu and memory limits for `request`, as Cloud Run accepts them."""
        res = request.resources
        if res.gpu or res.accelerator:
            raise ResourceError(
                f"the cloud-run target does not provide gpu={res.gpu} accelerator={res.accelerator!r}; "
                "run GPU checkpoints on the vertex target"
            )
        if res.disk is not None:
            raise ResourceError(
                f"the cloud-run target has no disk to size (disk={res.disk!r}): files live in memory; "
                "drop disk and add it to memory"
            )
        if request.options:
            raise ResourceError(f"the cloud-run target takes no options, got {sorted(request.options)}")
        if request.secret_env:
            raise ResourceError(
                f"the cloud-run target cannot inject the secret variables {list(request.secret_env)} the "
                "store's config refers to; let the store use the job's service account (no ${env:...})"
            )
        limits: dict[str, str] = {}
        cpus = None
        if res.cpu is not None:
            cpus = next((n for n in CPUS if n >= res.cpu), None)
            if cpus is None:
                raise ResourceError(f"the cloud-run target gives at most {CPUS[-1]} cpu, got cpu={res.cpu}")
            limits["cpu"] = str(cpus)
        memory = res.memory_bytes()
        if memory is not None and memory > MAX_MEMORY:
            raise ResourceError(
                f"the cloud-run target gives at most 32Gi of memory, got memory={res.memory!r}"
            )
        if cpus is not None and (memory or 0) < MIN_MEMORY[cpus]:
            memory = MIN_MEMORY[cpus]  # Cloud Run refuses fewer for that many cpus
        if memory is not None:
            limits["memory"] = f"{math.ceil(memory / 2**20)}Mi"
        return limits

    def job(self, request: TaskRequest) -> tuple[str, dict[str, Any]]:
        """(job id, Job as the proto's fields) that runs `request`: one per stack and task shape."""
        container: dict[str, Any] = {
            "name": CONTAINER, "image": request.image or self.config.image,
            "command": [self.config.python],
            "env": [{"name": name, "value": value} for name, value in sorted(self.config.env.items())],
        }
        limits = self.limits(request)
        if limits:
            container["resources"] = {"limits": limits}
        task: dict[str, Any] = {
            "containers": [container], "max_retries": 0,  # kitaru retries, as new attempts
            "timeout": {"seconds": self.config.task_timeout},
        }
        if self.config.service_account:
            task["service_account"] = self.config.service_account
        vpc: dict[str, Any] = {}
        if self.config.vpc_connector:
            vpc["connector"] = self.config.vpc_connector
        if self.config.network or self.config.subnetwork:
            vpc["network_interfaces"] = [{k: v for k, v in (("network", self.config.network),
                                                             ("subnetwork", self.config.subnetwork)) if v}]
        if vpc:
            task["vpc_access"] = vpc
        labels = job_labels(self.config, {})
        labels[STACK_LABEL] = self.stack_label
        body = {"labels": labels, "template": {"task_count": 1, "parallelism": 1, "template": task}}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
        slug = self.stack_label.replace("_", "-").strip("-")[:40].rstrip("-") or "stack"
        return f"kitaru-{slug}-{digest}", body

    def ensure_job(self, job_id: str, body: dict[str, Any]) -> str:
        """The job's full name, creating the job when it does not exist yet."""
        from google.api_core import exceptions
        from google.cloud.run_v2.types import Job

        name = f"{self.parent}/jobs/{job_id}"
        if name in self._ready:
            return name
        try:
            self.jobs.get_job(name=name)
        except exceptions.NotFound:
            try:
                self.jobs.create_job(parent=self.parent, job=Job(body), job_id=job_id).result(CREATE_TIMEOUT)
            except exceptions.Conflict:  # 409 ALREADY_EXISTS
                pass  # created meanwhile by another runner of the stack
            except exceptions.GoogleAPICallError as exc:
                raise task_error(exc, f"creating the job {job_id}", SERVICE) from exc
        except exceptions.GoogleAPICallError as exc:
            raise task_error(exc, f"reading the job {job_id}", SERVICE) from exc
        self._ready.add(name)
        return name

    # -- the protocol -------------------------------------------------------------------
    def submit(self, request: TaskRequest) -> dict[str, Any]:
        from google.api_core import exceptions

        job_id, body = self.job(request)  # refuses what Cloud Run cannot give, before anything
        job_name = self.ensure_job(job_id, body)
        found = self._find_in(job_name, request.task_name)
        if found is not None:
            return found
        env = {**request.env, TASK_ENV: request.task_name}
        overrides: dict[str, Any] = {
            "container_overrides": [{
                "name": CONTAINER, "args": list(request.argv),
                "env": [{"name": k, "value": v} for k, v in env.items()],
            }],
            "task_count": 1,
        }
        if request.timeout:
            overrides["timeout"] = {"seconds": max(1, math.ceil(request.timeout))}
        try:
            operation = self.jobs.run_job(request={"name": job_name, "overrides": overrides})
        except exceptions.NotFound:
            self._ready.discard(job_name)  # deleted since: created again at the next submit
            raise TaskError(f"{SERVICE}: the job {job_id} was deleted while in use; submit again") from None
        except exceptions.GoogleAPICallError as exc:
            raise task_error(exc, f"running the job {job_id}", SERVICE) from exc
        return handle(operation.metadata.name, request.task_name)

    def find(self, task_name: str) -> dict[str, Any] | None:
        from google.api_core import exceptions

        try:
            for job in self.jobs.list_jobs(parent=self.parent):
                if job.labels.get(STACK_LABEL) == self.stack_label:
                    found = self._find_in(job.name, task_name)
                    if found is not None:
                        return found
        except exceptions.GoogleAPICallError as exc:
            raise task_error(exc, f"listing the jobs of stack {self.context.stack_name}", SERVICE) from exc
        return None

    def _find_in(self, job_name: str, task_name: str) -> dict[str, Any] | None:
        from google.api_core import exceptions

        try:
            for execution in self.executions.list_executions(parent=job_name):
                for container in execution.template.containers:
                    if any(var.name == TASK_ENV and var.value == task_name for var in container.env):
                        return handle(execution.name, task_name)
        except exceptions.NotFound:
            return None
        except exceptions.GoogleAPICallError as exc:
            raise task_error(exc, f"listing the executions of {job_name}", SERVICE) from exc
        return None

    def poll(self, handle: dict[str, Any]) -> TaskState:
        from google.api_core import exceptions

        try:
            execution = self.executions.get_execution(name=handle["execution"])
        except exceptions.GoogleAPICallError as exc:
            if is_not_found(exc):
                return TaskState("lost", f"the execution {handle['execution']} no longer exists")
            raise task_error(exc, f"reading the execution {handle['execution']}", SERVICE) from exc
        return execution_state(execution)

    def cancel(self, handle: dict[str, Any]) -> None:
        from google.api_core import exceptions

        try:
            if self.poll(handle).ended:
                return
            self.executions.cancel_execution(name=handle["execution"])  # an operation: not awaited
        except exceptions.GoogleAPICallError as exc:
            # gone, or ended meanwhile (400 FAILED_PRECONDITION over REST): nothing left to stop
            if is_not_found(exc) or isinstance(exc, exceptions.BadRequest):
                return
            raise task_error(exc, f"cancelling the execution {handle['execution']}", SERVICE) from exc

    def logs(self, handle: dict[str, Any]) -> str:
        parts = handle["execution"].split("/")
        job_id, execution_id = parts[-3], parts[-1]
        return read_logs(self.config, (
            f'resource.type="cloud_run_job" AND resource.labels.job_name="{job_id}" '
            f'AND labels."run.googleapis.com/execution_name"="{execution_id}"'
        ))

    def close(self) -> None:
        for client in (self._jobs_client, self._executions_client):
            if client is not None:
                client.transport.close()
        self._jobs_client = self._executions_client = None


def handle(execution_name: str, task_name: str) -> dict[str, Any]:
    return {"execution": execution_name, "task": task_name}


def execution_state(execution: Any) -> TaskState:
    """An Execution's counts and completion as kitaru's task state (one task per execution)."""
    completed = next((c for c in execution.conditions if c.type_ == "Completed"), None)
    message = completed.message if completed is not None else ""
    if execution.completion_time:
        if execution.succeeded_count >= 1:
            return TaskState("succeeded")
        if execution.cancelled_count:
            return TaskState("failed", message or "cancelled")
        return TaskState("failed", message or "the task failed")
    if execution.running_count:
        return TaskState("running")
    return TaskState("pending", message)
