#!/usr/bin/env bash
# Realtime benchmarks on this machine (loopback only), against the infra of scripts/dev-up.sh:
#   1. idle: RSS per idle authenticated WebSocket at N connections on one realtime replica;
#   2. latency: POST -> WS latency at RATE messages/s to SUBS subscribers for SECS seconds.
# Usage: scripts/bench-realtime.sh [N=10000] [SUBS=10] [RATE=100] [SECS=20]
# Set PROFILE=release to measure optimised binaries (builds them first).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
N=${1:-10000} SUBS=${2:-10} RATE=${3:-100} SECS=${4:-20}
PROFILE=${PROFILE:-dev}
if [ "$PROFILE" = release ]; then
  cargo build --release --workspace --bins
  export HILO_BIN_DIR="$REPO/target/release"
else
  cargo build --workspace --bins
  export HILO_BIN_DIR="$REPO/target/debug"
fi
# Each side holds N sockets: stay under the hard limit (20000 on the shared box).
ulimit -n "$(ulimit -Hn)"
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {print int($2/1024/1024)" GiB"}' /proc/meminfo), $(uname -r), profile $PROFILE"
"$HILO_BIN_DIR/hilo-load" idle "$N"
"$HILO_BIN_DIR/hilo-load" latency "$SUBS" "$RATE" "$SECS"
