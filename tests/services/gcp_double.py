"""What the Vertex AI and Cloud Run doubles share: a JSON HTTP server on 127.0.0.1 with Google's
error shape, local processes standing in for jobs' containers, and Cloud Logging's
`entries:list` over what those processes wrote.

A double serves exactly the REST paths kitaru's targets call through the official clients
(`transport="rest"`), checks each request against the API's documented shape (required
fields, resource names) and answers a malformed one with the API's error
(`{"error": {"code": 400, "message": ..., "status": "INVALID_ARGUMENT"}}`). A job's
container is its command run as a local process with this machine's Python (the image is
ignored; a command `python` is this machine's interpreter, as the image's would be), the
environment of this process plus the job's env, and its output kept for the logs. Every request
is recorded (`requests`), so a test can count a target's polls. `POST /token` is an OAuth token
endpoint: a service account key file whose `token_uri` points there (`adc_file`) lets the
targets use Application Default Credentials against the double.
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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: HTTP status -> the google.rpc status name an API error carries.
STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION"}


class ApiError(Exception):
    """Answered as Google's JSON error: `{"error": {"code", "message", "status"}}`."""

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status or STATUS.get(code, "UNKNOWN")


def invalid(message: str) -> ApiError:
    return ApiError(400, message)


def now() -> str:
    """A google.protobuf.Timestamp in JSON: RFC 3339, UTC, 'Z'."""
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def duration_seconds(value: Any, where: str) -> float:
    """A google.protobuf.Duration in JSON ("3600s", "1.5s") in seconds; 400 if malformed."""
    if not isinstance(value, str) or not re.fullmatch(r"\d+(\.\d{1,9})?s", value):
        raise invalid(f"Invalid value at '{where}' (type.googleapis.com/google.protobuf.Duration), {value!r}")
    return float(value[:-1])


def int64(value: Any, where: str) -> int:
    """An int64 in JSON: a number or a decimal string."""
    digits = isinstance(value, str) and value.isdigit()
    if isinstance(value, bool) or not (isinstance(value, int) or digits):
        raise invalid(f"Invalid value at '{where}' (TYPE_INT64), {value!r}")
    return int(value)


def require(body: dict[str, Any], path: str) -> Any:
    """The value at dotted `path` of `body`; 400 naming the field when it is missing or empty."""
    value: Any = body
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value in (None, "", [], {}):
        raise invalid(f"Required field {path} is not specified or empty")
    return value


LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


def check_labels(labels: Any, where: str) -> None:
    if labels is None:
        return
    if not isinstance(labels, dict):
        raise invalid(f"Invalid value at '{where}': expected a map")
    for key, value in labels.items():
        if not LABEL_KEY.fullmatch(key) or not isinstance(value, str) or not LABEL_VALUE.fullmatch(value):
            raise invalid(f"Invalid label {key}={value!r} at '{where}'")


def check_env(env: Any, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, item in enumerate(env or []):
        if not isinstance(item, dict) or not item.get("name"):
            raise invalid(f"Required field {where}[{i}].name is not specified")
        out[item["name"]] = str(item.get("value", ""))
    return out


# -- processes standing in for containers ------------------------------------------------------


@dataclass
class Run:
    """One container run as a local process."""

    key: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    timeout: float | None
    on_end: Callable[[Run], None]
    proc: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None
    cancelled: bool = False
    timed_out: bool = False
    started_at: str = ""
    ended_at: str = ""
    lines: list[tuple[str, str]] = field(default_factory=list)  # (timestamp, text)

    @property
    def ended(self) -> bool:
        return self.exit_code is not None

    def start(self) -> None:
        argv = [sys.executable, *self.argv[1:]] if self.argv[:1] == ["python"] else self.argv
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                argv, env={**os.environ, **self.env}, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.started_at = now()
        threading.Thread(target=self._wait, name=f"run-{self.key}", daemon=True).start()

    def _wait(self) -> None:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.kill()
            code = self.proc.wait()
        self.lines = [(now(), line) for line in self.log.read_text(errors="replace").splitlines()]
        self.ended_at = now()
        self.exit_code = code
        self.on_end(self)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def output_lines(self) -> list[tuple[str, str]]:
        """What the container wrote so far (as Cloud Logging would have it)."""
        if self.ended:
            return self.lines
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [(now(), line) for line in text.splitlines()]


# -- the HTTP server -------------------------------------------------------------------------------

Route = tuple[str, re.Pattern[str], Callable[..., Any]]


class GcpDouble:
    """A threaded JSON API on 127.0.0.1: subclasses add routes (method, path regex, handler).

    A handler gets the path's groups, the query (dict of lists) and the JSON body and returns
    the JSON answer, or raises `ApiError`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.routes: list[Route] = []
        self.requests: list[tuple[float, str, str]] = []  # (monotonic time, method, path)
        self.refused: list[tuple[str, str, str]] = []  # (method, path, message) of 4xx answers
        self.authorized: list[str] = []  # paths of the requests that carried a bearer token
        self.lock = threading.RLock()
        self.route("POST", r"/v2/entries:list", self.list_log_entries)
        self.route("POST", r"/token", self.token)
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _serve(self, method: str) -> None:
                double._dispatch(self, method)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, name=type(self).__name__, daemon=True
        )

    def route(self, method: str, pattern: str, handler: Callable[..., Any]) -> None:
        self.routes.append((method, re.compile(pattern + r"\Z"), handler))

    def start(self) -> GcpDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for run in self.all_runs():
            run.kill()

    def all_runs(self) -> list[Run]:
        return []

    def count(self, method: str, pattern: str, since: float = 0.0) -> int:
        """How many requests matched `method` and the path regex `pattern` after `since`."""
        rx = re.compile(pattern)
        with self.lock:
            return sum(1 for t, m, p in self.requests if t >= since and m == method and rx.search(p))

    def _dispatch(self, http: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(http.path)
        path, query = url.path, parse_qs(url.query)
        with self.lock:
            self.requests.append((time.monotonic(), method, path))
            if (http.headers.get("Authorization") or "").startswith("Bearer "):
                self.authorized.append(path)
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        status, answer = 200, {}
        try:
            try:
                if "x-www-form-urlencoded" in (http.headers.get("Content-Type") or ""):
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                else:
                    body = json.loads(raw) if raw else {}
            except ValueError:
                raise invalid("Invalid JSON payload received.") from None
            if not isinstance(body, dict):
                raise invalid("Invalid JSON payload received. Expected an object.")
            for verb, rx, handler in self.routes:
                match = rx.match(path)
                if match and verb == method:
                    with self.lock:
                        answer = handler(*match.groups(), query=query, body=body)
                    break
            else:
                raise ApiError(404, f"The requested URL {path} was not found on this server ({method}).")
        except ApiError as err:
            status = err.code
            answer = {"error": {"code": err.code, "message": str(err), "status": err.status}}
            with self.lock:
                self.refused.append((method, path, str(err)))
        data = json.dumps(answer).encode()
        http.send_response(status)
        http.send_header("Content-Type", "application/json; charset=UTF-8")
        http.send_header("Content-Length", str(len(data)))
        http.end_headers()
        http.wfile.write(data)

    def status_times(self, task_name: str) -> list[float]:
        """Monotonic times of the status requests (GETs) of the job that runs `task_name`."""
        path = self.status_path(task_name)
        with self.lock:
            return [t for t, m, p in self.requests if m == "GET" and path and p == path]

    def status_path(self, task_name: str) -> str | None:
        """The request path of the status of `task_name`'s job (subclasses say)."""
        return None

    def started(self) -> list[str]:
        """The task names whose container the double started, in order (subclasses say)."""
        return []

    # -- OAuth: the token endpoint of a service account key file ------------------------------------
    def token(self, *, query: Any, body: dict[str, Any]) -> dict[str, Any]:
        grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
        if body.get("grant_type") != grant or not body.get("assertion"):
            raise ApiError(400, "invalid_request: a jwt-bearer grant with an assertion is required")
        return {"access_token": f"double-{uuid.uuid4().hex}", "expires_in": 3600, "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/cloud-platform"}

    def adc_file(self, folder: Path) -> Path:
        """A service account key file for GOOGLE_APPLICATION_CREDENTIALS whose `token_uri` is this
        double (a fresh RSA key; no real Google account): Application Default Credentials then
        sign their requests with tokens the double issues, or with self-signed JWTs."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        path = folder / f"adc-{type(self).__name__}.json"
        path.write_text(json.dumps({
            "type": "service_account", "project_id": "acme-agents", "private_key_id": uuid.uuid4().hex,
            "private_key": pem, "client_email": "kitaru-tests@acme-agents.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": f"{self.url}/token",
        }))
        return path

    # -- Cloud Logging: entries:list ------------------------------------------------------------
    def log_entries(self) -> list[dict[str, Any]]:
        """Every log entry the double's runs produced (subclasses say how they are labelled)."""
        return []

    def list_log_entries(self, *, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        names = require(body, "resourceNames")
        if not all(re.fullmatch(r"projects/[^/]+", n) for n in names):
            raise invalid(f"Invalid resource name in resourceNames: {names}")
        clauses = parse_filter(body.get("filter", ""))
        projects = {n.split("/")[1] for n in names}
        entries = [e for e in self.log_entries()
                   if e["logName"].split("/")[1] in projects and all(c(e) for c in clauses)]
        if body.get("orderBy", "timestamp asc") == "timestamp desc":
            entries.reverse()
        size = int(body.get("pageSize") or 1000)
        start = int(body.get("pageToken") or 0)
        page = {"entries": entries[start:start + size]}
        if start + size < len(entries):
            page["nextPageToken"] = str(start + size)
        return page


_CLAUSE = re.compile(r'^\s*([A-Za-z_][\w.]*(?:\."[^"]+")?)\s*(=|>=|<=|>|<)\s*"((?:[^"\\]|\\.)*)"\s*$')


def parse_filter(text: str) -> list[Callable[[dict[str, Any]], bool]]:
    """The logging query language's `field OP "value"` clauses joined by AND (what the targets
    send); anything else is refused as Cloud Logging refuses a query it cannot parse."""
    clauses = []
    for part in [p for p in re.split(r"\s+AND\s+", text.strip()) if p] if text.strip() else []:
        match = _CLAUSE.match(part)
        if not match:
            raise invalid(f"Unparseable filter: syntax error at {part!r}")
        field_path, op, value = match.groups()
        clauses.append(_clause(field_path, op, value))
    return clauses


def _clause(path: str, op: str, value: str) -> Callable[[dict[str, Any]], bool]:
    parts = re.findall(r'"[^"]+"|[^.]+', path)
    keys = [p.strip('"') for p in parts]

    def get(entry: dict[str, Any]) -> Any:
        cur: Any = entry
        for key in keys:
            cur = cur.get(key) if isinstance(cur, dict) else None
        return cur

    def test(entry: dict[str, Any]) -> bool:
        found = get(entry)
        if found is None:
            return False
        return {"=": found == value, ">=": found >= value, "<=": found <= value,
                ">": found > value, "<": found < value}[op]

    return test
