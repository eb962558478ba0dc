"""The `local` orchestrator: flow bodies run in the caller's process; resumes run detached.

A detached runner is a new session (it survives the terminal that started
it); its output goes to `<kitaru home>/runs/<exec_id>.log`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import Any

from kitaru_core.interfaces import ComponentContext, Orchestrator, TaskState
from kitaru_core.processes import process_is_running, process_start_token

from .configs import LocalOrchestratorConfig


class LocalOrchestrator(Orchestrator):
    in_process = True
    locality = "machine"

    def __init__(self, config: LocalOrchestratorConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.config = config

    def launch(
        self, exec_id: str, *, command: list[str], env: dict[str, str], cwd: str | None
    ) -> dict[str, Any]:
        if self.config.python and command and command[0] == sys.executable:
            command = [self.config.python, *command[1:]]
        log_dir = self.context.home / "runs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{exec_id}.log"
        workdir = cwd if cwd and os.path.isdir(cwd) else None
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                command, cwd=workdir, env={**os.environ, **env, self.RUNNER_LOG_ENV: str(log_path)},
                stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return {"pid": proc.pid, "start": process_start_token(proc.pid), "log": str(log_path)}

    def poll(self, handle: dict[str, Any]) -> TaskState:
        """"running" while the launched runner's process lives, "lost" once it is gone."""
        try:
            pid = int(handle["pid"])
        except (KeyError, TypeError, ValueError):
            return TaskState("lost", "the handle names no process")
        if process_is_running(pid, handle.get("start")):
            return TaskState("running")
        return TaskState("lost", "the runner process is gone")

    def cancel(self, handle: dict[str, Any]) -> None:
        """SIGTERM to the launched runner, only if its pid still names that process (same
        kernel start time): the runner records the cancel and exits (see
        `kitaru_core.runtime.termination`). A handle whose process can't be verified is left."""
        import signal

        with contextlib.suppress(ProcessLookupError, KeyError, ValueError, TypeError):
            pid = int(handle["pid"])
            if process_is_running(pid, handle.get("start")):
                os.kill(pid, signal.SIGTERM)
