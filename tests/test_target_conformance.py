"""The local `process` target and `local` orchestrator pass the ExecutionTarget and
Orchestrator conformance suites, as a third party's would."""

from __future__ import annotations

from typing import Any

import pytest

from kitaru_core.testing import ExecutionTargetConformance, OrchestratorConformance

pytestmark = pytest.mark.slow


class TestProcessTarget(ExecutionTargetConformance):
    flavor = "process"


class TestLocalOrchestrator(OrchestratorConformance):
    flavor = "local"


class TestProcessTargetWithoutForkServer(ExecutionTargetConformance):
    """`fork_server: false`: each worker a fresh `python -m kitaru_core.worker`."""

    flavor = "process"

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {"fork_server": False}
