"""Every registry flavor of ours runs the Registry conformance kit, as a third party's would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kitaru_core.testing import RegistryConformance


class TestSqliteRegistry(RegistryConformance):
    flavor = "sqlite"

    @pytest.fixture
    def config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "conformance.db")}


class TestSqliteRegistryStrict(TestSqliteRegistry):
    durability = "strict"


class TestPostgresRegistry(RegistryConformance):
    flavor = "postgres"

    @pytest.fixture
    def config(self, postgres_url: str) -> dict[str, Any]:
        return {"url": postgres_url}


class TestPostgresRegistryOwnSchema(RegistryConformance):
    """Tables in a schema of their own: a database shared with other applications."""

    flavor = "postgres"

    @pytest.fixture
    def config(self, postgres_url: str) -> dict[str, Any]:
        return {"url": postgres_url, "db_schema": "kitaru_records", "inline_max_bytes": 0}


def test_the_default_pending_waits_agrees_with_the_sqlite_query(tmp_path: Path) -> None:
    """`Registry.pending_waits` as the base class has it (what a registry without a query of
    its own runs, and the `server` registry against an older server) gives what `sqlite`'s
    one query gives."""
    from kitaru_local.configs import SqliteRegistryConfig
    from kitaru_local.sqlite_registry import SqliteRegistry

    from kitaru_core.interfaces import ComponentContext, Registry
    from kitaru_core.records import WaitRecord
    from kitaru_core.testing.suites.registry import execution

    registry = SqliteRegistry(SqliteRegistryConfig(path=str(tmp_path / "r.db")),
                              ComponentContext(home=tmp_path, stack_name="t"))
    recs = [execution(status="waiting") for _ in range(6)]
    for i, rec in enumerate(recs):
        registry.create_execution(rec)
        if i % 3:
            registry.create_wait(WaitRecord(rec.exec_id, "b", 9, "pending"))
            registry.create_wait(WaitRecord(rec.exec_id, "a", i, "pending"))
        if i == 4:
            registry.answer_wait(rec.exec_id, "a", True)
    ids = [r.exec_id for r in reversed(recs)] + [recs[1].exec_id, "0" * 32]
    expected = [(recs[i].exec_id, name) for i, name in ((5, "a"), (4, "b"), (2, "a"), (1, "a"))]
    for pending_waits in (registry.pending_waits, lambda ids: Registry.pending_waits(registry, ids)):
        assert [(w.exec_id, w.name) for w in pending_waits(ids)] == expected
    registry.close()
