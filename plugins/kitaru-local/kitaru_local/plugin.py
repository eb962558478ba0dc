"""Hook implementations: registers the local flavors (no implementation is imported here)."""

from __future__ import annotations

from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl
from kitaru_core.secrets import EnvSecretBackend, SecretBackend
from kitaru_core.stores import GenericFsspecStoreConfig

from .configs import (
    InlineTargetConfig,
    LocalArtifactStoreConfig,
    LocalOrchestratorConfig,
    ProcessTargetConfig,
    SqliteRegistryConfig,
)


@hookimpl
def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
    registrar.add(Flavor(
        name="sqlite", type="registry", config=SqliteRegistryConfig,
        implementation="kitaru_local.sqlite_registry:SqliteRegistry",
        description="An embedded SQLite file (WAL); one machine, many processes.",
    ))
    registrar.add(Flavor(
        name="local", type="artifact_store", config=LocalArtifactStoreConfig,
        implementation="kitaru_local.folder_store:LocalArtifactStore",
        description="Content-addressed files in a local folder.",
    ))
    registrar.add(Flavor(
        name="fsspec", type="artifact_store", config=GenericFsspecStoreConfig,
        implementation="kitaru_core.stores.fsspec_store:FsspecArtifactStore",
        description="Content-addressed files on any fsspec URL (memory://, file://, or any "
        "protocol whose package is installed), with the filesystem's storage_options.",
    ))
    registrar.add(Flavor(
        name="local", type="orchestrator", config=LocalOrchestratorConfig,
        implementation="kitaru_local.orchestrator:LocalOrchestrator",
        description="Runs flow bodies in this process; background resumes as detached processes.",
    ))
    registrar.add(Flavor(
        name="inline", type="execution_target", config=InlineTargetConfig,
        implementation="kitaru_local.targets:InlineTarget",
        description="Runs isolated checkpoints in the runner's own process.",
    ))
    registrar.add(Flavor(
        name="process", type="execution_target", config=ProcessTargetConfig,
        implementation="kitaru_local.targets:ProcessTarget",
        description="Runs each isolated checkpoint in a separate local Python process "
        "through the remote protocol.",
    ))


@hookimpl
def kitaru_secret_backends() -> list[SecretBackend]:
    """Secrets from the environment: `KITARU_SECRET_<NAME>` holding a JSON object."""
    return [EnvSecretBackend()]
