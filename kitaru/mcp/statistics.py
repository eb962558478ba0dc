"""Grouped execution statistics in Kitaru 0.21's MCP shape (`kitaru_executions_statistics`).

    {"groups": [{"keys": {"status": "completed"}, "execution_count": 12,
                 "metrics": {"duration_avg": 43.2}}],
     "truncated": false, "group_count": 1, "window": {"limit": 1000, "complete": true}}

Groupings: `status`, `flow`, `stack`, `time:hour|day|week|month` (the execution's start, UTC)
and `metadata:<key>` (the flow's `kitaru.log` metadata). Metrics: `<name>:duration:<agg>`
(seconds, finished executions), `<name>:metadata:<key>:<agg>` (numeric flow metadata), with
`agg` one of avg, sum, min, max, and the shortcuts `llm_display_cost`, `llm_estimated_cost`
(USD), `llm_total_tokens`, `llm_incurred_tokens` and `llm_calls` (sums over model calls).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import InvalidValueError

if TYPE_CHECKING:
    from kitaru.client import Execution, KitaruClient

#: Executions looked at: the newest this many (the same window as `executions.statistics`).
WINDOW = 1000
MAX_GROUPS = 10_000
_AGGS: dict[str, Callable[[list[float]], float]] = {
    "avg": lambda v: sum(v) / len(v), "sum": sum, "min": min, "max": max}
_TIME = ("hour", "day", "week", "month")
#: Shortcut metric -> (usage field(s) summed).
_LLM = {
    "llm_display_cost": ("cost_usd",), "llm_estimated_cost": ("cost_usd",),
    "llm_total_tokens": ("input_tokens", "output_tokens"),
    "llm_incurred_tokens": ("input_tokens", "output_tokens"), "llm_calls": ("model_calls",),
}


@dataclass(frozen=True)
class _Metric:
    name: str
    value: Callable[[Execution], float | None]
    agg: str
    needs_details: bool


def grouped_statistics(
    client: KitaruClient, *, group_by: list[str], metrics: list[str | dict[str, Any]],
    flow: str | None, status: str | None, stack: str | None, tags: list[str] | None,
    max_groups: int,
) -> dict[str, Any]:
    """Counts (and `metrics`) of the newest `WINDOW` matching executions, per group."""
    if isinstance(max_groups, bool) or not isinstance(max_groups, int) or not 1 <= max_groups <= MAX_GROUPS:
        raise InvalidValueError(f"max_groups={max_groups!r} is not a count from 1 to {MAX_GROUPS}")
    if tags:
        raise InvalidValueError("kitaru executions have no tags; filter by flow, status or stack instead")
    keys = [_grouping(g) for g in group_by]
    parsed = [_metric(m) for m in metrics]
    found = client.executions.list(flow=flow, status=status, limit=None if stack else WINDOW + 1)
    if stack is not None:
        found = [e for e in found if e.stack_name == stack]
    complete = len(found) <= WINDOW
    found = found[:WINDOW]
    if any(m.needs_details for m in parsed) or any(k.startswith("metadata:") for k in keys):
        found = [client.executions.get(e.exec_id) for e in found]
    groups: dict[tuple[Any, ...], list[Execution]] = {}
    for e in found:
        groups.setdefault(tuple(_key(e, k) for k in keys), []).append(e)
    rows = []
    for values, members in groups.items():
        row: dict[str, Any] = {"keys": dict(zip(group_by, values, strict=True)),
                               "execution_count": len(members), "metrics": {}}
        for m in parsed:
            numbers = [v for e in members if (v := m.value(e)) is not None]
            row["metrics"][m.name] = _AGGS[m.agg](numbers) if numbers else None
        rows.append(row)
    timed = [g for g in group_by if g.startswith("time:")]
    if timed:  # oldest to newest; a cut keeps the newest
        rows.sort(key=lambda r: tuple(str(r["keys"][g]) for g in timed))
        kept = rows[-max_groups:]
    else:
        rows.sort(key=lambda r: (-r["execution_count"], [str(v) for v in r["keys"].values()]))
        kept = rows[:max_groups]
    return {"groups": kept, "truncated": len(kept) < len(rows), "group_count": len(rows),
            "window": {"limit": WINDOW, "complete": complete}}


def _grouping(name: str) -> str:
    if name in ("status", "flow", "stack") or (name.startswith("metadata:") and len(name) > 9):
        return name
    if name.startswith("time:") and name[5:] in _TIME:
        return name
    if name == "tag":
        raise InvalidValueError("kitaru executions have no tags; group by status, flow, stack, "
                                "time:<unit> or metadata:<key>")
    raise InvalidValueError(f"group_by {name!r} is not one of status, flow, stack, time:hour, time:day, "
                            "time:week, time:month, metadata:<key>")


def _key(e: Execution, grouping: str) -> Any:
    if grouping == "status":
        return e.status.value
    if grouping == "flow":
        return e.flow_name
    if grouping == "stack":
        return e.stack_name
    if grouping.startswith("metadata:"):
        value = e.metadata.get(grouping[9:])
        return value if value is None or isinstance(value, str | int | float | bool) else str(value)
    return _bucket(e.started_at, grouping[5:])


def _bucket(when: datetime | None, unit: str) -> str | None:
    if when is None:
        return None
    when = when.astimezone(UTC)
    if unit == "hour":
        return when.strftime("%Y-%m-%dT%H:00:00Z")
    if unit == "day":
        return when.strftime("%Y-%m-%d")
    if unit == "week":  # the Monday that starts it
        return (when - timedelta(days=when.weekday())).strftime("%Y-%m-%d")
    return when.strftime("%Y-%m")


def _metric(spec: str | dict[str, Any]) -> _Metric:
    if isinstance(spec, dict):
        parts = [spec.get("name"), spec.get("source")]
        if spec.get("source") == "metadata":
            parts.append(spec.get("key"))
        parts.append(spec.get("aggregation") or spec.get("agg"))
        if not all(isinstance(p, str) and p for p in parts):
            raise InvalidValueError(f"metric {spec!r} needs name, source, aggregation (and key for "
                                    "metadata) as strings")
        spec = ":".join(parts)  # type: ignore[arg-type]
    if not isinstance(spec, str):
        raise InvalidValueError(f"metric {spec!r} is not a string or an object")
    if spec in _LLM:
        fields = _LLM[spec]

        def usage(e: Execution) -> float | None:
            found = [e.usage.get(f) for f in fields]
            return sum(found) if found and all(isinstance(v, int | float) for v in found) else None

        return _Metric(spec, usage, "sum", True)
    parts = spec.split(":")
    if len(parts) == 3 and parts[1] == "duration" and parts[2] in _AGGS:
        return _Metric(parts[0], _duration, parts[2], False)
    if len(parts) == 4 and parts[1] == "metadata" and parts[3] in _AGGS:
        key = parts[2]

        def metadata(e: Execution) -> float | None:
            value = e.metadata.get(key)
            return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

        return _Metric(parts[0], metadata, parts[3], True)
    raise InvalidValueError(
        f"metric {spec!r} is not <name>:duration:<avg|sum|min|max>, "
        "<name>:metadata:<key>:<avg|sum|min|max> or one of " + ", ".join(_LLM))


def _duration(e: Execution) -> float | None:
    if e.started_at is None or e.ended_at is None or not e.status.is_finished:
        return None
    return (e.ended_at - e.started_at).total_seconds()
