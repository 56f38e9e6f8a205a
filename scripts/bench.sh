#!/usr/bin/env bash
# Benchmarks with the project's own tools, against the local infrastructure (started here, with
# a second PostgreSQL cluster that has production durability for the durable-commit figures).
# Release build by default (BENCH_PROFILE=dev for a debug one); figures depend on the machine.
# What each measures and the latest figures: docs/benchmarks.md.
# Usage: scripts/bench.sh [all | BENCHMARK [ARGS]]
#   post-latency [N=1000]                 one client's sequential posts, per content size
#   throughput [CLIENTS=64 THREADS=100 SECS=20]  closed-loop posts through every tier, local then
#                                         durable PostgreSQL; pgbench alongside
#   hot-thread [CLIENTS=64 SECS=20]       closed-loop posts into one thread, durable PostgreSQL
#   latency [RATE=1000 THREADS=100 SUBS=10 SECS=20]  POST -> WebSocket latency over many threads;
#                                         a bare WebSocket server alongside
#   fanout [SUBS=1000 RATE=200 SECS=20]   one thread, many sockets, posts through REST; a bare
#                                         WebSocket server alongside
#   relay [EVENTS=100000 THREADS=100]     one messaging replica draining a backlog; JetStream alone
#                                         alongside
#   realtime-idle [N=10000]               RSS per idle authenticated WebSocket on one replica
#   upload-memory                         gateway and uploads peak RSS during a 50 MiB upload
set -euo pipefail
cd "$(dirname "$0")/.."

HILO_DURABLE_PG=1 bash scripts/dev-up.sh >/dev/null
set -a
# shellcheck disable=SC1091
. "${HILO_INFRA_DIR:-/tmp/hilo-infra}/env"
set +a
# Benchmarks run with production-like limits off for the benchmarking clients.
export AUTH_RATE_LIMIT=off RUST_LOG=warn
profile="${BENCH_PROFILE:-release}"
cargo build --profile "$profile" --workspace --bins
bin="$PWD/target/$profile"; [ "$profile" = dev ] && bin="$PWD/target/debug"
export HILO_BIN_DIR="$bin"
# The load tool holds thousands of sockets: raise the descriptor limit to the hard one.
ulimit -n "$(ulimit -Hn)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); profile: $profile"

durable() { DATABASE_URL=$DURABLE_DATABASE_URL "$@"; }

run() {
  case "$1" in
    post-latency|latency|fanout|relay) "$bin/hilo-load" "$@" ;;
    throughput)
      "$bin/hilo-load" "$@"
      durable "$bin/hilo-load" "$@" ;;
    hot-thread) durable "$bin/hilo-load" throughput "${2:-64}" 1 "${3:-20}" ;;
    realtime-idle) "$bin/hilo-load" idle "${2:-10000}" ;;
    upload-memory)
      cargo nextest run -p hilo-e2e --run-ignored only -E 'test(peak_rss)' --no-capture ;;
    *) echo "unknown benchmark: $1" >&2; exit 2 ;;
  esac
}

if [ "${1:-all}" = all ]; then
  for benchmark in post-latency throughput hot-thread latency fanout relay realtime-idle upload-memory; do
    echo "== $benchmark"
    run "$benchmark"
  done
else
  run "$@"
fi
