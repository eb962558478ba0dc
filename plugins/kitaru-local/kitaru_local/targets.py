"""Execution targets: `inline` (the runner's own process) and `process` (a local worker).

The `process` target speaks the same remote protocol as the cloud targets: it
starts the worker with exactly the request's command line (the store's flavor
and config and the spec's key) and the runner reads the worker's `result.json`,
so that protocol is tested on every machine. Being local, it runs the worker
with this machine's environment (so the store's `${env:...}` references and
`${home}` resolve as they do for the runner) plus the request's `env`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kitaru_core.errors import ResourceError, TaskError
from kitaru_core.forkserver import ForkedChild, ForkServer, ForkServerError
from kitaru_core.interfaces import ComponentContext, ExecutionTarget, TaskRequest, TaskState
from kitaru_core.processes import process_is_running, process_start_token
from kitaru_core.task_names import is_task_name

from .configs import InlineTargetConfig, ProcessTargetConfig


class InlineTarget(ExecutionTarget):
    """Isolated checkpoints run in the runner's process, like inline ones."""

    in_process = True
    locality = "process"

    def __init__(self, config: InlineTargetConfig, context: ComponentContext) -> None:
        super().__init__(config, context)

    def submit(self, request: TaskRequest) -> dict[str, Any]:
        raise TaskError("the inline target runs calls in process; it takes no task specs")

    def find(self, task_name: str) -> dict[str, Any] | None:
        return None

    def poll(self, handle: dict[str, Any]) -> TaskState:
        return TaskState("lost", "the inline target keeps no tasks")

    def cancel(self, handle: dict[str, Any]) -> None:
        return None


class ProcessTarget(ExecutionTarget):
    """Each call in its own local Python process, through the remote protocol.

    A task's handle is also written to `<home>/tasks/<task name>.json`, which is how
    `find` and an idempotent `submit` know it from any process. Resources: a local
    process gets no GPU and no image; `cpu` and `memory` are checked against this
    machine (not reserved); `timeout` is enforced by `poll`, which stops the worker.
    """

    locality = "machine"

    def __init__(self, config: ProcessTargetConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.config = config
        self.poll_cap = config.poll_cap
        self._children: dict[int, ForkedChild | _PopenChild] = {}

    @property
    def _dir(self) -> Path:
        return self.context.home / "tasks"

    def _record(self, task_name: str) -> Path:
        if not is_task_name(task_name):
            raise TaskError(f"{task_name!r} is not a task name (a DNS-1123 label of at most 63 characters)")
        return self._dir / f"{task_name}.json"

    def check_resources(self, request: TaskRequest) -> None:
        super().check_resources(request)  # no gpu, image or options
        res = request.resources
        cores = os.cpu_count() or 1
        if res.cpu is not None and res.cpu > cores:
            raise ResourceError(
                f"the process target cannot provide cpu={res.cpu:g}: this machine has {cores} cores; "
                "lower `cpu` or use a remote target"
            )
        memory = res.memory_bytes()
        total = _total_memory()
        if memory is not None and total is not None and memory > total:
            raise ResourceError(
                f"the process target cannot provide memory={res.memory}: this machine has "
                f"{total / 2**30:.1f}Gi; lower `memory` or use a remote target"
            )

    def submit(self, request: TaskRequest) -> dict[str, Any]:
        self.check_resources(request)
        record = self._record(request.task_name)
        existing = self.find(request.task_name)
        if existing is not None:
            return existing
        self._dir.mkdir(parents=True, exist_ok=True)
        log_path = self._dir / f"{request.task_name}.log"
        python = self.config.python or sys.executable
        base_env = {**os.environ, **self.config.env}
        env = {**base_env, **request.env}
        child = self._fork(python, base_env, env, request, log_path) or self._spawn(
            python, env, request, log_path
        )
        self._children[child.pid] = child
        handle: dict[str, Any] = {
            "name": request.task_name, "pid": child.pid, "start": child.start, "log": str(log_path),
        }
        if request.timeout:
            handle["deadline"] = time.time() + request.timeout
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps(handle))
        os.replace(tmp, record)
        return handle

    def _fork(
        self, python: str, base_env: dict[str, str], env: dict[str, str], request: TaskRequest,
        log_path: Path,
    ) -> ForkedChild | None:
        """The worker as a fork of this runner's warm fork server, or None to start it afresh."""
        if not self.config.fork_server or not _CAN_FORK or request.argv[:1] != ("-m",):
            return None
        server = _fork_server(python, base_env, (request.argv[1], *self.config.preload))
        if server is None:
            return None
        try:
            return server.spawn(request.argv, env=env, cwd=os.getcwd(), log_path=log_path)
        except ForkServerError:
            _retire(server, broken=True)
            return None

    def _spawn(
        self, python: str, env: dict[str, str], request: TaskRequest, log_path: Path
    ) -> _PopenChild:
        with open(log_path, "wb") as log:  # one task per attempt: its log is that attempt's only
            proc = subprocess.Popen(
                [python, *request.argv], env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return _PopenChild(proc)

    def find(self, task_name: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self._record(task_name).read_text()))
        except (OSError, ValueError):
            return None

    def poll(self, handle: dict[str, Any]) -> TaskState:
        pid = int(handle["pid"])
        child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is not None:
                self._children.pop(pid, None)
                return TaskState("succeeded" if code == 0 else "failed", f"worker exited with {code}")
            if child.orphaned:  # its fork server went away: follow it like another's process
                self._children.pop(pid, None)
                child = None
        if child is None and not process_is_running(pid, handle.get("start")):
            # Not our child (the runner restarted) and gone: its exit code is unknowable.
            return TaskState("lost", "the worker process is gone")
        deadline = handle.get("deadline")
        if deadline is not None and time.time() > float(deadline):
            self.cancel(handle)
            return TaskState("failed", "the task ran past its timeout and was stopped")
        return TaskState("running")

    def watch(self, handle: dict[str, Any], timeout: float) -> TaskState | None:
        """For a worker this instance started: wait up to `timeout` for it to exit."""
        child = self._children.get(int(handle["pid"]))
        if child is None:
            return None
        deadline = handle.get("deadline")
        if deadline is not None:
            timeout = max(0.0, min(timeout, float(deadline) - time.time()))
        child.wait(timeout=timeout)
        return self.poll(handle)

    def cancel(self, handle: dict[str, Any]) -> None:
        import signal

        pid = int(handle["pid"])
        if process_start_token(pid) == handle.get("start"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        child = self._children.get(pid)
        if child is not None:
            child.wait(timeout=5)

    def logs(self, handle: dict[str, Any]) -> str:
        try:
            return Path(handle["log"]).read_text(errors="replace")
        except (OSError, KeyError):
            return ""


class _PopenChild:
    """A worker started afresh, with the interface of a `ForkedChild`."""

    orphaned = False

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.start = process_start_token(proc.pid)

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


# One warm fork server per (Python, environment) in this process, shared by every ProcessTarget
# (stacks are rebuilt, the runner's process stays). A server whose key is no longer asked for is
# closed once none of its workers runs; one that failed is not started again for its key.
_CAN_FORK = hasattr(os, "fork") and sys.platform != "win32"
_servers: dict[tuple[str, str], ForkServer] = {}  # by (python, [environment, preload])
_broken: set[tuple[str, str]] = set()
_servers_lock = threading.Lock()


def _fork_server(python: str, env: dict[str, str], preload: tuple[str, ...]) -> ForkServer | None:
    key = (python, json.dumps([env, preload], sort_keys=True))
    with _servers_lock:
        if key in _broken:
            return None
        server = _servers.get(key)
        if server is not None and server.closed:
            _servers.pop(key, None)
            _broken.add(key)  # it died: start workers afresh from now on
            return None
        for other_key, other in list(_servers.items()):
            if other_key != key and not other.busy:
                other.close()
                del _servers[other_key]
        if server is None:
            try:
                server = ForkServer(python, env=env, cwd=os.getcwd(), preload=preload)
            except OSError:
                _broken.add(key)
                return None
            _servers[key] = server
        return server


def _retire(server: ForkServer, *, broken: bool) -> None:
    server.close()
    with _servers_lock:
        for key, known in list(_servers.items()):
            if known is server:
                del _servers[key]
                if broken:
                    _broken.add(key)


def _forget_servers() -> None:
    """In a forked copy of the runner: the servers (and their pipes) are the parent's."""
    _servers.clear()
    _broken.clear()
    global _servers_lock
    _servers_lock = threading.Lock()


if _CAN_FORK:
    os.register_at_fork(after_in_child=_forget_servers)


def _total_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
