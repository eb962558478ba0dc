"""Conformance kits: reusable pytest suites every flavor (ours and third parties') passes.

A plugin's tests subclass a suite and say how to build its flavor::

    # conftest.py
    pytest_plugins = ["kitaru_core.testing.plugin"]

    # test_conformance.py
    from kitaru_core.testing import RegistryConformance

    class TestAcmeRegistry(RegistryConformance):
        flavor = "acme"

        @pytest.fixture
        def config(self, acme_database_url):
            return {"url": acme_database_url}

Suite classes have no `Test` prefix, so pytest collects them only in subclasses.
Only this package imports pytest; `import kitaru` never imports it.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("kitaru_core.testing.suites", "kitaru_core.testing.base")

from .base import ComponentConformance, build_component  # noqa: E402
from .caps import StoreCaps  # noqa: E402
from .plugin import backend_unavailable  # noqa: E402
from .suites.artifact_store import ArtifactStoreConformance  # noqa: E402
from .suites.execution_target import ExecutionTargetConformance  # noqa: E402
from .suites.orchestrator import OrchestratorConformance  # noqa: E402
from .suites.registry import RegistryConformance  # noqa: E402

#: Grows by one with every new mandatory test (changelog in docs/plugins.md): 2, registry inputs
#: commit with their execution and housekeeping; 3, the ArtifactStore suite; 4, the
#: ExecutionTarget and Orchestrator suites; 6, the execution's `runner` field and
#: `update_execution(expected_version=)` (the runner watchdog); 7, `list_executions(before=)`
#: keyset pages, newest first by (created_at, exec_id); 8, `ArtifactStore.get_range` (part of a blob);
#: 9, `Registry.record_outcome` (a run's result and outcome; the default needs no override);
#: 10, `Registry.pending_waits` (the default needs no override).
SUITE_VERSION = 10

__all__ = [
    "SUITE_VERSION",
    "ArtifactStoreConformance",
    "ComponentConformance",
    "ExecutionTargetConformance",
    "OrchestratorConformance",
    "RegistryConformance",
    "StoreCaps",
    "backend_unavailable",
    "build_component",
]
