#!/usr/bin/env bash
# Set up kitaru on the embedded local stack and run the two-checkpoint example flow.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/kitaru init
.venv/bin/python examples/hello_flow.py
