#!/usr/bin/env bash
# Every check, exactly as CI runs it: format, clippy (warnings denied), the build, unit,
# integration and end-to-end tests against real PostgreSQL/Redis/NATS/S3, and the Helm chart.
# The infrastructure is started by scripts/dev-up.sh; in CI (CI=true) it is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$*" "$(($(date +%s) - started))"; }

step "infrastructure"
bash scripts/dev-up.sh
if [ "${CI:-}" = "true" ]; then
  trap 'bash scripts/dev-down.sh >/dev/null 2>&1 || true' EXIT
fi
set -a
# shellcheck disable=SC1091
. "${HILO_INFRA_DIR:-/tmp/hilo-infra}/env"
set +a

# The API reference is tested in a real headless browser (Debian's chromium).
if ! command -v chromium >/dev/null; then
  step "headless browser (apt: chromium)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# A Python grpcio client that uses reflection only (e2e/tests/grpc.rs runs it), pinned.
step "gRPC reflection client (pip: grpcio)"
GRPC_REQS="grpcio==1.68.1 grpcio-reflection==1.68.1 grpcio-health-checking==1.68.1"
if [ "$(cat .infra/grpc-venv/.stamp 2>/dev/null)" != "$GRPC_REQS" ]; then
  mkdir -p .infra
  python3 -m venv .infra/grpc-venv
  # shellcheck disable=SC2086 # the requirement list is split on purpose
  .infra/grpc-venv/bin/pip install -q --disable-pip-version-check --only-binary=:all: $GRPC_REQS
  echo "$GRPC_REQS" > .infra/grpc-venv/.stamp
fi

# openapi-python-client, pinned: e2e/tests/http.rs generates a client from /openapi.json and
# calls every route with it (scripts/openapi_client_check.py).
step "OpenAPI client generator (pip: openapi-python-client)"
GEN_REQS="openapi-python-client==0.24.3"
if [ "$(cat .infra/openapi-client-venv/.stamp 2>/dev/null)" != "$GEN_REQS" ]; then
  mkdir -p .infra
  python3 -m venv .infra/openapi-client-venv
  # shellcheck disable=SC2086 # the requirement list is split on purpose
  .infra/openapi-client-venv/bin/pip install -q --disable-pip-version-check $GEN_REQS
  echo "$GEN_REQS" > .infra/openapi-client-venv/.stamp
fi

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build (the end-to-end tests start these binaries)"
cargo build --workspace --bins --locked

step "tests"
cargo nextest run --workspace --locked --no-fail-fast

# It kills and restarts the shared NATS and PostgreSQL, so it runs when nothing else does.
step "fault suite"
cargo nextest run -p hilo-e2e --locked --run-ignored only -E 'binary(faults)' --no-capture

step "OpenAPI document"
bash scripts/check-openapi.sh

step "helm chart"
bash scripts/check-chart.sh

step "all checks passed"
