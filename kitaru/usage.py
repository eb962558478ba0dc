"""Token and cost bookkeeping of model calls, as recorded in metadata (no LLM import).

A model call made as its own checkpoint (`kitaru.llm`, an adapter's model request)
logs one metadata entry `llm_usage` on that call; a model call recorded as a child
event inside a checkpoint carries the same dict under `usage` in its event. The dict:
`{"model", "provider", "input_tokens", "output_tokens", "latency_s", "cost_usd"}`;
any of the numbers may be None (unknown).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kitaru_core.runtime.events import child_events

USAGE_KEY = "llm_usage"


def usages_in(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The usage dicts in one call's (or execution's) metadata, child events included."""
    own = metadata.get(USAGE_KEY)
    found = [own] if isinstance(own, dict) else []
    found += [e["usage"] for e in child_events(metadata).values() if isinstance(e.get("usage"), dict)]
    return found


def totals(usages: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum of model calls, tokens and estimated cost (cost None if no call had a price)."""
    out: dict[str, Any] = {"model_calls": 0, "input_tokens": 0, "output_tokens": 0,
                           "cost_usd": None}
    for usage in usages:
        out["model_calls"] += 1
        out["input_tokens"] += usage.get("input_tokens") or 0
        out["output_tokens"] += usage.get("output_tokens") or 0
        cost = usage.get("cost_usd")
        if cost is not None:
            out["cost_usd"] = (out["cost_usd"] or 0.0) + float(cost)
    return out
