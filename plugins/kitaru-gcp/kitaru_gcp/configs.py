"""Config models of the Google Cloud flavors (imported when flavors are listed: keep light)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

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
