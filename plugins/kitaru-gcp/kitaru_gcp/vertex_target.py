"""The `vertex` execution target: each attempt of an isolated checkpoint call is one Vertex AI
custom job, through google-cloud-aiplatform's `JobServiceClient` over REST.

Vertex AI chooses a custom job's id itself, so the task name is the job's display name (and a
label): `find` lists the region's custom jobs with a filter on it, and `submit` does the same
before it creates anything, so a runner that crashed between submitting and recording the
handle adopts the job instead of starting a second one. Only the runner that owns an
execution submits its calls, so there is no race between the look-up and the create.
"""

from __future__ import annotations

import math
from typing import Any

from kitaru_core.errors import ResourceError
from kitaru_core.interfaces import ComponentContext, ExecutionTarget, TaskRequest, TaskState

from . import machine_types
from .cloud_logs import read_logs
from .configs import VertexTargetConfig
from .gcp_clients import client_options, credentials, endpoint, is_not_found, job_labels, task_error

SERVICE = "Vertex AI"
#: Vertex AI's largest boot disk, and its smallest (also its default), in GB.
MAX_BOOT_DISK_GB = 64000
MIN_BOOT_DISK_GB = 100
#: `@checkpoint(options=...)` keys this target understands.
OPTIONS = ("machine_type",)
#: gRPC codes of a job that failed for want of capacity (a stockout, a preempted Spot VM):
#: reported "lost", so the runner submits a new attempt without using up a retry.
CAPACITY_CODES = {8: "RESOURCE_EXHAUSTED", 14: "UNAVAILABLE"}

#: JobState names -> kitaru's task states.
STATES = {
    "JOB_STATE_QUEUED": "pending", "JOB_STATE_PENDING": "pending", "JOB_STATE_PAUSED": "pending",
    "JOB_STATE_UNSPECIFIED": "pending",
    "JOB_STATE_RUNNING": "running", "JOB_STATE_CANCELLING": "running", "JOB_STATE_UPDATING": "running",
    "JOB_STATE_SUCCEEDED": "succeeded",
    "JOB_STATE_FAILED": "failed", "JOB_STATE_CANCELLED": "failed", "JOB_STATE_EXPIRED": "failed",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "failed",
}


class VertexTarget(ExecutionTarget):
    """Runs `<python> -m kitaru_core.worker ...` as a Vertex AI custom job with one replica."""

    locality = "network"

    def __init__(self, config: VertexTargetConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.config = config
        self.poll_cap = config.poll_cap
        self.parent = f"projects/{config.project}/locations/{config.region}"
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The JobServiceClient (REST), built on first use."""
        if self._client is None:
            from google.cloud.aiplatform_v1.services.job_service import JobServiceClient

            api = endpoint(self.config.api_endpoint, "CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM",
                           f"{self.config.region}-aiplatform.googleapis.com")
            self._client = JobServiceClient(
                credentials=credentials(self.config), transport="rest", client_options=client_options(api),
            )
        return self._client

    # -- resources ----------------------------------------------------------------------
    def check_resources(self, request: TaskRequest) -> None:
        self.worker_pool(request)

    def worker_pool(self, request: TaskRequest) -> dict[str, Any]:
        """The job's one worker pool for `request` (raises `ResourceError` for what Vertex AI
        cannot give): machine type, accelerators, boot disk, container."""
        res = request.resources
        unknown = sorted(set(request.options) - set(OPTIONS))
        if unknown:
            raise ResourceError(
                f"the vertex target takes the options {list(OPTIONS)}, not {unknown}; drop them from options="
            )
        if request.secret_env:
            raise ResourceError(
                f"the vertex target cannot inject the secret variables {list(request.secret_env)} the "
                "store's config refers to; let the store use the job's service account (no ${env:...})"
            )
        machine = self._machine_type(request)
        spec: dict[str, Any] = {"machine_type": machine}
        if res.gpu or res.accelerator:
            if not res.accelerator:
                raise ResourceError(
                    f"the vertex target needs resources.accelerator (e.g. nvidia-tesla-t4) for gpu={res.gpu}"
                )
            if res.gpu == 0:
                raise ResourceError(
                    f"the vertex target got accelerator={res.accelerator!r} with gpu=0; set gpu >= 1"
                )
            spec["accelerator_type"] = accelerator_type(res.accelerator)
            spec["accelerator_count"] = res.gpu or 1
        disk_gb = MIN_BOOT_DISK_GB
        if res.disk is not None:
            disk_gb = max(MIN_BOOT_DISK_GB, math.ceil((res.disk_bytes() or 0) / 2**30))
            if disk_gb > MAX_BOOT_DISK_GB:
                raise ResourceError(
                    f"the vertex target's boot disk is at most {MAX_BOOT_DISK_GB} GB, got disk={res.disk!r}"
                )
        env = {**self.config.env, **request.env, "KITARU_TASK_NAME": request.task_name}
        return {
            "machine_spec": spec,
            "replica_count": 1,
            "disk_spec": {"boot_disk_type": self.config.boot_disk_type, "boot_disk_size_gb": disk_gb},
            "container_spec": {
                "image_uri": request.image or self.config.image,
                "command": [self.config.python],
                "args": list(request.argv),
                "env": [{"name": name, "value": value} for name, value in env.items()],
            },
        }

    def _machine_type(self, request: TaskRequest) -> str:
        res = request.resources
        chosen = request.options.get("machine_type") or self.config.machine_type
        if res.cpu is None and res.memory is None:
            return str(chosen)
        fitting = machine_types.smallest_fitting(str(chosen), res.cpu, res.memory_bytes())
        if fitting is not None:
            return fitting.name
        field = "cpu" if machine_types.parse(str(chosen)) is None or res.memory is None else "cpu/memory"
        raise ResourceError(
            f"the vertex target has no machine of {chosen!r}'s family with {field} cpu={res.cpu} "
            f"memory={res.memory!r}; pick one with options={{'machine_type': ...}} or lower the resources"
        )

    def custom_job(self, request: TaskRequest) -> dict[str, Any]:
        """The CustomJob (as the proto's fields) this target creates for `request`."""
        job_spec: dict[str, Any] = {"worker_pool_specs": [self.worker_pool(request)]}
        if self.config.service_account:
            job_spec["service_account"] = self.config.service_account
        if self.config.network:
            job_spec["network"] = self.config.network
        scheduling: dict[str, Any] = {}
        if request.timeout:
            scheduling["timeout"] = {"seconds": max(1, math.ceil(request.timeout))}
        if self.config.spot:
            scheduling["strategy"] = "SPOT"
        if scheduling:
            job_spec["scheduling"] = scheduling
        labels = job_labels(self.config, request.labels)
        labels["kitaru-task"] = request.task_name
        return {"display_name": request.task_name, "labels": labels, "job_spec": job_spec}

    # -- the protocol -------------------------------------------------------------------
    def submit(self, request: TaskRequest) -> dict[str, Any]:
        job = self.custom_job(request)  # refuses what Vertex AI cannot give, before anything
        found = self.find(request.task_name)
        if found is not None:
            return found
        from google.api_core import exceptions
        from google.cloud.aiplatform_v1.types import CustomJob

        try:
            created = self.client.create_custom_job(parent=self.parent, custom_job=CustomJob(job))
        except exceptions.GoogleAPICallError as exc:
            raise task_error(exc, f"the custom job {request.task_name}", SERVICE) from exc
        return handle(created.name, request.task_name)

    def find(self, task_name: str) -> dict[str, Any] | None:
        from google.api_core import exceptions

        try:
            pager = self.client.list_custom_jobs(request={
                "parent": self.parent, "filter": f'display_name="{task_name}"',
            })
            for job in pager:
                if job.display_name == task_name and job.labels.get("kitaru-task") == task_name:
                    return handle(job.name, task_name)
        except exceptions.GoogleAPICallError as exc:
            raise task_error(exc, f"listing custom jobs named {task_name}", SERVICE) from exc
        return None

    def poll(self, handle: dict[str, Any]) -> TaskState:
        from google.api_core import exceptions

        try:
            job = self.client.get_custom_job(name=handle["job"])
        except exceptions.GoogleAPICallError as exc:
            if is_not_found(exc):
                return TaskState("lost", f"the custom job {handle['job']} no longer exists")
            raise task_error(exc, f"reading the custom job {handle['job']}", SERVICE) from exc
        return job_state(job)

    def cancel(self, handle: dict[str, Any]) -> None:
        from google.api_core import exceptions

        try:
            if self.poll(handle).ended:
                return
            self.client.cancel_custom_job(name=handle["job"])
        except exceptions.GoogleAPICallError as exc:
            # gone, or ended meanwhile (400 FAILED_PRECONDITION over REST): nothing left to stop
            if is_not_found(exc) or isinstance(exc, exceptions.BadRequest):
                return
            raise task_error(exc, f"cancelling the custom job {handle['job']}", SERVICE) from exc

    def logs(self, handle: dict[str, Any]) -> str:
        job_id = handle["job"].rsplit("/", 1)[-1]
        return read_logs(self.config, f'resource.type="ml_job" AND resource.labels.job_id="{job_id}"')

    def close(self) -> None:
        if self._client is not None:
            self._client.transport.close()
            self._client = None


def handle(job_name: str, task_name: str) -> dict[str, Any]:
    return {"job": job_name, "task": task_name}


def job_state(job: Any) -> TaskState:
    """A CustomJob's state as kitaru's: a capacity failure is "lost" (resubmitted, no retry used)."""
    name = job.state.name
    state = STATES.get(name, "pending")
    code = job.error.code if job.error else 0
    message = job.error.message if job.error else ""
    if name == "JOB_STATE_FAILED" and code in CAPACITY_CODES:
        return TaskState("lost", f"{CAPACITY_CODES[code]}: {message}")
    if name == "JOB_STATE_CANCELLED":
        message = message or "cancelled"
    return TaskState(state, message or name)


def accelerator_type(name: str) -> str:
    """A Vertex AI AcceleratorType name from kitaru's spelling (`nvidia-tesla-t4`)."""
    from google.cloud.aiplatform_v1.types import AcceleratorType

    wanted = name.upper().replace("-", "_")
    known = [t.name for t in AcceleratorType if t.name != "ACCELERATOR_TYPE_UNSPECIFIED"]
    if wanted not in known:
        raise ResourceError(
            f"the vertex target has no accelerator {name!r}; use one of "
            f"{', '.join(sorted(k.lower().replace('_', '-') for k in known))}"
        )
    return wanted
