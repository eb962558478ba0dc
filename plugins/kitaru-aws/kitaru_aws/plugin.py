"""Hook implementations: registers the AWS flavors (no implementation or SDK is imported here)."""

from __future__ import annotations

from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl

from .configs import S3StoreConfig, SageMakerTargetConfig


@hookimpl
def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
    registrar.add(Flavor(
        name="s3", type="artifact_store", config=S3StoreConfig,
        implementation="kitaru_aws.s3_store:S3ArtifactStore",
        description="Content-addressed objects in an S3 bucket under a prefix (s3fs).",
    ))
    registrar.add(Flavor(
        name="sagemaker", type="execution_target", config=SageMakerTargetConfig,
        implementation="kitaru_aws.sagemaker_target:SageMakerTarget",
        description="Runs each isolated checkpoint call as a SageMaker training job (boto3).",
    ))
