"""A Cloud Run double on 127.0.0.1: the Admin API v2 REST endpoints the `cloud-run` target calls
through `run_v2.JobsClient` / `ExecutionsClient` (`transport="rest"`), plus Cloud Logging's
`entries:list` for the executions' output (see gcp_double.py for what every double does).

Served: jobs create (`?jobId=`, a long-running operation, done at once), get, list and `:run`
(an operation whose metadata is the new Execution; done when the execution ends); executions
list, get and `:cancel`; operations get. An execution runs the job's container with the run's
overrides (args replaced, env merged, timeout) as a local process; its template records the
overrides, as Cloud Run's does. `lose(name)` deletes an execution as if someone removed it.
"""

from __future__ import annotations

import copy
import random
import re
import string
import uuid
from pathlib import Path
from typing import Any

from .gcp_double import (
    ApiError,
    GcpDouble,
    Run,
    check_env,
    check_labels,
    duration_seconds,
    invalid,
    now,
    require,
)

LOC = r"/v2/projects/([^/]+)/locations/([^/]+)"
JOB_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
TYPE = "type.googleapis.com/google.cloud.run.v2."


class CloudRunDouble(GcpDouble):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.jobs: dict[str, dict[str, Any]] = {}
        self.executions: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, Run] = {}
        self.operations: dict[str, dict[str, Any]] = {}  # name -> {"op": ..., "execution": name}
        self.route("POST", LOC + r"/jobs", self.create_job)
        self.route("GET", LOC + r"/jobs", self.list_jobs)
        self.route("GET", LOC + r"/jobs/([^/:]+)", self.get_job)
        self.route("POST", LOC + r"/jobs/([^/:]+):run", self.run_job)
        self.route("GET", LOC + r"/jobs/([^/:]+)/executions", self.list_executions)
        self.route("GET", LOC + r"/jobs/([^/:]+)/executions/([^/:]+)", self.get_execution)
        self.route("POST", LOC + r"/jobs/([^/:]+)/executions/([^/:]+):cancel", self.cancel_execution)
        self.route("GET", LOC + r"/operations/([^/:]+)", self.get_operation)

    def all_runs(self) -> list[Run]:
        return list(self.runs.values())

    def started(self) -> list[str]:
        with self.lock:
            return [task for n in self.runs if (task := self._task_of(n))]

    def status_path(self, task_name: str) -> str | None:
        with self.lock:
            name = next((n for n in self.executions if self._task_of(n) == task_name), None)
        return f"/v2/{name}" if name else None

    def _task_of(self, execution: str) -> str | None:
        found = self.executions.get(execution)
        for container in (found or {}).get("template", {}).get("containers", []):
            for var in container.get("env") or []:
                if var.get("name") == "KITARU_TASK_NAME":
                    return var.get("value")
        return None

    # -- test hooks -----------------------------------------------------------------------------
    def lose(self, name: str) -> None:
        """Delete the execution (its process is killed), as someone removing it."""
        with self.lock:
            self.executions.pop(name, None)
            run = self.runs.pop(name, None)
        if run is not None:
            run.kill()

    # -- jobs -----------------------------------------------------------------------------------
    def create_job(self, project: str, location: str, *, query: dict[str, list[str]],
                   body: dict[str, Any]) -> dict[str, Any]:
        job_id = (query.get("jobId") or [""])[0]
        if not job_id:
            raise invalid("Required field job_id is not specified")
        if not JOB_ID.fullmatch(job_id):
            raise invalid(f"Invalid job_id {job_id!r}: lowercase letters, digits and '-', at most 63")
        if body.get("name"):
            raise invalid("Job.name must be empty on create: the name comes from job_id")
        containers = require(body, "template.template.containers")
        for i, container in enumerate(containers):
            if not container.get("image"):
                raise invalid(f"Required field template.template.containers[{i}].image is not specified")
            check_env(container.get("env"), f"template.template.containers[{i}].env")
        check_labels(body.get("labels"), "job.labels")
        task = body["template"]["template"]
        if "timeout" in task:
            duration_seconds(task["timeout"], "job.template.template.timeout")
        name = f"projects/{project}/locations/{location}/jobs/{job_id}"
        if name in self.jobs:
            raise ApiError(409, f"Resource '{job_id}' already exists.")
        job = {**body, "name": name, "uid": str(uuid.uuid4()), "generation": "1", "createTime": now(),
               "updateTime": now(), "launchStage": body.get("launchStage", "GA"), "etag": '"1"'}
        self.jobs[name] = job
        return self._operation(project, location, done=True, metadata=("Job", job), response=("Job", job))

    def get_job(self, project: str, location: str, job_id: str, *, query: Any, body: Any) -> dict[str, Any]:
        return self._job(project, location, job_id)

    def list_jobs(self, project: str, location: str, *, query: Any, body: Any) -> dict[str, Any]:
        prefix = f"projects/{project}/locations/{location}/jobs/"
        jobs = [j for n, j in self.jobs.items() if n.startswith(prefix)]
        return {"jobs": jobs} if jobs else {}

    def run_job(self, project: str, location: str, job_id: str, *, query: Any,
                body: dict[str, Any]) -> dict[str, Any]:
        job = self._job(project, location, job_id)
        task = copy.deepcopy(job["template"]["template"])
        overrides = body.get("overrides") or {}
        names = {c.get("name") for c in task["containers"]}
        timeout = duration_seconds(task.get("timeout", "600s"), "job.template.template.timeout")
        for i, override in enumerate(overrides.get("containerOverrides") or []):
            if override.get("name") not in names:
                raise invalid(f"overrides.container_overrides[{i}].name {override.get('name')!r} is not a "
                              "container of the job")
            container = next(c for c in task["containers"] if c.get("name") == override["name"])
            if override.get("args") or override.get("clearArgs"):
                container["args"] = list(override.get("args") or [])
            merged = {**check_env(container.get("env"), "env"),
                      **check_env(override.get("env"), f"overrides.container_overrides[{i}].env")}
            container["env"] = [{"name": k, "value": v} for k, v in merged.items()]
        if "timeout" in overrides:
            timeout = duration_seconds(overrides["timeout"], "overrides.timeout")
            task["timeout"] = overrides["timeout"]
        if int(overrides.get("taskCount", 1)) != 1:
            raise invalid("the double runs one task per execution")
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        execution_id = f"{job_id}-{suffix}"[-63:]
        name = f"{job['name']}/executions/{execution_id}"
        container = task["containers"][0]
        execution = {
            "name": name, "uid": str(uuid.uuid4()), "job": job_id, "createTime": now(), "updateTime": now(),
            "generation": "1", "taskCount": 1, "parallelism": 1, "template": task, "labels": {
                "run.googleapis.com/jobUid": job["uid"]}, "launchStage": "GA",
            "logUri": f"https://console.cloud.google.com/logs/viewer?project={project}",
            "conditions": [{"type": "Completed", "state": "CONDITION_PENDING"}],
            "etag": '"1"',
        }
        self.executions[name] = execution
        run = Run(key=execution_id, argv=[*container.get("command", []), *container.get("args", [])],
                  env=check_env(container.get("env"), "env"), log=self.root / f"{execution_id}.log",
                  timeout=timeout, on_end=self._ended)
        self.runs[name] = run
        run.start()
        execution.update(startTime=run.started_at, runningCount=1, updateTime=now())
        return self._operation(project, location, done=False, metadata=("Execution", execution),
                               execution=name)

    # -- executions -----------------------------------------------------------------------------
    def list_executions(self, project: str, location: str, job_id: str, *, query: Any,
                        body: Any) -> dict[str, Any]:
        job = self._job(project, location, job_id)
        found = [e for n, e in self.executions.items() if n.startswith(job["name"] + "/")]
        found.reverse()  # newest first
        return {"executions": found} if found else {}

    def get_execution(self, project: str, location: str, job_id: str, execution_id: str, *, query: Any,
                      body: Any) -> dict[str, Any]:
        return self._execution(project, location, job_id, execution_id)

    def cancel_execution(self, project: str, location: str, job_id: str, execution_id: str, *,
                         query: Any, body: Any) -> dict[str, Any]:
        execution = self._execution(project, location, job_id, execution_id)
        if execution.get("completionTime"):
            raise ApiError(400, f"Execution {execution_id} has already completed.", "FAILED_PRECONDITION")
        run = self.runs.get(execution["name"])
        if run is not None:
            run.cancelled = True
            run.kill()
        return self._operation(project, location, done=False, metadata=("Execution", execution),
                               execution=execution["name"])

    def get_operation(
        self, project: str, location: str, op_id: str, *, query: Any, body: Any
    ) -> dict[str, Any]:
        name = f"projects/{project}/locations/{location}/operations/{op_id}"
        if name not in self.operations:
            raise ApiError(404, f"Operation {name} not found.")
        entry = self.operations[name]
        op = entry["op"]
        execution = self.executions.get(entry.get("execution") or "")
        if execution is not None:
            op["metadata"] = {"@type": TYPE + "Execution", **execution}
            if execution.get("completionTime"):
                op["done"] = True
                op["response"] = {"@type": TYPE + "Execution", **execution}
        return op

    # -- state ----------------------------------------------------------------------------------
    def _operation(self, project: str, location: str, *, done: bool, metadata: tuple[str, dict[str, Any]],
                   response: tuple[str, dict[str, Any]] | None = None, execution: str | None = None
                   ) -> dict[str, Any]:
        name = f"projects/{project}/locations/{location}/operations/{uuid.uuid4()}"
        op: dict[str, Any] = {"name": name, "done": done,
                              "metadata": {"@type": TYPE + metadata[0], **metadata[1]}}
        if response is not None:
            op["response"] = {"@type": TYPE + response[0], **response[1]}
        self.operations[name] = {"op": op, "execution": execution}
        return op

    def _job(self, project: str, location: str, job_id: str) -> dict[str, Any]:
        name = f"projects/{project}/locations/{location}/jobs/{job_id}"
        if name not in self.jobs:
            raise ApiError(404, f"Resource '{job_id}' of kind 'JOB' in region '{location}' in project "
                                f"'{project}' does not exist.")
        return self.jobs[name]

    def _execution(self, project: str, location: str, job_id: str, execution_id: str) -> dict[str, Any]:
        name = f"projects/{project}/locations/{location}/jobs/{job_id}/executions/{execution_id}"
        if name not in self.executions:
            raise ApiError(404, f"Resource '{execution_id}' of kind 'EXECUTION' does not exist.")
        return self.executions[name]

    def _ended(self, run: Run) -> None:
        with self.lock:
            name = next((n for n, r in self.runs.items() if r is run), None)
            execution = self.executions.get(name or "")
            if execution is None:
                return
            execution.update(runningCount=0, completionTime=run.ended_at, updateTime=now())
            if run.cancelled:
                execution["cancelledCount"] = 1
                condition = {"state": "CONDITION_FAILED", "message": "The execution was cancelled."}
            elif run.exit_code == 0:
                execution["succeededCount"] = 1
                condition = {"state": "CONDITION_SUCCEEDED", "message": "Execution completed successfully."}
            else:
                execution["failedCount"] = 1
                why = ("The task has been cancelled after reaching its timeout." if run.timed_out
                       else f"Task {execution['name'].rsplit('/', 1)[-1]}-task0 failed with exit code "
                            f"{run.exit_code}.")
                condition = {"state": "CONDITION_FAILED", "message": why}
            execution["conditions"] = [{"type": "Completed", "lastTransitionTime": now(), **condition}]

    def log_entries(self) -> list[dict[str, Any]]:
        entries = []
        for name, run in list(self.runs.items()):
            parts = name.split("/")
            project, location, job_id, execution_id = parts[1], parts[3], parts[5], parts[7]
            for i, (stamp, line) in enumerate(run.output_lines()):
                entries.append({
                    "logName": f"projects/{project}/logs/run.googleapis.com%2Fstdout",
                    "resource": {"type": "cloud_run_job", "labels": {
                        "job_name": job_id, "location": location, "project_id": project}},
                    "labels": {"run.googleapis.com/execution_name": execution_id,
                               "run.googleapis.com/task_index": "0", "run.googleapis.com/task_attempt": "0"},
                    "textPayload": line, "timestamp": stamp, "insertId": f"{execution_id}-{i}",
                })
        return entries
