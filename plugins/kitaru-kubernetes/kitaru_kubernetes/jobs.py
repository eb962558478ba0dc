"""Create, inspect, delete and read the logs of kitaru's Jobs through the official client."""

from __future__ import annotations

import math
import time
from typing import Any

from kitaru_core.errors import ConfigError, TaskError
from kitaru_core.interfaces import TaskState

from .configs import KubernetesJobConfig
from .manifests import JOB_LABEL, env_secret_manifest, env_secret_name

# Pod-level reasons that mean the node, not the code, ended the task: kitaru may run it again.
_LOST_POD_REASONS = {
    "Evicted", "Preempting", "NodeLost", "Shutdown", "Terminated", "UnexpectedAdmissionError",
}


class JobClient:
    """kitaru's Jobs in one namespace."""

    def __init__(self, config: KubernetesJobConfig) -> None:
        self.config = config
        self._api: Any = None

    @property
    def api(self) -> Any:
        if self._api is None:
            from .client import api_client

            self._api = api_client(self.config)
        return self._api

    def _batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api)

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def create(self, manifest: dict[str, Any], env_values: dict[str, str] | None = None) -> dict[str, Any]:
        """Create the Job, or find the one already created under its name (a repeated
        submit after a crash); return its handle.

        `env_values` (the `env_from_runner` variables) go into the Job's own Secret, created
        first and then owned by the Job, so that deleting the Job deletes it.
        """
        from kubernetes.client.exceptions import ApiException

        namespace = manifest["metadata"]["namespace"]
        name = manifest["metadata"]["name"]
        if env_values:
            self._put_secret(env_secret_manifest(namespace, name, env_values))
        try:
            job = self._batch().create_namespaced_job(namespace, manifest)
        except ApiException as exc:
            if exc.status != 409:
                raise self._error(f"cannot create Job {namespace}/{name}", exc) from exc
            job = self._batch().read_namespaced_job(name, namespace)
        if env_values:
            owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job.metadata.uid}
            try:
                self._core().patch_namespaced_secret(
                    env_secret_name(name), namespace, {"metadata": {"ownerReferences": [owner]}})
            except ApiException as exc:
                raise self._error(f"cannot make Job {namespace}/{name} the owner of its Secret", exc) from exc
        return {"namespace": namespace, "job": name, "uid": job.metadata.uid}

    def _put_secret(self, manifest: dict[str, Any]) -> None:
        """Create the Secret, or replace the one a crashed submit left under its name."""
        from kubernetes.client.exceptions import ApiException

        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            self._core().create_namespaced_secret(namespace, manifest)
        except ApiException as exc:
            if exc.status != 409:
                raise self._error(f"cannot create Secret {namespace}/{name}", exc) from exc
            try:
                self._core().replace_namespaced_secret(name, namespace, manifest)
            except ApiException as again:
                raise self._error(f"cannot replace Secret {namespace}/{name}", again) from again

    def find(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The handle of the Job `name` if it exists, else None."""
        from kubernetes.client.exceptions import ApiException

        try:
            job = self._batch().read_namespaced_job(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._error(f"cannot read Job {namespace}/{name}", exc) from exc
        return {"namespace": namespace, "job": name, "uid": job.metadata.uid}

    def state(self, handle: dict[str, Any]) -> TaskState:
        """The Job's state; a Job that is gone is `lost`, a pod the node killed is `lost`
        or `failed` with its reason."""
        from kubernetes.client.exceptions import ApiException

        try:
            job = self._batch().read_namespaced_job(handle["job"], handle["namespace"])
        except ApiException as exc:
            if exc.status == 404:
                return self._gone(handle)
            raise self._error(f"cannot read Job {handle['namespace']}/{handle['job']}", exc) from exc
        return self._verdict(handle, job)

    def watch(self, handle: dict[str, Any], timeout: float) -> TaskState | None:
        """Follow the Job with a watch for up to `timeout` seconds: its state as soon as it
        ended (or was deleted), else the last state the watch showed. None when the watch
        itself failed (the runner then sleeps and polls)."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        deadline = time.monotonic() + timeout
        watcher = watch.Watch()
        # A watch without a resourceVersion first sends the Job as it is (a synthetic ADDED
        # event), then its changes: one request covers the state now and its next change.
        stream = watcher.stream(
            self._batch().list_namespaced_job, handle["namespace"],
            field_selector=f"metadata.name={handle['job']}",
            timeout_seconds=max(1, math.ceil(timeout)),  # the server ends the stream
            _request_timeout=max(timeout, 0.05),  # and the client stops reading after as long
        )
        seen: TaskState | None = None
        try:
            for event in stream:
                job = event["object"]
                if getattr(getattr(job, "metadata", None), "name", None) != handle["job"]:
                    continue  # a server that ignores the field selector streams the namespace
                if event["type"] == "DELETED":
                    return self._gone(handle)
                seen = self._job_verdict(job)
                if seen.ended:
                    return self._verdict(handle, job)
                if time.monotonic() >= deadline:
                    break
        except (HTTPError, OSError):
            pass  # the read timed out: nothing changed within `timeout`
        except ApiException:
            return None
        finally:
            watcher.stop()
            stream.close()
        # No event at all: the Job is gone (or the server sent nothing); one read tells.
        return seen if seen is not None else self.state(handle)

    def _gone(self, handle: dict[str, Any]) -> TaskState:
        return TaskState("lost", f"Job {handle['namespace']}/{handle['job']} is gone")

    def _verdict(self, handle: dict[str, Any], job: Any) -> TaskState:
        """The state of `job`; for a failed Job, what its pod says (evicted, OOM-killed)."""
        state = self._job_verdict(job)
        if state.state == "failed":  # the pods are read only when the Job failed
            return self._pod_verdict(handle) or state
        return state

    @staticmethod
    def _job_verdict(job: Any) -> TaskState:
        """The state the Job's own status tells."""
        status = job.status
        conditions = {c.type: c for c in (status.conditions or []) if c.status == "True"} if status else {}
        if "Complete" in conditions or (status and status.succeeded):
            return TaskState("succeeded")
        if "Failed" in conditions or (status and status.failed):
            cond = conditions.get("Failed")
            reason = f"{cond.reason}: {cond.message}" if cond is not None else "the pod failed"
            return TaskState("failed", f"Job {job.metadata.name} failed ({reason})")
        if status and status.active:
            return TaskState("running")
        return TaskState("pending")

    def _pod_verdict(self, handle: dict[str, Any]) -> TaskState | None:
        """`lost` for an evicted pod, `failed` with the reason for a killed container."""
        for pod in self._pods(handle):
            st = pod.status
            if st is None or st.phase != "Failed":
                continue
            if st.reason in _LOST_POD_REASONS:
                detail = st.message or "no message"
                return TaskState("lost", f"pod {pod.metadata.name}: {st.reason} ({detail})")
            for cs in st.container_statuses or []:
                term = cs.state.terminated if cs.state else None
                if term is not None and term.reason not in (None, "Error", "Completed"):
                    return TaskState(
                        "failed", f"pod {pod.metadata.name}: {term.reason} (exit code {term.exit_code})"
                    )
        return None

    def _pods(self, handle: dict[str, Any]) -> list[Any]:
        pods = self._core().list_namespaced_pod(
            handle["namespace"], label_selector=f"{JOB_LABEL}={handle['job']}"
        ).items
        return sorted(pods, key=lambda p: p.metadata.creation_timestamp or "")

    def delete(self, handle: dict[str, Any]) -> None:
        """Delete the Job and, with it, its pods; nothing if it is gone already."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            self._batch().delete_namespaced_job(
                handle["job"], handle["namespace"],
                body=client.V1DeleteOptions(propagation_policy="Background"),
            )
        except ApiException as exc:
            if exc.status != 404:
                raise self._error(f"cannot delete Job {handle['namespace']}/{handle['job']}", exc) from exc
        if self.config.env_from_runner:  # owned by the Job, so also collected; not left if that failed
            try:
                self._core().delete_namespaced_secret(env_secret_name(handle["job"]), handle["namespace"])
            except ApiException as exc:
                if exc.status != 404:
                    raise self._error(f"cannot delete the Secret of Job {handle['job']}", exc) from exc

    def logs(self, handle: dict[str, Any]) -> str:
        """The output of the Job's pods, oldest first ("" when none is left)."""
        from kubernetes.client.exceptions import ApiException

        texts = []
        try:
            for pod in self._pods(handle):
                texts.append(self._core().read_namespaced_pod_log(pod.metadata.name, handle["namespace"]))
        except ApiException as exc:
            if exc.status != 404:
                raise self._error(f"cannot read the logs of Job {handle['job']}", exc) from exc
        return "".join(t if isinstance(t, str) else str(t) for t in texts)

    def list_labelled(self, selector: str) -> list[Any]:
        """kitaru's Jobs matching a label selector (e.g. one execution's)."""
        return self._batch().list_namespaced_job(self.config.namespace, label_selector=selector).items

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    def _error(self, what: str, exc: Exception) -> TaskError:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return TaskError(
            f"{what}: {getattr(exc, 'status', '?')} {reason}; check the namespace "
            f"{self.config.namespace!r} exists and the stack's credentials may manage Jobs there"
        )


def runner_env(config: KubernetesJobConfig) -> dict[str, str]:
    """The values of the `env_from_runner` variables in this process's environment.

    Raises `ConfigError` naming a variable that is not set, before anything is created.
    """
    import os

    missing = [name for name in config.env_from_runner if name not in os.environ]
    if missing:
        raise ConfigError(
            f"the kubernetes config's env_from_runner names {missing[0]}, but it is not set in the "
            f"runner's environment; export {missing[0]} where the runner runs, or put it in a Secret "
            "named in env_from_secrets"
        )
    return {name: os.environ[name] for name in config.env_from_runner}
