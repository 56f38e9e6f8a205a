#!/usr/bin/env bash
# Runs the whole Hilo stack on this machine: installs and starts the infrastructure, builds,
# starts every service, and prints the gateway URL. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/dev-up.sh
set -a
# shellcheck disable=SC1091
. "${HILO_INFRA_DIR:-/tmp/hilo-infra}/env"
set +a
# Better Auth limits sign-in/up only in production; so does the local stack, unless asked.
export AUTH_RATE_LIMIT="${AUTH_RATE_LIMIT:-off}"

cargo build --workspace --bins
trap 'echo; echo "stopping the infrastructure"; bash scripts/dev-down.sh' EXIT
# hilo-stack starts accounts, uploads and the gateway (port 8080) and stops them on Ctrl-C.
target/debug/hilo-stack || true
