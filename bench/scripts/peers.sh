#!/usr/bin/env bash
# Starts, on loopback only, everything a benchmark run compares, and stops exactly
# what it started (by pid). Sourced by matrix.sh; usable alone:
#   bash bench/scripts/peers.sh up RUN_DIR DATA_DIR   # prints NAME=URL lines
#   bash bench/scripts/peers.sh down RUN_DIR
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KEYFRAME="${KEYFRAME:-${CARGO_TARGET_DIR:-$HERE/../../target}/release/keyframe}"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "error: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

render() { # template out key=value…
  local tpl="$1" out="$2"; shift 2
  cp "$tpl" "$out"
  for kv in "$@"; do sed -i "s|@${kv%%=*}@|${kv#*=}|g" "$out"; done
}

peers_up() {
  local run="$1" data="$2" cache_size="${CACHE_SIZE:-1g}"
  mkdir -p "$run"/tmp-origin "$run"/tmp-slice "$run"/slice-cache "$run"/kf-objects/v1
  local p_origin p_slice p_varnish p_kforigin p_kfedge
  p_origin=$(free_port); p_slice=$(free_port); p_varnish=$(free_port)
  p_kforigin=$(free_port); p_kfedge=$(free_port)

  render "$HERE/conf/nginx-origin.conf" "$run/nginx-origin.conf" PORT="$p_origin" ROOT="$data" RUN="$run"
  if [ -n "${ORIGIN_LOG:-}" ]; then
    # One line per response with its body bytes: what each cache fetched.
    sed -i "s|access_log off;|log_format bytes '\$body_bytes_sent'; access_log $run/origin.access.log bytes;|" "$run/nginx-origin.conf"
  fi
  nginx -c "$run/nginx-origin.conf" -p "$run" -e "$run/nginx-origin.error.log"
  wait_port "$p_origin"

  render "$HERE/conf/nginx-slice.conf" "$run/nginx-slice.conf" PORT="$p_slice" ORIGIN_PORT="$p_origin" RUN="$run" CACHE_SIZE="$cache_size"
  nginx -c "$run/nginx-slice.conf" -p "$run" -e "$run/nginx-slice.error.log"
  wait_port "$p_slice"

  render "$HERE/conf/varnish.vcl" "$run/varnish.vcl" ORIGIN_PORT="$p_origin"
  varnishd -a "127.0.0.1:$p_varnish" -f "$run/varnish.vcl" -s "malloc,${cache_size}" \
    -n "$run/varnish" -P "$run/varnish.pid" -p thread_pools=1 >/dev/null
  wait_port "$p_varnish"

  # Keyframe runs one worker thread (KF_THREADS), as nginx runs one worker process:
  # wrk has the other core.
  # Keyframe's origin serves the same files: its store is a directory whose keys
  # are the file names.
  "$KEYFRAME" --log warn --threads "${KF_THREADS:-1}" --store "file://$data" origin --listen "127.0.0.1:$p_kforigin" \
    >"$run/kf-origin.log" 2>&1 &
  echo $! >"$run/kf-origin.pid"
  wait_port "$p_kforigin"

  "$KEYFRAME" --log warn --threads "${KF_THREADS:-1}" edge --listen "127.0.0.1:$p_kfedge" --upstream "http://127.0.0.1:$p_origin" \
    --cache-memory "${KF_CACHE_MEMORY:-1GiB}" >"$run/kf-edge.log" 2>&1 &
  echo $! >"$run/kf-edge.pid"
  wait_port "$p_kfedge"

  cat >"$run/urls" <<URLS
NGINX_ORIGIN=http://127.0.0.1:$p_origin
NGINX_SLICE=http://127.0.0.1:$p_slice
VARNISH=http://127.0.0.1:$p_varnish
KF_ORIGIN=http://127.0.0.1:$p_kforigin
KF_EDGE=http://127.0.0.1:$p_kfedge
URLS
  cat "$run/urls"
}

peers_down() {
  local run="$1"
  for f in nginx-origin nginx-slice varnish kf-origin kf-edge; do
    if [ -f "$run/$f.pid" ]; then
      kill "$(cat "$run/$f.pid")" 2>/dev/null || true
      rm -f "$run/$f.pid"
    fi
  done
}

# Server CPU seconds (user+sys) of a pid and its children so far.
cpu_secs() {
  local pid="$1" total=0
  for p in $pid $(pgrep -P "$pid" 2>/dev/null || true); do
    if [ -r "/proc/$p/stat" ]; then
      read -r -a st <"/proc/$p/stat"
      total=$((total + st[13] + st[14]))
    fi
  done
  python3 -c "print($total / $(getconf CLK_TCK))"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    up) peers_up "$2" "$3" ;;
    down) peers_down "$2" ;;
    *) echo "usage: peers.sh up RUN_DIR DATA_DIR | down RUN_DIR" >&2; exit 2 ;;
  esac
fi
