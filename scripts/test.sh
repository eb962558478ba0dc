#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite (2 workers).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest -n "${KITARU_TEST_WORKERS:-2}" "$@"
