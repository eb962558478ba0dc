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
