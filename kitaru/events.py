"""Live events from a running checkpoint: `kitaru.progress(...)` and `kitaru.events.publish(...)`.

As in Kitaru 0.21, an event has a `kind` (`kitaru.checkpoint.progress` for progress, your
own for `publish`), a message and a `data` payload, a `correlation_id` shared by the events
of one checkpoint attempt and an `index` ordering them. Unlike 0.21's best-effort stream,
every event is also recorded: it is a child event of its checkpoint call (see
`kitaru executions get`), written while the call runs (within half a second, or at once
with `flush=True`), so `kitaru executions logs --follow` and
`KitaruClient().executions.events(id)` show it before the checkpoint ends, and later too.

Where they may be called:

- inside a `@checkpoint` (also an isolated one, whose events are recorded when it ends:
  its worker has no registry access): recorded and live;
- in a flow body (0.21 refuses this): an event of the execution (`kitaru.flow.progress`
  for progress), written at once; a resume runs the body again and publishes again;
- outside any flow, for instance a checkpoint called as a plain function: nothing is
  recorded and nothing is raised, so the function works the same outside kitaru.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import Any

from kitaru_core.errors import KitaruError
from kitaru_core.runtime.events import RESERVED_KINDS, publish_event
from kitaru_core.runtime.state import current_call

__all__ = [
    "CHECKPOINT_PROGRESS_KIND",
    "FLOW_PROGRESS_KIND",
    "InvalidEventError",
    "flush",
    "progress",
    "publish",
]

CHECKPOINT_PROGRESS_KIND = "kitaru.checkpoint.progress"
FLOW_PROGRESS_KIND = "kitaru.flow.progress"


class InvalidEventError(KitaruError, ValueError):
    """An event's kind, payload, message, percent or index is not what the API takes."""


def publish(
    kind: str,
    payload: Mapping[str, Any] | None = None,
    *,
    message: str | None = None,
    correlation_id: str | None = None,
    index: int | None = None,
    flush: bool = False,
) -> None:
    """Publish an event of your own `kind` (e.g. "training.batch.completed") with `payload`
    (recorded as the event's `data`) and an optional human `message`."""
    if not isinstance(kind, str) or not kind.strip() or "\n" in kind or "\r" in kind:
        raise InvalidEventError(f"event kind {kind!r}: expected a non-empty string on one line")
    kind = kind.strip()
    if kind in RESERVED_KINDS:
        raise InvalidEventError(
            f"event kind {kind!r} is reserved for the event stream; choose another, such as "
            f"'app.{kind}'"
        )
    if payload is not None and not isinstance(payload, Mapping):
        raise InvalidEventError(f"event payload: expected a mapping (got {type(payload).__name__})")
    if message is not None and not isinstance(message, str):
        raise InvalidEventError(f"event message: expected a string (got {type(message).__name__})")
    _check_index(index)
    correlation_id = _check_correlation_id(correlation_id)
    fields: dict[str, Any] = {}
    if message is not None:
        fields["message"] = message
    if payload:
        fields["data"] = dict(payload)
    publish_event(kind, kind, fields, correlation_id=correlation_id, index=index, flush=flush)


def progress(
    message: str,
    *,
    percent: float | None = None,
    correlation_id: str | None = None,
    flush: bool = False,
    **fields: Any,
) -> None:
    """Publish a progress event: `message`, `percent` (0 to 1) and any other `fields`
    (recorded under the event's `data`, with `percent`)."""
    if not isinstance(message, str) or not message.strip():
        raise InvalidEventError(f"progress message {message!r}: expected a non-empty string")
    if percent is not None and (
        isinstance(percent, bool) or not isinstance(percent, Real) or not 0 <= percent <= 1
    ):
        raise InvalidEventError(f"progress percent={percent!r}: expected a number from 0 to 1")
    correlation_id = _check_correlation_id(correlation_id)
    data = dict(fields)
    if percent is not None:
        data["percent"] = float(percent)
    event: dict[str, Any] = {"message": message}
    if data:
        event["data"] = data
    kind = FLOW_PROGRESS_KIND if current_call.get() is None else CHECKPOINT_PROGRESS_KIND
    publish_event(kind, "progress", event, correlation_id=correlation_id, flush=flush)


def flush(timeout: float = 2.0) -> bool:
    """Write the running checkpoint's unwritten events now; True once they are written.

    `timeout` is accepted for Kitaru 0.21's signature: the write is one registry commit.
    Anywhere else there is nothing to write, and the answer is True.
    """
    go_live = getattr(current_call.get(), "go_live", None)
    if go_live is None:
        return True
    try:
        go_live(flush=True)
    except Exception:
        return False
    return True


def _check_correlation_id(correlation_id: str | None) -> str | None:
    if correlation_id is None:
        return None
    if not isinstance(correlation_id, str) or not correlation_id.strip():
        raise InvalidEventError(f"correlation_id={correlation_id!r}: expected a non-empty string")
    return correlation_id.strip()


def _check_index(index: int | None) -> None:
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise InvalidEventError(f"event index={index!r}: expected an int >= 0")
