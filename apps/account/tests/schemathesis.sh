#!/usr/bin/env bash
# Fuzzes a running account web role against the OpenAPI document it serves:
#   apps/account/tests/schemathesis.sh http://127.0.0.1:8080
# Fails on any 5xx, undocumented status, wrong content type or response that
# violates the schema. Installs schemathesis (pinned) into a venv under the
# eventflow cache the first time; needs python3 with venv and PyPI access.
set -euo pipefail

base="${1:?usage: schemathesis.sh <base-url>}"
version="4.32.5"
cache="${EVENTFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/eventflow}"
venv="$cache/venv-schemathesis-$version"

if [[ ! -x "$venv/bin/schemathesis" ]]; then
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

exec "$venv/bin/schemathesis" run "$base/openapi.json" --url "$base" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
    --workers 2 \
    --no-color
