"""Memory: scopes, keys, values and their history; writing and deleting needs `operator`.

Keys may hold `/` (`users/42/prefs`): they are the rest of the path. `scope` is a
namespace name or `namespace:NAME`, `flow:FLOW`, `execution:EXEC_ID`, as in
`KitaruClient().memory`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request

from ..security import require
from ..values import json_value

router = APIRouter(prefix="/memory", tags=["memory"])
SCOPE = Query(..., description="namespace name, or namespace:NAME, flow:FLOW, execution:ID")


def _memory(request: Request) -> Any:
    return request.app.state.kitaru.client.memory


@router.get("/scopes", dependencies=[require("read")])
def scopes(request: Request) -> dict[str, Any]:
    """Every scope that holds at least one version."""
    return {"items": _memory(request).scopes()}


@router.get("/entries", dependencies=[require("read")])
def list_entries(request: Request, scope: str = SCOPE) -> dict[str, Any]:
    """The latest version of every key of `scope` that holds a value, by key (no values)."""
    return {"items": [e.to_dict() for e in _memory(request).list(scope=scope)]}


@router.get("/entries/{key:path}", dependencies=[require("read")])
def get_entry(request: Request, key: str, scope: str = SCOPE,
              version: int | None = Query(None, ge=1)) -> dict[str, Any]:
    """The latest version of `key` (or `version`) with its value; 404 if never set."""
    from kitaru_core.errors import MemoryNotFoundError

    memory = _memory(request)
    entry = memory.entry(key, scope=scope, version=version)
    if entry is None:
        raise MemoryNotFoundError(
            f"memory key {key!r} was never set in scope {memory.resolve_scope(scope)!r}; list the "
            "scope's keys with GET /api/v1/memory/entries?scope=...")
    return {**entry.to_dict(), **json_value(None if entry.deleted else entry.load())}


@router.get("/history/{key:path}", dependencies=[require("read")])
def history(request: Request, key: str, scope: str = SCOPE) -> dict[str, Any]:
    """Every version of `key`, oldest first, deletes included (no values)."""
    return {"items": [e.to_dict() for e in _memory(request).history(key, scope=scope)]}


@router.put("/entries/{key:path}", dependencies=[require("operator")])
def set_entry(request: Request, key: str, scope: str = SCOPE,
              value: Any = Body(..., embed=True, description="the new value (any JSON)")) -> dict[str, Any]:
    """Store `value` as the next version of `key`."""
    return _memory(request).set(key, value, scope=scope).to_dict()


@router.delete("/entries/{key:path}", dependencies=[require("operator")])
def delete_entry(request: Request, key: str, scope: str = SCOPE) -> dict[str, Any]:
    """Delete `key` (a tombstone version: the history stays); 404 if it holds no value."""
    return _memory(request).delete(key, scope=scope).to_dict()
