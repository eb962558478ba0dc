"""A local double of exactly the Azure ML REST endpoints the `azureml` target calls, on 127.0.0.1.

azure-ai-ml's `MLClient` is pointed at it through the target's `endpoint` (a transport that
sends every request here and keeps the Azure host in `Host`), so the double routes by host
and path as Azure does. These are the endpoints, recorded by running the SDK against it
(`AzureMLDouble.requests` keeps every request):

ARM (`management.azure.com`, under `/subscriptions/{s}/resourceGroups/{rg}/providers/
Microsoft.MachineLearningServices/workspaces/{ws}`):
  PUT  .../environments/{name}/versions/{version}   `environments.create_or_update` (anonymous
                                                    environment of the image)
  PUT  .../jobs/{name}                              `jobs.create_or_update` (the command job)
  GET  .../jobs/{name}                              `jobs.get` (find, poll)
  POST .../jobs/{name}/cancel                       `jobs.begin_cancel` (202, not followed)
  GET  ...                                          the workspace: its `discoveryUrl`
Workspace services (`{location}.api.azureml.ms`):
  GET  /discovery                                   the service URLs (`api`)
  GET  /history/v1.0/.../workspaces/{ws}/runs/{name}/details   the run's status, error, log files
Storage (`{account}.blob.core.windows.net`):
  GET  /azureml/ExperimentRun/dcid.{name}/user_logs/std_log.txt?<sas>   a log file

Each request is checked against the API's documented shape: a bearer token, `api-version` on
ARM, the subscription / resource group / workspace of the double, resource names, and for a
job its required fields (jobType Command, command, an environment registered here, a compute
cluster that exists or serverless `resources.instanceType`, environment variables as strings,
limits as ISO 8601 durations, identity type). A bad request gets Azure's error shape and
status, and is kept in `rejected`.

A new job runs its command with `bash -c` as a local process (the image is ignored: the
command's `python` is this machine's, first on PATH), with the job's environment variables over
this process's environment, its output in the job's `std_log.txt`. Its status
goes Queued -> Running -> Completed / Failed (exit code) / Canceled (a cancel, or
`limits.timeout` passed). `forget(name)` deletes a job as if the workspace lost it;
`fail(name, code, message)` ends a running job `Failed` with that error, as a preempted node
(the error's text is Azure's documented wording, not observed here).

Not emulated: code upload, inputs/outputs, datastores, distribution, the studio UI, scheduling
on nodes (instance type, count and tier are recorded and checked for shape only).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ARM_HOST = "management.azure.com"
PROVIDER = "Microsoft.MachineLearningServices"
#: Azure ML resource names (jobs, environments, computes): a letter or digit, then letters,
#: digits, `-` and `_`, 255 characters at most.
NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}"
_WS = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
       r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)")
_ISO_DURATION = re.compile(r"P(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?")
TERMINAL = ("Completed", "Failed", "Canceled")
IDENTITY_TYPES = ("Managed", "UserIdentity", "AMLToken")


class DoubleError(Exception):
    """An Azure error response: HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Recorded:
    method: str
    host: str
    path: str
    query: dict[str, str]
    status: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass
class Job:
    name: str
    body: dict[str, Any]
    status: str = "Queued"
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    error: dict[str, str] | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    cancel_requested: bool = False


class AzureMLDouble:
    """The double's state and HTTP server (see the module docstring)."""

    # The defaults are the workspace stacks/azureml.yaml names, so that file runs here unchanged.
    def __init__(
        self, root: Path, *, subscription_id: str = "6f1c3b5e-0d3a-4c1e-9a43-1d2b3c4d5e6f",
        resource_group: str = "agents-rg", workspace: str = "agents-ml", location: str = "westeurope",
        clusters: tuple[str, ...] = ("cpu-cluster",), storage_account: str = "kitaruwsstore",
    ) -> None:
        self.root = root
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace = workspace
        self.location = location
        self.clusters = set(clusters)
        self.storage_account = storage_account
        self.environments: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[str, Job] = {}
        self.started: list[str] = []  # job names, in the order their processes started
        self.requests: list[Recorded] = []
        self.rejected: list[tuple[Recorded, str]] = []
        self.errors: list[str] = []  # tracebacks of the double's own failures (a test asserts none)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.logs_dir = root / "job-logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> AzureMLDouble:
        double = self

        class Handler(_Handler):
            owner = double

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="azureml-double",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            for job in self.jobs.values():
                _kill(job.proc)

    def target_config(self, **extra: Any) -> dict[str, Any]:
        """An `azureml` target config pointing at this double (serverless unless `compute`)."""
        config: dict[str, Any] = {
            "subscription_id": self.subscription_id, "resource_group": self.resource_group,
            "workspace": self.workspace, "image": "acme/agents:1.4", "instance_type": "Standard_DS3_v2",
            "python": sys.executable, "endpoint": self.url, "poll_cap": 1.0,
        }
        config.update(extra)
        return config

    # -- test hooks ------------------------------------------------------------------------
    def forget(self, name: str) -> None:
        """Delete the job (its process killed) as if the workspace lost it."""
        with self._lock:
            job = self.jobs.pop(name, None)
        if job is not None:
            _kill(job.proc)

    def fail(self, name: str, code: str, message: str) -> None:
        """End the running job `Failed` with this error, as the service does when a node is taken
        back or the job cannot be placed (its process is killed)."""
        job = self._job(name)
        with self._lock:
            job.error = {"code": code, "message": message}
            job.cancel_requested = True  # the runner thread must not overwrite the verdict
        _kill(job.proc)
        deadline = time.monotonic() + 30
        while job.ended is None and job.proc is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._lock:
            job.status, job.ended = "Failed", job.ended or time.time()

    def status_requests(self, name: str) -> list[float]:
        """Monotonic times of the `jobs.get` requests for the job `name` (find and poll)."""
        return [r.at for r in list(self.requests)
                if r.method == "GET" and r.host == ARM_HOST and r.path.endswith(f"/jobs/{name}")]

    def count(self, method: str, pattern: str) -> int:
        """How many requests with `method` had a path matching `pattern` (a regex)."""
        return sum(1 for r in list(self.requests) if r.method == method and re.search(pattern, r.path))

    def endpoints(self) -> list[str]:
        """The distinct endpoints called, as `METHOD host path-shape`."""
        shapes = set()
        for r in list(self.requests):
            path = re.sub(r"/jobs/[^/]+", "/jobs/{name}", r.path)
            path = re.sub(r"/environments/[^/]+/versions/[^/]+", "/environments/{name}/versions/{v}", path)
            path = re.sub(r"/runs/[^/]+/", "/runs/{name}/", path)
            path = re.sub(r"/dcid\.[^/]+/", "/dcid.{name}/", path)
            path = path.replace(self.subscription_id, "{s}").replace(self.resource_group, "{rg}")
            path = re.sub(r"/workspaces/[^/]+", "/workspaces/{ws}", path)
            host = re.sub(r"^[^.]+\.(api\.azureml\.ms|blob\.core\.windows\.net)$", r"{x}.\1", r.host)
            shapes.add(f"{r.method} {host}{path}")
        return sorted(shapes)

    # -- routing ---------------------------------------------------------------------------
    def handle(self, method: str, host: str, path: str, query: dict[str, str], headers: Any,
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        if host == ARM_HOST:
            self._check_arm(path, query, headers)
            ws = self.ws_id()
            if method == "GET" and path == ws:
                return self._json(self._workspace())
            m = re.fullmatch(re.escape(ws) + r"/environments/([^/]+)/versions/([^/]+)", path)
            if m and method == "PUT":
                return self._json(*self._put_environment(m[1], m[2], _body(body)))
            m = re.fullmatch(re.escape(ws) + r"/jobs/([^/]+)", path)
            if m and method == "PUT":
                return self._json(*self._put_job(m[1], _body(body)))
            if m and method == "GET":
                return self._json(self._job_resource(self._job(m[1])))
            m = re.fullmatch(re.escape(ws) + r"/jobs/([^/]+)/cancel", path)
            if m and method == "POST":
                return self._cancel(m[1], query)
        elif host == f"{self.location}.api.azureml.ms":
            if method == "GET" and path == "/discovery":  # public, no token
                return self._json(self._discovery())
            m = re.fullmatch("/history/v1.0" + _WS + r"/runs/([^/]+)/details", path)
            if m and method == "GET":
                _bearer(headers)
                self._check_scope(m["sub"], m["rg"], m["ws"])
                return self._json(self._run_details(self._job(m[4])))
        elif host == f"{self.storage_account}.blob.core.windows.net":
            m = re.fullmatch(r"/azureml/ExperimentRun/dcid\.([^/]+)/user_logs/std_log\.txt", path)
            if m and method == "GET":
                if not {"sv", "sig", "sr"} <= set(query):
                    raise DoubleError(403, "AuthenticationFailed", "the log URL's SAS is missing")
                job = self._job(m[1])
                text = job.log.read_bytes() if job.log and job.log.exists() else b""
                return 200, {"Content-Type": "text/plain"}, text
        raise DoubleError(404, "NoRoute", f"the double serves no {method} {host}{path}")

    @staticmethod
    def _json(payload: Any, status: int = 200) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()

    def ws_id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/{PROVIDER}/workspaces/{self.workspace}")

    def _check_arm(self, path: str, query: dict[str, str], headers: Any) -> None:
        _bearer(headers)
        if not query.get("api-version"):
            raise DoubleError(400, "MissingApiVersionParameter",
                              "The api-version query parameter (?api-version=) is required for all requests.")
        m = re.match(_WS, path)
        if m is None:
            raise DoubleError(404, "InvalidResourceType", f"no Azure ML workspace resource in {path}")
        self._check_scope(m["sub"], m["rg"], m["ws"])

    def _check_scope(self, sub: str, rg: str, ws: str) -> None:
        if sub != self.subscription_id:
            raise DoubleError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        if rg.lower() != self.resource_group.lower():
            raise DoubleError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        if ws != self.workspace:
            raise DoubleError(404, "ResourceNotFound", f"Workspace '{ws}' was not found.")

    # -- resources -------------------------------------------------------------------------
    def _workspace(self) -> dict[str, Any]:
        return {
            "id": self.ws_id(), "name": self.workspace, "type": f"{PROVIDER}/workspaces",
            "location": self.location, "kind": "Default",
            "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()),
                         "tenantId": str(uuid.uuid4())},
            "properties": {
                "workspaceId": str(uuid.uuid5(uuid.NAMESPACE_URL, self.ws_id())),
                "discoveryUrl": f"https://{self.location}.api.azureml.ms/discovery",
                "friendlyName": self.workspace, "provisioningState": "Succeeded",
                "storageAccount": f"/subscriptions/{self.subscription_id}/resourceGroups/"
                                  f"{self.resource_group}/providers/Microsoft.Storage/storageAccounts/"
                                  f"{self.storage_account}",
            },
        }

    def _discovery(self) -> dict[str, str]:
        base = f"https://{self.location}.api.azureml.ms"
        return {name: base for name in ("api", "catalog", "experimentation", "history", "hyperdrive",
                                        "labeling", "modelmanagement", "pipelines")} | {
            "studio": "https://ml.azure.com"}

    def _put_environment(self, name: str, version: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        _name(name, "environment name")
        _name(version.replace(".", "-"), "environment version")
        props = body.get("properties")
        if not isinstance(props, dict) or not (props.get("image") or props.get("build")):
            raise DoubleError(400, "UserError", "An environment needs properties.image or properties.build.")
        with self._lock:
            created = (name, version) not in self.environments
            self.environments[(name, version)] = props
        resource = {"id": f"{self.ws_id()}/environments/{name}/versions/{version}", "name": version,
                    "type": f"{PROVIDER}/workspaces/environments/versions", "properties": props}
        return resource, 201 if created else 200

    def _put_job(self, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        _name(name, "job name")
        props = self._check_command_job(body)
        with self._lock:
            existing = self.jobs.get(name)
            if existing is not None:
                before = existing.body["properties"]
                immutable = ("jobType", "command", "environmentId", "computeId", "environmentVariables",
                             "resources", "limits")
                if any(before.get(k) != props.get(k) for k in immutable):
                    raise DoubleError(400, "UserError",
                                      f"Job {name} already exists with different immutable properties.")
                return self._job_resource(existing), 200
            job = Job(name=name, body={"properties": props})
            self.jobs[name] = job
        threading.Thread(target=self._run, args=(job,), name=f"job-{name}", daemon=True).start()
        return self._job_resource(job), 201

    def _check_command_job(self, body: dict[str, Any]) -> dict[str, Any]:
        props = body.get("properties")
        if not isinstance(props, dict):
            raise DoubleError(400, "UserError", "The request body needs `properties`.")

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise DoubleError(400, "UserError", message)

        need(props.get("jobType") == "Command", f"jobType must be Command, got {props.get('jobType')!r}")
        need(isinstance(props.get("command"), str) and props["command"].strip() != "",
             "A command job needs a non-empty `command`.")
        env = props.get("environmentId")
        m = re.fullmatch(re.escape(self.ws_id()) + r"/environments/([^/]+)/versions/([^/]+)", env or "")
        need(m is not None, f"environmentId must be an environment version of this workspace, got {env!r}")
        assert m is not None
        need((m[1], m[2]) in self.environments, f"Environment {m[1]}:{m[2]} was not found.")
        compute = props.get("computeId")
        resources = props.get("resources") or {}
        if compute:
            m = re.fullmatch(re.escape(self.ws_id()) + "/computes/(" + NAME + ")", compute)
            need(m is not None, f"computeId must be a compute of this workspace, got {compute!r}")
            assert m is not None
            need(m[1] in self.clusters, f"Compute {m[1]} was not found in workspace {self.workspace}.")
        else:
            need(bool(resources.get("instanceType")),
                 "Serverless compute needs resources.instanceType (no computeId was given).")
        count = resources.get("instanceCount", 1)
        need(isinstance(count, int) and count >= 1, f"resources.instanceCount must be >= 1, got {count!r}")
        variables = props.get("environmentVariables") or {}
        need(isinstance(variables, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in variables.items()),
             "environmentVariables must map names to strings.")
        limits = props.get("limits")
        if limits is not None:
            need(limits.get("jobLimitsType") == "Command", "limits.jobLimitsType must be Command.")
            timeout = limits.get("timeout")
            need(timeout is None or bool(_ISO_DURATION.fullmatch(timeout)),
                 f"limits.timeout must be an ISO 8601 duration, got {timeout!r}")
        identity = props.get("identity")
        if identity is not None:
            kind = identity.get("identityType")
            need(kind in IDENTITY_TYPES, f"identityType must be one of {IDENTITY_TYPES}, not {kind!r}")
        need(isinstance(props.get("experimentName", "Default"), str), "experimentName must be a string.")
        return props

    def _job(self, name: str) -> Job:
        with self._lock:
            job = self.jobs.get(name)
        if job is None:
            raise DoubleError(404, "UserError", f"Job {name} was not found.")
        return job

    def _job_resource(self, job: Job) -> dict[str, Any]:
        props = dict(job.body["properties"], status=job.status)
        props["services"] = {"Studio": {"jobServiceType": "Studio",
                                        "endpoint": f"https://ml.azure.com/runs/{job.name}"}}
        stamp = _iso(job.created)
        return {"id": f"{self.ws_id()}/jobs/{job.name}", "name": job.name,
                "type": f"{PROVIDER}/workspaces/jobs", "properties": props,
                "systemData": {"createdAt": stamp, "createdBy": "kitaru", "createdByType": "User"}}

    def _run_details(self, job: Job) -> dict[str, Any]:
        log_url = (f"https://{self.storage_account}.blob.core.windows.net/azureml/ExperimentRun/"
                   f"dcid.{job.name}/user_logs/std_log.txt?sv=2021-08-06&sr=b&sp=r&sig=double")
        details: dict[str, Any] = {
            "runId": job.name, "status": job.status, "target": job.body["properties"].get("computeId"),
            "createdTimeUtc": _iso(job.created), "warnings": [],
            "logFiles": {"user_logs/std_log.txt": log_url} if job.started else {},
        }
        if job.started:
            details["startTimeUtc"] = _iso(job.started)
        if job.ended:
            details["endTimeUtc"] = _iso(job.ended)
        if job.error:
            details["error"] = {"error": dict(job.error)}
        return details

    def _cancel(self, name: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        job = self._job(name)
        with self._lock:
            if job.status not in TERMINAL:
                job.cancel_requested = True
                job.status = "CancelRequested"
        _kill(job.proc)
        location = (f"https://{ARM_HOST}/subscriptions/{self.subscription_id}/providers/{PROVIDER}/"
                    f"locations/{self.location}/mfeOperationResults/jobs:{name}"
                    f"?api-version={query['api-version']}")
        return 202, {"Location": location, "Retry-After": "1"}, b""

    # -- running a job -----------------------------------------------------------------------
    def _run(self, job: Job) -> None:
        props = job.body["properties"]
        job.log = self.logs_dir / f"{job.name}.log"
        # The image's `python` is this machine's: its folder comes first on PATH.
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        env = {**os.environ, "PATH": path, **(props.get("environmentVariables") or {})}
        timeout = _seconds((props.get("limits") or {}).get("timeout"))
        with self._lock:
            if self.jobs.get(job.name) is not job:
                return
            if job.cancel_requested:  # cancelled before it started
                job.status, job.ended = "Canceled", time.time()
                return
            with open(job.log, "wb") as out:
                job.proc = subprocess.Popen(["bash", "-c", props["command"]], env=env, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, cwd=self.root)
            job.started = time.time()
            job.status = "Running"
            self.started.append(job.name)
        try:
            code = job.proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill(job.proc)
            code = job.proc.wait()
            timed_out = True
        with self._lock:
            job.ended = time.time()
            if timed_out:
                job.status = "Canceled"
                job.error = {"code": "JobTimeout",
                             "message": f"The job ran longer than its limits.timeout of {timeout:g} s."}
            elif job.error is not None:
                job.status = "Failed"  # `fail` ended it
            elif job.cancel_requested:
                job.status = "Canceled"
            elif code == 0:
                job.status = "Completed"
            else:
                job.status = "Failed"
                job.error = {"code": "UserError",
                             "message": f"Execution failed. User process exited with status code {code}."}


class _Handler(BaseHTTPRequestHandler):
    owner: AzureMLDouble
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        host = (self.headers.get("Host") or "").split(":")[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = Recorded(self.command, host, split.path, query)
        self.owner.requests.append(record)
        try:
            status, headers, payload = self.owner.handle(self.command, host, split.path, query,
                                                         self.headers, body)
        except DoubleError as err:
            status, headers = err.status, {"Content-Type": "application/json"}
            payload = json.dumps({"error": {"code": err.code, "message": err.message}}).encode()
            self.owner.rejected.append((record, f"{err.code}: {err.message}"))
        except Exception as exc:  # a bug of the double: Azure's 500, and the traceback kept
            status, headers = 500, {"Content-Type": "application/json"}
            payload = json.dumps({"error": {"code": "InternalServerError", "message": repr(exc)}}).encode()
            self.owner.errors.append(traceback.format_exc())
        record.status = status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- helpers ---------------------------------------------------------------------------------


def _bearer(headers: Any) -> None:
    auth = headers.get("Authorization") or ""
    if not re.fullmatch(r"Bearer \S+", auth):
        raise DoubleError(401, "AuthenticationFailed", "The request has no bearer token.")


def _name(value: str, what: str) -> None:
    if not re.fullmatch(NAME, value):
        raise DoubleError(400, "UserError",
                          f"{what} {value!r} is invalid: letters, digits, '-' and '_', at most 255.")


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise DoubleError(400, "InvalidRequestContent", f"The request content is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise DoubleError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return body


def _seconds(duration: str | None) -> float | None:
    if not duration:
        return None
    m = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", duration)
    assert m is not None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def _iso(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_double(root: Path, **kwargs: Any) -> Iterator[AzureMLDouble]:
    double = AzureMLDouble(root, **kwargs).start()
    try:
        yield double
    finally:
        double.stop()
