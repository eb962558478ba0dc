"""A Kubernetes API on 127.0.0.1 for the tests: kmock's emulator plus a small Job controller.

There is no kubelet and no container runtime. `JobController` plays both for
batch/v1 Jobs: for each new Job it creates the pod object, runs the container's
command (and args) as a local process with the manifest's env and working dir,
and writes the pod's and the Job's status back when the process ends. The image is
ignored: the command runs with this machine's Python and venv, so a stack used in
the tests sets `python` to `sys.executable`. Deleting a Job kills its process and
deletes its pods (what the garbage collector does in a cluster). A Job running past
its `activeDeadlineSeconds` is stopped and failed with `DeadlineExceeded`, as the
Job controller does. `evict` and `oom_kill` end a running pod the way a node would,
`fail_at_start` fails a new Job before its command runs (an image that cannot start) and
`never_start` leaves one pending (an image that never pulls, no node that fits), for the
failure-path tests. With `own_hostnames` each pod's process runs in a UTS
namespace of its own whose hostname is the pod's name, as in a cluster: a runner in a
pod is then "on another host" to the processes of the test, which see it only through
its lease (needs `unshare`, i.e. root or user namespaces: `can_own_hostnames()`).

Not emulated: ttlSecondsAfterFinished (finished Jobs stay), scheduling, resources
and node selectors (recorded, never enforced), env `valueFrom`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock

JOB_LABEL = "kitaru.dev/job"


@attrs.define(kw_only=True)
class KitaruKubeEmulator(kmock.KubernetesEmulator):
    """kmock's stateful emulator plus what kitaru's plugin uses and kmock leaves out:
    equality label selectors on lists, the pods' `log` subresource, a `uid` on create, and
    `watch=True` (the official client's spelling, which the API server accepts) as a watch.
    kmock's watches ignore field selectors and `timeoutSeconds`: they stream the whole
    namespace until the client hangs up."""

    log_files: dict[tuple[str, str], Path] = attrs.field(factory=dict)
    #: The handlers of open watches, cancelled at shutdown (kmock's never end by themselves).
    watches: set[asyncio.Task[Any]] = attrs.field(factory=set)

    async def _serve_list(self, request: kmock.Request) -> Any:
        payload = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        if selector:
            wanted = dict(part.split("=", 1) for part in selector.replace("==", "=").split(",") if part)
            payload["items"] = [
                item for item in payload["items"]
                if all((item.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in wanted.items())
            ]
        return payload

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.method == kmock.method.POST and isinstance(request.data, dict) and not request.subresource:
            # What the API server does on create: a uid (owner references point at it).
            request.data.setdefault("metadata", {}).setdefault("uid", str(uuid.uuid4()))
        if request.action == kmock.action.LIST and request.params.get("watch", "").lower() in ("true", "1"):
            # kmock reads only "watch=true"; its reactions match requests by identity, so the
            # recorded request is replaced by the watch it is.
            watch = attrs.evolve(request, action=kmock.action.WATCH)
            for index in range(len(self._requests) - 1, -1, -1):  # it was recorded last, or nearly
                if self._requests[index] is request:
                    self._requests[index] = watch
                    break
            request = watch
        if request.action == kmock.action.WATCH:
            task = asyncio.current_task()
            assert task is not None
            self.watches.add(task)
            try:
                return await super()._handle(request)
            finally:
                self.watches.discard(task)
        if request.subresource == "log" and request.method == kmock.method.GET:
            path = self.log_files.get((request.namespace or "", request.name or ""))
            if path is None:
                return await super()._handle(request)  # kmock's 404 for an unknown pod
            text = path.read_text(errors="replace") if path.exists() else ""
            return aiohttp.web.Response(text=text, content_type="text/plain")
        return await super()._handle(request)


class KubeEmulatorServer:
    """The emulator served on 127.0.0.1 from a thread of its own; `kubeconfig` points at it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.emulator: KitaruKubeEmulator | None = None
        self.url = ""
        self.kubeconfig = root / "kubeconfig.yaml"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        emulator = KitaruKubeEmulator()
        emulator.resources["batch/v1/jobs"] = {"kind": "Job", "namespaced": True, "subresources": ["status"]}
        emulator.resources["v1/pods"] = {"kind": "Pod", "namespaced": True, "subresources": ["status", "log"]}
        emulator.resources["v1/secrets"] = {"kind": "Secret", "namespaced": True}
        async with emulator, kmock.Server(emulator, host="127.0.0.1") as server:
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()
            for task in list(emulator.watches):  # else the server waits for them to end
                task.cancel()

    def start(self) -> KubeEmulatorServer:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or not self.url:
            raise RuntimeError(f"the Kubernetes emulator did not start: {self._error!r}")
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "kmock", "user": {}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
        }))
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@dataclass
class _Run:
    namespace: str
    job: str
    pod: str
    proc: subprocess.Popen[bytes] | None
    log: Path
    ended: bool = False
    deadline: float | None = None  # time.monotonic() past which the Job is stopped


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class JobController:
    """Runs every Job created on the emulator as a local process (see the module docstring)."""

    def __init__(
        self, server: KubeEmulatorServer, *, interval: float = 0.05, own_hostnames: bool = False
    ) -> None:
        from kubernetes import client, config

        self.server = server
        self.api = config.new_client_from_config(config_file=str(server.kubeconfig))
        self.batch = client.BatchV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        self.interval = interval
        self.own_hostnames = own_hostnames
        self.runs: dict[tuple[str, str], _Run] = {}
        self.started: list[str] = []  # Job names, in the order their pods started
        self._faults: dict[tuple[str, str], str] = {}
        self._fail_at_start: list[Callable[[str], bool]] = []
        self._never_start: list[Callable[[str], bool]] = []
        self.held: set[tuple[str, str]] = set()  # Jobs left pending by `never_start`
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-controller", daemon=True)
        self.logs_dir = server.root / "pod-logs"
        self.logs_dir.mkdir(exist_ok=True)

    # -- test hooks ---------------------------------------------------------------------
    def evict(self, namespace: str, job: str) -> None:
        """End the Job's running pod as a node under memory pressure would."""
        self._fault(namespace, job, "Evicted")

    def oom_kill(self, namespace: str, job: str) -> None:
        """Kill the Job's container as the kernel's OOM killer would."""
        self._fault(namespace, job, "OOMKilled")

    def fail_at_start(self, match: Callable[[str], bool]) -> None:
        """Fail the next new Job whose name matches: its pod ends with an error before its
        command runs, as when the container cannot start."""
        with self._lock:
            self._fail_at_start.append(match)

    def never_start(self, match: Callable[[str], bool]) -> None:
        """Leave the next new Job whose name matches pending: no pod ever runs (an image that
        never pulls, no node that fits). Deleting the Job forgets it."""
        with self._lock:
            self._never_start.append(match)

    def _take(self, rules: list[Callable[[str], bool]], name: str) -> bool:
        with self._lock:
            for rule in rules:
                if rule(name):
                    rules.remove(rule)
                    return True
        return False

    def _fault(self, namespace: str, job: str, kind: str) -> None:
        with self._lock:
            self._faults[(namespace, job)] = kind

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> JobController:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(10)
        for run in self.runs.values():
            self._kill(run)
        self.api.close()

    def _loop(self) -> None:
        while not self._halt.is_set():
            with contextlib.suppress(Exception):  # the emulator going away at the end
                self._step()
            self._halt.wait(self.interval)

    def _raw(self, response: Any) -> Any:
        return json.loads(response.data)

    def _step(self) -> None:
        jobs = self._raw(self.batch.list_job_for_all_namespaces(_preload_content=False))["items"]
        present = set()
        for job in jobs:
            key = (job["metadata"]["namespace"], job["metadata"]["name"])
            present.add(key)
            if key not in self.runs:
                if key in self.held or self._take(self._never_start, key[1]):
                    self.held.add(key)
                elif not (job.get("status") or {}).get("startTime"):
                    self._start(job)
                continue
            run = self.runs[key]
            if run.ended:
                continue
            with self._lock:
                fault = self._faults.pop(key, None)
            if fault is None and run.deadline is not None and time.monotonic() > run.deadline:
                fault = "DeadlineExceeded"
            if fault is not None:
                self._kill(run)
                self._finish(run, exit_code=137, fault=fault)
            elif run.proc is not None and run.proc.poll() is not None:
                self._finish(run, exit_code=run.proc.returncode)
        self.held &= present
        for key, run in list(self.runs.items()):
            if key not in present:  # the Job was deleted: its pods go with it
                self._kill(run)
                with contextlib.suppress(Exception):
                    self.core.delete_namespaced_pod(run.pod, run.namespace)
                del self.runs[key]

    def _start(self, job: dict[str, Any]) -> None:
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        template = job["spec"]["template"]
        pod_name = f"{name[:57].rstrip('-')}-{uuid.uuid4().hex[:5]}"  # as generateName does
        labels = {**(template.get("metadata", {}).get("labels") or {}), "job-name": name}
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": pod_name, "namespace": namespace, "labels": labels,
                            "creationTimestamp": _now()},
               "spec": template["spec"], "status": {"phase": "Pending"}}
        self.core.create_namespaced_pod(namespace, pod)
        log = self.logs_dir / f"{namespace}-{pod_name}.log"
        log.touch()
        assert self.server.emulator is not None
        self.server.emulator.log_files[(namespace, pod_name)] = log
        run = _Run(namespace, name, pod_name, None, log)
        limit = job["spec"].get("activeDeadlineSeconds")
        if limit:
            run.deadline = time.monotonic() + float(limit)
        self.runs[(namespace, name)] = run
        container = template["spec"]["containers"][0]
        env = dict(os.environ)
        try:
            for source in container.get("envFrom") or []:
                secret = self.core.read_namespaced_secret(source["secretRef"]["name"], namespace)
                env.update({k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()})
        except Exception as exc:  # the kubelet would keep the pod pending: CreateContainerConfigError
            log.write_text(f"CreateContainerConfigError: {exc}\n")
            self._finish(run, exit_code=1, fault="CreateContainerConfigError")
            return
        if self._take(self._fail_at_start, name):
            log.write_text("StartError: the container could not start\n")
            self._finish(run, exit_code=128, fault="StartError")
            return
        env.update({item["name"]: item.get("value", "") for item in container.get("env") or []})
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        if self.own_hostnames:  # the pod's own hostname, then the container's command
            argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', pod_name, *argv]
        with open(log, "ab") as out:
            run.proc = subprocess.Popen(
                argv, env=env, cwd=container.get("workingDir") or None, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.started.append(name)
        self.core.patch_namespaced_pod_status(pod_name, namespace, {"status": {
            "phase": "Running", "startTime": _now(),
            "containerStatuses": [{"name": container["name"], "ready": True, "restartCount": 0,
                                   "image": container["image"], "imageID": "",
                                   "state": {"running": {"startedAt": _now()}}}],
        }})
        job_status = {"status": {"active": 1, "startTime": _now()}}
        self.batch.patch_namespaced_job_status(name, namespace, job_status)

    def _finish(self, run: _Run, *, exit_code: int, fault: str | None = None) -> None:
        run.ended = True
        ok = exit_code == 0 and fault is None
        pod_status: dict[str, Any] = {"phase": "Succeeded" if ok else "Failed"}
        if fault == "Evicted":
            pod_status.update(reason="Evicted", message="The node was low on resource: memory.")
        terminated = {"exitCode": exit_code, "finishedAt": _now(),
                      "reason": "Completed" if ok else (fault if fault == "OOMKilled" else "Error")}
        pod_status["containerStatuses"] = [{"name": "kitaru", "ready": False, "restartCount": 0,
                                            "image": "", "imageID": "",
                                            "state": {"terminated": terminated}}]
        self.core.patch_namespaced_pod_status(run.pod, run.namespace, {"status": pod_status})
        if fault == "DeadlineExceeded":  # the Job controller stops the pod, the Job fails
            reason, message = "DeadlineExceeded", "Job was active longer than specified deadline"
        else:
            reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        condition = {"type": "Complete" if ok else "Failed", "status": "True", "lastTransitionTime": _now(),
                     "reason": "Completed" if ok else reason, "message": "" if ok else message}
        job_status: dict[str, Any] = {"active": 0, "conditions": [condition]}
        job_status["succeeded" if ok else "failed"] = 1
        if ok:
            job_status["completionTime"] = _now()
        self.batch.patch_namespaced_job_status(run.job, run.namespace, {"status": job_status})

    def _kill(self, run: _Run) -> None:
        if run.proc is not None and run.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait(10)


def can_own_hostnames() -> bool:
    """Whether this machine lets the controller give each pod its own hostname (`unshare`)."""
    try:
        probe = subprocess.run(["unshare", "--uts", "hostname", "kitaru-probe"], capture_output=True,
                               timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@contextlib.contextmanager
def running_cluster(
    root: Path, *, own_hostnames: bool = False
) -> Iterator[tuple[KubeEmulatorServer, JobController]]:
    """The emulator and its controller, started; both stopped at the end."""
    server = KubeEmulatorServer(root).start()
    controller = JobController(server, own_hostnames=own_hostnames).start()
    try:
        yield server, controller
    finally:
        controller.stop()
        server.stop()


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; that value (fails after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)
