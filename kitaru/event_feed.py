"""Reading events back: `ExecutionEvent` and the feed behind `KitaruClient().executions.events`
and `kitaru executions logs --follow`.

Events are the child events of an execution's checkpoint calls (progress, published
events, model and tool calls) and the events its flow body published. The feed polls the
registry: a running call's events are there within half a second of being published.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import KitaruError
from kitaru_core.runtime.events import EVENT_PREFIX

if TYPE_CHECKING:
    from kitaru_core.records import MetadataEntry
    from kitaru_core.stack import Stack

# Fields of a recorded event that are its envelope, not its payload.
_ENVELOPE = frozenset({"kind", "name", "at", "correlation_id", "index", "attempt", "artifacts"})


@dataclass
class ExecutionEvent:
    """One event of an execution (the fields of Kitaru 0.21's, plus `event_id` and `at`).

    `kind` says what happened; `payload` holds `message`, `data` and, under `"kitaru"`,
    where it happened; `correlation_id` groups the events of one checkpoint attempt and
    `index` orders them; `cursor` marks this event for `events(since=...)`.
    """

    exec_id: str
    kind: str
    payload: dict[str, Any]
    correlation_id: str | None
    index: int | None
    cursor: str
    checkpoint_id: str | None
    checkpoint_name: str | None
    step_name: str | None
    event_id: str
    at: datetime | None = None
    _sort: tuple[float, str, str] = field(default=(0.0, "", ""), repr=False, compare=False)

    @property
    def message(self) -> str | None:
        return self.payload.get("message")

    @property
    def data(self) -> dict[str, Any]:
        return self.payload.get("data") or {}

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        out["at"] = self.at.isoformat() if self.at else None
        return out


def _cursor(position: tuple[float, str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()


def _position(cursor: str) -> tuple[float, str, str]:
    try:
        at, call_id, event_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(at), str(call_id), str(event_id)
    except (ValueError, TypeError) as exc:
        raise KitaruError(f"since={cursor!r} is not an event cursor; pass an event's `.cursor`") from exc


class EventFeed:
    """The events of one execution, each returned once, in the order they were published."""

    def __init__(self, stack: Stack, exec_id: str, *, since: str | None = None) -> None:
        self._registry = stack.registry
        self.exec_id = exec_id
        self._after = _position(since) if since else None
        self._seen: set[tuple[str | None, str, float]] = set()
        self._names: dict[str, str] = {}

    def poll(self) -> list[ExecutionEvent]:
        """The events recorded since the last poll (all of them the first time)."""
        new = []
        for entry in self._registry.get_metadata(self.exec_id):
            if not entry.key.startswith(EVENT_PREFIX) or not isinstance(entry.value, dict):
                continue
            seen = (entry.call_id, entry.key, entry.created_at)
            if seen in self._seen:
                continue
            self._seen.add(seen)
            event = self._event(entry)
            if self._after is None or event._sort > self._after:
                new.append(event)
        new.sort(key=lambda e: e._sort)
        return new

    def _checkpoint_name(self, call_id: str) -> str:
        if call_id not in self._names:
            self._names.update({c.call_id: c.name for c in self._registry.get_calls(self.exec_id)})
        return self._names.get(call_id) or call_id.split("#")[0]

    def _event(self, entry: MetadataEntry) -> ExecutionEvent:
        value: dict[str, Any] = entry.value
        event_id = entry.key[len(EVENT_PREFIX):]
        at = float(value.get("at") or entry.created_at or 0.0)
        payload = {k: v for k, v in value.items() if k not in _ENVELOPE}
        call_id = entry.call_id
        name = self._checkpoint_name(call_id) if call_id else None
        payload.setdefault("kitaru", {"source": "kitaru", "execution_id": self.exec_id,
                                      "checkpoint_id": call_id, "checkpoint_name": name})
        position = (at, call_id or "", event_id)
        return ExecutionEvent(
            exec_id=self.exec_id, kind=str(value.get("kind") or event_id.split("#")[0]),
            payload=payload, correlation_id=value.get("correlation_id"),
            index=value.get("index"), cursor=_cursor(position), checkpoint_id=call_id,
            checkpoint_name=name, step_name=call_id, event_id=event_id,
            at=datetime.fromtimestamp(at, UTC) if at else None, _sort=position,
        )


def matching(
    events: Iterable[ExecutionEvent],
    *,
    kinds: Iterable[str] | None = None,
    checkpoint: str | None = None,
    correlation_ids: Iterable[str] | None = None,
) -> list[ExecutionEvent]:
    """The events that pass the filters (`checkpoint`: a checkpoint name or a call id)."""
    kind_set = set(kinds) if kinds is not None else None
    ids = set(correlation_ids) if correlation_ids is not None else None
    return [
        e for e in events
        if (kind_set is None or e.kind in kind_set)
        and (checkpoint is None or checkpoint in (e.checkpoint_name, e.checkpoint_id))
        and (ids is None or e.correlation_id in ids)
    ]


def event_line(event: ExecutionEvent) -> str:
    """One line for a terminal: `progress 50%: Writing draft {'topic': 'x'}`."""
    data = dict(event.data)
    percent = data.pop("percent", None)
    if event.kind.endswith(".progress"):
        head = "progress" + (f" {percent:.0%}" if isinstance(percent, int | float) else "")
    else:
        head = event.kind
    what = event.message or event.payload.get("model") or event.payload.get("tool") or ""
    text = f"{head}: {what}" if what else f"{head} ({event.event_id})"
    return f"{text} {data}" if data else text
