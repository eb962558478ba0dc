"""Execution targets: `inline` (the runner's own process) and `process` (a local worker).

The `process` target speaks the same remote protocol as the cloud targets: it
starts `python -m kitaru_core.worker --spec <url>` and the runner reads the
worker's `result.json`, so that protocol is tested on every machine.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kitaru_core.errors import TaskError
from kitaru_core.interfaces import ComponentContext, ExecutionTarget, TaskState
from kitaru_core.runtime.owner import process_is_running, process_start_token

from .configs import InlineTargetConfig, ProcessTargetConfig


class InlineTarget(ExecutionTarget):
    """Isolated checkpoints run in the runner's process, like inline ones."""

    in_process = True

    def __init__(self, config: InlineTargetConfig, context: ComponentContext) -> None:
        super().__init__(config, context)

    def submit(self, spec_url: str, *, task_name: str, env: dict[str, str]) -> dict[str, Any]:
        raise TaskError("the inline target runs calls in process; it takes no task specs")

    def poll(self, handle: dict[str, Any]) -> TaskState:
        return TaskState("lost", "the inline target keeps no tasks")

    def cancel(self, handle: dict[str, Any]) -> None:
        return None


class ProcessTarget(ExecutionTarget):
    """Each call in its own local Python process, through the remote protocol."""

    def __init__(self, config: ProcessTargetConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.config = config
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def submit(self, spec_url: str, *, task_name: str, env: dict[str, str]) -> dict[str, Any]:
        log_dir = self.context.home / "tasks"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{task_name.replace('#', '-').replace('/', '_')}.log"
        python = self.config.python or sys.executable
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [python, "-m", "kitaru_core.worker", "--spec", spec_url],
                env={**os.environ, **self.config.env, **env}, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._children[proc.pid] = proc
        return {"pid": proc.pid, "start": process_start_token(proc.pid), "log": str(log_path)}

    def poll(self, handle: dict[str, Any]) -> TaskState:
        pid = int(handle["pid"])
        child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is None:
                return TaskState("running")
            self._children.pop(pid, None)
            return TaskState("succeeded" if code == 0 else "failed", f"worker exited with {code}")
        if process_is_running(pid, handle.get("start")):
            return TaskState("running")
        # Not our child (the runner restarted) and gone: its exit code is unknowable.
        return TaskState("lost", "the worker process is gone")

    def cancel(self, handle: dict[str, Any]) -> None:
        import signal

        pid = int(handle["pid"])
        if process_start_token(pid) == handle.get("start"):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)

    def logs(self, handle: dict[str, Any]) -> str:
        try:
            return Path(handle["log"]).read_text(errors="replace")
        except (OSError, KeyError):
            return ""
