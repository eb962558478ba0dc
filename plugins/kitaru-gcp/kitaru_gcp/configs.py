"""Config models of the Google Cloud flavors (imported when flavors are listed: keep light)."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from kitaru_core.interfaces import FlavorConfig, Resources
from kitaru_core.stores import FsspecStoreConfig


class GcsStoreConfig(FsspecStoreConfig):
    """A GCS bucket and prefix. Credentials come from Application Default Credentials
    (GOOGLE_APPLICATION_CREDENTIALS, gcloud's login, the metadata server of a GCP runtime),
    never from the stack file."""

    schemes: ClassVar[tuple[str, ...]] = ("gs", "gcs")

    path: str = Field(description="gs://bucket/prefix where artifacts live")
    project: str | None = Field(default=None, description="Project billed for requests; default ambient")
    endpoint_url: str | None = Field(
        default=None, description="A GCS-compatible endpoint (an emulator); default Google's"
    )
    token: str | None = Field(
        default=None,
        description="How to authenticate: google_default, cloud, anon, or the path of a service "
        "account key file; default gcsfs's ambient chain",
    )


class GcpJobTargetConfig(FlavorConfig):
    """What the `vertex` and `cloud-run` targets share: where jobs run, in which image, as whom.

    Credentials come from Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS,
    gcloud's login, workload identity, the metadata server), never from the stack file.
    """

    project: str = Field(description="Project the jobs run in (and are billed to)")
    region: str = Field(description="Region of the jobs, e.g. europe-west4")
    image: str = Field(description="Container image with kitaru, its plugins and the project's dependencies")
    python: str = Field(default="python", description="Python command inside the image")
    resources: Resources = Field(
        default_factory=Resources,
        description="Default resources of every call (cpu, memory, gpu, accelerator, disk); "
        "a checkpoint's own resources override them",
    )
    service_account: str | None = Field(
        default=None, description="Service account email the jobs run as; default the platform's"
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables (no secrets)")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on every job")
    poll_cap: float = Field(
        default=10.0, ge=1.0, le=60.0,
        description="Longest pause in seconds between two status requests of a running job",
    )
    api_endpoint: str | None = Field(
        default=None,
        description="The API's endpoint (scheme://host:port); empty or unset: Google's for the region",
    )
    logging_endpoint: str | None = Field(
        default=None, description="Cloud Logging's endpoint; empty or unset: Google's"
    )
    credentials: Literal["default", "anonymous"] = Field(
        default="default",
        description="`default`: Application Default Credentials; `anonymous`: none (a local emulator only)",
    )

    @field_validator("api_endpoint", "logging_endpoint", "service_account", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(text):
                raise ValueError(
                    f"label {key}={text!r} is not a GCP label: keys start with a lowercase letter, "
                    "keys and values have at most 63 lowercase letters, digits, '-' or '_'"
                )
        return value


class VertexTargetConfig(GcpJobTargetConfig):
    """The `vertex` execution target: one Vertex AI custom job per isolated checkpoint call."""

    machine_type: str = Field(
        default="n1-standard-4",
        description="Machine type of a call that asks for no more cpu/memory than it has; a call that "
        "asks for more gets the smallest machine of the same family that fits",
    )
    boot_disk_type: str = Field(default="pd-ssd", description="pd-ssd or pd-standard")
    network: str | None = Field(
        default=None, description="VPC network to peer with: projects/<number>/global/networks/<name>"
    )
    spot: bool = Field(default=False, description="Run on Spot VMs (cheaper; may be preempted)")


class CloudRunTargetConfig(GcpJobTargetConfig):
    """The `cloud-run` execution target: one Cloud Run job per stack and image, one execution per call."""

    task_timeout: int = Field(
        default=86400, ge=1, le=604800,
        description="Seconds a call may run when its checkpoint sets no timeout (Cloud Run's default: 600)",
    )
    network: str | None = Field(default=None, description="VPC network for Direct VPC egress")
    subnetwork: str | None = Field(default=None, description="Subnetwork for Direct VPC egress")
    vpc_connector: str | None = Field(
        default=None, description="Serverless VPC Access connector: projects/<p>/locations/<r>/connectors/<c>"
    )


_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
