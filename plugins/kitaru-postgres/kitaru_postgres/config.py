"""Config model of the `postgres` registry (imported when flavors are listed: keep light)."""

from __future__ import annotations

from pydantic import Field

from kitaru_core.interfaces import FlavorConfig


class PostgresRegistryConfig(FlavorConfig):
    url: str = Field(
        description="libpq connection URL, e.g. postgresql://kitaru@db:5432/kitaru; keep the "
        "password out of the stack file with ${env:KITARU_DB_URL}",
    )
    db_schema: str = Field(
        default="public", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="Schema that holds kitaru's tables (created if missing)",
    )
    min_connections: int = Field(default=1, ge=0, le=100, description="Connections kept open")
    max_connections: int = Field(default=10, ge=1, le=1000, description="Pool size limit")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection")
    inline_max_bytes: int = Field(
        default=2048, ge=0, le=65536,
        description="Serialized values up to this size are kept in the database instead of a "
        "blob in the artifact store (0: always a blob)",
    )
