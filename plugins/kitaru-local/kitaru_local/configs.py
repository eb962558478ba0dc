"""Config models of the local flavors (imported when flavors are listed: keep light)."""

from __future__ import annotations

from pydantic import Field

from kitaru_core.config_types import AbsolutePath, Executable
from kitaru_core.interfaces import FlavorConfig


class SqliteRegistryConfig(FlavorConfig):
    path: AbsolutePath | None = Field(
        default=None, description="SQLite file; default <kitaru home>/kitaru.db"
    )
    busy_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for another process's write lock"
    )
    inline_max_bytes: int = Field(
        default=2048, ge=0, le=65536,
        description="Serialized values up to this size are kept in the database instead of "
        "a blob file of their own (0: always a blob)",
    )


class LocalArtifactStoreConfig(FlavorConfig):
    root: AbsolutePath | None = Field(
        default=None, description="Folder for artifacts; default <kitaru home>/artifacts"
    )


class LocalOrchestratorConfig(FlavorConfig):
    python: Executable | None = Field(
        default=None, description="Python executable for background runners; default this one"
    )


#: What a checkpoint's module imports first: `from kitaru import checkpoint, flow, ...`.
DEFAULT_PRELOAD = ("kitaru.checkpoints", "kitaru.flows", "kitaru.primitives")


class InlineTargetConfig(FlavorConfig):
    pass


class ProcessTargetConfig(FlavorConfig):
    python: Executable | None = Field(
        default=None, description="Python executable for workers; default the runner's"
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for each worker"
    )
    poll_cap: float = Field(
        default=5.0, gt=0, description="Longest pause in seconds between two polls of a running task"
    )
    fork_server: bool = Field(
        default=True,
        description="Start each worker as a fork of a warm worker process that the runner starts "
        "on its first task (false: a fresh `python -m kitaru_core.worker` per task)",
    )
    preload: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PRELOAD),
        description="Modules the fork server imports once, before it forks workers: libraries "
        "your isolated checkpoints' modules import (they must start no thread on import)",
    )
