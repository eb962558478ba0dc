"""Hook implementation: registers the `server` registry (nothing heavy is imported here)."""

from __future__ import annotations

from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl

from .config import ServerRegistryConfig


@hookimpl
def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
    registrar.add(Flavor(
        name="server", type="registry", config=ServerRegistryConfig,
        implementation="kitaru_server.flavors.server_registry:ServerRegistry",
        description="A kitaru server over HTTP (`kitaru login URL`): a pod needs an API key "
        "and the artifact store, no database.",
    ))
