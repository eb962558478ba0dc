"""The tools of kitaru's MCP server, as plain functions over `KitaruClient`.

Names, parameters and result shapes follow Kitaru 0.21's MCP server, so an agent (or a
prompt) written for it works here. Each function returns JSON-able data and raises a
`KitaruError` with a one-line message on a refusal; the MCP layer (`kitaru.mcp.build`)
turns that into a tool error. Importing this module needs no `mcp` package:

    from kitaru.mcp.server import kitaru_executions_list
    kitaru_executions_list(status="waiting")

The client is the active stack's (`KitaruClient()`), or the one `use_client` binds (the
kitaru server binds its own). `TOOLS` lists every tool with the API key scope it needs
over HTTP.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from kitaru_core.errors import InvalidStateError, InvalidValueError, KitaruError

if TYPE_CHECKING:
    from kitaru.client import Artifact, KitaruClient

Scope = Literal["read", "operator", "admin"]
_F = TypeVar("_F", bound=Callable[..., Any])

#: Every tool: name -> (function, the API key scope it needs over HTTP).
TOOLS: dict[str, tuple[Callable[..., Any], Scope]] = {}

#: Values larger than this (as JSON text) are returned as a shortened repr.
MAX_VALUE_CHARS = 256 * 1024

_CLIENT: ContextVar[KitaruClient | None] = ContextVar("kitaru_mcp_client", default=None)


def tool(scope: Scope) -> Callable[[_F], _F]:
    """Register a function as a tool needing `scope` (the function is returned unchanged)."""

    def register(fn: _F) -> _F:
        TOOLS[fn.__name__] = (fn, scope)
        return fn

    return register


@contextmanager
def use_client(client: KitaruClient) -> Iterator[KitaruClient]:
    """Run the tools called inside this block against `client`."""
    token = _CLIENT.set(client)
    try:
        yield client
    finally:
        _CLIENT.reset(token)


def current_client() -> KitaruClient:
    """The client tools use now: the bound one, else the active stack's."""
    bound = _CLIENT.get()
    if bound is not None:
        return bound
    from kitaru.client import KitaruClient

    return KitaruClient()


# -- connection --------------------------------------------------------------------------------


@tool("read")
def kitaru_status() -> dict[str, Any]:
    """Where the tools act: kitaru's version and home, the stack and its components, and how
    many executions wait for input."""
    import kitaru
    from kitaru_core.home import home_dir

    client = current_client()
    stack = client._stack
    waiting = client.executions.list(status="waiting", limit=1000)
    return {
        "version": kitaru.__version__,
        "home": str(home_dir()),
        "connection": "server" if _CLIENT.get() is not None else "local",
        "stack": stack.name,
        "durability": stack.spec.get("durability", "default"),
        "components": _components(stack.spec),
        "waiting_executions": len(waiting),
    }


@tool("read")
def kitaru_stacks_list() -> list[dict[str, Any]]:
    """The registered stacks with their components' flavors; `active` marks the one the tools use."""
    from kitaru_core.home import home_dir
    from kitaru_core.stack import StackStore

    stack = current_client()._stack
    store = StackStore(home_dir())
    rows: list[dict[str, Any]] = []
    names = list(store.names())
    if stack.name not in names:  # a stack built from options (a server's --registry)
        names.append(stack.name)
    for name in names:
        row: dict[str, Any] = {"name": name, "active": name == stack.name, "error": None}
        try:
            spec = stack.spec if name == stack.name else store.get(name)
        except KitaruError as exc:  # e.g. its plugin is not installed: list the others anyway
            row.update(components=None, error=str(exc))
        else:
            row.update(components=_components(spec))
        rows.append(row)
    return rows


def _components(spec: dict[str, Any]) -> dict[str, str]:
    """Each component's flavor (never its config, which may name credentials)."""
    return {c: spec[c]["flavor"] for c in ("registry", "artifact_store", "orchestrator",
                                           "execution_target") if c in spec}


# -- executions --------------------------------------------------------------------------------


@tool("read")
def kitaru_executions_list(
    status: str | None = None,
    flow: str | None = None,
    stack: str | None = None,
    limit: int | None = 50,
) -> list[dict[str, Any]]:
    """Executions, newest first, without their checkpoints (a waiting one with its
    `pending_wait`: name, question, schema); filter by status (running, waiting, completed,
    failed, cancelled), flow name or stack name; at most `limit` (None: all)."""
    _check_limit(limit)
    found = current_client().executions.list(
        status=status, flow=flow, limit=None if stack is not None else limit)
    if stack is not None:
        found = [e for e in found if e.stack_name == stack][:limit]
    return [e.to_summary_dict() for e in found]


@tool("read")
def kitaru_executions_get(exec_id: str) -> dict[str, Any]:
    """One execution (id or unique prefix): status, checkpoints with their artifacts, the
    pending wait with its question and schema, failure, usage totals."""
    return current_client().executions.get(exec_id).to_dict()


@tool("read")
def kitaru_executions_latest(
    status: str | None = None,
    flow: str | None = None,
    stack: str | None = None,
) -> dict[str, Any]:
    """The newest execution matching the filters, in full (as `kitaru_executions_get`)."""
    client = current_client()
    found = client.executions.list(status=status, flow=flow, limit=None if stack else 1)
    found = [e for e in found if stack is None or e.stack_name == stack][:1]
    if not found:
        filters = ", ".join(f"{k}={v!r}" for k, v in
                            (("status", status), ("flow", flow), ("stack", stack)) if v is not None)
        raise InvalidValueError(f"no execution matches {filters or 'at all'}; list them with "
                                "kitaru_executions_list")
    return client.executions.get(found[0].exec_id).to_dict()


@tool("read")
def get_execution_logs(
    exec_id: str,
    checkpoint: str | None = None,
    source: Literal["step", "runner", "all"] = "step",
    limit: int = 200,
) -> str:
    """The execution's captured output as text, the last `limit` entries: `source="step"`
    is the checkpoints' output (one checkpoint by name or call id with `checkpoint`),
    `"runner"` the flow body's, `"all"` both."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidValueError(f"limit={limit!r} is not a count; give 1 or more")
    if source not in ("step", "runner", "all"):
        raise InvalidValueError(f"source={source!r} is not one of step, runner, all")
    if checkpoint is not None and source == "runner":
        raise InvalidValueError("a checkpoint's logs are step logs; drop `checkpoint` or use source='step'")
    entries = current_client().executions.logs(exec_id, checkpoint=checkpoint)
    if source == "step":
        entries = [e for e in entries if e.call_id is not None]
    elif source == "runner":
        entries = [e for e in entries if e.call_id is None]
    entries = entries[-limit:]
    if not entries:
        return "(no log entries)"
    lines = []
    for e in entries:
        when = e.created_at.strftime("%H:%M:%S") if e.created_at else "--:--:--"
        where = e.call_id or "flow"
        prefix = f"{when} [{where}]" + (" stderr:" if e.stream == "stderr" else "")
        lines.extend(f"{prefix} {line}" for line in e.text.rstrip("\n").split("\n"))
    return "\n".join(lines)


@tool("operator")
def kitaru_executions_run(
    target: str,
    args: dict[str, Any] | None = None,
    stack: str | None = None,
) -> dict[str, Any]:
    """Start flow `target` (`<module_or_file>:<flow_name>`, e.g. `flows/research.py:research`)
    with the inputs `args` (a JSON object of the flow's parameters) on `stack` (default: the
    flow's or the active one); returns once its runner took it, with the new `exec_id`.

    The flow body runs in a runner process of its own that the stack's orchestrator
    launches, so it goes on after this server stops."""
    import inspect

    from kitaru.flow_targets import load_flow_target
    from kitaru_core.errors import FlowInputError
    from kitaru_core.runtime import service
    from kitaru_core.runtime.handover import launch_and_confirm
    from kitaru_core.stack import get_stack

    if args is not None and not isinstance(args, dict):
        raise InvalidValueError(f"args must be a JSON object of the flow's inputs, not {type(args).__name__}")
    flow = load_flow_target(target)
    spec = flow._resolved(None, None, None)
    try:  # bound to the signature: a parameter named like a run option is fine
        bound = inspect.signature(spec.fn).bind(**(args or {}))
    except TypeError as exc:
        raise FlowInputError(f"flow {flow.name!r} can't take these inputs: {exc}") from None
    if stack is not None:
        built = get_stack(stack)
    elif _CLIENT.get() is not None:  # a server runs flows on the stack it serves
        built = current_client()._stack
    else:
        built = flow._stack(None)
    record = service.create_execution(spec, built, bound.args, bound.kwargs, owner=None)
    done = launch_and_confirm(record, built, "resume", service.launch)
    if done.outcome == "failed":
        raise service.resume_failed_error(record.exec_id, done.failure or {}, done.log)
    return {
        "exec_id": record.exec_id,
        "target": target,
        "flow_name": flow.name,
        "stack_name": built.name,
        "status": done.record.status,
        "runner": done.outcome,  # "resumed": its runner took it; "launched": still starting
    }


@tool("operator")
def kitaru_executions_cancel(exec_id: str) -> dict[str, Any]:
    """Cancel a running or waiting execution (its remote work and launched runner too)."""
    return current_client().executions.cancel(exec_id).to_dict()


@tool("operator")
def kitaru_executions_input(exec_id: str, wait: str, value: Any = None) -> dict[str, Any]:
    """Answer the pending wait `wait` of an execution with `value` (validated against the
    wait's schema; a refused value leaves the wait pending). The execution continues: its
    polling runner takes the answer, or a runner is launched to resume it."""
    return current_client().executions.input(exec_id, wait=wait, value=value).to_dict()


@tool("operator")
def kitaru_executions_abort_wait(exec_id: str, wait: str) -> dict[str, Any]:
    """Abort one pending wait without an input and without cancelling its execution: the
    flow's `wait()` raises `WaitAbortedError` (it may catch it and go on; else it fails)."""
    return current_client().executions.abort_wait(exec_id, wait=wait).to_dict()


@tool("operator")
def kitaru_executions_resume(exec_id: str) -> dict[str, Any]:
    """Continue a waiting execution whose wait was answered, or a running one whose runner died."""
    return current_client().executions.resume(exec_id).to_dict()


@tool("operator")
def kitaru_executions_retry(exec_id: str) -> dict[str, Any]:
    """Continue a failed execution in place; its completed checkpoints are reused."""
    return current_client().executions.retry(exec_id).to_dict()


@tool("operator")
def kitaru_executions_replay(
    exec_ids: list[str] | str,
    at: str,
    flow_overrides: dict[str, Any] | None = None,
    checkpoint_overrides: dict[str, Any] | None = None,
    wait: bool = False,
) -> dict[str, Any]:
    """Replay executions from checkpoint `at` (a name or call id): each becomes a new linked
    execution where calls before `at` reuse the original's outputs and `at` and later run
    live. `flow_overrides` change flow inputs; `checkpoint_overrides` map a checkpoint name
    or call id to `{"output": value}`; `wait` blocks until each replay ends."""
    return current_client().executions.replay(
        exec_ids, at=at, flow_overrides=flow_overrides,
        checkpoint_overrides=checkpoint_overrides, wait=wait,
    ).to_dict()


@tool("read")
def kitaru_executions_statistics(
    group_by: list[str] | None = None,
    metrics: list[str | dict[str, Any]] | None = None,
    flow: str | None = None,
    status: str | None = None,
    stack: str | None = None,
    tags: list[str] | None = None,
    max_groups: int = 1000,
) -> dict[str, Any]:
    """Execution counts (and numeric metrics) per group, over the newest 1000 matching
    executions: ask this cheap aggregate first, then fetch executions of a group that looks
    wrong. `group_by`: status, flow, stack, time:hour|day|week|month, metadata:<key>;
    `metrics`: `<name>:duration:<avg|sum|min|max>`, `<name>:metadata:<key>:<agg>`,
    llm_display_cost, llm_total_tokens, llm_calls. Without `group_by`, `summary` adds
    checkpoint totals and duration percentiles."""
    from kitaru.mcp.statistics import grouped_statistics

    client = current_client()
    out = grouped_statistics(client, group_by=group_by or [], metrics=metrics or [], flow=flow,
                             status=status, stack=stack, tags=tags, max_groups=max_groups)
    if not group_by and status is None and stack is None:
        out["summary"] = client.executions.statistics(flow=flow).to_dict()
    return out


@tool("read")
def kitaru_executions_diff(original: str, executions: list[str] | None = None) -> dict[str, Any]:
    """Compare an original execution with others (default: its replays), each checkpoint by
    checkpoint: `same`, `changed`, `only_in_a` or `only_in_b`, a unified text/JSON diff of
    every artifact that differs, and model usage deltas (other minus original)."""
    from kitaru.diffs import replays_of

    api = current_client().executions
    base = api.get(original).exec_id
    compared = list(executions or []) or replays_of(api, base)
    if not compared:
        raise InvalidValueError(f"execution {base} has no replays; name the executions to compare "
                                "it with (`executions`)")
    return {"available": True, "operation": "diff", "original": base,
            "diffs": [api.diff(base, other).to_dict() for other in compared]}


@tool("read")
def kitaru_executions_diff_matrix(exec_ids: list[str]) -> dict[str, Any]:
    """Several executions against the first (the baseline), checkpoint by checkpoint, with
    each pair's counts and usage deltas; one id alone: it against its replays."""
    return {"available": True, "operation": "diff_matrix",
            "diff_matrix": current_client().executions.diff_matrix(exec_ids).to_dict()}


# -- artifacts -----------------------------------------------------------------------------------


@tool("read")
def kitaru_artifacts_list(
    exec_id: str,
    name: str | None = None,
    kind: Literal["input", "output", "saved"] | None = None,
    producing_call: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """An execution's artifacts (metadata, no values): filter by `name`, `kind` (input,
    output or saved) and `producing_call` (a checkpoint name or call id)."""
    _check_limit(limit)
    found = current_client().artifacts.list(exec_id, name=name)
    if kind is not None:
        found = [a for a in found if a.direction == kind]
    if producing_call is not None:
        found = [a for a in found
                 if a.call_id == producing_call or (a.call_id or "").split("#")[0] == producing_call]
    return [_artifact_ref(a) for a in found[:limit]]


@tool("read")
def kitaru_artifacts_get(artifact_id: str) -> dict[str, Any]:
    """One artifact's metadata and its loaded value (`value_format` "json", or "repr" for a
    value JSON can't hold or one too large to return whole)."""
    artifact = current_client().artifacts.get(artifact_id)
    return {**_artifact_ref(artifact), **serialize_value(artifact.load())}


def _artifact_ref(artifact: Artifact) -> dict[str, Any]:
    data = artifact.to_dict()
    data.pop("key", None)  # where the bytes live in the store: not the agent's business
    # Kitaru 0.21's names for the same facts.
    return {**data, "kind": artifact.direction, "producing_call": artifact.call_id}


def serialize_value(value: Any) -> dict[str, Any]:
    """`value` for a tool result: as JSON when it is JSON data, else its repr; shortened
    past `MAX_VALUE_CHARS` characters."""
    from kitaru.client import _jsonable

    kind = type(value)
    value_type = f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" \
        else kind.__qualname__
    if hasattr(value, "model_dump"):  # a pydantic model: its fields
        value = value.model_dump(mode="json")
    try:
        text = json.dumps(_jsonable(value), allow_nan=False)
    except (TypeError, ValueError):
        text = None
    if text is not None and len(text) <= MAX_VALUE_CHARS:
        return {"value": json.loads(text), "value_format": "json", "value_type": value_type}
    shown = repr(value) if text is None else text
    out: dict[str, Any] = {"value": shown[:MAX_VALUE_CHARS], "value_format": "repr",
                           "value_type": value_type}
    if len(shown) > MAX_VALUE_CHARS:
        out["truncated_from_chars"] = len(shown)
    return out


# -- memory ----------------------------------------------------------------------------------------


def _scope(scope: str, scope_type: str | None) -> str:
    if scope_type is None:
        return scope
    if scope_type not in ("namespace", "flow", "execution"):
        raise InvalidValueError(f"scope_type={scope_type!r} is not one of namespace, flow, execution")
    return f"{scope_type}:{scope}"


@tool("read")
def kitaru_memory_list(scope: str, scope_type: str | None = None,
                       prefix: str | None = None) -> list[dict[str, Any]]:
    """The latest version of every key holding a value in a memory scope (a namespace name,
    or with `scope_type` flow/execution/namespace), optionally only keys starting with `prefix`."""
    entries = current_client().memory.list(scope=_scope(scope, scope_type))
    return [e.to_dict() for e in entries if prefix is None or e.key.startswith(prefix)]


@tool("read")
def kitaru_memory_get(key: str, scope: str, scope_type: str | None = None,
                      version: int | None = None) -> dict[str, Any] | None:
    """One memory key's latest version (or `version`) with its value; None if never set."""
    entry = current_client().memory.entry(key, scope=_scope(scope, scope_type), version=version)
    if entry is None:
        return None
    value = {"value": None, "value_format": "json", "value_type": "NoneType"} if entry.deleted \
        else serialize_value(entry.load())
    return {**entry.to_dict(), **value}


@tool("operator")
def kitaru_memory_set(key: str, value: Any, scope: str,
                      scope_type: str | None = None) -> dict[str, Any]:
    """Store `value` as the next version of `key` in a memory scope."""
    return current_client().memory.set(key, value, scope=_scope(scope, scope_type)).to_dict()


@tool("operator")
def kitaru_memory_delete(key: str, scope: str, scope_type: str | None = None) -> dict[str, Any]:
    """Delete `key` from a memory scope (a tombstone version; its history stays)."""
    return current_client().memory.delete(key, scope=_scope(scope, scope_type)).to_dict()


@tool("read")
def kitaru_memory_history(key: str, scope: str,
                          scope_type: str | None = None) -> list[dict[str, Any]]:
    """Every version of `key` in a memory scope, oldest first, deletes included."""
    return [e.to_dict() for e in current_client().memory.history(key, scope=_scope(scope, scope_type))]


# -- deployments -------------------------------------------------------------------------------------


@tool("admin")
def kitaru_deployments_deploy(
    target: str,
    inputs: dict[str, Any] | None = None,
    tag: str = "default",
    exclusive: bool = False,
    stack: str | None = None,
    image: str | dict[str, Any] | None = None,
    cache: bool | None = None,
    retries: int | None = None,
) -> dict[str, Any]:
    """Deploy the flow `target` (`<module_or_file>:<flow_name>`) as its next version: an
    immutable snapshot of its code, stack and defaults (`inputs`), tagged `tag` (`default`,
    always exclusive, routes invocations that name no tag; `exclusive` moves another tag here
    from any other version). `image` is a base image or `kitaru.ImageSettings` fields."""
    from kitaru.deployments import DEFAULT_TAG

    if inputs is not None and not isinstance(inputs, dict):
        raise InvalidValueError(f"inputs must be a JSON object of flow inputs, not {type(inputs).__name__}")
    deployment = current_client().deployments.deploy(
        target, inputs=inputs, tags={tag: exclusive or tag == DEFAULT_TAG}, stack=stack,
        image=image, cache=cache, retries=retries,
    )
    return _deployment(deployment)


@tool("operator")
def kitaru_deployments_invoke(
    flow: str,
    version: int | None = None,
    tag: str | None = None,
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start an execution of a deployed flow: the version `version`, else the one tagged
    `tag`, else the `default` one, with `inputs` over its deployed defaults. It runs the
    snapshot's code through the deployment's stack; returns the new `exec_id` at once."""
    from kitaru.deployments import DEFAULT_TAG

    if inputs is not None and not isinstance(inputs, dict):
        raise InvalidValueError(f"inputs must be a JSON object of flow inputs, not {type(inputs).__name__}")
    deployments = current_client().deployments
    found = deployments.get(flow=flow, version=version, tag=tag)  # pinned: a tag moved meanwhile
    handle = deployments.invoke(flow=found.flow, version=found.version, inputs=inputs)  # can't race
    return {"exec_id": handle.exec_id, "flow": found.flow, "version": found.version,
            "tag": None if version is not None else tag or DEFAULT_TAG, "status": handle.status.value}


@tool("read")
def kitaru_deployments_list(flow: str | None = None) -> list[dict[str, Any]]:
    """Every deployment version (of `flow`, if given), by flow then version, with its tags."""
    return [_deployment(d) for d in current_client().deployments.list(flow=flow)]


@tool("read")
def kitaru_deployments_get(flow: str, version: int | None = None, tag: str | None = None) -> dict[str, Any]:
    """One deployment version of a flow: by `version`, else by `tag`, else the `default` one."""
    return _deployment(current_client().deployments.get(flow=flow, version=version, tag=tag))


@tool("admin")
def kitaru_deployments_delete(flow: str, version: int) -> dict[str, Any]:
    """Delete one deployment version (refused while it holds an exclusive tag: move it first)."""
    current_client().deployments.delete(flow=flow, version=version)
    return {"flow": flow, "version": version, "deleted": True}


@tool("admin")
def kitaru_deployments_tag(flow: str, version: int, tag: str, exclusive: bool = False) -> dict[str, Any]:
    """Put `tag` on one deployment version; `exclusive` moves it here from any other version
    (a promotion, or a rollback)."""
    return _deployment(current_client().deployments.tag(flow=flow, version=version, tag=tag,
                                                        exclusive=exclusive))


@tool("admin")
def kitaru_deployments_untag(flow: str, version: int, tag: str) -> dict[str, Any]:
    """Take `tag` off one deployment version (`default` can't be removed, only moved)."""
    return _deployment(current_client().deployments.untag(flow=flow, version=version, tag=tag))


def _deployment(deployment: Any) -> dict[str, Any]:
    """A deployment for the agent: its stack's flavors instead of the frozen spec (whose
    config may hold credentials written literally)."""
    data = deployment.to_dict()
    data["stack_components"] = _components(data.pop("stack_spec", None) or {})
    return data


# -- secrets -------------------------------------------------------------------------------------------


@tool("admin")
def kitaru_secrets_create(name: str, values: dict[str, str], private: bool = False) -> dict[str, Any]:
    """Create secret `name` with `values` (key -> string), sealed in the registry; returns its
    metadata, never its values. Refused if it exists (`kitaru secrets set` changes one).
    `private` is accepted for Kitaru 0.21's signature: kitaru's secrets have no visibility."""
    from kitaru_core.errors import SecretNotFoundError

    secrets = current_client().secrets
    try:
        secrets.get(name)
    except SecretNotFoundError:
        return _secret(secrets.set(name, values))
    raise InvalidStateError(f"secret {name!r} exists; change it with `kitaru secrets set {name} "
                            "--KEY=value` (the MCP server creates secrets, never changes them)")


@tool("read")
def kitaru_secrets_list(page: int = 1, size: int = 20) -> list[dict[str, Any]]:
    """Secrets' names and key names, `size` a page (pages past the end are empty); never values."""
    for label, number in (("page", page), ("size", size)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise InvalidValueError(f"{label}={number!r} is not a count; give 1 or more")
    found = current_client().secrets.list()
    return [_secret(s) for s in found[(page - 1) * size: page * size]]


def _secret(secret: Any) -> dict[str, Any]:
    """A secret's metadata, with Kitaru 0.21's fields (`keys_known`, `has_missing_values`)."""
    return {**secret.to_dict(), "visibility": "public", "keys_known": True,
            "has_missing_values": False}


# -- helpers ---------------------------------------------------------------------------------------


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidValueError(f"limit={limit!r} is not a count; give 1 or more, or null for all")


def main() -> None:
    """`kitaru-mcp`: serve the tools over stdio to an MCP client (a coding agent)."""
    from kitaru.mcp.build import build_server

    os.environ.setdefault("KITARU_INTERACTIVE", "0")  # stdin is the MCP channel: never prompt
    build_server().run("stdio")
