"""kitaru-kubernetes: the `kubernetes` orchestrator and execution target (batch/v1 Jobs)."""
