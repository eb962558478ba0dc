"""Hook implementation: registers the `postgres` registry (nothing heavy is imported here)."""

from __future__ import annotations

from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl

from .config import PostgresRegistryConfig


@hookimpl
def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
    registrar.add(Flavor(
        name="postgres", type="registry", config=PostgresRegistryConfig,
        implementation="kitaru_postgres.registry:PostgresRegistry",
        description="A PostgreSQL database shared by a team's runners, workers and clients.",
    ))
