"""The `kubernetes` execution target: each isolated checkpoint call is one batch/v1 Job."""

from __future__ import annotations

from typing import Any

from kitaru_core.interfaces import ComponentContext, ExecutionTarget, TaskState

from .configs import KubernetesTargetConfig
from .jobs import JobClient
from .manifests import ATTEMPT_LABEL, EXECUTION_LABEL, ROLE_LABEL, TASK_LABEL, job_manifest, job_name


class KubernetesTarget(ExecutionTarget):
    """Runs `python -m kitaru_core.worker --spec URL` in a Job of its own.

    The Job's name follows from the task name, so submitting the same task again (a
    runner that crashed between submit and recording the handle) finds the Job already
    there instead of starting a second one.
    """

    def __init__(self, config: KubernetesTargetConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.config = config
        self.jobs = JobClient(config)

    def manifest(self, spec_url: str, *, task_name: str, env: dict[str, str]) -> dict[str, Any]:
        """The Job this target creates for a task."""
        labels = {ROLE_LABEL: "call", TASK_LABEL: task_name}
        if env.get("KITARU_EXEC_ID"):
            labels[EXECUTION_LABEL] = env["KITARU_EXEC_ID"]
        if env.get("KITARU_ATTEMPT"):
            labels[ATTEMPT_LABEL] = env["KITARU_ATTEMPT"]
        return job_manifest(
            self.config,
            name=job_name("call", task_name),
            command=[self.config.python, "-m", "kitaru_core.worker", "--spec", spec_url],
            env=env,
            labels=labels,
        )

    def submit(self, spec_url: str, *, task_name: str, env: dict[str, str]) -> dict[str, Any]:
        return self.jobs.create(self.manifest(spec_url, task_name=task_name, env=env))

    def poll(self, handle: dict[str, Any]) -> TaskState:
        return self.jobs.state(handle)

    def cancel(self, handle: dict[str, Any]) -> None:
        self.jobs.delete(handle)

    def logs(self, handle: dict[str, Any]) -> str:
        return self.jobs.logs(handle)

    def close(self) -> None:
        self.jobs.close()
