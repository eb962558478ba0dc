"""The batch/v1 Job manifest kitaru submits, as a plain dict, and the names and labels on it."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from .configs import KubernetesJobConfig

LABEL_PREFIX = "kitaru.dev"
#: Labels every kitaru Job (and its pods) carries; a restarted runner lists Jobs by them.
EXECUTION_LABEL = f"{LABEL_PREFIX}/execution"
TASK_LABEL = f"{LABEL_PREFIX}/task"
ATTEMPT_LABEL = f"{LABEL_PREFIX}/attempt"
ROLE_LABEL = f"{LABEL_PREFIX}/role"  # "call" (execution target) or "flow" (orchestrator)
JOB_LABEL = f"{LABEL_PREFIX}/job"  # on pods: the Job that owns them
CONTAINER_NAME = "kitaru"

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")


def job_name(role: str, task_name: str) -> str:
    """A valid, deterministic Job name for a task: the same task always maps to the same Job.

    DNS-1123 label of at most 63 characters: a readable prefix from the task name plus
    a hash of the whole name, so two task names never share a Job.
    """
    digest = hashlib.sha256(f"{role}:{task_name}".encode()).hexdigest()[:10]
    readable = _NOT_DNS.sub("-", task_name.lower()).strip("-")[:40].strip("-")
    return f"kitaru-{role}-{readable}-{digest}" if readable else f"kitaru-{role}-{digest}"


def env_secret_name(job: str) -> str:
    """The Secret holding the `env_from_runner` values of Job `job`."""
    return f"{job}-env"


def env_secret_manifest(namespace: str, job: str, values: dict[str, str]) -> dict[str, Any]:
    """The Secret with the `env_from_runner` values of Job `job` (an owner reference to the Job
    is added once it exists, so that deleting the Job deletes the Secret)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": env_secret_name(job), "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "kitaru", JOB_LABEL: job}},
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in sorted(values.items())},
    }


def label_value(value: str) -> str:
    """`value` made a valid label value (at most 63 characters, alphanumeric at both ends)."""
    cleaned = _NOT_LABEL.sub("-", value)[:63]
    return cleaned.strip("-_.")


def job_manifest(
    config: KubernetesJobConfig,
    *,
    name: str,
    command: list[str],
    env: dict[str, str],
    labels: dict[str, str],
    working_dir: str | None = None,
    image: str | None = None,
    resources: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The Job running `command` once: `backoffLimit: 0` and `restartPolicy: Never`,
    because kitaru decides about retries itself."""
    all_labels = {
        "app.kubernetes.io/managed-by": "kitaru",
        **config.labels,
        **{key: label_value(value) for key, value in labels.items()},
    }
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image or config.image,
        "command": command,
        "env": [{"name": key, "value": value} for key, value in sorted({**config.env, **env}.items())],
    }
    env_from = [{"secretRef": {"name": secret}} for secret in config.env_from_secrets]
    if config.env_from_runner:  # the values are in the Job's own Secret, never in this manifest
        env_from.append({"secretRef": {"name": env_secret_name(name)}})
    if env_from:
        container["envFrom"] = env_from
    chosen = config.resources if resources is None else resources
    if chosen:
        container["resources"] = {kind: dict(values) for kind, values in chosen.items()}
    if config.image_pull_policy:
        container["imagePullPolicy"] = config.image_pull_policy
    if working_dir:
        container["workingDir"] = working_dir
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if config.service_account:
        pod_spec["serviceAccountName"] = config.service_account
    if config.node_selector:
        pod_spec["nodeSelector"] = dict(config.node_selector)
    if config.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in config.tolerations]
    if config.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": secret} for secret in config.image_pull_secrets]
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "template": {
            "metadata": {"labels": {**all_labels, JOB_LABEL: name}},
            "spec": pod_spec,
        },
    }
    if config.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = config.ttl_seconds_after_finished
    if config.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = config.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": config.namespace, "labels": all_labels},
        "spec": job_spec,
    }
