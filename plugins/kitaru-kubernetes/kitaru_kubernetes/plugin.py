"""Hook implementation: registers the `kubernetes` flavors (the client is not imported here)."""

from __future__ import annotations

from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl

from .configs import KubernetesOrchestratorConfig, KubernetesTargetConfig


@hookimpl
def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
    registrar.add(Flavor(
        name="kubernetes", type="execution_target", config=KubernetesTargetConfig,
        implementation="kitaru_kubernetes.target:KubernetesTarget",
        description="Runs each isolated checkpoint call as a batch/v1 Job.",
    ))
    registrar.add(Flavor(
        name="kubernetes", type="orchestrator", config=KubernetesOrchestratorConfig,
        implementation="kitaru_kubernetes.orchestrator:KubernetesOrchestrator",
        description="Runs the flow body as a batch/v1 Job; flow.run() returns at once.",
    ))
