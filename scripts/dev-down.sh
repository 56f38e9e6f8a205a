#!/usr/bin/env bash
# Stop the local infra that scripts/dev-up.sh started. Usage: dev-down.sh [--purge]
# Stops only processes named in our own pidfiles (never by name or port); --purge also
# deletes the state folder ($HILO_INFRA_DIR, default /tmp/hilo-infra).
set -euo pipefail

STATE=${HILO_INFRA_DIR:-/tmp/hilo-infra}
RUN=$STATE/run
PURGE=0
case "${1:-}" in
  --purge) PURGE=1 ;;
  "") ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

now() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }   # microseconds
since() { local d=$(( $(now) - $1 )); printf '%d.%ds' $((d / 1000000)) $((d % 1000000 / 100000)); }
say() { printf '%-9s %s\n' "$1:" "$2"; }

# Pid from our pidfile, only if that process is still the server we started (pid reuse guard).
our_pid() {
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
}

# Gone, or a zombie waiting for its parent to reap it (it no longer holds ports or files).
gone() { local st; st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 0; [ "${st:0:1}" = Z ]; }

# stop_pid NAME COMM: SIGTERM, wait up to 15 s, then SIGKILL.
stop_pid() {
  local name=$1 pid t end=$((SECONDS + 15)); t=$(now)
  if ! pid=$(our_pid "$name" "$2"); then
    rm -f "$RUN/$name.pid"; say "$name" "not running"; return
  fi
  local how=stopped
  kill -TERM "$pid" 2>/dev/null || true
  until gone "$pid"; do
    if [ "$SECONDS" -ge "$end" ] && [ "$how" = stopped ]; then
      kill -KILL "$pid" 2>/dev/null || true
      how="did not stop in ~15 s, killed with SIGKILL"
    fi
    sleep 0.1
  done
  rm -f "$RUN/$name.pid"
  say "$name" "$how ($(since "$t"))"
}

# pg_ctl uses the cluster's own postmaster.pid; use the binaries of the cluster's version.
# stop_postgres DIR: the cluster in $STATE/DIR (pg, and pg-durable when benchmarks started it).
stop_postgres() {
  local name=$1 data=$STATE/$1/data bin t; t=$(now)
  bin=/usr/lib/postgresql/$(cat "$data/PG_VERSION" 2>/dev/null || echo none)/bin
  if [ ! -x "$bin/pg_ctl" ] || ! runuser -u postgres -- "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    [ "$name" != pg ] || say postgres "not running"
    return 0
  fi
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null
  say "${name/pg/postgres}" "stopped ($(since "$t"))"
}

T0=$(now)
if [ -d "$STATE" ]; then
  # In parallel: SeaweedFS alone takes seconds to shut down.
  pids=()
  stop_pid s3 weed & pids+=($!)
  stop_pid nats nats-server & pids+=($!)
  stop_pid redis redis-server & pids+=($!)
  stop_postgres pg & pids+=($!)
  stop_postgres pg-durable & pids+=($!)
  rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ "$rc" -eq 0 ] || { echo "dev-down: some servers failed to stop; state kept in $STATE" >&2; exit 1; }
else
  echo "dev-down: no state folder $STATE, nothing to stop"
fi

if [ "$PURGE" -eq 1 ] && [ -d "$STATE" ]; then
  case "$STATE" in /|"") echo "dev-down: refusing to delete '$STATE'" >&2; exit 1 ;; esac
  rm -rf -- "$STATE"
  echo "dev-down: deleted $STATE"
fi
echo "dev-down: done in $(since "$T0")"
