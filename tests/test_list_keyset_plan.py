"""`Registry.list_executions(before=)` pages are index range scans in order, never a sort of
every execution: the query plans of the sqlite and postgres registries say so."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from kitaru_core.testing import build_component
from kitaru_core.testing.suites.registry import execution


def _issued(registry: Any, **filters: Any) -> tuple[str, list[Any]]:
    """The SQL and parameters `list_executions(**filters)` runs."""
    seen: list[tuple[str, list[Any]]] = []
    real = registry._query

    def spy(sql: str, params: Any = ()) -> Any:
        seen.append((sql, list(params)))
        return real(sql, params)

    registry._query = spy
    try:
        registry.list_executions(**filters)
    finally:
        del registry._query
    [found] = [s for s in seen if "FROM executions" in s[0]]
    return found


def _fill(registry: Any) -> tuple[float, str]:
    t = time.time()
    recs = [execution(flow_name=f"f{i % 3}", created_at=t + i) for i in range(30)]
    for r in recs:
        registry.create_execution(r)
    return recs[15].created_at, recs[15].exec_id


@pytest.mark.parametrize("filters", [{}, {"flow_name": "f1"}, {"status": "running"}])
def test_sqlite_pages_walk_the_keyset_index(tmp_path: Path, filters: dict) -> None:
    registry = build_component("registry", "sqlite", {"path": str(tmp_path / "r.db")}, home=tmp_path)
    before = _fill(registry)
    sql, params = _issued(registry, before=before, limit=10, **filters)
    plan = " | ".join(str(row[-1]) for row in registry._conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "executions_keyset" in plan and "TEMP B-TREE" not in plan, plan
    assert len(registry.list_executions(before=before, limit=10, **filters)) > 0


@pytest.mark.parametrize(("filters", "index"), [
    ({}, "executions_keyset"), ({"flow_name": "f1"}, "executions_flow_keyset"),
    ({"status": "running"}, "executions_status_keyset"),
])
def test_postgres_pages_walk_the_keyset_indexes(postgres_url: str, tmp_path: Path, filters: dict,
                                                index: str) -> None:
    registry = build_component("registry", "postgres", {"url": postgres_url}, home=tmp_path)
    try:
        before = _fill(registry)
        sql, params = _issued(registry, before=before, limit=10, **filters)
        with registry._pool.connection() as conn:
            conn.execute("SET enable_seqscan = off")  # a 30-row table: make the planner show its index
            plan = " | ".join(r[0] for r in conn.execute(f"EXPLAIN {sql}", params).fetchall())
            conn.execute("RESET enable_seqscan")
        assert index in plan and "Sort" not in plan, plan
    finally:
        registry.close()
