"""The functions a flow or checkpoint calls: wait, save, load, log, current_execution_id."""

from __future__ import annotations

import logging
from typing import Any

from kitaru_core.errors import ArtifactNotFoundError, ContextError
from kitaru_core.runtime.artifacts import read_value
from kitaru_core.runtime.state import current_call, current_execution
from kitaru_core.runtime.state import current_execution_id as _current_execution_id
from kitaru_core.runtime.waits import wait as _wait

from .checkpoints import plain_checkpoint

_log = logging.getLogger("kitaru")


def wait(
    *,
    name: str,
    question: str | None = None,
    schema: Any = None,
    timeout: float | None = 600,
    metadata: dict[str, Any] | None = None,
) -> Any:
    """Pause the flow for input named `name`; return it validated against `schema`.

    `schema` is any type pydantic validates (bool, a model, ...) or None for a
    plain continue gate. With no input within `timeout` seconds the execution
    is suspended (`waiting`, the process exits) until `kitaru executions input`
    answers it. Flow body only.
    """
    return _wait(name=name, question=question, schema=schema, timeout=timeout, metadata=metadata)


def save(name: str, value: Any, *, type: str | None = None) -> str | None:
    """Save `value` as a named artifact of the running checkpoint; returns its id.

    In a checkpoint called as a plain function outside any flow (a unit test) nothing
    is recorded: it returns None and logs at debug level.
    """
    call = current_call.get()
    if call is None:
        plain = plain_checkpoint.get()
        if plain is not None and current_execution.get() is None:
            _log.debug("kitaru.save(%r) ignored: checkpoint %r runs outside a flow", name, plain)
            return None
        raise ContextError(
            f"kitaru.save({name!r}, ...) must be called inside a @checkpoint; a value computed "
            "in the flow body can be returned from a checkpoint instead"
        )
    art = call.save(name, value, type)
    return art.artifact_id if hasattr(art, "artifact_id") else art["key"]


def log(**metadata: Any) -> None:
    """Attach metadata (tokens=12, cost=0.01, ...) to the running checkpoint or execution.

    In a checkpoint called as a plain function outside any flow it is a no-op (debug log).
    """
    call = current_call.get()
    if call is not None:
        call.log(metadata)
        return
    ctx = current_execution.get()
    if ctx is None:
        plain = plain_checkpoint.get()
        if plain is not None:
            _log.debug("kitaru.log(%s) ignored: checkpoint %r runs outside a flow",
                       ", ".join(metadata), plain)
            return
        raise ContextError("kitaru.log(...) must be called inside a flow or a checkpoint")
    ctx.log(metadata)


def load(exec_id: str, name: str) -> Any:
    """The value of artifact `name` (a saved name, a checkpoint's name or call id, or
    "output" for the flow's result) of execution `exec_id`; the latest if several."""
    ctx = current_execution.get()
    if ctx is not None:
        registry, store = ctx.registry, ctx.store
    else:
        from .client import KitaruClient

        client = KitaruClient()
        registry, store = client._stack.registry, client._stack.artifact_store
    record = registry.get_execution(exec_id)
    arts = [
        a for a in registry.list_artifacts(exec_id=record.exec_id)
        if a.direction in ("output", "saved") and (a.name == name or a.call_id == name)
    ]
    if not arts:
        names = sorted({a.name for a in registry.list_artifacts(exec_id=record.exec_id)
                        if a.direction in ("output", "saved")})
        raise ArtifactNotFoundError(
            f"execution {record.exec_id} has no artifact named {name!r}; it has: "
            f"{', '.join(names) or 'none'}"
        )
    return read_value(store, arts[-1])


def current_execution_id() -> str | None:
    """The id of the execution running here, or None outside any flow."""
    return _current_execution_id()
