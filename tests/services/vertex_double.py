"""A Vertex AI double on 127.0.0.1: the `customJobs` REST endpoints (v1) the `vertex` target
calls through `aiplatform_v1.JobServiceClient(transport="rest")`, plus Cloud Logging's
`entries:list` for the jobs' output (see gcp_double.py for what every double does).

Served: `POST/GET .../customJobs` (create, list with a `display_name`/`labels` filter),
`GET .../customJobs/{id}`, `POST .../customJobs/{id}:cancel`. A created job is PENDING, then
RUNNING while its one replica's `containerSpec.command + args` runs as a local process, then
SUCCEEDED or FAILED by the exit code (FAILED with DEADLINE_EXCEEDED past `scheduling.timeout`),
or CANCELLING then CANCELLED. `lose(name)` deletes a job as if someone removed it, and
`fail_capacity(name)` ends it the way a stockout does.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from .gcp_double import (
    ApiError,
    GcpDouble,
    Run,
    check_env,
    check_labels,
    duration_seconds,
    int64,
    invalid,
    now,
    require,
)

PARENT = r"/v1/projects/([^/]+)/locations/([^/]+)"
ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}
#: Output-only fields a client must not set (the API ignores them; the target never sends them).
OUTPUT_ONLY = ("name", "state", "createTime", "startTime", "endTime", "updateTime", "error")


class VertexDouble(GcpDouble):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.jobs: dict[str, dict[str, Any]] = {}  # full name -> CustomJob JSON
        self.runs: dict[str, Run] = {}
        self.route("POST", PARENT + r"/customJobs", self.create)
        self.route("GET", PARENT + r"/customJobs", self.list)
        self.route("GET", PARENT + r"/customJobs/([^/:]+)", self.get)
        self.route("POST", PARENT + r"/customJobs/([^/:]+):cancel", self.cancel)

    def all_runs(self) -> list[Run]:
        return list(self.runs.values())

    def started(self) -> list[str]:
        with self.lock:
            return [self.jobs[n]["displayName"] for n in self.runs if n in self.jobs]

    def status_path(self, task_name: str) -> str | None:
        with self.lock:
            name = next((n for n, j in self.jobs.items() if j.get("displayName") == task_name), None)
        return f"/v1/{name}" if name else None

    # -- test hooks -----------------------------------------------------------------------------
    def lose(self, name: str) -> None:
        """Delete the job (its process is killed), as someone removing it in the console."""
        with self.lock:
            self.jobs.pop(name, None)
            run = self.runs.pop(name, None)
        if run is not None:
            run.kill()

    def fail_capacity(self, name: str) -> None:
        """End the job the way a stockout of its machine type does (RESOURCE_EXHAUSTED)."""
        with self.lock:
            job = self.jobs[name]
            job["_capacity"] = True
            run = self.runs.get(name)
        if run is not None:
            run.kill()

    # -- endpoints ------------------------------------------------------------------------------
    def create(self, project: str, location: str, *, query: Any, body: dict[str, Any]) -> dict[str, Any]:
        require(body, "displayName")
        if len(body["displayName"]) > 128:
            raise invalid("displayName is longer than 128 characters")
        pools = require(body, "jobSpec.workerPoolSpecs")
        check_labels(body.get("labels"), "custom_job.labels")
        pool = pools[0]
        for i, spec in enumerate(pools):
            where = f"jobSpec.workerPoolSpecs[{i}]"
            require(spec, "machineSpec.machineType")
            if int64(spec.get("replicaCount", 0), f"{where}.replicaCount") < 1:
                raise invalid(f"{where}.replicaCount must be at least 1")
            if not (spec.get("containerSpec") or {}).get("imageUri") and "pythonPackageSpec" not in spec:
                raise invalid(f"Required field {where}.containerSpec.imageUri is not specified")
            machine = spec["machineSpec"]
            if machine.get("acceleratorCount") and not machine.get("acceleratorType"):
                raise invalid(f"{where}.machineSpec.acceleratorType must be set with acceleratorCount")
            disk = spec.get("diskSpec") or {}
            if "bootDiskSizeGb" in disk and not 100 <= int(disk["bootDiskSizeGb"]) <= 64000:
                raise invalid(f"{where}.diskSpec.bootDiskSizeGb must be in [100, 64000]")
            check_env((spec.get("containerSpec") or {}).get("env"), f"{where}.containerSpec.env")
        timeout = None
        scheduling = body["jobSpec"].get("scheduling") or {}
        if "timeout" in scheduling:
            timeout = duration_seconds(scheduling["timeout"], "job_spec.scheduling.timeout")
        job_id = str(random.randrange(10**18, 10**19))
        name = f"projects/{project}/locations/{location}/customJobs/{job_id}"
        job = {k: v for k, v in body.items() if k not in OUTPUT_ONLY}
        job.update(name=name, state="JOB_STATE_PENDING", createTime=now(), updateTime=now())
        self.jobs[name] = job
        container = pool["containerSpec"]
        run = Run(
            key=job_id, argv=[*container.get("command", []), *container.get("args", [])],
            env=check_env(container.get("env"), "containerSpec.env"), log=self.root / f"{job_id}.log",
            timeout=timeout, on_end=self._ended,
        )
        self.runs[name] = run
        run.start()
        job.update(state="JOB_STATE_RUNNING", startTime=run.started_at, updateTime=now())
        return self._public(job)

    def list(self, project: str, location: str, *, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
        prefix = f"projects/{project}/locations/{location}/"
        tests = parse_job_filter(query.get("filter", [""])[0])
        found = [self._public(j) for n, j in self.jobs.items()
                 if n.startswith(prefix) and all(t(j) for t in tests)]
        size = int(query.get("pageSize", ["100"])[0])
        start = int(query.get("pageToken", ["0"])[0])
        page: dict[str, Any] = {}
        if found[start:start + size]:
            page["customJobs"] = found[start:start + size]
        if start + size < len(found):
            page["nextPageToken"] = str(start + size)
        return page

    def get(self, project: str, location: str, job_id: str, *, query: Any, body: Any) -> dict[str, Any]:
        return self._public(self._job(project, location, job_id))

    def cancel(self, project: str, location: str, job_id: str, *, query: Any, body: Any) -> dict[str, Any]:
        job = self._job(project, location, job_id)
        if job["state"] in ENDED:
            raise ApiError(400, f"Cannot cancel job {job['name']} in state {job['state']}.",
                           "FAILED_PRECONDITION")
        job.update(state="JOB_STATE_CANCELLING", updateTime=now())
        run = self.runs.get(job["name"])
        if run is not None:
            run.cancelled = True
            run.kill()
        return {}

    # -- state ----------------------------------------------------------------------------------
    def _job(self, project: str, location: str, job_id: str) -> dict[str, Any]:
        name = f"projects/{project}/locations/{location}/customJobs/{job_id}"
        if name not in self.jobs:
            raise ApiError(404, f'The CustomJob "{name}" does not exist.')
        return self.jobs[name]

    def _public(self, job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _ended(self, run: Run) -> None:
        with self.lock:
            name = next((n for n, r in self.runs.items() if r is run), None)
            job = self.jobs.get(name or "")
            if job is None:
                return
            if job.pop("_capacity", False):
                state, error = "JOB_STATE_FAILED", {"code": 8, "message": "Resources are insufficient in "
                                                    "the region for the machine type."}
            elif run.cancelled:
                state, error = "JOB_STATE_CANCELLED", {"code": 1, "message": "CANCELED"}
            elif run.timed_out:
                state, error = "JOB_STATE_FAILED", {"code": 4, "message": "Job exceeded the timeout."}
            elif run.exit_code == 0:
                state, error = "JOB_STATE_SUCCEEDED", None
            else:
                state, error = "JOB_STATE_FAILED", {
                    "code": 3, "message": f"The replica workerpool0-0 exited with a non-zero status of "
                                          f"{run.exit_code}."}
            job.update(state=state, endTime=run.ended_at, updateTime=now())
            if error:
                job["error"] = error

    def log_entries(self) -> list[dict[str, Any]]:
        entries = []
        for name, run in list(self.runs.items()):
            project, job_id = name.split("/")[1], name.rsplit("/", 1)[-1]
            for i, (stamp, line) in enumerate(run.output_lines()):
                entries.append({
                    "logName": f"projects/{project}/logs/workerpool0-0",
                    "resource": {"type": "ml_job", "labels": {"job_id": job_id, "project_id": project,
                                                              "task_name": "workerpool0-0"}},
                    "textPayload": line, "timestamp": stamp, "insertId": f"{job_id}-{i}",
                    "severity": "INFO",
                })
        return entries


_JOB_CLAUSE = re.compile(r'^\s*(display_name|labels\.[a-z][a-z0-9_-]*|state)\s*=\s*"([^"]*)"\s*$')


def parse_job_filter(text: str) -> list[Any]:
    """The list filter of `customJobs.list`: `display_name`, `state` and `labels.KEY` equalities
    joined by AND; anything else is refused."""
    tests = []
    for part in re.split(r"\s+AND\s+", text.strip()) if text.strip() else []:
        match = _JOB_CLAUSE.match(part)
        if not match:
            raise invalid(f"Unsupported filter: {part!r}")
        field, value = match.groups()
        if field == "display_name":
            tests.append(lambda j, v=value: j.get("displayName") == v)
        elif field == "state":
            tests.append(lambda j, v=value: j.get("state") == v)
        else:
            tests.append(lambda j, k=field[7:], v=value: (j.get("labels") or {}).get(k) == v)
    return tests
