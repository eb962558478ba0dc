"""Hook implementations: registers the Azure flavors (no implementation or SDK is imported here)."""

from __future__ import annotations

from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl

from .configs import AzureStoreConfig


@hookimpl
def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
    registrar.add(Flavor(
        name="azure", type="artifact_store", config=AzureStoreConfig,
        implementation="kitaru_azure.blob_store:AzureBlobArtifactStore",
        description="Content-addressed blobs in an Azure Blob Storage container under a prefix "
        "(adlfs).",
    ))
