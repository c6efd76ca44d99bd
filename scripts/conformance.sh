#!/usr/bin/env bash
# Run scim2-tester, scim-sanity and Microsoft's Postman collection (newman) against a fresh local endpoint, then print
# the README's Conformance table. newman (npm, pinned in conformance/package-lock.json) is installed on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
if [ ! -x conformance/node_modules/.bin/newman ]; then
  npm ci --prefix conformance --no-audit --no-fund --loglevel=error
fi
exec .venv/bin/python -m conformance.run "$@"
