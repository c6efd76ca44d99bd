#!/usr/bin/env bash
# Set up, then run every test: unit, integration and end-to-end (the session starts Azurite itself), and lint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
.venv/bin/python -m ruff check .
CHECKOV="$PWD/.venv-checkov/bin/checkov" exec .venv/bin/python -m pytest "$@"
