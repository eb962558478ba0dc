"""The `kubernetes` orchestrator: the flow body runs in a batch/v1 Job, `flow.run()` returns at once.

Each launch (the first run, and each resume after a wait was answered or a runner
crashed) is a Job of its own. A runner that reaches a wait with no answer suspends
the execution and exits, which completes its Job: nothing runs while waiting.
"""

from __future__ import annotations

import uuid
from typing import Any

from kitaru_core.interfaces import ComponentContext, Orchestrator, TaskState

from .configs import KubernetesOrchestratorConfig
from .jobs import JobClient, runner_env
from .manifests import EXECUTION_LABEL, ROLE_LABEL, TASK_LABEL, job_manifest, job_name

_LAUNCH_ID_ENV = "KITARU_LAUNCH_ID"


class KubernetesOrchestrator(Orchestrator):
    in_process = False
    locality = "network"

    def __init__(self, config: KubernetesOrchestratorConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.config = config
        self.jobs = JobClient(config)

    def manifest(self, exec_id: str, *, command: list[str], env: dict[str, str]) -> dict[str, Any]:
        """The Job this orchestrator creates for one launch of `exec_id`."""
        if command:  # `python` (the core's stand-in for the image's interpreter): the configured one
            command = [self.config.python, *command[1:]]
        # A launch id (given by the core) names the Job, so a repeated launch finds it.
        launch = env.get(_LAUNCH_ID_ENV) or uuid.uuid4().hex[:12]
        task = f"{exec_id}-{launch}"
        return job_manifest(
            self.config,
            name=job_name("flow", task),
            command=command,
            env=env,
            labels={ROLE_LABEL: "flow", EXECUTION_LABEL: exec_id, TASK_LABEL: task},
            working_dir=self.config.working_dir,
        )

    def launch(
        self, exec_id: str, *, command: list[str], env: dict[str, str], cwd: str | None
    ) -> dict[str, Any]:
        handle = self.jobs.create(self.manifest(exec_id, command=command, env=env), runner_env(self.config))
        # Where the runner's output is, for `executions get` and a watchdog's failure.
        return {**handle, "log": f"kubectl logs -n {handle['namespace']} job/{handle['job']}"}

    def poll(self, handle: dict[str, Any]) -> TaskState:
        return self.jobs.state(handle)

    def cancel(self, handle: dict[str, Any]) -> None:
        self.jobs.delete(handle)

    def close(self) -> None:
        self.jobs.close()
