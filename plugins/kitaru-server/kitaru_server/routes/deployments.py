"""Deployments: versions and tags (read), invoke (operator), deploy, tag, untag, delete (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request

from kitaru_core.errors import DeploymentNotFoundError

from ..security import rate_limited, require

router = APIRouter(prefix="/deployments", tags=["deployments"])


def _api(request: Request) -> Any:
    return request.app.state.kitaru.client.deployments


@router.get("", dependencies=[require("read")])
def list_deployments(request: Request, flow: str | None = Query(None, description="only this flow")
                     ) -> dict[str, Any]:
    """Deployment versions with their tags, by flow then version."""
    return {"items": [d.to_dict() for d in _api(request).list(flow=flow)]}


@router.get("/flows", dependencies=[require("read")])
def list_flows(request: Request) -> dict[str, Any]:
    """Flows with deployment versions: their versions and where each tag points."""
    return {"items": [f.to_dict() for f in _api(request).flows()]}


@router.post("", dependencies=[require("admin")], status_code=201)
def deploy(
    request: Request,
    target: str = Body(..., embed=True, description="path/to/file.py:flow or package.module:flow, "
                       "on the server's machine"),
    inputs: dict[str, Any] = Body(default_factory=dict, description="default flow inputs"),
    tags: dict[str, bool] = Body(default_factory=dict, description="{tag: exclusive}"),
    stack: str | None = Body(None, description="the stack to snapshot (default: the server's)"),
    image: Any = Body(None, description="the image option (a base image, or ImageSettings fields)"),
    cache: bool | None = Body(None),
    retries: int | None = Body(None, ge=0),
    publish_default_on_first_deploy: bool = Body(True),
) -> dict[str, Any]:
    """Snapshot a flow found on the server's machine as its next version (imports its module)."""
    made = _api(request).deploy(
        target, inputs=inputs, tags=tags, stack=stack, image=image, cache=cache, retries=retries,
        publish_default_on_first_deploy=publish_default_on_first_deploy,
    )
    return made.to_dict()


@router.get("/{flow}", dependencies=[require("read")])
def get_flow(request: Request, flow: str) -> dict[str, Any]:
    """One flow's versions (oldest first) and where its tags point."""
    api = _api(request)
    versions = [d.to_dict() for d in api.list(flow=flow)]
    found = next((f for f in api.flows() if f.flow == flow), None)
    if found is None:
        raise DeploymentNotFoundError(f"flow {flow!r} has no deployments; see GET /api/v1/deployments/flows")
    return {"flow": flow, "tags": found.tags, "items": versions}


@router.get("/{flow}/versions/{version}", dependencies=[require("read")])
def get_version(request: Request, flow: str, version: int) -> dict[str, Any]:
    """One version in full: entrypoint, code package, frozen stack, versions, defaults."""
    return _api(request).get(flow=flow, version=version).to_dict()


@router.get("/{flow}/tags/{tag}", dependencies=[require("read")])
def get_tagged(request: Request, flow: str, tag: str) -> dict[str, Any]:
    """The version a tag routes to now."""
    return _api(request).get(flow=flow, tag=tag).to_dict()


@router.post("/{flow}/invoke", dependencies=[require("operator"), Depends(rate_limited)],
             status_code=202)
def invoke(
    request: Request, flow: str,
    version: int | None = Body(None, ge=1, description="an exact version"),
    tag: str | None = Body(None, description="a tag (default: the `default` tag)"),
    inputs: dict[str, Any] = Body(default_factory=dict, description="flow inputs over the defaults"),
) -> dict[str, Any]:
    """Start an execution of a version's snapshot through its stack's orchestrator; returns at
    once with the execution's id (follow it under /executions/{exec_id})."""
    api = _api(request)
    chosen = api.get(flow=flow, version=version, tag=tag)
    handle = api.invoke(flow=flow, version=chosen.version, inputs=inputs)  # pinned: no race with a move
    return {"exec_id": handle.exec_id, "flow": flow, "version": chosen.version,
            "status": handle.status.value}


@router.put("/{flow}/tags/{tag}", dependencies=[require("admin")])
def tag_version(
    request: Request, flow: str, tag: str,
    version: int = Body(..., ge=1, description="the version to tag"),
    exclusive: bool = Body(False, description="move the tag here from any other version"),
) -> dict[str, Any]:
    """Put a tag on a version; `exclusive` moves it there (a promotion, or a rollback)."""
    return _api(request).tag(flow=flow, version=version, tag=tag, exclusive=exclusive).to_dict()


@router.delete("/{flow}/versions/{version}/tags/{tag}", dependencies=[require("admin")])
def untag_version(request: Request, flow: str, version: int, tag: str) -> dict[str, Any]:
    """Take a tag off a version (`default` can only be moved)."""
    return _api(request).untag(flow=flow, version=version, tag=tag).to_dict()


@router.delete("/{flow}/versions/{version}", dependencies=[require("admin")])
def delete_version(request: Request, flow: str, version: int) -> dict[str, Any]:
    """Delete a version (refused with 409 while it holds an exclusive tag)."""
    _api(request).delete(flow=flow, version=version)
    return {"flow": flow, "version": version, "deleted": True}
