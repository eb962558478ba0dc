"""Statistics over recorded executions: counts by status and flow, checkpoint totals and
durations (`KitaruClient().executions.statistics`, `GET /api/v1/statistics`)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kitaru_core.status import ExecutionStatus

if TYPE_CHECKING:
    from kitaru_core.records import CallRecord, ExecutionRecord
    from kitaru_core.stack import Stack

#: Executions looked at by default: the newest this many (checkpoint totals read each one's calls).
DEFAULT_WINDOW = 1000


def durations(values: Sequence[float]) -> dict[str, Any]:
    """count, total, mean, p50, p95 and max of `values` (seconds; None where there are none)."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "total": 0.0, "mean": None, "p50": None, "p95": None, "max": None}

    def rank(q: float) -> float:  # nearest rank: a value that was measured
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    total = sum(ordered)
    return {"count": len(ordered), "total": total, "mean": total / len(ordered),
            "p50": rank(0.5), "p95": rank(0.95), "max": ordered[-1]}


@dataclass
class Statistics:
    """What `executions.statistics()` found over its window of executions."""

    executions: int
    by_status: dict[str, int]
    by_flow: dict[str, dict[str, Any]]
    checkpoints: dict[str, Any]
    durations_s: dict[str, Any]
    #: {"limit": the window asked for, "complete": True if it held every matching
    #:  execution, "oldest": the creation time of the oldest one counted}
    window: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"executions": self.executions, "by_status": self.by_status,
                "by_flow": self.by_flow, "checkpoints": self.checkpoints,
                "durations_s": self.durations_s, "window": self.window}


def _statuses(counter: Counter[str]) -> dict[str, int]:
    return {s.value: counter.get(s.value, 0) for s in ExecutionStatus}


def _elapsed(start: float | None, end: float | None) -> float | None:
    return end - start if start and end and end >= start else None


def compute(stack: Stack, *, flow: str | None = None, limit: int = DEFAULT_WINDOW) -> Statistics:
    """Statistics over the newest `limit` executions (of `flow`, if given)."""
    registry = stack.registry
    records: list[ExecutionRecord] = registry.list_executions(flow_name=flow, limit=limit + 1)
    complete = len(records) <= limit
    records = records[:limit]
    status_counts: Counter[str] = Counter(r.status for r in records)
    per_flow: dict[str, list[ExecutionRecord]] = {}
    for r in records:
        per_flow.setdefault(r.flow_name, []).append(r)
    run_times = [d for r in records
                 if ExecutionStatus(r.status).is_finished
                 and (d := _elapsed(r.started_at, r.ended_at)) is not None]
    calls: list[CallRecord] = [c for r in records for c in registry.get_calls(r.exec_id)]
    call_status: Counter[str] = Counter(c.status for c in calls)
    call_times = [d for c in calls if (d := _elapsed(c.started_at, c.ended_at)) is not None]
    by_name: Counter[str] = Counter(c.name for c in calls)
    return Statistics(
        executions=len(records),
        by_status=_statuses(status_counts),
        by_flow={
            name: {"executions": len(found), "by_status": _statuses(Counter(r.status for r in found)),
                   "durations_s": durations([d for r in found if ExecutionStatus(r.status).is_finished
                                             and (d := _elapsed(r.started_at, r.ended_at)) is not None])}
            for name, found in sorted(per_flow.items())
        },
        checkpoints={
            "calls": len(calls), "by_status": dict(sorted(call_status.items())),
            "attempts": sum(c.attempts for c in calls),
            "retried": sum(1 for c in calls if c.attempts > 1),
            "by_name": dict(by_name.most_common()),
            "durations_s": durations(call_times),
        },
        durations_s=durations(run_times),
        window={"limit": limit, "complete": complete,
                "oldest": datetime.fromtimestamp(records[-1].created_at, UTC).isoformat()
                if records and records[-1].created_at else None},
    )
