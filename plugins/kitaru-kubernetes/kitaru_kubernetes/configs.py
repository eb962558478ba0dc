"""Config models of the `kubernetes` flavors (imported when flavors are listed: keep light)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from kitaru_core.config_types import AbsolutePath
from kitaru_core.interfaces import FlavorConfig

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class KubernetesJobConfig(FlavorConfig):
    """Where and how each Job runs; shared by the orchestrator and the execution target."""

    namespace: str = Field(default="default", description="Namespace the Jobs are created in")
    image: str = Field(description="Container image with kitaru and the project's dependencies")
    kubeconfig: AbsolutePath | None = Field(
        default=None,
        description="kubeconfig file; default: in-cluster credentials, else ~/.kube/config",
    )
    context: str | None = Field(default=None, description="kubeconfig context; default its current one")
    python: str = Field(default="python", description="Python command inside the image")
    service_account: str | None = Field(default=None, description="serviceAccountName of each pod")
    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of each pod")
    tolerations: list[dict[str, Any]] = Field(default_factory=list, description="Tolerations of each pod")
    image_pull_secrets: list[str] = Field(default_factory=list, description="Secrets to pull the image")
    image_pull_policy: str | None = Field(default=None, description="Always, IfNotPresent or Never")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables")
    env_from_secrets: list[str] = Field(
        default_factory=list, description="Secrets whose keys all become environment variables"
    )
    env_from_runner: list[str] = Field(
        default_factory=list,
        description="Environment variables copied from the runner's environment into a Secret of "
        "each Job (deleted with it); the Job's manifest names the Secret, never a value",
    )
    resources: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description='Container resources, e.g. {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}',
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on Jobs and pods")
    ttl_seconds_after_finished: int | None = Field(
        default=3600, ge=0, description="Seconds a finished Job (and its logs) is kept; None: forever"
    )
    active_deadline_seconds: int | None = Field(
        default=None, gt=0, description="Seconds after which Kubernetes stops a Job; None: no limit"
    )

    @field_validator("env_from_runner")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not _ENV_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an environment variable name (letters, digits, '_')")
        return value


class KubernetesTargetConfig(KubernetesJobConfig):
    """The `kubernetes` execution target: one Job per isolated checkpoint call."""


class KubernetesOrchestratorConfig(KubernetesJobConfig):
    """The `kubernetes` orchestrator: one Job per launch of the flow body."""

    working_dir: str | None = Field(
        default=None, description="Working directory of the runner in the image; default its WORKDIR"
    )
