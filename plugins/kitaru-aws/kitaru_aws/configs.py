"""Config models of the AWS flavors (imported when flavors are listed: keep light)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from kitaru_core.interfaces import FlavorConfig
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


class SageMakerTargetConfig(FlavorConfig):
    """The `sagemaker` execution target: one SageMaker training job per attempt of an isolated
    call, running the worker in `image`. Credentials come from the ambient AWS chain or a named
    `profile`; the job itself uses `role_arn` (it needs the artifact store's bucket)."""

    role_arn: str = Field(description="IAM role the training job runs as (reads and writes the store)")
    image: str = Field(description="ECR image with kitaru, its plugins and the project's dependencies")
    output_path: str = Field(
        description="s3://bucket/prefix for SageMaker's own output (OutputDataConfig.S3OutputPath)"
    )
    instance_type: str = Field(
        default="ml.m5.large",
        description="Instance type when a call names none and its resources fit (see docs/sagemaker.md)",
    )
    instance_count: int = Field(default=1, ge=1, description="Instances per job (each runs the worker)")
    volume_size_gb: int = Field(default=30, ge=1, description="Storage volume per instance, in GB")
    max_runtime_seconds: int = Field(
        default=86400, ge=1, description="MaxRuntimeInSeconds for a call without its own timeout"
    )
    spot: bool = Field(default=False, description="Managed spot training (EnableManagedSpotTraining)")
    max_wait_seconds: int | None = Field(
        default=None, ge=1,
        description="MaxWaitTimeInSeconds with spot (>= the runtime); default: the runtime plus 3600",
    )
    subnets: list[str] = Field(default_factory=list, description="VPC subnets of the job (VpcConfig)")
    security_group_ids: list[str] = Field(
        default_factory=list, description="VPC security groups of the job (VpcConfig)"
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Tags on every training job")
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables of the job (visible: no secrets)"
    )
    pass_env: list[str] = Field(
        default_factory=list,
        description="Runner variables the store config refers to (${env:NAME}) that are not secret "
        "and may be copied into the job's Environment",
    )
    python: str = Field(default="python", description="Python command inside the image")
    region: str | None = Field(default=None, description="AWS region; default the ambient chain's")
    profile: str | None = Field(default=None, description="A named AWS profile; default the ambient chain")
    endpoint_url: str | None = Field(
        default=None, description="SageMaker API endpoint (a VPC endpoint); default AWS's"
    )
    logs_endpoint_url: str | None = Field(
        default=None, description="CloudWatch Logs endpoint (a VPC endpoint); default AWS's"
    )
    poll_interval: float = Field(
        default=10.0, gt=0, le=60,
        description="Longest pause in seconds between two DescribeTrainingJob requests of one job",
    )

    @model_validator(mode="after")
    def _vpc_pairs(self) -> SageMakerTargetConfig:
        if bool(self.subnets) != bool(self.security_group_ids):
            raise ValueError(
                "`subnets` and `security_group_ids` go together (SageMaker's VpcConfig needs both); "
                "set both or neither"
            )
        return self
