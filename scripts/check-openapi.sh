#!/usr/bin/env bash
# Validates the gateway's OpenAPI document (`hilo-gateway openapi`, what /openapi.json serves)
# as OpenAPI 3.1 with openapi-spec-validator, pinned, in a venv at $REPO/.infra/openapi-venv
# (gitignored); then proves the check fails on a broken copy (a response without description).
# Usage: scripts/check-openapi.sh [GATEWAY_BINARY]   (default: target/debug/hilo-gateway)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$REPO/.infra/openapi-venv"
REQUIREMENTS="openapi-spec-validator==0.7.2"
STAMP="$VENV/.requirements-stamp"
GATEWAY=${1:-$REPO/target/debug/hilo-gateway}

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$REQUIREMENTS" ]; then
  echo "check-openapi: preparing $VENV ($REQUIREMENTS)"
  mkdir -p "$(dirname "$VENV")"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install --quiet "$REQUIREMENTS"
  echo "$REQUIREMENTS" > "$STAMP"
fi

doc=$(mktemp)
trap 'rm -f "$doc"' EXIT
"$GATEWAY" openapi > "$doc"
"$VENV/bin/python" - "$doc" <<'PY'
import copy, json, sys
from openapi_spec_validator import OpenAPIV31SpecValidator

spec = json.load(open(sys.argv[1]))
errors = [e.message for e in OpenAPIV31SpecValidator(spec).iter_errors()]
operations = sum(len(item) for item in spec["paths"].values())
for message in errors[:20]:
    print(f"  - {message}")
print(f"check-openapi: {len(spec['paths'])} paths, {operations} operations, {len(errors)} errors")
# The check itself: a response without its description must be caught.
broken = copy.deepcopy(spec)
response = next(iter(broken["paths"]["/api/messages"]["post"]["responses"].values()))
del response["description"]
if not any(True for _ in OpenAPIV31SpecValidator(broken).iter_errors()):
    print("check-openapi: the validator accepted a broken document")
    sys.exit(1)
sys.exit(1 if errors else 0)
PY
