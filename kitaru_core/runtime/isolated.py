"""The runner's side of the remote protocol for `@checkpoint(runtime="isolated")`.

1. inputs become artifacts; the function is named `module:qualname` plus a
   content-addressed zip of the project's code (uploaded once), or, if it
   cannot be imported by reference, cloudpickled with version checks;
2. `tasks/<exec>/<call>/<attempt>/spec.json` goes to the artifact store, the
   intent (task name, attempt) to the registry, then the target gets a
   `TaskRequest` and starts the worker (`runtime/protocol.py`);
3. the worker writes the output artifact, then `result.json` last;
4. the runner polls, reads `result.json` and records the call. After a runner
   crash it looks for `result.json` first, then reattaches (by the recorded
   handle, or `find` by name when only the intent was recorded), then resubmits.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import placeholders
from ..code_source import CodeSource, code_source
from ..errors import TaskError
from ..interfaces import ExecutionTarget, Resources, TaskRequest, TaskState
from ..records import ArtifactRecord, CallRecord, LogChunk, MetadataEntry
from ..status import CallStatus
from .artifacts import ensure_blob, new_artifact_id
from .code_package import code_digest, code_package, is_installed
from .handles import OutputHandle
from .protocol import task_name, task_prefix, task_spec, worker_argv

if TYPE_CHECKING:
    from .execution import ExecutionContext
    from .specs import CheckpointSpec

_FIRST_POLL = 0.1
#: Attempts a runner submits again, not charged to the retries, after the target reported its
#: own attempt `lost` (then the loss fails the attempt like any error).
MAX_LOST_RESUBMITS = 3


def run_isolated(
    ctx: ExecutionContext,
    spec: CheckpointSpec,
    call: CallRecord,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    inputs: list[ArtifactRecord],
) -> OutputHandle:
    """Run one call on the stack's execution target and record its result."""
    store = ctx.store
    target = ctx.stack.execution_target
    attempt = 0  # attempts this runner submitted or followed: the retry budget
    lost = 0  # attempts of this runner the target lost, each submitted again for free
    # Inputs are recorded with the call's first submission only (an earlier runner's included).
    unrecorded_inputs = inputs if call.attempts == 0 else []
    while True:
        # A task from an earlier runner of this execution: its result, or the task itself.
        task = call.task
        inherited = task is not None  # its handle, or only the intent if that runner died in submit
        if task is None:
            call.attempts += 1  # also names the task, so each submission has its own
            request = _request(ctx, spec, call, call.attempts)
            target.check_resources(request)  # refused before anything is written
            _write_spec(ctx, spec, call, args, kwargs, inputs, request)
            # The intent, before submit: a runner that dies from here on finds the task by name.
            task = {"prefix": task_prefix(ctx.exec_id, call.call_id, call.attempts),
                    "name": request.task_name, "attempt": call.attempts, "handle": None}
            call.task = task
            ctx.registry.save_call(call, unrecorded_inputs)
            unrecorded_inputs = []
        if task.get("handle") is None:
            request = _request(ctx, spec, call, int(task.get("attempt") or call.attempts))
            # `find` first (an earlier runner may have submitted it); `submit` adopts by name too.
            task["handle"] = target.find(request.task_name) or target.submit(request)
            ctx.registry.save_call(call)
        attempt += 1
        outcome = _follow(ctx, target, task, call)
        if isinstance(outcome, TaskState) and (inherited or lost < MAX_LOST_RESUBMITS):
            # Lost with the runner that started it, or by the target (an evicted pod, a spot
            # interruption, a capacity error): a new attempt, not charged to the retries. The
            # target's reason goes to the call's log, so the user sees why it ran again.
            lost += 0 if inherited else 1
            if outcome.message:
                ctx.registry.append_logs([LogChunk(
                    ctx.exec_id, call.call_id, 0, "stderr",
                    f"kitaru: task {task.get('name')} was lost ({outcome.message}); submitting "
                    "it again (not counted as a retry)\n", time.time())])
            call.task = None
            attempt -= 1
            continue
        if isinstance(outcome, TaskState):  # lost under this runner's eyes: a failed attempt
            reason = f": {outcome.message}" if outcome.message else ""
            outcome = (
                {"status": "error",
                 "error": {"type": "TaskError",
                           "message": f"the task was lost before it wrote its result.json{reason}"}},
                target.logs(task["handle"]),
            )
        result, logs = outcome
        chunks = [LogChunk(ctx.exec_id, call.call_id, 0, "stdout", logs, time.time())] if logs else []
        if result["status"] == "ok":
            out = result["output"]
            output = ArtifactRecord(
                artifact_id=new_artifact_id(ctx.exec_id), exec_id=ctx.exec_id, name=spec.name,
                direction="output",
                key=out["key"], serializer=out["serializer"], type_name=out["type_name"],
                size=out["size"], call_id=call.call_id, created_at=time.time(),
            )
            saved = [_saved_record(ctx, call, s) for s in result.get("saved", [])]
            meta = [
                MetadataEntry(ctx.exec_id, call.call_id, k, v, time.time())
                for k, v in (result.get("metadata") or {}).items()
            ]
            call.status = CallStatus.COMPLETED.value
            call.ended_at = time.time()
            call.output_artifact = output.artifact_id
            call.error = None
            ctx.registry.save_call(call, [output, *saved], chunks, meta)
            ctx.calls[call.call_id] = call
            ctx.completed_by_seq[call.seq] = call.call_id
            return OutputHandle(call.call_id, spec.name, artifact=output, store=store)
        call.error = result.get("error") or {"message": "the task failed"}
        call.task = None
        if attempt <= spec.retries and result.get("retryable", True):
            delay = spec.retry_delay * (spec.backoff ** (max(attempt, 1) - 1))
            err = call.error
            chunks.append(LogChunk(
                ctx.exec_id, call.call_id, 0, "stderr",
                f"[kitaru] attempt {call.attempts} failed: {err.get('type', 'Error')}: "
                f"{err.get('message', '')}; retrying in {delay:.2f}s\n", time.time(),
            ))
            ctx.registry.save_call(call, (), chunks)
            ctx._sleep(delay)
            continue
        call.status = CallStatus.FAILED.value
        call.ended_at = time.time()
        ctx.registry.save_call(call, (), chunks)
        ctx.calls[call.call_id] = call
        err = call.error
        target_name = ctx.stack.spec["execution_target"]["flavor"]
        raise TaskError(
            f"isolated checkpoint {call.call_id!r} failed on the {target_name!r} target: "
            f"{err.get('type', 'Error')}: {err.get('message', '')}"
        )


def _saved_record(ctx: ExecutionContext, call: CallRecord, saved: dict[str, Any]) -> ArtifactRecord:
    return ArtifactRecord(
        artifact_id=new_artifact_id(ctx.exec_id), exec_id=ctx.exec_id, name=saved["name"], direction="saved",
        key=saved["key"], serializer=saved["serializer"], type_name=saved["type_name"],
        size=saved["size"], call_id=call.call_id, created_at=time.time(),
        metadata=saved.get("metadata"),
    )


def _request(ctx: ExecutionContext, spec: CheckpointSpec, call: CallRecord, attempt: int) -> TaskRequest:
    """The target's request for one attempt: deterministic, so a resumed runner rebuilds it."""
    store_spec = ctx.stack.spec["artifact_store"]
    store_config = store_spec.get("config") or {}  # as written: ${env:...} stays unresolved
    target = ctx.stack.execution_target
    spec_key = f"{task_prefix(ctx.exec_id, call.call_id, attempt)}/spec.json"
    name = task_name(ctx.exec_id, call.call_id, attempt)
    defaults = getattr(target.config, "resources", None)
    if isinstance(defaults, dict):
        defaults = Resources(**defaults)
    return TaskRequest(
        task_name=name,
        spec_key=spec_key,
        argv=worker_argv(store_spec["flavor"], store_config, spec_key),
        env={"KITARU_EXEC_ID": ctx.exec_id, "KITARU_DURABILITY": ctx.stack.spec.get("durability", "default")},
        resources=spec.resources.over(defaults),
        image=spec.image,
        timeout=spec.timeout,
        options=dict(spec.options),
        secret_env=tuple(placeholders.env_names(store_config)),
        labels={"kitaru-execution": _slug_label(ctx.exec_id), "kitaru-call": _slug_label(call.call_id),
                "kitaru-attempt": str(attempt)},
    )


def _slug_label(text: str) -> str:
    return "-".join(filter(None, "".join(c if c.isalnum() else "-" for c in text.lower()).split("-")))[:63]


def _write_spec(
    ctx: ExecutionContext,
    spec: CheckpointSpec,
    call: CallRecord,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    inputs: list[ArtifactRecord],
    request: TaskRequest,
) -> None:
    store = ctx.store
    by_name = {a.name: a for a in inputs}
    bound = spec.bind(args, kwargs)
    for name in bound:
        ensure_blob(store, by_name[name])  # the worker reads the store, never the registry
    document = task_spec(
        exec_id=ctx.exec_id, call_id=call.call_id, checkpoint=spec.name, attempt=call.attempts,
        task_name=request.task_name, prefix=task_prefix(ctx.exec_id, call.call_id, call.attempts),
        function=function_reference(spec.fn, store, code_source(ctx.stack.spec)),
        inputs={name: {"key": by_name[name].key, "serializer": by_name[name].serializer} for name in bound},
        positional=list(bound) == [f"arg{i}" for i in range(len(bound))] and bool(bound),
    )
    store.write_file(request.spec_key, json.dumps(document).encode())


def _follow(
    ctx: ExecutionContext, target: ExecutionTarget, task: dict[str, Any], call: CallRecord
) -> tuple[dict[str, Any], str] | TaskState:
    """Wait for the task's result.json; the `lost` state (with the target's reason) if the
    task was lost without one.

    Each tick is one store read and one target request (`watch`, else a sleep and
    `poll`); the pause grows from 0.1 s to the target's `poll_cap`. A cancelled
    execution cancels the task on the target before it stops.
    """
    store = ctx.store
    result_path = f"{task['prefix']}/result.json"
    handle = task["handle"]
    delay = _FIRST_POLL
    cap = max(float(getattr(target, "poll_cap", 5.0)), _FIRST_POLL)
    ended_polls = 0
    while True:
        raw = store.read_file(result_path)
        if raw is not None:
            return json.loads(raw), target.logs(handle)
        if ctx.cancelled:
            if not ctx.stop_requested or _execution_cancelled(ctx):
                target.cancel(handle)  # a runner only stopped (evicted) leaves it for its successor
            ctx.check_cancelled()
        if ended_polls:
            state = target.poll(handle)
        else:
            state = target.watch(handle, delay)
            if state is None:
                time.sleep(delay)
                state = target.poll(handle)
        delay = min(delay * 2, cap)
        if state.ended:
            # The process may have ended a moment after writing: look once more.
            ended_polls += 1
            if ended_polls < 2:
                continue
            if state.state == "lost":
                return state
            logs = target.logs(handle)
            return (
                {
                    "status": "error",
                    "error": {
                        "type": "TaskError",
                        "message": f"the task ended ({state.state}) without a result.json: "
                        f"{state.message or logs[-2000:]}",
                    },
                },
                logs,
            )


def _execution_cancelled(ctx: ExecutionContext) -> bool:
    try:
        return ctx.registry.get_execution(ctx.exec_id).status == "cancelled"
    except Exception:  # cannot tell: stop the task rather than leave it running
        return True


# -- function references and code packages ----------------------------------------


def function_reference(fn: Any, store: Any, code: CodeSource | None = None) -> dict[str, Any]:
    """How a worker finds `fn`: by import path or cloudpickled, with the project's code.

    A cloudpickled function still names the classes and functions of importable
    modules by reference, so the worker gets the project's code on its path too:
    the code package (uploaded), or with `code.source == "image"` the path of the
    code in the image and the digest it must have (nothing uploaded).
    """
    module = fn.__module__
    qualname = fn.__qualname__
    file = _source_file(fn)
    ref: dict[str, Any] = {"module": module, "qualname": qualname}
    if "<locals>" in qualname or file is None:
        import cloudpickle

        data = cloudpickle.dumps(fn)
        key = hashlib.sha256(data).hexdigest()
        store.put_blob(data, key)
        ref.update(
            pickled=key, cloudpickle=cloudpickle.__version__, python=list(sys.version_info[:2])
        )
        if file is None:  # defined in a REPL or notebook: no project folder to ship
            return ref
    root, module_name = module_root(module, file)
    if "pickled" not in ref:
        ref["module"] = module_name
    if code is not None and code.in_image:
        if not is_installed(root):  # installed code: the image installs it too
            ref["code_image"] = {"path": code.path, "digest": code_digest(root)}
        return ref
    package = code_package(root)  # None for installed code: the task's image installs it too
    if package is not None:
        data, key = package
        store.put_blob(data, key)
        ref["code_package"] = key
    return ref  # never the runner's own folder: a task elsewhere could not use it


def _source_file(fn: Any) -> str | None:
    code = getattr(fn, "__code__", None)
    path = code.co_filename if code is not None else None
    if path and os.path.exists(path):
        return os.path.abspath(path)
    return None


def module_root(module: str, file: str) -> tuple[Path, str]:
    """The folder to put on sys.path and the module name to import `file` by."""
    path = Path(file).resolve()
    if module == "__main__":
        module = _main_module_name(path)
    if module == "__main__" or module.startswith("__kitaru"):
        return path.parent, path.stem
    parts = module.split(".")
    root = path.parent
    if path.stem == "__init__":
        parts = parts[:-1] if len(parts) > 1 else parts
    for _ in parts[1:]:
        root = root.parent
    return root, module


def _main_module_name(path: Path) -> str:
    """`pkg.mod` if `path` is the module run as `python -m pkg.mod`, else `__main__`.

    Importing such a module by its file name alone would break its relative imports.
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    origin = getattr(spec, "origin", None)
    if name and name != "__main__" and origin and Path(origin).resolve() == path:
        return str(name)
    return "__main__"
