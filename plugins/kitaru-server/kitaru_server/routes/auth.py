"""Who am I, and (admin) service accounts and API keys over HTTP."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Body, Request

from ..keys import KeyStore
from ..scopes import Scope
from ..security import require

router = APIRouter(prefix="/auth", tags=["auth"])


def _keys(request: Request) -> KeyStore:
    return request.app.state.kitaru.keys


@router.get("/whoami", dependencies=[require("read")])
def whoami(request: Request) -> dict[str, Any]:
    """The caller's service account, scope and key id."""
    return dataclasses.asdict(request.state.principal)


@router.get("/service-accounts", dependencies=[require("admin")])
def list_accounts(request: Request) -> dict[str, Any]:
    return {"items": [dataclasses.asdict(a) for a in _keys(request).list_accounts()]}


@router.post("/service-accounts", dependencies=[require("admin")], status_code=201)
def create_account(request: Request, name: str = Body(...), description: str = Body("")) -> dict[str, Any]:
    return dataclasses.asdict(_keys(request).create_account(name, description=description))


@router.get("/service-accounts/{name}", dependencies=[require("admin")])
def show_account(request: Request, name: str) -> dict[str, Any]:
    return dataclasses.asdict(_keys(request).get_account(name))


@router.delete("/service-accounts/{name}", dependencies=[require("admin")])
def delete_account(request: Request, name: str) -> dict[str, Any]:
    return {"deleted": name, "keys_deleted": _keys(request).delete_account(name)}


@router.get("/api-keys", dependencies=[require("admin")])
def list_keys(request: Request, account: str | None = None) -> dict[str, Any]:
    return {"items": [dataclasses.asdict(k) for k in _keys(request).list_keys(account)]}


@router.post("/api-keys", dependencies=[require("admin")], status_code=201)
def create_key(
    request: Request, account: str = Body(...), scope: Scope = Body("read"),
    description: str = Body(""), expires_at: float | None = Body(None),
) -> dict[str, Any]:
    """A new key; the response carries its token, the only time it is shown."""
    key, token = _keys(request).create_key(account, scope=scope, description=description,
                                           expires_at=expires_at)
    return dict(dataclasses.asdict(key), token=token)


@router.post("/api-keys/{key_id}/rotate", dependencies=[require("admin")])
def rotate_key(request: Request, key_id: str) -> dict[str, Any]:
    key, token = _keys(request).rotate_key(key_id)
    return dict(dataclasses.asdict(key), token=token)


@router.delete("/api-keys/{key_id}", dependencies=[require("admin")])
def delete_key(request: Request, key_id: str) -> dict[str, Any]:
    _keys(request).delete_key(key_id)
    return {"deleted": key_id}
