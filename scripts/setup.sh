#!/usr/bin/env bash
# Idempotent set-up. `setup.sh serve`: what serving needs, a virtualenv with the pinned runtime packages
# (requirements.txt) and the pinned Azurite from npm. `setup.sh test` (the default): that, plus the test and lint
# tools (requirements-dev.txt) and checkov's own virtualenv for the Bicep lint.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-test}"
case "$MODE" in
  serve) REQUIREMENTS=requirements.txt ;;
  test) REQUIREMENTS=requirements-dev.txt ;;
  *) echo "usage: scripts/setup.sh [serve|test]" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
# checkov (the Bicep security lint in tests/infra) lives in its own venv: it pins packages the app must not share.
if [ "$MODE" = test ] && [ ! -x .venv-checkov/bin/checkov ]; then
  "$PYTHON" -m venv .venv-checkov
  .venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check checkov==3.3.30
fi
if [ ! -x node_modules/.bin/azurite-table ] || ! grep -q '"version": "3.35.0"' node_modules/azurite/package.json; then
  npm ci --no-audit --no-fund --loglevel=error
fi
