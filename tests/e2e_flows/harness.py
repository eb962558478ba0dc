"""Helpers the end-to-end tests share: start real processes, wait for files and states.

Every wait is bounded (`TIMEOUT` seconds) and fails with the output of the
processes involved, so a hang shows up as a readable test failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

FLOWS = Path(__file__).resolve().parent
TIMEOUT = 60.0


class Processes:
    """The processes a test starts; `with Processes(tmp) as procs:` kills leftovers at the end.

    Each process writes stdout and stderr to its own file under `logs`, so
    output can be read while it still runs.
    """

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self._started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc, _ in self._started:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait(timeout=TIMEOUT)

    def python(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `python ARGS` in `cwd` (a new process group) with the test's environment."""
        log = self.logs / f"{len(self._started):02d}-{Path(args[-1]).name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *args], cwd=cwd, env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._started.append((proc, log))
        return proc

    def kitaru(self, *args: str, cwd: Path) -> subprocess.Popen[bytes]:
        """Start `kitaru ARGS` in the background (use conftest.run_cli to run one to its end)."""
        return self.python("-m", "kitaru.cli.main", *args, cwd=cwd)

    def server(self, *args: str, cwd: Path, timeout: float = TIMEOUT) -> tuple[subprocess.Popen[bytes], str]:
        """Start `kitaru server start ARGS` on a free port; return it and its base URL once its
        `/ready` answers 200 (the test fails with the server's output if it exits first)."""
        import socket

        import httpx

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = self.kitaru("server", "start", "--port", str(port), *args, cwd=cwd)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    return proc, base
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, self.output(proc)
            time.sleep(0.1)

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        log = next(log for p, log in self._started if p is proc)
        return log.read_text(errors="replace")

    def finish(self, proc: subprocess.Popen[bytes], timeout: float = TIMEOUT) -> tuple[int, str]:
        """Wait for `proc` to exit; return its exit code and output."""
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"process {proc.args} still running after {timeout}s; output:\n{self.output(proc)}"
            ) from None
        return code, self.output(proc)

    def crash(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL `proc`, as a power cut or the OOM killer would, and reap it."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)

    def wait_for(self, condition: Callable[[], Any], what: str, *,
                 watch: subprocess.Popen[bytes] | None = None, timeout: float = TIMEOUT) -> Any:
        """Poll `condition` until it returns something truthy; fail if `watch` exits first."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if watch is not None and watch.poll() is not None:
                value = condition()
                if value:
                    return value
                raise AssertionError(
                    f"process exited ({watch.returncode}) before {what}; output:\n{self.output(watch)}"
                )
            if time.monotonic() > deadline:
                extra = f"; output:\n{self.output(watch)}" if watch is not None else ""
                raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
            time.sleep(0.05)


def runs(workdir: Path) -> Counter[str]:
    """How many times each checkpoint body ran (the flows append to runs.log)."""
    log = workdir / "runs.log"
    lines = log.read_text().split() if log.exists() else []
    return Counter(lines)


def wait_for_status(exec_id: str, statuses: set[str], *, timeout: float = TIMEOUT) -> Any:
    """Poll the registry (as `kitaru executions get` would) until the execution is in `statuses`."""
    return wait_for_execution(
        exec_id, lambda e: e.status.value in statuses, f"status {' or '.join(sorted(statuses))}",
        timeout=timeout,
    )


def wait_for_execution(exec_id: str, condition: Callable[[Any], bool], what: str, *,
                       timeout: float = TIMEOUT) -> Any:
    """Poll the execution (a `kitaru.client.Execution`) until `condition` holds; return it."""
    from kitaru import KitaruClient

    client = KitaruClient()
    deadline = time.monotonic() + timeout
    while True:
        execution = client.executions.get(exec_id)
        if condition(execution):
            return execution
        if time.monotonic() > deadline:
            runner_log = Path(os.environ["KITARU_HOME"]) / "runs" / f"{exec_id}.log"
            background = runner_log.read_text() if runner_log.exists() else "(none)"
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what} of execution {exec_id}; it is "
                f"{execution.status.value}, pending wait {execution.pending_wait}, failure "
                f"{execution.failure}; background runner output:\n{background}"
            )
        time.sleep(0.1)


def has_exec_id(workdir: Path) -> bool:
    """True once a flow program has written its whole execution id to WORKDIR/exec_id.

    The programs write it when `.run()` returns, which on a loaded machine can come after
    the flow's own thread reached a checkpoint that signals the test: wait for both.
    """
    try:
        return len((workdir / "exec_id").read_text()) == 32
    except FileNotFoundError:
        return False
