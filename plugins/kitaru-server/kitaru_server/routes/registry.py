"""The registry RPC: every `Registry` method as `POST /registry/<method>`, run on the server's
own registry, for the `server` registry flavor (runners, workers and clients without a
database). The wire format and each method's scope are in `kitaru_server.flavors.wire`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from kitaru_core.errors import KitaruError

from ..errors import status_of
from ..flavors.wire import ADMIN_KINDS, RPCS, Rpc, dumps, error_body
from ..scopes import allows
from ..security import require

router = APIRouter(prefix="/registry", tags=["registry"])
log = logging.getLogger("kitaru.server")


def _json(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json")


@router.get("/info", dependencies=[require("read")])
def info(request: Request) -> Response:
    """The served registry: its inline limit (values up to it travel inside the records), its
    flavor, and the stack's name and artifact store (what `kitaru login` sets up)."""
    stack = request.app.state.kitaru.stack
    registry = stack.registry
    spec = stack.spec
    return _json({
        "inline_limit": int(registry.inline_limit),
        "flavor": spec["registry"]["flavor"],
        "stack": stack.name,
        "artifact_store": _store_component(spec["artifact_store"], stack.home),
        "methods": sorted(RPCS),
    })


def _store_component(component: dict[str, Any], home: Path) -> dict[str, Any]:
    """The stack's artifact store as a client would write it: `${home}` (and the `local`
    store's default folder) as the server's paths; `${env:...}` left for the client to set."""
    config = {k: v.replace("${home}", str(home)) if isinstance(v, str) else v
              for k, v in (component.get("config") or {}).items()}
    if component["flavor"] == "local" and not config.get("root"):
        config["root"] = str(home / "artifacts")
    return {"flavor": component["flavor"], "config": config}


def _endpoint(rpc: Rpc) -> Callable[..., Response]:
    method_name = rpc.name

    def endpoint(request: Request, body: dict[str, Any] = Body(default_factory=dict)) -> Response:
        try:
            args = rpc.decode_args(body)
            if rpc.documents and args.get("kind") in ADMIN_KINDS:
                principal = request.state.principal
                if not allows(principal.scope, "admin"):
                    return _json({"error": "Forbidden", "kinds": [], "detail":
                                  f"documents of kind {args['kind']!r} need an API key with the "
                                  f"'admin' scope; this key has {principal.scope!r}"}, 403)
            registry = request.app.state.kitaru.stack.registry
            result = getattr(registry, method_name)(**args)
        except KitaruError as exc:
            return _json(error_body(exc), status_of(exc))
        except Exception as exc:  # the backing registry's own failure: the client raises it typed
            log.exception("registry %s failed", method_name)
            return _json(error_body(exc), 500)
        return _json({"result": rpc.result.encode(result)})

    endpoint.__name__ = f"registry_{method_name}"
    return endpoint


def _describe(rpc: Rpc) -> str:
    args = ", ".join(f"`{a}`" + ("" if a in rpc.required else "?") for a in rpc.args) or "none"
    return (f"`Registry.{rpc.name}` on the server's registry. Body: a JSON object of the arguments "
            f"({args}); records as objects of their fields, artifact `data` in base64. Answer: "
            '`{"result": ...}`; an error is `{"error", "kinds", "detail"}`.')


for _rpc in RPCS.values():
    router.add_api_route(
        _rpc.path, _endpoint(_rpc), methods=["POST"], dependencies=[require(_rpc.scope)],  # type: ignore[arg-type]
        summary=f"Registry.{_rpc.name}", description=_describe(_rpc), response_class=Response,
    )
