#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite (2 workers).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
# In CI a backend the tests need (PostgreSQL, the object-store emulators) must be there: a
# missing one fails the run instead of skipping its tests.
extra=()
if [[ "${CI:-}" == "true" ]]; then extra+=(--kitaru-require-backends); fi
.venv/bin/python -m pytest -n "${KITARU_TEST_WORKERS:-2}" "${extra[@]}" "$@"
# The core semantics once more on a shared record: the `local` stack with a `postgres`
# registry (a real server started by the tests, a fresh database per test). Only for a
# whole-suite run; tests that build stacks of their own (sqlite) stay in the run above.
if [[ $# -eq 0 ]]; then
  KITARU_TEST_REGISTRY=postgres .venv/bin/python -m pytest -n "${KITARU_TEST_WORKERS:-2}" \
    "${extra[@]}" tests/test_basic_flow.py tests/test_checkpoints.py tests/test_replay_retry.py \
    tests/test_memory.py tests/test_artifacts_and_metadata.py tests/test_client_api.py \
    tests/test_e2e_waits.py tests/test_e2e_concurrency.py tests/test_logs_capture.py \
    tests/test_run_options.py
fi
