"""Stacks (read only): the server's own and those registered in its kitaru home."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from kitaru_core.errors import KitaruError

from ..redaction import redact
from ..security import require

router = APIRouter(prefix="/stacks", tags=["stacks"])
COMPONENTS = ("registry", "artifact_store", "orchestrator", "execution_target")


def _spec(request: Request, name: str) -> dict[str, Any]:
    from kitaru_core.stack import StackStore, normalize_name

    served = request.app.state.kitaru.stack
    if normalize_name(name) == served.name:
        return served.spec  # what this server serves (its `--registry` included)
    return StackStore(served.home).get(name)


@router.get("", dependencies=[require("read")])
def list_stacks(request: Request) -> dict[str, Any]:
    """Registered stacks with their components' flavors; `served` marks this server's stack."""
    from kitaru_core.stack import StackStore

    served = request.app.state.kitaru.stack
    store = StackStore(served.home)
    items = []
    for name in sorted(set(store.names()) | {served.name}):
        row: dict[str, Any] = {"name": name, "served": name == served.name, "error": None}
        try:
            spec = _spec(request, name)
        except KitaruError as exc:  # e.g. its plugin is not installed here: list the others
            row.update({c: None for c in COMPONENTS}, error=str(exc).splitlines()[0])
        else:
            row.update({c: (spec.get(c) or {}).get("flavor") for c in COMPONENTS})
        items.append(row)
    return {"items": items}


@router.get("/{name}", dependencies=[require("read")])
def show_stack(request: Request, name: str) -> dict[str, Any]:
    """A stack's components and their config, `${env:NAME}` references as written; literal
    secrets (URL passwords, values of secret-named keys) masked."""
    spec = _spec(request, name)
    return {"name": spec["name"], "served": spec["name"] == request.app.state.kitaru.stack.name,
            **{k: redact(v, k) for k, v in spec.items() if k != "name"}}
