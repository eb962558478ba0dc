"""Hook implementations: registers the Google Cloud flavors (no implementation or SDK imported)."""

from __future__ import annotations

from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl

from .configs import CloudRunTargetConfig, GcsStoreConfig, VertexTargetConfig


@hookimpl
def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
    registrar.add(Flavor(
        name="gcs", type="artifact_store", config=GcsStoreConfig,
        implementation="kitaru_gcp.gcs_store:GcsArtifactStore",
        description="Content-addressed objects in a GCS bucket under a prefix (gcsfs).",
    ))
    registrar.add(Flavor(
        name="vertex", type="execution_target", config=VertexTargetConfig,
        implementation="kitaru_gcp.vertex_target:VertexTarget",
        description="Runs each isolated checkpoint call as a Vertex AI custom job.",
    ))
    registrar.add(Flavor(
        name="cloud-run", type="execution_target", config=CloudRunTargetConfig,
        implementation="kitaru_gcp.cloud_run_target:CloudRunTarget",
        description="Runs each isolated checkpoint call as an execution of a Cloud Run job.",
    ))
