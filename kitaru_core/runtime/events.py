"""Child events: what happened inside a checkpoint call (a model request, a tool call),
recorded under that call instead of as checkpoints of their own.

An event is a metadata entry of the enclosing call, key `event:<id>` where the id is
`<name>#<n>` (numbered per call and name), and value `{"kind", "name", ..., "artifacts":
{part: artifact id}}`. Its parts (prompt, response, tool args, ...) are saved as
artifacts of the call named `<id>.<part>`. Checkpoints do not nest, so this is how a
call made inside one stays visible without becoming a replay boundary.

Live events (`kitaru.progress`, `kitaru.events.publish`) are child events too (no
artifacts), published with `publish_event`: inside a checkpoint call they are written
while the call runs (by the runner's ticker within half a second, or at once with
`flush=True`) and whatever is left with the call's record at its end; in a flow body
they are events of the execution (no call), written at once. A checkpoint that
publishes nothing writes nothing more than before.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from ..errors import ContextError
from .state import current_call, current_execution

EVENT_PREFIX = "event:"
_counter_lock = threading.Lock()


def record_child_event(
    kind: str,
    name: str,
    *,
    artifacts: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Record an event of `kind` ("llm_call", "tool_call", ...) under the running checkpoint.

    `artifacts` maps a part name to a value to save; `metadata` is stored with the
    event. Returns the event id. Raises ContextError outside a checkpoint call.
    """
    call = current_call.get()
    if call is None:
        raise ContextError(f"a {kind} child event can only be recorded inside a checkpoint call")
    with _counter_lock:
        n = call.event_counts.get(name, 0) + 1
        call.event_counts[name] = n
    event_id = f"{name}#{n}"
    saved = {part: _saved_id(call.save(f"{event_id}.{part}", value, None))
             for part, value in (artifacts or {}).items()}
    call.log({f"{EVENT_PREFIX}{event_id}": {
        "kind": kind, "name": name, **(metadata or {}), "artifacts": saved,
    }})
    go_live = getattr(call, "go_live", None)  # the runner's calls (not an isolated worker's)
    if go_live is not None:
        go_live()
    return event_id


#: Event kinds a publisher can't use: the control names of Kitaru 0.21's event stream.
RESERVED_KINDS = frozenset({"cursor", "end", "gap", "error", "system"})
_INDEX = ""  # key of the per-call publish counter in `event_counts` (no event is named "")


def publish_event(
    kind: str,
    name: str,
    fields: dict[str, Any],
    *,
    correlation_id: str | None = None,
    index: int | None = None,
    flush: bool = False,
) -> dict[str, Any] | None:
    """Record a live event of `kind` where the caller runs; returns it, or None outside flows.

    `fields` ("message", "data", ...) must be JSON values (others are recorded as their
    `str`). In a checkpoint call the event is a child event `<name>#<n>` of the call; its
    `correlation_id` defaults to one per call attempt and its `index` counts the events
    published in that attempt. In a flow body it is an event of the execution.
    """
    fields = json.loads(json.dumps(fields, default=str))
    call = current_call.get()
    now = time.time()
    if call is not None:
        call_id, checkpoint, call_type, attempt = _identity(call)
        with _counter_lock:
            n = call.event_counts.get(name, 0) + 1
            call.event_counts[name] = n
            position = call.event_counts.get(_INDEX, 0)
            call.event_counts[_INDEX] = position + 1
        correlation_id = correlation_id or f"kitaru.checkpoint:{call_id}:{attempt}"
        event = {
            "kind": kind, "name": name, **fields, "at": now, "correlation_id": correlation_id,
            "index": position if index is None else index, "attempt": attempt,
            "kitaru": {"source": "kitaru", "execution_id": call.exec_id, "checkpoint_id": call_id,
                       "checkpoint_name": checkpoint, "checkpoint_type": call_type,
                       "correlation_id": correlation_id},
            "artifacts": {},
        }
        call.log({f"{EVENT_PREFIX}{name}#{n}": event})
        go_live = getattr(call, "go_live", None)
        if go_live is not None:
            go_live(flush=flush)
        return event
    ctx = current_execution.get()
    if ctx is None:
        return None
    n, position = ctx.next_event(name)
    correlation_id = correlation_id or f"kitaru.flow:{ctx.exec_id}"
    event = {
        "kind": kind, "name": name, **fields, "at": now, "correlation_id": correlation_id,
        "index": position if index is None else index,
        "kitaru": {"source": "kitaru", "execution_id": ctx.exec_id, "checkpoint_id": None,
                   "checkpoint_name": None, "checkpoint_type": None,
                   "correlation_id": correlation_id},
        "artifacts": {},
    }
    ctx.log({f"{EVENT_PREFIX}{name}#{n}": event})
    return event


def _identity(call: Any) -> tuple[str, str, str | None, int]:
    """(call id, checkpoint name, type, attempt) of the runner's call or an isolated worker's."""
    record = getattr(call, "call", None)
    if record is not None:
        return record.call_id, record.name, record.type, record.attempts
    spec = call.spec
    return spec["call_id"], spec.get("checkpoint", ""), None, int(spec.get("attempt") or 1)


def _saved_id(saved: Any) -> str:
    return saved.artifact_id if hasattr(saved, "artifact_id") else saved.get("key", "")


def child_events(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The child events among a call's metadata, by event id."""
    return {k[len(EVENT_PREFIX):]: v for k, v in metadata.items()
            if k.startswith(EVENT_PREFIX) and isinstance(v, dict)}
