"""The local `process` target and `local` orchestrator, and the `kubernetes` target and
orchestrator (on kmock's emulator and the test controller, tests/services/kube.py), pass the
ExecutionTarget and Orchestrator conformance suites, as a third party's would."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from emulators import Emulator, worker_env
from emulators import store_config as s3_store_config

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


def kubernetes_config(kube_cluster: Any) -> dict[str, Any]:
    """A stack's `kubernetes` config for the emulator; the controller runs Jobs with this Python."""
    server, _ = kube_cluster
    return {"namespace": "kitaru", "image": "registry/agents:1.4",
            "kubeconfig": str(server.kubeconfig), "python": sys.executable}


class TestKubernetesTarget(ExecutionTargetConformance):
    """Each task a Job; the tasks read and write an S3 bucket (moto), as pods in a cloud would."""

    flavor = "kubernetes"
    store_flavor = "s3"

    @pytest.fixture(autouse=True)
    def s3(self, s3_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
        for name, value in s3_emulator.env.items():  # the suite's own store client
            monkeypatch.setenv(name, value)
        return s3_emulator

    @pytest.fixture
    def config(self, kube_cluster: Any) -> dict[str, Any]:
        return kubernetes_config(kube_cluster)

    @pytest.fixture
    def store_config(self, s3: Emulator) -> dict[str, Any]:
        return s3_store_config(s3)

    @pytest.fixture
    def task_env(self, s3: Emulator) -> dict[str, str]:
        return {**s3.env, **worker_env(s3)}


class TestKubernetesOrchestrator(OrchestratorConformance):
    """Each launch a Job; the stand-in runners write their markers where the test reads them
    (the controller runs them on this machine)."""

    flavor = "kubernetes"

    @pytest.fixture
    def config(self, kube_cluster: Any) -> dict[str, Any]:
        return kubernetes_config(kube_cluster)
