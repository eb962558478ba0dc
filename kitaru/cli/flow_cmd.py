"""`kitaru flow ...`: deploy flows as numbered versions, route tags to them, invoke them.

Kitaru 0.21's names: `kitaru deploy TARGET` / `kitaru build TARGET` / `kitaru invoke FLOW` (also
under `kitaru flow`), `kitaru flow list/show/tag/untag`, `kitaru flow deployments list/get/show/
tag/untag/delete/curl`.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import typer

from .output import Format, OutputOption, print_json, table, when

app = typer.Typer(help="Deploy flows as versions, move their tags, invoke them.", no_args_is_help=True)
deployments_app = typer.Typer(help="Deployment versions of a flow.", no_args_is_help=True)
app.add_typer(deployments_app, name="deployments")

#: Where the curl examples send requests unless KITARU_SERVER_URL says (`kitaru server start`'s default).
DEFAULT_SERVER_URL = "http://127.0.0.1:8237"

_VERSION = typer.Option(None, "--version", "-v", min=1, help="An exact version.")
_TAG = typer.Option(None, "--tag", "-t", help="A tag (default: the `default` tag).")
_INPUT = typer.Option(None, "--input", "-i", help="Flow inputs as a JSON object, or @file.json.")


def _api() -> Any:
    from kitaru.client import KitaruClient

    return KitaruClient().deployments


def _inputs(text: str | None, option: str = "--input") -> dict[str, Any]:
    """A JSON object given inline or as @file."""
    from kitaru_core.errors import InvalidValueError

    from .values import parse_value

    if text is None:
        return {}
    if text.startswith("@"):
        try:
            text = Path(text[1:]).expanduser().read_text()
        except OSError as exc:
            raise InvalidValueError(f"{option} {text}: cannot read the file ({exc.strerror})") from None
    value = parse_value(text, option)
    if not isinstance(value, dict):
        raise InvalidValueError(f"{option} must be a JSON object of flow inputs, like '{{\"topic\": \"x\"}}'")
    return value


def _row(d: Any) -> list[Any]:
    tags = ", ".join(f"{t}*" if ex else t for t, ex in sorted(d.tags.items()))
    return [d.flow, f"v{d.version}", tags, when(d.created_at), d.code_package[:12], d.stack or ""]


def _show(d: Any, output: Format, note: str | None = None) -> None:
    if output == Format.json:
        print_json(d.to_dict())
        return
    table(["flow", "version", "tags (* exclusive)", "created", "code", "stack"], [_row(d)],
          no_wrap=("version", "created", "code"))
    if note:
        typer.echo(note)


def _server_url() -> str:
    """KITARU_SERVER_URL, else the server the active stack records to (a `kitaru login`
    stack: registry flavor `server`), else `kitaru server start`'s default address."""
    env = os.environ.get("KITARU_SERVER_URL")
    if env:
        return env
    try:
        from kitaru_core.stack import StackStore, resolve_stack_name

        registry = StackStore().get(resolve_stack_name()).get("registry") or {}
        url = (registry.get("config") or {}).get("url")
        if registry.get("flavor") == "server" and isinstance(url, str) and "://" in url:
            return url
    except Exception:  # an unreadable stack only loses the guess; the default stays useful
        pass
    return DEFAULT_SERVER_URL


def curl_command(flow: str, *, version: int | None = None, tag: str | None = None,
                 inputs: dict[str, Any] | None = None) -> str:
    """A curl command that invokes a deployment through the server's REST API."""
    base = _server_url().rstrip("/")
    body: dict[str, Any] = {"inputs": inputs or {}}
    if version is not None:
        body["version"] = version
    elif tag is not None:
        body["tag"] = tag
    url = f"{base}/api/v1/deployments/{flow}/invoke"
    return (f"curl -sS -X POST {shlex.quote(url)} \\\n"
            f"  -H \"Authorization: Bearer $KITARU_API_KEY\" \\\n"
            f"  -H 'Content-Type: application/json' \\\n"
            f"  -d {shlex.quote(json.dumps(body, separators=(',', ':')))}")


# -- deploy and invoke ---------------------------------------------------------------------------------


# Options `flow deploy` and `flow build` share (one snapshot's settings).
_INPUTS = typer.Option(None, "--input", "-i", help="Default flow inputs (JSON object or @file) "
                       "that invocations start from.")
_SNAPSHOT_STACK = typer.Option(None, "--stack", help="Snapshot this stack instead of the flow's.")
_IMAGE = typer.Option(None, "--image", help="Image option (a base image, or JSON).")
_CACHE = typer.Option(None, "--cache/--no-cache", help="Cache option of the runs.")
_RETRIES = typer.Option(None, "--retries", min=0, help="Retries option of the runs.")


@app.command("deploy")
def deploy(
    target: str = typer.Argument(..., help="path/to/file.py:flow or package.module:flow."),
    tag: list[str] = typer.Option(None, "--tag", "-t", help="Route this tag to the new version "
                                  "(repeatable)."),
    exclusive: bool = typer.Option(True, "--exclusive/--shared", help="Tags given are exclusive "
                                   "(moved here from other versions; the default) or shared labels."),
    inputs: str = _INPUTS,
    stack: str = _SNAPSHOT_STACK,
    image: str = _IMAGE,
    cache: bool = _CACHE,
    retries: int = _RETRIES,
    no_default: bool = typer.Option(False, "--no-default", help="Do not put the `default` tag "
                                    "on version 1 (a build nobody reaches until tagged)."),
    output: Format = OutputOption,
) -> None:
    """Snapshot a flow as its next version (code, entrypoint, stack, versions, defaults)."""
    made = _deploy(target, {t: exclusive for t in tag or []}, inputs, stack, image, cache, retries,
                   publish_default=not no_default)
    _report(made, output)


def _deploy(target: str, tags: dict[str, bool], inputs: str | None, stack: str | None,
            image: str | None, cache: bool | None, retries: int | None, *, publish_default: bool) -> Any:
    from .values import parse_value

    image_value = parse_value(image, "--image") if image is not None else None
    return _api().deploy(target, inputs=_inputs(inputs), tags=tags, stack=stack, image=image_value,
                         cache=cache, retries=retries, publish_default_on_first_deploy=publish_default)


def _report(made: Any, output: Format) -> None:
    """A new version, how to invoke it, and the curl command for the server."""
    exclusive = [t for t, ex in made.tags.items() if ex]
    route = next((t for t in exclusive if t != "default"), exclusive[0] if exclusive else None)
    curl = curl_command(made.flow, version=None if route else made.version, tag=route, inputs={})
    if output == Format.json:
        print_json({**made.to_dict(), "curl": curl})
        return
    _show(made, output)
    typer.echo(f"\nInvoke it: kitaru flow invoke {made.flow} "
               + (f"--tag {route}" if route else f"--version {made.version}") + " --input '{...}'")
    typer.echo("Over the server's REST API:\n" + curl)


def build(
    target: str = typer.Argument(..., help="path/to/file.py:flow or package.module:flow."),
    inputs: str = _INPUTS,
    stack: str = _SNAPSHOT_STACK,
    image: str = _IMAGE,
    cache: bool = _CACHE,
    retries: int = _RETRIES,
    output: Format = OutputOption,
) -> None:
    """Snapshot a flow as its next version with no tag routed to it (tag it later)."""
    _report(_deploy(target, {}, inputs, stack, image, cache, retries, publish_default=False), output)


app.command("build")(build)


@app.command("show")
def show_flow(
    flow: str = typer.Argument(..., help="The deployed flow's name."),
    output: Format = OutputOption,
) -> None:
    """One deployed flow: its versions and where each tag points."""
    from kitaru_core.errors import DeploymentNotFoundError

    found = next((f for f in _api().flows() if f.flow == flow), None)
    if found is None:
        raise DeploymentNotFoundError(f"flow {flow!r} has no deployments; see `kitaru flow list`")
    if output == Format.json:
        print_json(found.to_dict())
        return
    typer.echo(f"{found.flow}: {len(found.versions)} version(s), latest v{found.latest_version}")
    for tag, versions in found.tags.items():
        typer.echo(f"  {tag:16} -> " + ", ".join(f"v{v}" for v in versions))


@app.command("invoke")
def invoke(
    flow: str = typer.Argument(..., help="The deployed flow's name."),
    version: int = _VERSION,
    tag: str = _TAG,
    inputs: str = _INPUT,
    wait: bool = typer.Option(False, "--wait", help="Wait for the execution's result."),
    timeout: float = typer.Option(None, "--timeout", help="With --wait: give up after this many "
                                  "seconds (the execution goes on)."),
    output: Format = OutputOption,
) -> None:
    """Start an execution of a deployed version (the snapshot's code) and print its id."""
    handle = _api().invoke(flow=flow, version=version, tag=tag, inputs=_inputs(inputs))
    data: dict[str, Any] = {"exec_id": handle.exec_id, "flow": flow}
    if wait:
        data["result"] = handle.wait(timeout=timeout)
    data["status"] = handle.status.value
    if output == Format.json:
        print_json(data)
        return
    typer.echo(f"execution {handle.exec_id} ({data['status']})")
    if wait:
        typer.echo(json.dumps(data["result"], default=str))
    else:
        typer.echo(f"follow it: kitaru executions logs {handle.exec_id} --follow")


# -- flows and tags ---------------------------------------------------------------------------------


@app.command("list")
def list_flows(output: Format = OutputOption) -> None:
    """Flows with deployment versions, and where their tags point."""
    found = _api().flows()
    if output == Format.json:
        print_json([f.to_dict() for f in found])
        return
    table(["flow", "versions", "latest", "tags"],
          [[f.flow, len(f.versions), f"v{f.latest_version}",
            ", ".join(f"{t}->" + ",".join(f"v{v}" for v in vs) for t, vs in f.tags.items())]
           for f in found])


def tag_version(
    flow: str = typer.Argument(..., help="The deployed flow's name."),
    tag: str = typer.Argument(..., help="The tag to put on the version."),
    version: int = typer.Option(..., "--version", "-v", min=1, help="The version to tag."),
    exclusive: bool = typer.Option(False, "--exclusive", help="Move the tag here from any other "
                                   "version (promote, or roll back)."),
    output: Format = OutputOption,
) -> None:
    """Put a tag on a version; with --exclusive it moves there (rollback is a retag)."""
    _show(_api().tag(flow=flow, version=version, tag=tag, exclusive=exclusive), output)


def untag_version(
    flow: str = typer.Argument(..., help="The deployed flow's name."),
    tag: str = typer.Argument(..., help="The tag to take off."),
    version: int = typer.Option(..., "--version", "-v", min=1, help="The version to untag."),
    output: Format = OutputOption,
) -> None:
    """Take a tag off a version (`default` can only be moved)."""
    _show(_api().untag(flow=flow, version=version, tag=tag), output)


app.command("tag")(tag_version)
app.command("untag")(untag_version)
deployments_app.command("tag")(tag_version)
deployments_app.command("untag")(untag_version)


# -- versions ---------------------------------------------------------------------------------------


@deployments_app.command("list")
def list_deployments(
    flow: str = typer.Argument(None, help="Only this flow's versions."),
    output: Format = OutputOption,
) -> None:
    """Deployment versions with their tags (* marks an exclusive tag)."""
    found = _api().list(flow=flow)
    if output == Format.json:
        print_json([d.to_dict() for d in found])
        return
    table(["flow", "version", "tags (* exclusive)", "created", "code", "stack"],
          [_row(d) for d in found], no_wrap=("version", "created", "code"))


def get_deployment(
    flow: str = typer.Argument(..., help="The deployed flow's name."),
    version: int = _VERSION,
    tag: str = _TAG,
    output: Format = OutputOption,
) -> None:
    """One version in full: entrypoint, code package, stack, Python and packages, defaults."""
    d = _api().get(flow=flow, version=version, tag=tag)
    if output == Format.json:
        print_json(d.to_dict())
        return
    tags = ", ".join(f"{t}*" if ex else t for t, ex in sorted(d.tags.items())) or "none"
    lines = [
        f"{d.flow} v{d.version}   tags: {tags}   created {when(d.created_at)}",
        f"entrypoint:   {d.entrypoint}",
        f"code package: {d.code_package}",
        f"stack:        {d.stack}",
        f"python:       {d.python}",
        f"defaults:     {json.dumps(d.defaults)}",
        f"options:      {json.dumps(d.options)}",
        "inputs:       " + ", ".join(p["name"] + ("" if p["required"] else "?") for p in d.parameters),
    ]
    if d.commit_sha:
        lines.append(f"commit:       {d.commit_sha}" + (" (with changes)" if d.commit_dirty else ""))
    typer.echo("\n".join(lines))


deployments_app.command("get")(get_deployment)
deployments_app.command("show")(get_deployment)


@deployments_app.command("delete")
def delete_deployment(
    flow: str = typer.Argument(..., help="The deployed flow's name."),
    version: int = typer.Option(..., "--version", "-v", min=1, help="The version to delete."),
    output: Format = OutputOption,
) -> None:
    """Delete a version (refused while it holds an exclusive tag: move the tag first)."""
    _api().delete(flow=flow, version=version)
    if output == Format.json:
        print_json({"flow": flow, "version": version, "deleted": True})
    else:
        typer.echo(f"deleted {flow} v{version}")


@deployments_app.command("curl")
def curl(
    flow: str = typer.Argument(..., help="The deployed flow's name."),
    version: int = _VERSION,
    tag: str = _TAG,
    inputs: str = _INPUT,
    output: Format = OutputOption,
) -> None:
    """A curl command that invokes the deployment through the server (KITARU_SERVER_URL, an
    API key of operator scope in KITARU_API_KEY)."""
    d = _api().get(flow=flow, version=version, tag=tag)  # it must exist; the tag is resolved
    command = curl_command(flow, version=version, tag=tag, inputs=_inputs(inputs))
    if output == Format.json:
        print_json({"flow": flow, "version": d.version, "command": command})
        return
    selector = f"version {version}" if version else f"tag {tag or 'default'!r}"
    typer.echo(f"# {flow} {selector} is v{d.version} now; the server resolves it at each call\n{command}")
