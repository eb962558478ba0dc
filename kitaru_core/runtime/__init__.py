"""The runner: executes flow bodies durably against a stack's registry and artifact store."""
