"""Config models of the AWS flavors (imported when flavors are listed: keep light)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from kitaru_core.stores import FsspecStoreConfig


class S3StoreConfig(FsspecStoreConfig):
    """An S3 bucket and prefix. Credentials come from the ambient AWS chain (environment,
    shared config and credentials files, SSO, instance or task role) or a named `profile`,
    never from the stack file."""

    schemes: ClassVar[tuple[str, ...]] = ("s3",)

    path: str = Field(description="s3://bucket/prefix where artifacts live")
    region: str | None = Field(default=None, description="AWS region of the bucket, e.g. eu-west-1")
    endpoint_url: str | None = Field(
        default=None, description="An S3-compatible endpoint (MinIO, an emulator); default AWS"
    )
    profile: str | None = Field(
        default=None, description="A named profile of the AWS config files; default the ambient chain"
    )
