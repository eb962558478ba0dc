"""The `kubernetes` execution target: each attempt of an isolated checkpoint call is one batch/v1 Job."""

from __future__ import annotations

import math
from typing import Any

from kitaru_core.errors import ResourceError
from kitaru_core.interfaces import ComponentContext, ExecutionTarget, TaskRequest, TaskState

from .configs import KubernetesTargetConfig
from .jobs import JobClient, runner_env
from .manifests import LABEL_PREFIX, ROLE_LABEL, TASK_LABEL, job_manifest

#: The extended resource a GPU is requested as (the NVIDIA device plugin's name).
GPU_RESOURCE = "nvidia.com/gpu"


class KubernetesTarget(ExecutionTarget):
    """Runs `<python> -m kitaru_core.worker ...` in a Job named after the task.

    The Job's name is the task name (unique per execution, call and attempt), so a
    submit repeated after a runner crash finds the Job already there instead of
    starting a second one, and `find` is one read by name.
    """

    locality = "network"

    def __init__(self, config: KubernetesTargetConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.config = config
        self.jobs = JobClient(config)

    def check_resources(self, request: TaskRequest) -> None:
        """Any cpu, memory, disk, GPU count and image is expressible; `accelerator` and
        `options` are not (yet): refused rather than ignored."""
        if request.resources.accelerator:
            raise ResourceError(
                f"the kubernetes target does not map accelerator={request.resources.accelerator!r}; "
                "drop it and pick the GPU nodes with the target's `node_selector`"
            )
        if request.options:
            raise ResourceError(f"the kubernetes target takes no options, got {sorted(request.options)}")
        runner_env(self.config)  # an env_from_runner variable that is not set: refused before anything runs

    def manifest(self, request: TaskRequest) -> dict[str, Any]:
        """The Job this target creates for `request`."""
        # The runner's labels ("kitaru-execution", ...) under kitaru's prefix ("kitaru.dev/execution").
        labels = {f"{LABEL_PREFIX}/{key.removeprefix('kitaru-')}": value
                  for key, value in request.labels.items()}
        labels.update({ROLE_LABEL: "call", TASK_LABEL: request.task_name})
        manifest = job_manifest(
            self.config,
            name=request.task_name,
            command=[self.config.python, *request.argv],
            env=dict(request.env),
            labels=labels,
            image=request.image,
            resources=container_resources(request, self.config.resources),
        )
        if request.timeout:
            manifest["spec"]["activeDeadlineSeconds"] = max(1, math.ceil(request.timeout))
        return manifest

    def submit(self, request: TaskRequest) -> dict[str, Any]:
        self.check_resources(request)
        return self.jobs.create(self.manifest(request), runner_env(self.config))

    def find(self, task_name: str) -> dict[str, Any] | None:
        return self.jobs.find(self.config.namespace, task_name)

    def poll(self, handle: dict[str, Any]) -> TaskState:
        return self.jobs.state(handle)

    def watch(self, handle: dict[str, Any], timeout: float) -> TaskState | None:
        """A watch on the Job: the runner learns that it ended at once, in one request per tick."""
        return self.jobs.watch(handle, timeout)

    def cancel(self, handle: dict[str, Any]) -> None:
        self.jobs.delete(handle)

    def logs(self, handle: dict[str, Any]) -> str:
        return self.jobs.logs(handle)

    def close(self) -> None:
        self.jobs.close()


def container_resources(
    request: TaskRequest, defaults: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """The container's requests and limits: the stack's, overridden by the call's.

    cpu and memory are requested; memory and a GPU count are also limits (a GPU can
    only be a limit; memory over the limit is an OOM kill, reported as failed).
    """
    out = {kind: dict(values) for kind, values in defaults.items()}
    res = request.resources
    requests = out.setdefault("requests", {})
    limits = out.setdefault("limits", {})
    if res.cpu is not None:
        requests["cpu"] = f"{round(res.cpu * 1000)}m"
    if res.memory is not None:
        requests["memory"] = limits["memory"] = res.memory
    if res.disk is not None:
        requests["ephemeral-storage"] = res.disk
    if res.gpu:
        limits[GPU_RESOURCE] = str(res.gpu)
    return {kind: values for kind, values in out.items() if values}
