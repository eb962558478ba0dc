"""Hook implementations: registers the Google Cloud flavors (no implementation or SDK imported)."""

from __future__ import annotations

from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl

from .configs import GcsStoreConfig


@hookimpl
def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
    registrar.add(Flavor(
        name="gcs", type="artifact_store", config=GcsStoreConfig,
        implementation="kitaru_gcp.gcs_store:GcsArtifactStore",
        description="Content-addressed objects in a GCS bucket under a prefix (gcsfs).",
    ))
