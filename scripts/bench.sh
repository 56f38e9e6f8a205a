#!/usr/bin/env bash
# Benchmarks with the project's own tools, against the local infrastructure (started here).
# Usage: scripts/bench.sh [post-latency [N]]   (release build; figures depend on the machine)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/dev-up.sh >/dev/null
set -a
# shellcheck disable=SC1091
. "${HILO_INFRA_DIR:-/tmp/hilo-infra}/env"
set +a
# Benchmarks run with production-like limits off for the single benchmarking client.
export AUTH_RATE_LIMIT=off RUST_LOG=warn
profile="${BENCH_PROFILE:-release}"
cargo build --profile "$profile" --workspace --bins
bin="target/$profile"; [ "$profile" = dev ] && bin=target/debug
export HILO_BIN_DIR="$bin"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; profile: $profile"

case "${1:-post-latency}" in
  post-latency) "$bin/hilo-bench-post" "${2:-1000}" ;;
  *) echo "unknown benchmark: $1" >&2; exit 2 ;;
esac
