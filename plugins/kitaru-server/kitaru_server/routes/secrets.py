"""Secrets: names and key names only. Reading needs `read`; setting and deleting `admin`.

A value goes in (`PUT /secrets/{name}`), is sealed with the server's secrets key and
never comes out: no response, error or log line holds one. The request body is parsed
here rather than by FastAPI, whose validation errors would echo the rejected input.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kitaru_core.errors import InvalidValueError

from ..security import require

router = APIRouter(prefix="/secrets", tags=["secrets"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["values"],
            "properties": {
                "values": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "KEY -> value; keys like environment variables"},
                "replace": {"type": "boolean", "default": False,
                            "description": "keep only these keys (default: add to the others)"},
            },
        }}},
    }
}


def _secrets(request: Request) -> Any:
    return request.app.state.kitaru.client.secrets


@router.get("", dependencies=[require("read")])
def list_secrets(request: Request) -> dict[str, Any]:
    """The registry's secrets: names and key names, never values."""
    return {"items": [s.to_dict() for s in _secrets(request).list(backends_too=False)]}


@router.get("/{name}", dependencies=[require("read")])
def get_secret(request: Request, name: str) -> dict[str, Any]:
    """One secret's name and key names."""
    return _secrets(request).get(name).to_dict()


@router.put("/{name}", dependencies=[require("admin")], openapi_extra=_BODY)
async def set_secret(request: Request, name: str) -> dict[str, Any]:
    """Create the secret or change the keys given; returns its names and key names."""
    values, replace = _parse(await request.body())
    secret = await run_in_threadpool(_secrets(request).set, name, values, replace=replace)
    return secret.to_dict()


@router.delete("/{name}", dependencies=[require("admin")])
def delete_secret(request: Request, name: str) -> dict[str, Any]:
    """Delete a secret from the registry."""
    return {"deleted": _secrets(request).delete(name).to_dict()}


def _parse(raw: bytes) -> tuple[dict[str, str], bool]:
    """The body's `values` and `replace`; errors name the problem, never a value."""
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise InvalidValueError('the body is not JSON; send {"values": {"KEY": "value"}}') from None
    values = body.get("values") if isinstance(body, dict) else None
    if not isinstance(values, dict) or not values:
        raise InvalidValueError('send {"values": {"KEY": "value", ...}} with at least one key')
    wrong = sorted(str(k) for k, v in values.items() if not isinstance(v, str))
    if wrong:
        raise InvalidValueError(f"the values of {', '.join(wrong)} are not strings")
    replace = body.get("replace", False)
    if not isinstance(replace, bool):
        raise InvalidValueError("`replace` is true or false")
    return values, replace
