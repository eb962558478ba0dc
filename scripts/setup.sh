#!/usr/bin/env bash
# Create .venv (if missing) and install kitaru, the local plugin and the dev tools into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" -e plugins/kitaru-local \
  -e plugins/kitaru-postgres
