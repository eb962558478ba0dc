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
