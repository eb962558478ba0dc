"""The local artifact stores pass the ArtifactStore conformance suite, as a third party's would."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from kitaru_core.testing import ArtifactStoreConformance, StoreCaps


class TestLocalFolderStore(ArtifactStoreConformance):
    flavor = "local"
    caps = StoreCaps(shared_between_processes=True, process_local=True, housekeeping=True)

    @pytest.fixture(params=["default", "strict"])
    def component_durability(self, request: pytest.FixtureRequest) -> str:
        return request.param

    @pytest.fixture
    def config(self, tmp_path: Path) -> dict[str, Any]:
        return {"root": str(tmp_path / "artifacts")}


class TestLocalFolderStoreUnderTheHome(ArtifactStoreConformance):
    """With no root the store lives under the kitaru home, as in the built-in `local` stack."""

    flavor = "local"
    caps = StoreCaps(shared_between_processes=True, process_local=True, housekeeping=True)

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {}


class TestFsspecFileStore(ArtifactStoreConformance):
    """The generic fsspec store on a plain folder: no atomic upload, so temporary name + rename."""

    flavor = "fsspec"
    caps = StoreCaps(shared_between_processes=True, process_local=True, housekeeping=True)

    @pytest.fixture
    def config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": f"file://{tmp_path}/store"}


class TestFsspecMemoryStore(ArtifactStoreConformance):
    """`memory://`: one process only, so the cross-process test is skipped by its caps."""

    flavor = "fsspec"
    caps = StoreCaps(shared_between_processes=False, process_local=True, housekeeping=True)

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {"path": f"memory://kitaru-tests/{uuid.uuid4().hex}"}
