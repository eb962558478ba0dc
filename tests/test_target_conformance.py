"""The local `process` target and `local` orchestrator pass the ExecutionTarget and
Orchestrator conformance suites, as a third party's would."""

from __future__ import annotations

import pytest

from kitaru_core.testing import ExecutionTargetConformance, OrchestratorConformance

pytestmark = pytest.mark.slow


class TestProcessTarget(ExecutionTargetConformance):
    flavor = "process"


class TestLocalOrchestrator(OrchestratorConformance):
    flavor = "local"
