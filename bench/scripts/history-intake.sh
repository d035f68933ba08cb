#!/usr/bin/env bash
# Watch-event intake over HTTP (issues 7 and 20): CLIENTS concurrent viewers post
# batches of BATCH events for SECS seconds to a catalog on port 0, each reading the
# title's detail after every POST until the new resume point shows (the POST's
# answer → visible in the API).
#
#   bench/scripts/history-intake.sh [CLIENTS] [BATCH] [SECS] [DB_URL] [EVENTS]
#
# DB_URL: empty = a fresh SQLite file; postgres://… = that database.
# EVENTS: empty = the in-process writer (the default); `nats` = through NATS
# JetStream (`--events`), on a nats-server -js this script starts on a free
# loopback port with a fresh store (NATS_SERVER, default nats-server on PATH or
# /usr/sbin/nats-server), stopped at the end; nats://HOST:PORT = that server.
set -euo pipefail
cd "$(dirname "$0")/../.."
export KF_BENCH_CLIENTS=${1:-16} KF_BENCH_BATCH=${2:-100} KF_BENCH_SECS=${3:-20} KF_BENCH_DB=${4:-}
events=${5:-}
if [ "$events" = nats ]; then
  nats=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
  [ -x "$nats" ] || { echo "history-intake: nats-server not found (set NATS_SERVER)" >&2; exit 1; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  store=$(mktemp -d)
  "$nats" -js -a 127.0.0.1 -p "$port" -sd "$store" >"$store/nats.log" 2>&1 &
  nats_pid=$!
  trap 'kill "$nats_pid" 2>/dev/null; wait "$nats_pid" 2>/dev/null; rm -rf "$store"' EXIT
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  events="nats://127.0.0.1:$port"
fi
export KF_BENCH_EVENTS_URL="$events"
cargo test --release -p keyframe-catalog --test integration recommend_bench::history_intake \
    -- --ignored --nocapture 2>&1 | grep -E '^intake'
