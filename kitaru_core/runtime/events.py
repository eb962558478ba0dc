"""Child events: what happened inside a checkpoint call (a model request, a tool call),
recorded under that call instead of as checkpoints of their own.

An event is a metadata entry of the enclosing call, key `event:<id>` where the id is
`<name>#<n>` (numbered per call and name), and value `{"kind", "name", ..., "artifacts":
{part: artifact id}}`. Its parts (prompt, response, tool args, ...) are saved as
artifacts of the call named `<id>.<part>`. Checkpoints do not nest, so this is how a
call made inside one stays visible without becoming a replay boundary.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import ContextError
from .state import current_call

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
    return event_id


def _saved_id(saved: Any) -> str:
    return saved.artifact_id if hasattr(saved, "artifact_id") else saved.get("key", "")


def child_events(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The child events among a call's metadata, by event id."""
    return {k[len(EVENT_PREFIX):]: v for k, v in metadata.items()
            if k.startswith(EVENT_PREFIX) and isinstance(v, dict)}
