#!/usr/bin/env bash
# Idempotent set-up: a virtualenv with the pinned Python packages, and the pinned Azurite from npm.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# checkov (the Bicep security lint in tests/infra) lives in its own venv: it pins packages the app must not share.
if [ ! -x .venv-checkov/bin/checkov ]; then
  "$PYTHON" -m venv .venv-checkov
  .venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check checkov==3.3.30
fi
if [ ! -x node_modules/.bin/azurite-table ] || ! grep -q '"version": "3.35.0"' node_modules/azurite/package.json; then
  npm ci --no-audit --no-fund --loglevel=error
fi
