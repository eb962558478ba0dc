"""What a deployment version holds, and an invocation started from it.

`build` turns a flow into the body of a deployment document: its code package (the
project folder as a deterministic zip, uploaded to the stack's artifact store under its
sha256), where in it the flow is, the frozen stack, the Python and package versions, the
deploy-time input defaults, the run options and the inputs' JSON schema.

`start` runs a version: the execution is recorded with a flow reference into the
snapshot's code (unpacked once per package under the kitaru home), never the working
tree, and launched through the frozen stack's orchestrator exactly as a background resume
is. A runner on another machine gets the package key and unpacks it there
(`runtime.remote_launch`). Later resumes of the execution (after a wait, a crash) use
the same reference, so the whole execution runs the deployed code.
"""

from __future__ import annotations

import functools
import inspect
import json
import platform
import subprocess
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import ConfigError, FlowInputError, KitaruError
from kitaru_core.runtime import service
from kitaru_core.runtime.code_package import code_package, extract_code_package, is_installed
from kitaru_core.runtime.loader import flow_reference
from kitaru_core.runtime.specs import FlowSpec

if TYPE_CHECKING:
    from kitaru_core.stack import Stack

    from .flows import FlowHandle

#: The flow reference keys that describe the code itself (not the deploying machine's folders).
_ENTRY_KEYS = ("module", "qualname", "import_name", "rel_file")


def build(spec: FlowSpec, stack: Stack, args: tuple[Any, ...], defaults: dict[str, Any]) -> dict[str, Any]:
    """The body of a new deployment version of flow `spec` on `stack` (the package uploaded)."""
    ref = flow_reference(spec.fn)
    where = f"flow {spec.name!r}"
    if "<locals>" in ref.get("qualname", ""):
        raise ConfigError(f"{where} is defined inside a function; define it at module level to deploy it")
    if not ref.get("root") or not ref.get("rel_file"):
        raise ConfigError(
            f"{where} was defined in `python -c`, a notebook or an interactive session; define it "
            "in a .py file to deploy it"
        )
    root = Path(ref["root"])
    if is_installed(root):
        raise ConfigError(
            f"{where} is defined in an installed package ({root}); deploy it from the project's "
            "source folder so its code can be snapshotted"
        )
    package = code_package(root, cached=False)
    assert package is not None  # not installed, checked above
    data, key = package
    stack.artifact_store.put_blob(data, key)
    return {
        "flow": spec.name,
        "entrypoint": {k: ref[k] for k in _ENTRY_KEYS if ref.get(k)},
        "code": {"package": key, "size": len(data)},
        "blob_keys": [key],  # kept by `kitaru gc` while this version exists
        "stack": stack.spec,
        "python": platform.python_version(),
        "packages": package_versions(),
        "defaults": _defaults(spec, args, defaults),
        "options": spec.options(),
        "parameters": parameters(spec.fn),
        "schema": input_schema(spec.fn),
        "source": git_source(root),
    }


def start(body: dict[str, Any], client_stack: Stack, inputs: dict[str, Any]) -> FlowHandle:
    """Record and launch an execution of the deployment `body` with `inputs` over its defaults."""
    from .flows import FlowHandle

    kwargs = {**(body.get("defaults") or {}), **inputs}
    check_inputs(body, kwargs)
    _warn_drift(body)
    stack = run_stack(body, client_stack)
    flow = FlowSpec(fn=_runs_from_snapshot, name=body["flow"]).with_options(body.get("options") or {})
    record = service.create_execution(flow, stack, (), kwargs, owner=None, flow_ref=flow_ref(body, stack))
    service.launch(record, stack, "resume")
    return FlowHandle(record.exec_id, stack)


def run_stack(body: dict[str, Any], client_stack: Stack) -> Stack:
    """The deployment's frozen stack, over the registry the caller reads (where it was found)."""
    frozen = body.get("stack") or {}
    if not frozen or frozen == client_stack.spec:
        return client_stack
    from kitaru_core.stack import get_stack

    return get_stack(spec={**frozen, "registry": client_stack.spec["registry"]},
                     manager=client_stack.manager)


def flow_ref(body: dict[str, Any], stack: Stack) -> dict[str, Any]:
    """The execution's flow reference: the snapshot's code, unpacked here unless the runner
    runs on another machine (it unpacks the package itself)."""
    entry = dict(body["entrypoint"])
    key = body["code"]["package"]
    ref: dict[str, Any] = {**entry, "code_package": key,
                           "deployment": {"flow": body["flow"], "version": body["version"]}}
    if stack.orchestrator.locality != "network":
        root = extract_code_package(stack.artifact_store, key)
        ref.update(root=str(root), cwd=str(root), file=str(root / entry["rel_file"]))
    return ref


def check_inputs(body: dict[str, Any], kwargs: dict[str, Any]) -> None:
    """Refuse inputs the deployed flow can't take (unknown or missing), before anything is
    recorded: the flow's code is not imported here."""
    params = body.get("parameters") or []
    names = {p["name"] for p in params if p["kind"] in ("positional", "keyword")}
    where = f"deployment {body['flow']!r} v{body['version']}"
    if not any(p["kind"] == "var_keyword" for p in params):
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise FlowInputError(
                f"{where} takes no input {unknown[0]!r}; its inputs: {', '.join(sorted(names)) or 'none'}"
            )
    missing = [p["name"] for p in params if p.get("required") and p["name"] not in kwargs]
    if missing:
        raise FlowInputError(f"{where} needs input {missing[0]!r} (no default was deployed with it)")


def parameters(fn: Any) -> list[dict[str, Any]]:
    """The flow's parameters: name, kind and whether a value is required."""
    kinds = {
        inspect.Parameter.POSITIONAL_ONLY: "positional_only",
        inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
        inspect.Parameter.KEYWORD_ONLY: "keyword",
        inspect.Parameter.VAR_POSITIONAL: "var_positional",
        inspect.Parameter.VAR_KEYWORD: "var_keyword",
    }
    out = []
    for p in inspect.signature(fn).parameters.values():
        required = p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        out.append({"name": p.name, "kind": kinds[p.kind], "required": required})
    return out


def input_schema(fn: Any) -> dict[str, Any] | None:
    """A JSON schema of the flow's inputs from its annotations (None when they have none)."""
    try:
        import typing

        from pydantic import create_model

        hints = typing.get_type_hints(fn)
        fields: dict[str, Any] = {}
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                continue
            default = ... if p.default is p.empty else p.default
            fields[p.name] = (hints.get(p.name, Any), default)
        return create_model(f"{fn.__name__}_inputs", **fields).model_json_schema()
    except Exception:  # annotations pydantic can't describe: the deployment works without one
        return None


def package_versions() -> dict[str, str]:
    """Versions of the distributions this process imported (kitaru's plugins included)."""
    from importlib import metadata

    top = {name.partition(".")[0] for name in list(sys.modules)}
    wanted: set[str] = set()
    for module, dists in _distributions().items():
        if module in top:
            wanted.update(dists)
    out: dict[str, str] = {}
    for dist in sorted(wanted, key=str.lower):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


@functools.cache
def _distributions() -> dict[str, list[str]]:
    """Top-level module -> distributions providing it (read once: ~0.2 s over a large venv)."""
    from importlib import metadata

    return dict(metadata.packages_distributions())


def git_source(root: Path) -> dict[str, Any]:
    """The commit the project folder is at and whether it has changes ({} outside git)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if not sha:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no", ".")
    return {"commit_sha": sha, "commit_dirty": bool(status) if status is not None else None}


def _defaults(spec: FlowSpec, args: tuple[Any, ...], defaults: dict[str, Any]) -> dict[str, Any]:
    """The deploy-time inputs by parameter name, checked to be JSON (REST, CLI and MCP show them)."""
    sig = inspect.signature(spec.fn)
    try:
        bound = sig.bind_partial(*args, **defaults)
    except TypeError as exc:
        raise FlowInputError(f"flow {spec.name!r} can't take these deployment defaults: {exc}") from None
    named: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if kind == inspect.Parameter.VAR_POSITIONAL:
            raise FlowInputError(
                f"flow {spec.name!r} takes *{name}; a deployment's defaults must be named inputs"
            )
        if kind == inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        else:
            named[name] = value
    try:
        json.dumps(named, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FlowInputError(
            f"the deployment defaults of flow {spec.name!r} must be JSON values ({exc}); pass "
            "other values when invoking it"
        ) from None
    return named


def _warn_drift(body: dict[str, Any]) -> None:
    """Warn when this Python differs from the deploying one in its minor version."""
    deployed = str(body.get("python", ""))
    here = platform.python_version()
    if deployed and deployed.split(".")[:2] != here.split(".")[:2]:
        warnings.warn(
            f"deployment {body['flow']!r} v{body['version']} was made with Python {deployed}; this "
            f"is Python {here}. Redeploy it from this environment if it fails to run",
            UserWarning, stacklevel=4,
        )


def _runs_from_snapshot(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called
    """Stands for a deployed flow's function, which runs only in its runner (from the snapshot)."""
    raise KitaruError("a deployed flow runs from its snapshot, through the stack's orchestrator")
