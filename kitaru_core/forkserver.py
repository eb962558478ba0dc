"""A warm process that starts each task as a fresh fork of itself (part of the plugin contract).

Starting `python -m kitaru_core.worker` pays an interpreter start plus the imports of
kitaru_core, pydantic, pluggy and the store's plugin, which is most of what an isolated call
costs on a local target. A fork server pays that once: it is started on first use with the
runner's Python, environment and folder, imports the module it will run, and then forks one
child per task. Each child is a new process (its own memory, globals, crash and exit code,
its own session so a cancel reaches its whole group) that runs the task's
`-m module args...` as `python -m` would, with the task's environment, folder and log
file; only the imports done before the fork are shared, never the user's code.

The server reports each child's pid and kernel start token at once, and its exit status
when it ends (it is the child's parent), so the runner learns of a finished task when it
exits, without a poll timer. When the runner goes away (its pipe closes, also on a
SIGKILL) the server takes no more tasks, waits for the running ones and exits; those
tasks keep running and write their results as any worker would, and a resumed runner
follows them by pid and start token like any process it did not start.

Differences from a process started afresh, all by design: the hash seed and the modules
imported before the fork are the server's (Python re-seeds `random` in each child), and
`PYTHON*` variables that only act at interpreter start are the server's. `ForkServer`
keys a server by the environment it was started with, so a task whose environment differs
in anything but the keys it sets itself gets another server.

    server = ForkServer(sys.executable, env=dict(os.environ), cwd=os.getcwd(),
                        preload=("kitaru_core.worker",))
    child = server.spawn(["-m", "kitaru_core.worker", ...], env=..., cwd=..., log_path=...)
    child.wait(timeout=1.0)  # the exit code, or None while it runs
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .errors import KitaruError

#: How long `spawn` waits for the server to fork (its first answer includes its imports).
SPAWN_TIMEOUT = 120.0


class ForkServerError(KitaruError):
    """The fork server could not start a task (it is gone or refused the request)."""


class ForkedChild:
    """A task process the fork server started: its pid, start token and (once known) exit code."""

    def __init__(self, server: ForkServer, pid: int, start: str | None) -> None:
        self.server = server
        self.pid = pid
        self.start = start
        self.returncode: int | None = None

    @property
    def orphaned(self) -> bool:
        """True when the server went away before reporting this child's exit."""
        return self.returncode is None and self.server.closed and self.pid not in self.server._codes

    def poll(self) -> int | None:
        """The exit code (negative: the signal that ended it) if the child has ended, else None."""
        if self.returncode is None:
            with self.server._cond:
                self.returncode = self.server._codes.pop(self.pid, None)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Block up to `timeout` seconds for the child's exit; its exit code, or None."""
        if self.returncode is not None:
            return self.returncode
        with self.server._cond:
            self.server._cond.wait_for(
                lambda: self.pid in self.server._codes or self.server.closed, timeout
            )
        return self.poll()


class ForkServer:
    """The runner's handle on one fork server process (thread-safe).

    `preload` names modules the server imports before it forks anything, such as the one its
    tasks run with `-m` when its top level only defines (a `main()` behind the `__main__`
    guard); such a module may also define `prepare_fork(args)`, which the server calls with a
    task's arguments before forking it, to import what that task will need.
    """

    def __init__(
        self,
        python: str,
        *,
        env: dict[str, str],
        cwd: str | None = None,
        preload: Sequence[str] = (),
    ) -> None:
        self.env = dict(env)
        argv = [python, "-m", "kitaru_core.forkserver"]
        for module in preload:
            argv += ["--preload", module]
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=self.env, cwd=cwd, start_new_session=True,
        )
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._codes: dict[int, int] = {}
        self._running: set[int] = set()
        self.closed = False
        self._reader = threading.Thread(target=self._read, name="kitaru-forkserver", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def busy(self) -> bool:
        """True while a child it started has not been reported ended."""
        with self._cond:
            return bool(self._running)

    def spawn(
        self, argv: Sequence[str], *, env: dict[str, str], cwd: str, log_path: str | os.PathLike[str]
    ) -> ForkedChild:
        """Start `python <argv>` (argv is `-m module args...`) as a fork of the server.

        The child runs in its own session with stdin from /dev/null and stdout and stderr
        in `log_path` (truncated). Raises `ForkServerError` if the server is gone or failed.
        """
        if len(argv) < 2 or argv[0] != "-m":
            raise ForkServerError(f"a fork server runs `-m module ...` command lines, not {list(argv)!r}")
        with self._cond:
            if self.closed:
                raise ForkServerError("the fork server has exited")
            self._next_id += 1
            request_id = self._next_id
        line = json.dumps({"id": request_id, "argv": list(argv), "env": env, "cwd": cwd,
                           "log": os.fspath(log_path)}).encode() + b"\n"
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            with self._write_lock:
                stdin.write(line)
                stdin.flush()
        except OSError as exc:
            self.close()
            raise ForkServerError(f"the fork server has exited ({exc})") from None
        with self._cond:
            if not self._cond.wait_for(lambda: request_id in self._replies or self.closed, SPAWN_TIMEOUT):
                reply = None
            else:
                reply = self._replies.pop(request_id, None)
        if reply is None:
            self.close()
            raise ForkServerError("the fork server stopped answering")
        if "error" in reply:
            raise ForkServerError(f"the fork server could not start the task: {reply['error']}")
        return ForkedChild(self, int(reply["pid"]), reply.get("start"))

    def close(self) -> None:
        """Take no more tasks: the server exits once its running children have ended."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        with contextlib.suppress(OSError), self._write_lock:
            if self._proc.stdin is not None:
                self._proc.stdin.close()

    def _read(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            for raw in stdout:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                with self._cond:
                    if "exit" in message:
                        pid = int(message["exit"])
                        self._codes[pid] = int(message["code"])
                        self._running.discard(pid)
                    elif "id" in message:
                        if "pid" in message:
                            self._running.add(int(message["pid"]))
                        self._replies[int(message["id"])] = message
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self.closed = True
                self._cond.notify_all()
            with contextlib.suppress(OSError):
                stdout.close()
            self._proc.wait()


# -- the server process -----------------------------------------------------------------------


class _Task:
    def __init__(self, request: dict[str, Any]) -> None:
        self.argv: list[str] = list(request["argv"])
        self.env: dict[str, str] = dict(request["env"])
        self.cwd: str = request["cwd"]
        self.log: str = request["log"]


def _send(message: dict[str, Any]) -> None:
    data = json.dumps(message).encode() + b"\n"
    with contextlib.suppress(BrokenPipeError):
        while data:
            data = data[os.write(1, data):]


def _prepare(module_name: str, args: list[str], preloaded: dict[str, Any]) -> None:
    """Call a preloaded module's `prepare_fork(args)`: it imports what a run will need.

    A module that was not preloaded is not imported here: its top-level code may be its main.
    """
    prepare = getattr(preloaded.get(module_name), "prepare_fork", None)
    if callable(prepare):
        prepare(args)


def _threads_started(preload: list[str]) -> str | None:
    """Why forking is unsafe here (a preloaded module started a thread), or None."""
    try:
        count = len(os.listdir("/proc/self/task"))
    except OSError:
        count = threading.active_count()
    if count <= 1:
        return None
    return (f"importing {', '.join(preload)} started {count - 1} thread(s), which a fork would "
            "copy half-way; remove such modules from the target's preload")


def _serve(preloaded: dict[str, Any], refuse: str | None = None) -> _Task | None:
    """Answer requests until the runner's pipe closes; in a forked child, its task.

    With `refuse` set, every request is answered with that error instead.
    """
    from .processes import process_start_token

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    children: set[int] = set()
    pending = b""
    open_ = True
    while open_ or children:
        for key, _ in selector.select():
            if key.fd == wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
                continue
            chunk = os.read(0, 65536)
            if not chunk:
                open_ = False
                selector.unregister(0)
                continue
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request: dict[str, Any] = {}
                try:
                    request = json.loads(line)
                    if refuse:
                        raise ForkServerError(refuse)
                    task = _Task(request)
                except Exception as exc:
                    _send({"id": request.get("id"), "error": f"{type(exc).__name__}: {exc}"})
                    continue
                with contextlib.suppress(Exception, SystemExit):  # the task meets it and reports it
                    _prepare(task.argv[1], task.argv[2:], preloaded)
                ready_r, ready_w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.setsid()  # before the pid is handed out: a cancel's killpg must find it
                    os.close(ready_r)
                    os.close(ready_w)
                    selector.close()
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    os.close(wake_r)
                    os.close(wake_w)
                    return task
                os.close(ready_w)
                os.read(ready_r, 1)  # EOF once the child has its session (it closed its end)
                os.close(ready_r)
                children.add(pid)
                _send({"id": request["id"], "pid": pid, "start": process_start_token(pid)})
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                break
            if pid == 0:
                break
            if pid in children:
                children.discard(pid)
                _send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})
    return None


def _become(task: _Task) -> None:
    """In the forked child: turn into `python -m module args...` as the task asks."""
    import runpy

    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(task.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    os.chdir(task.cwd)
    os.environ.clear()
    os.environ.update(task.env)
    if sys.path and not getattr(sys.flags, "safe_path", False):
        sys.path[0] = task.cwd  # `python -m` puts the working folder first
    module = task.argv[1]
    # As in a fresh `python -m`, the module runs only as __main__ (imported here, it would run
    # twice and runpy would warn); what it imports stays imported.
    sys.modules.pop(module, None)
    sys.argv = [module, *task.argv[2:]]  # run_module makes argv[0] the module's file
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import importlib

    parser = argparse.ArgumentParser(prog="python -m kitaru_core.forkserver", description=__doc__)
    parser.add_argument("--preload", action="append", default=[],
                        help="a module to import first (its top level must not run a task)")
    ns = parser.parse_args(argv)
    preloaded = {}
    for name in ns.preload:
        with contextlib.suppress(Exception):  # a child that needs it reports the error in its log
            preloaded[name] = importlib.import_module(name)
    task = _serve(preloaded, _threads_started(ns.preload))
    if task is not None:
        _become(task)
    return 0


if __name__ == "__main__":
    sys.exit(main())
