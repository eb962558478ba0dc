"""The stack a server serves: a named one, optionally with its registry replaced (`--registry`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kitaru_core.errors import InvalidValueError


def registry_component(url: str) -> dict[str, Any]:
    """The registry component a `--registry` value names.

    `postgresql://...` (or `postgres://`) is a `postgres` registry; `sqlite:///path` or a
    path to a file is a `sqlite` one.
    """
    if url.startswith(("postgresql://", "postgres://")):
        return {"flavor": "postgres", "config": {"url": url}}
    if url.startswith("sqlite:///"):
        url = url[len("sqlite://"):]
    if "://" in url:
        raise InvalidValueError(
            f"--registry {url!r} is neither a PostgreSQL URL (postgresql://user@host/db) nor a "
            "SQLite file (sqlite:///path/kitaru.db or a path); give one of those"
        )
    return {"flavor": "sqlite", "config": {"path": str(Path(url).expanduser().resolve())}}


def server_stack_spec(stack: str | None, registry: str | None) -> dict[str, Any] | None:
    """The stack spec to serve, or None for the named (or active) stack as it is."""
    if registry is None:
        return None
    from kitaru_core.home import home_dir
    from kitaru_core.stack import StackStore, resolve_stack_name, validate_stack

    home = home_dir()
    spec = dict(StackStore(home).get(stack or resolve_stack_name(home=home)))
    spec["registry"] = registry_component(registry)
    return validate_stack(spec, source="--registry")
