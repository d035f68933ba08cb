#!/usr/bin/env bash
# A realistic Keyframe cluster on one machine, on loopback:
#
#   s3s-fs (S3-compatible store) ──▶ origin-1, origin-2
#                                        ▲
#                                   shield edge   (upstream = both origins)
#                                        ▲
#              edge-us, edge-eu, edge-ap          (parent = shield, tokens checked here)
#   catalog (PostgreSQL, region → edge map, token key, admin token)
#      │ watch events (--events)
#   nats-server -js (JetStream; the catalog appends, its consumer folds)
#   ballista-scheduler ◀── ballista-executor-1, ballista-executor-2
#                           (`keyframe recommend --engine $BALLISTA_URL`)
#
# NATS and Ballista are optional: without nats-server the catalog keeps its
# in-process writer; without `keyframe ballista` (a build lacking it) no Ballista
# processes start. Each says so in one line.
#
# Usage: deploy/cluster/cluster.sh COMMAND [ARGS]
#   up                 start everything (fails if a cluster already runs in the state dir)
#   status             each process: pid, alive, URL, health
#   env                the cluster's settings as shell assignments (`eval "$(cluster.sh env)"`)
#   ingest [ARGS…]     ingest FILEs (or, with none, a generated ffmpeg clip) into the
#                      cluster; ARGS go to `keyframe ingest` (e.g. --regions us --title T);
#                      prints one JSON object per file
#   purge PATH|URL     purge one object from every edge (shield first); --prefix P for a prefix
#   stop NAME          stop one process (e.g. origin-1) to try failover
#   down [--drop]      stop only the processes this script started; --drop also drops the
#                      database and deletes the stored objects
#
# Environment:
#   KEYFRAME_BIN            the keyframe binary [target/debug/keyframe, else target/release]
#   KEYFRAME_CLUSTER_DIR    state: pids, logs, configs, objects [$TMPDIR/keyframe-cluster-$USER]
#   KEYFRAME_CLUSTER_PG     PostgreSQL server URL without a database [postgres://postgres@127.0.0.1:5432]
#   KEYFRAME_CLUSTER_DB     database name, created when missing [keyframe_cluster]
#   S3S_FS                  the s3s-fs binary [on PATH, else ~/.cache/keyframe-ci/s3s/bin/s3s-fs]
#   REGIONS                 regional edges [us eu ap]
#   NATS_SERVER             the nats-server binary [on PATH, else /usr/sbin/nats-server];
#                           NATS_SERVER=none starts none
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${KEYFRAME_CLUSTER_DIR:-${TMPDIR:-/tmp}/keyframe-cluster-$(id -un)}"
PG="${KEYFRAME_CLUSTER_PG:-postgres://postgres@127.0.0.1:5432}"
PG="${PG%/}"
DBNAME="${KEYFRAME_CLUSTER_DB:-keyframe_cluster}"
REGIONS="${REGIONS:-us eu ap}"
BUCKET=keyframe

die() { echo "cluster: $*" >&2; exit 1; }
say() { echo "cluster: $*" >&2; }

find_bin() {
  if [ -n "${KEYFRAME_BIN:-}" ]; then
    [ -x "$KEYFRAME_BIN" ] || die "KEYFRAME_BIN=$KEYFRAME_BIN is not executable"
    echo "$KEYFRAME_BIN"; return
  fi
  local t="${CARGO_TARGET_DIR:-$ROOT/target}"
  for b in "$t/debug/keyframe" "$t/release/keyframe"; do
    [ -x "$b" ] && { echo "$b"; return; }
  done
  die "no keyframe binary: run 'cargo build' or set KEYFRAME_BIN"
}

find_s3s() {
  if [ -n "${S3S_FS:-}" ]; then echo "$S3S_FS"; return; fi
  if command -v s3s-fs >/dev/null 2>&1; then command -v s3s-fs; return; fi
  local c="${KEYFRAME_CI_CACHE:-$HOME/.cache/keyframe-ci}/s3s/bin/s3s-fs"
  [ -x "$c" ] && { echo "$c"; return; }
  die "s3s-fs not found: 'cargo install s3s-fs --features binary' or set S3S_FS"
}

# A loopback port nothing listens on (s3s-fs cannot bind port 0 and report it),
# below Linux's ephemeral range (32768-60999 by default), where the kernel picks
# the local ports of outgoing connections, and never one this run handed out.
GIVEN="$DIR/.ports"
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    grep -qx "$p" "$GIVEN" 2>/dev/null && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p" >>"$GIVEN"
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

find_nats() {
  if [ -n "${NATS_SERVER:-}" ]; then
    [ "$NATS_SERVER" = none ] || echo "$NATS_SERVER"
    return 0
  fi
  if command -v nats-server >/dev/null 2>&1; then command -v nats-server; return 0; fi
  if [ -x /usr/sbin/nats-server ]; then echo /usr/sbin/nats-server; fi
  return 0
}

hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# The state file: KEY='value' lines, readable by `source` and by the tests.
setvar() { printf "%s='%s'\n" "$1" "$2" >>"$DIR/cluster.env"; }
load() {
  [ -f "$DIR/cluster.env" ] || die "no cluster in $DIR (run 'up' first)"
  # shellcheck disable=SC1091
  source "$DIR/cluster.env"
}

# Whether a pid runs (a zombie waiting for its reaper does not).
running() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  [ "$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" != Z ]
}

alive() {
  local pid="$1" want="$2"
  running "$pid" || return 1
  # Guard against a recycled pid: the process must still be the one we started.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$want"
}

# start NAME WHAT CMD… : runs CMD in the background, records its pid, and for
# keyframe servers waits for "WHAT listening on URL" and records the URL.
start() {
  local name="$1" what="$2"; shift 2
  local log="$DIR/logs/$name.log"
  nohup "$@" >"$log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$DIR/pids/$name.pid"
  echo "$1" >"$DIR/pids/$name.cmd"
  [ "$what" = "-" ] && return 0
  for _ in $(seq 1 300); do
    local url
    url="$(sed -n "s/^$what listening on \(http:\/\/[^ ]*\).*/\1/p" "$log" | head -n1)"
    if [ -n "$url" ]; then echo "$url" >"$DIR/pids/$name.url"; echo "$url"; return 0; fi
    running "$pid" || { tail -n 20 "$log" >&2; die "$name exited during start"; }
    sleep 0.1
  done
  tail -n 20 "$log" >&2
  die "$name did not report its address within 30 s"
}

wait_tcp() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 "$PG/postgres" "$@"; }

cmd_up() {
  if [ -f "$DIR/cluster.env" ] && [ -n "$(ls "$DIR/pids/"*.pid 2>/dev/null)" ]; then
    for f in "$DIR/pids/"*.pid; do
      local n; n="$(basename "$f" .pid)"
      if alive "$(cat "$f")" "$(cat "$DIR/pids/$n.cmd" 2>/dev/null)"; then
        die "a cluster already runs in $DIR ($n); run 'down' first"
      fi
    done
  fi
  local bin s3s; bin="$(find_bin)"; s3s="$(find_s3s)"
  command -v psql >/dev/null || die "psql is required to create the database"
  mkdir -p "$DIR/pids" "$DIR/logs" "$DIR/conf" "$DIR/s3/$BUCKET"
  rm -f "$DIR/pids/"* "$DIR/cluster.env" "$GIVEN"
  chmod 700 "$DIR/conf"
  umask 077
  trap 'say "start failed; stopping what started"; cmd_down >/dev/null 2>&1 || true' ERR

  # PostgreSQL: the machine's server, one database for the cluster.
  if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DBNAME'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE \"$DBNAME\"" >/dev/null
  fi
  local db="$PG/$DBNAME"

  # S3: s3s-fs on a free loopback port, fresh credentials per cluster.
  local s3port key secret
  s3port="$(free_port)"; key="kf-$(hex 6)"; secret="$(hex 16)"
  start s3 - "$s3s" --host 127.0.0.1 --port "$s3port" --access-key "$key" \
    --secret-key "$secret" "$DIR/s3" >/dev/null
  wait_tcp "$s3port" || { tail -n 20 "$DIR/logs/s3.log" >&2; die "s3s-fs did not start"; }
  export AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_REGION=us-east-1
  local store="s3://$BUCKET?endpoint=http://127.0.0.1:$s3port&region=us-east-1"

  local token_key admin_token
  token_key="$(hex 32)"; admin_token="$(hex 24)"
  {
    echo "# Keyframe cluster state, written by deploy/cluster/cluster.sh up"
  } >"$DIR/cluster.env"
  setvar KEYFRAME_BIN "$bin"
  setvar DB_URL "$db"
  setvar STORE_URL "$store"
  setvar AWS_ACCESS_KEY_ID "$key"
  setvar AWS_SECRET_ACCESS_KEY "$secret"
  setvar AWS_REGION us-east-1
  setvar TOKEN_KEY "$token_key"
  setvar ADMIN_TOKEN "$admin_token"
  setvar REGION_HEADER X-Keyframe-Region
  setvar REGIONS "$REGIONS"

  # Migrations once, before any server (the catalog would also run them at start).
  "$bin" --db "$db" --log warn migrate >"$DIR/logs/migrate.log" 2>&1 \
    || { cat "$DIR/logs/migrate.log" >&2; die "migrations failed"; }

  # Origins: stateless readers of the store; no token key (only edges face players).
  local origins=() u
  for i in 1 2; do
    cat >"$DIR/conf/origin-$i.toml" <<EOF
store = "$store"
listen = "127.0.0.1:0"
log = "warn"
grace_secs = 2
EOF
    u="$(start "origin-$i" origin "$bin" --config "$DIR/conf/origin-$i.toml" origin)"
    origins+=("$u"); setvar "ORIGIN_${i}_URL" "$u"
  done

  # The shield: one cache in front of the origins, shared by every regional edge.
  cat >"$DIR/conf/shield.toml" <<EOF
listen = "127.0.0.1:0"
upstream = ["${origins[0]}", "${origins[1]}"]
admin_token = "$admin_token"
cache_memory = "256MiB"
chunk_size = "1MiB"
log = "warn"
grace_secs = 2
EOF
  local shield; shield="$(start shield edge "$bin" --config "$DIR/conf/shield.toml" edge)"
  setvar SHIELD_URL "$shield"

  # Regional edges: misses go to the shield; they check tokens and regions. The
  # clients on loopback stand in for the load balancer that sets the region header.
  local edges="" r R first=""
  for r in $REGIONS; do
    R="$(echo "$r" | tr '[:lower:]-' '[:upper:]_')"
    cat >"$DIR/conf/edge-$r.toml" <<EOF
listen = "127.0.0.1:0"
region = "$r"
parent = "$shield"
upstream = ["${origins[0]}", "${origins[1]}"]
token_key = "$token_key"
admin_token = "$admin_token"
region_header = "X-Keyframe-Region"
trusted_proxies = ["127.0.0.1"]
cache_memory = "128MiB"
chunk_size = "1MiB"
log = "warn"
grace_secs = 2
EOF
    u="$(start "edge-$r" edge "$bin" --config "$DIR/conf/edge-$r.toml" edge)"
    setvar "EDGE_${R}_URL" "$u"
    [ -n "$first" ] || first="$u"
    edges+="$r = \"$u\""$'\n'
  done

  # Watch events: a JetStream server; the catalog appends to it and folds from it.
  local nats events_line=""
  nats="$(find_nats)"
  if [ -n "$nats" ]; then
    local nport; nport="$(free_port)"
    mkdir -p "$DIR/nats"
    start nats - "$nats" -js -a 127.0.0.1 -p "$nport" -sd "$DIR/nats" >/dev/null
    wait_tcp "$nport" || { tail -n 20 "$DIR/logs/nats.log" >&2; die "nats-server did not start"; }
    events_line="events = \"nats://127.0.0.1:$nport\""
    setvar NATS_URL "nats://127.0.0.1:$nport"
  else
    say "nats-server not found (set NATS_SERVER): the catalog keeps its in-process history writer"
  fi

  # The batch engine: a Ballista scheduler and two executors, run by keyframe itself
  # (the same Ballista and DataFusion as the client).
  if "$bin" ballista --help >/dev/null 2>&1; then
    local bport e eport gport
    bport="$(free_port)"
    start ballista-scheduler - "$bin" ballista scheduler --listen "127.0.0.1:$bport" >/dev/null
    wait_tcp "$bport" || { tail -n 20 "$DIR/logs/ballista-scheduler.log" >&2; die "the Ballista scheduler did not start"; }
    for e in 1 2; do
      eport="$(free_port)"; gport="$(free_port)"
      mkdir -p "$DIR/ballista-$e"
      start "ballista-executor-$e" - "$bin" ballista executor --scheduler "127.0.0.1:$bport" \
        --listen "127.0.0.1:$eport" --grpc-port "$gport" --work-dir "$DIR/ballista-$e" >/dev/null
      wait_tcp "$eport" || { tail -n 20 "$DIR/logs/ballista-executor-$e.log" >&2; die "Ballista executor $e did not start"; }
    done
    setvar BALLISTA_URL "ballista://127.0.0.1:$bport"
  else
    say "this keyframe has no 'ballista' command: no Ballista scheduler or executors started"
  fi

  # The catalog: PostgreSQL, the region → edge map, the token and admin keys.
  # Players of no known region go to the first regional edge (never the shield,
  # which checks no tokens).
  cat >"$DIR/conf/catalog.toml" <<EOF
listen = "127.0.0.1:0"
db = "$db"
store = "$store"
edge_url = "$first"
token_key = "$token_key"
admin_token = "$admin_token"
region_header = "X-Keyframe-Region"
trusted_proxies = ["127.0.0.1"]
recommend_interval_secs = 0
log = "warn"
grace_secs = 2
$events_line

[region_edges]
$edges
EOF
  u="$(start catalog catalog "$bin" --config "$DIR/conf/catalog.toml" catalog)"
  setvar CATALOG_URL "$u"
  trap - ERR
  say "up: state in $DIR"
  cmd_status
}

cmd_status() {
  load
  local f n pid url state health any=0
  printf '%-10s %-8s %-6s %-28s %s\n' NAME PID STATE URL HEALTH
  for f in "$DIR/pids/"*.pid; do
    [ -e "$f" ] || continue
    any=1
    n="$(basename "$f" .pid)"; pid="$(cat "$f")"
    url="$(cat "$DIR/pids/$n.url" 2>/dev/null || echo -)"
    if alive "$pid" "$(cat "$DIR/pids/$n.cmd" 2>/dev/null)"; then state=up; else state=down; fi
    health=-
    if [ "$state" = up ] && [ "$url" != - ]; then
      health="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/_keyframe/healthz" || true)"
    fi
    printf '%-10s %-8s %-6s %-28s %s\n' "$n" "$pid" "$state" "$url" "$health"
  done
  [ "$any" = 1 ] || say "no processes recorded in $DIR"
}

cmd_env() { load; grep -v '^#' "$DIR/cluster.env"; }

# A short generated clip (H.264 if available, else MPEG-4 Part 2), different each time.
make_clip() {
  command -v ffmpeg >/dev/null || die "ffmpeg is required to generate a clip (or give FILEs)"
  local n; n="$(ls "$DIR"/clip-*.mp4 2>/dev/null | wc -l)"
  local out="$DIR/clip-$n.mp4" enc=mpeg4
  ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx264 && enc=libx264
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc=duration=6:size=320x240:rate=25" \
    -f lavfi -i "sine=frequency=$((440 + 20 * n)):duration=6" \
    -c:v "$enc" -g 25 -c:a aac -shortest -movflags +faststart "$out" >&2
  echo "$out"
}

cmd_ingest() {
  load
  local args=() files=0 a
  for a in "$@"; do
    args+=("$a")
    case "$a" in -*) ;; *) [ -f "$a" ] && files=1 ;; esac
  done
  [ "$files" = 1 ] || args+=("$(make_clip)")
  AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
    AWS_REGION="$AWS_REGION" \
    "$KEYFRAME_BIN" --db "$DB_URL" --store "$STORE_URL" --log warn ingest --json "${args[@]}"
}

cmd_purge() {
  load
  local body
  case "${1:-}" in
    --prefix) [ -n "${2:-}" ] || die "purge --prefix PREFIX"; body="{\"prefix\":\"$2\"}" ;;
    "") die "purge PATH|URL or purge --prefix PREFIX" ;;
    *) body="{\"url\":\"$1\"}" ;;
  esac
  local f n url code rc=0
  # The shield first, so that a regional edge cannot refill from a stale shield.
  for n in shield $(for r in $REGIONS; do echo "edge-$r"; done); do
    f="$DIR/pids/$n.url"; [ -f "$f" ] || continue
    url="$(cat "$f")"
    code="$(curl -s -o "$DIR/logs/purge-$n.json" -w '%{http_code}' --max-time 5 \
      -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
      -d "$body" "$url/_keyframe/purge" || true)"
    echo "$n $code $(cat "$DIR/logs/purge-$n.json" 2>/dev/null)"
    [ "$code" = 200 ] || rc=1
  done
  return "$rc"
}

stop_one() {
  local n="$1" f="$DIR/pids/$1.pid" pid
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if alive "$pid" "$(cat "$DIR/pids/$n.cmd" 2>/dev/null)"; then
    kill -TERM "$pid" 2>/dev/null || true
    # SIGTERM lets in-flight requests finish (grace_secs); then SIGKILL.
    for _ in $(seq 1 100); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -KILL "$pid" 2>/dev/null || true
    say "stopped $n ($pid)"
  fi
  rm -f "$f"
}

cmd_stop() {
  [ -n "${1:-}" ] || die "stop NAME (see 'status')"
  [ -f "$DIR/pids/$1.pid" ] || die "no process named $1 in $DIR"
  stop_one "$1"
}

cmd_down() {
  [ -d "$DIR/pids" ] || { say "nothing to stop in $DIR"; return 0; }
  local n
  # Players' side first, storage last.
  for n in catalog $(for r in ${REGIONS}; do echo "edge-$r"; done) shield origin-1 origin-2 \
    ballista-executor-1 ballista-executor-2 ballista-scheduler nats s3; do
    stop_one "$n"
  done
  local f
  for f in "$DIR/pids/"*.pid; do [ -e "$f" ] && stop_one "$(basename "$f" .pid)"; done
  if [ "${1:-}" = "--drop" ]; then
    psql_admin -c "DROP DATABASE IF EXISTS \"$DBNAME\" WITH (FORCE)" >/dev/null
    rm -rf "$DIR/s3" "$DIR"/clip-*.mp4 "$DIR/nats" "$DIR"/ballista-*
    say "dropped database $DBNAME, the stored objects and the event stream"
  fi
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  status) shift; cmd_status ;;
  env) shift; cmd_env ;;
  ingest) shift; cmd_ingest "$@" ;;
  purge) shift; cmd_purge "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
