#!/usr/bin/env bash
# Set up, then run the endpoint on http://127.0.0.1:7071/scim/v2 against a local Azurite (data kept in .azurite/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh serve
if [ ! -f local.settings.json ]; then
  token=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')
  sed "s/replace-with-a-long-random-token/$token/" local.settings.sample.json > local.settings.json
  echo "Created local.settings.json with a new bearer token: $token"
fi
exec .venv/bin/python -m scim serve --azurite "$@"
