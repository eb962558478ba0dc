"""`wait()`: durable pauses for input, and validation of the inputs given to them."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from ..errors import WaitAbortedError, WaitInputError
from ..records import WaitRecord
from .execution import FlowSuspended, require_flow_context

_POLL_SECONDS = 0.2
_PROMPT_CHECK_SECONDS = 0.2  # how often a prompt checks for a suspension or an answer
_NO_SCHEMA = object()
#: What an aborted wait records as its answer: `wait()` raises `WaitAbortedError` on reading it
#: (a resume or a replay of the execution reads it again, and raises again).
ABORTED = {"__kitaru_wait_aborted__": True}


def wait(
    *,
    name: str,
    question: str | None = None,
    schema: Any = None,
    timeout: float | None = 600,
    metadata: dict[str, Any] | None = None,
) -> Any:
    """Pause the flow until an input for wait `name` arrives; return the validated input.

    The execution is `waiting` from here on. This process polls for up to `timeout`
    seconds, then suspends the execution (the process leaves, no compute is held)
    until `kitaru executions input` answers it and launches a resume.
    """
    ctx = require_flow_context("wait()")
    ctx.check_cancelled()
    seq, wait_id = ctx.next_step(name, None, kind="wait")
    recorded = ctx.waits.get(wait_id)
    if recorded is None and ctx.replay is not None and seq < ctx.replay.at_seq:
        original = ctx.replay.waits.get(seq)
        if original is not None and original.status == "answered":
            recorded = _record(ctx, wait_id, seq, question, schema, timeout, metadata)
            ctx.registry.answer_wait(ctx.exec_id, wait_id, original.value)
            recorded.status, recorded.value = "answered", original.value
    if recorded is None:
        recorded = _record(ctx, wait_id, seq, question, schema, timeout, metadata)
    if recorded.status == "answered":
        return _result(wait_id, schema, recorded.value)
    deadline = None if timeout is None else time.monotonic() + timeout
    _set_status(ctx, "waiting", "running")
    ctx.at_wait = wait_id
    try:
        prompted = _maybe_prompt(ctx, recorded, schema)
        if prompted is not _NO_SCHEMA:
            _set_status(ctx, "running", "waiting")
            return prompted
        return _result(wait_id, schema, _poll(ctx, wait_id, deadline))
    finally:
        ctx.at_wait = None


def _result(wait_id: str, schema: Any, value: Any) -> Any:
    """The answer as the flow gets it; `WaitAbortedError` for an aborted wait."""
    if value == ABORTED:
        raise WaitAbortedError(f"wait {wait_id!r} was aborted: it has no input; catch "
                               "kitaru.errors.WaitAbortedError in the flow to go on without it")
    return _coerce(schema, value)


def _poll(ctx: Any, wait_id: str, deadline: float | None) -> Any:
    """Poll for the answer until `deadline`, then suspend unless it arrived; the answer."""
    while True:
        ctx.check_cancelled()
        answered = _answer(ctx, wait_id)
        if answered is not None:
            _set_status(ctx, "running", "waiting")
            return answered.value
        due = ctx.suspend_requested.is_set() or (
            deadline is not None and time.monotonic() >= deadline
        )
        # Calls submitted to run concurrently end (and are recorded) before the body lets go.
        if due and not ctx.calls_in_flight():
            if ctx.registry.suspend_at_wait(ctx.exec_id, owner=ctx.owner, wait_name=wait_id):
                ctx.suspended = True
                raise FlowSuspended(wait_id)
            if _answer(ctx, wait_id) is None:
                # Not answered, yet not ours to suspend: cancelled, or another runner took over.
                status = ctx.registry.get_execution(ctx.exec_id).status
                ctx.lost_lease = status != "cancelled"
                ctx.cancelled = True
            continue  # answered meanwhile: the next round takes it
        if ctx.suspend_requested.is_set():
            time.sleep(_POLL_SECONDS)
        else:
            left = _POLL_SECONDS if deadline is None else deadline - time.monotonic()
            ctx.suspend_requested.wait(min(_POLL_SECONDS, max(left, 0.001)))


def _answer(ctx: Any, wait_id: str) -> WaitRecord | None:
    for w in ctx.registry.get_waits(ctx.exec_id):
        if w.name == wait_id and w.status == "answered":
            ctx.waits[wait_id] = w
            return w
    return None


def _set_status(ctx: Any, status: str, was: str) -> None:
    """`waiting` while the body is blocked at a wait, `running` again once it continues."""
    ctx.registry.update_execution(ctx.exec_id, {"status": status}, owner=ctx.owner, statuses=(was,))


def _record(
    ctx: Any, wait_id: str, seq: int, question: str | None, schema: Any,
    timeout: float | None, metadata: dict[str, Any] | None,
) -> WaitRecord:
    stored = ctx.registry.create_wait(
        WaitRecord(
            exec_id=ctx.exec_id, name=wait_id, seq=seq, status="pending",
            question=None if question is None else str(question),
            schema=describe_schema(schema), metadata=metadata, timeout=timeout,
            created_at=time.time(),
        )
    )
    ctx.waits[wait_id] = stored
    ctx.waits_by_seq[seq] = wait_id
    return stored


def describe_schema(schema: Any) -> dict[str, Any]:
    """What a process without the flow's code needs to validate an input."""
    if schema is None:
        return {"kind": "none"}
    from pydantic import TypeAdapter

    ref = None
    module = getattr(schema, "__module__", None)
    qualname = getattr(schema, "__qualname__", None)
    if isinstance(schema, type) and module and qualname and "<locals>" not in qualname:
        ref = f"{module}:{qualname}"
    try:
        json_schema = TypeAdapter(schema).json_schema()
    except Exception:
        json_schema = {}
    return {"kind": "type", "ref": ref, "json_schema": json_schema, "repr": _type_repr(schema)}


def _type_repr(schema: Any) -> str:
    return getattr(schema, "__name__", None) or repr(schema)


def _coerce(schema: Any, value: Any) -> Any:
    if schema is None:
        return value
    from pydantic import TypeAdapter

    return TypeAdapter(schema).validate_python(value)


def validate_input(wait: WaitRecord, value: Any) -> Any:
    """Check `value` against the wait's schema; return its JSON form or raise WaitInputError."""
    desc = wait.schema or {"kind": "none"}
    if desc.get("kind") == "none":
        return value
    from pydantic import TypeAdapter, ValidationError

    schema_type = _import_ref(desc.get("ref"))
    where = f"wait {wait.name!r} of execution {wait.exec_id}"
    if schema_type is not None and schema_type is not _UNIMPORTABLE:
        adapter = TypeAdapter(schema_type)
        try:
            return adapter.dump_python(_validate(adapter, value), mode="json")
        except ValidationError as exc:
            raise WaitInputError(
                f"input for {where} does not match its schema {desc.get('repr')}: "
                f"{_short_errors(exc)}; the wait is still pending, send a corrected value"
            ) from None
    import jsonschema

    try:
        jsonschema.validate(value, desc.get("json_schema") or {})
    except jsonschema.ValidationError as exc:
        loc = ".".join(str(p) for p in exc.absolute_path) or "value"
        raise WaitInputError(
            f"input for {where} does not match its schema {desc.get('repr')}: {loc}: "
            f"{exc.message}; the wait is still pending, send a corrected value"
        ) from None
    return value


def _validate(adapter: Any, value: Any) -> Any:
    """Validate an input strictly, as JSON: `"yes"` is not a bool, `"3"` is not an int.

    A person answers a typed question; a lenient coercion would turn a slip into a
    decision. JSON-strict still reads what JSON cannot express natively (a datetime, a
    UUID, an enum from its string). A Python object JSON cannot hold (a model instance
    given through the client) is validated as Python.
    """
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return adapter.validate_python(value)
    return adapter.validate_json(text, strict=True)


_UNIMPORTABLE = object()
_BUILTIN_TYPES = {"bool": bool, "int": int, "float": float, "str": str, "dict": dict, "list": list}


def _import_ref(ref: str | None) -> Any:
    if not ref:
        return None
    module, _, qualname = ref.partition(":")
    if module == "builtins":
        return _BUILTIN_TYPES.get(qualname, _UNIMPORTABLE)
    import importlib

    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj
    except Exception:
        return _UNIMPORTABLE


def _short_errors(exc: Any) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def _maybe_prompt(ctx: Any, wait: WaitRecord, schema: Any) -> Any:
    """Ask at the terminal when the run is local and interactive; else `_NO_SCHEMA`.

    Empty input (where the wait needs a value), end of input (Ctrl-D) and Ctrl-C
    suspend the execution at once: it stays `waiting` for `kitaru executions input`.
    An input given from another process meanwhile ends the prompt too.
    """
    if os.environ.get("KITARU_INTERACTIVE", "1") in ("0", "false"):
        return _NO_SCHEMA
    stdin = sys.stdin
    if stdin is None or not stdin.isatty() or not sys.stdout.isatty():
        return _NO_SCHEMA
    if not getattr(ctx.stack.orchestrator, "in_process", False):
        return _NO_SCHEMA
    hint = "y/n" if schema is bool else ("Enter to continue" if schema is None else "JSON")
    while True:
        try:
            text = _read_answer(ctx, wait, f"[kitaru] {wait.question or wait.name} "
                                           f"({hint}; empty to suspend): ")
        except (EOFError, KeyboardInterrupt):
            text = None
        if text is _ANSWERED_ELSEWHERE:
            print(f"\n[kitaru] wait {wait.name!r} was answered elsewhere", flush=True)
            return _NO_SCHEMA  # the poll takes it
        if text is None or (not text and schema is not None):
            ctx.suspend_requested.set()
            print(f"\n[kitaru] suspending execution {ctx.exec_id}; answer it later with "
                  f"`kitaru executions input {ctx.exec_id} --wait {wait.name} --value VALUE`",
                  flush=True)
            return _NO_SCHEMA
        value: Any
        if schema is None:
            value = None
        elif schema is bool and text.lower() in ("y", "yes", "n", "no"):
            value = text.lower().startswith("y")
        else:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
        try:
            stored = validate_input(wait, value)
        except WaitInputError as exc:
            print(f"[kitaru] {exc}")
            continue
        if ctx.registry.answer_wait(ctx.exec_id, wait.name, stored):
            return _coerce(schema, stored)
        return _NO_SCHEMA


_ANSWERED_ELSEWHERE: Any = object()


def _read_answer(ctx: Any, wait: WaitRecord, prompt: str) -> Any:
    """One line from the terminal (stripped); None once the execution is asked to suspend,
    `_ANSWERED_ELSEWHERE` when an input for this wait arrived from another process.

    Raises EOFError at the end of input (Ctrl-D), KeyboardInterrupt on Ctrl-C.
    """
    import select

    sys.stdout.write(prompt)
    sys.stdout.flush()
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], _PROMPT_CHECK_SECONDS)
        if ready:
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line.strip()
        if ctx.suspend_requested.is_set():
            return None
        if _answer(ctx, wait.name) is not None:
            return _ANSWERED_ELSEWHERE
