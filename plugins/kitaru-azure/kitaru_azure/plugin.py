"""Hook implementations: registers the Azure flavors, the `azure` store and the `azureml` target
(no implementation or SDK is imported here)."""

from __future__ import annotations

from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl

from .configs import AzureMLTargetConfig, AzureStoreConfig


@hookimpl
def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
    registrar.add(Flavor(
        name="azure", type="artifact_store", config=AzureStoreConfig,
        implementation="kitaru_azure.blob_store:AzureBlobArtifactStore",
        description="Content-addressed blobs in an Azure Blob Storage container under a prefix "
        "(adlfs).",
    ))
    registrar.add(Flavor(
        name="azureml", type="execution_target", config=AzureMLTargetConfig,
        implementation="kitaru_azure.azureml_target:AzureMLTarget",
        description="Runs each isolated checkpoint call as an Azure ML command job (azure-ai-ml), on a "
        "compute cluster or serverless compute.",
    ))
