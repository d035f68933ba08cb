#!/usr/bin/env bash
# Keyframe's edge with `sendfile = true` (cached chunks in sealed memfds, sent
# without a copy) against the default (chunks written from memory), and Varnish,
# on cache hits of 1 MiB random ranges driven by `keyframe bench` (one thread).
# Interleaved rounds; medians of bytes/s and of server and client CPU per GB.
#
#   cargo build --release && bash bench/scripts/sendfile.sh
#
# Knobs: ROUNDS (3), DURATION (6s), CONNS (32), OBJ_COUNT (4), OBJ_MB (64).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/peers.sh"
ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-6s}" CONNS="${CONNS:-32}"
OBJ_COUNT="${OBJ_COUNT:-4}" OBJ_MB="${OBJ_MB:-64}"
RUN="$(mktemp -d /tmp/keyframe-sendfile.XXXXXX)"
chmod 755 "$RUN"
mkdir -p "$RUN/data"
cleanup() { peers_down "$RUN"; [ -f "$RUN/kf-sendfile.pid" ] && kill "$(cat "$RUN/kf-sendfile.pid")" 2>/dev/null || true; }
trap cleanup EXIT
for i in $(seq 0 $((OBJ_COUNT - 1))); do head -c $((OBJ_MB << 20)) /dev/urandom >"$RUN/data/obj-$i.bin"; done
peers_up "$RUN" "$RUN/data" >/dev/null
# shellcheck disable=SC1091
source "$RUN/urls"
port=$(free_port)
KEYFRAME_SENDFILE=true "$KEYFRAME" --log warn --threads "${KF_THREADS:-1}" edge --listen "127.0.0.1:$port" \
  --upstream "$NGINX_ORIGIN" --cache-memory "${KF_CACHE_MEMORY:-1GiB}" >"$RUN/kf-sendfile.log" 2>&1 &
echo $! >"$RUN/kf-sendfile.pid"
wait_port "$port"
declare -A URL=( [keyframe-copy]=$KF_EDGE [keyframe-sendfile]=http://127.0.0.1:$port [varnish]=$VARNISH )
declare -A PID=( [keyframe-copy]=$(cat "$RUN/kf-edge.pid") [keyframe-sendfile]=$(cat "$RUN/kf-sendfile.pid") [varnish]=$(cat "$RUN/varnish.pid") )
for name in "${!URL[@]}"; do
  for i in $(seq 0 $((OBJ_COUNT - 1))); do
    curl -s -o /dev/null "${URL[$name]}/v1/objects/obj-$i.bin"; curl -s -o /dev/null "${URL[$name]}/v1/objects/obj-$i.bin"
  done
done
: >"$RUN/rows"
for round in $(seq 1 "$ROUNDS"); do
  for name in keyframe-copy keyframe-sendfile varnish; do
    urls=(); for i in $(seq 0 $((OBJ_COUNT - 1))); do urls+=(--url "${URL[$name]}/v1/objects/obj-$i.bin"); done
    before=$(cpu_secs "${PID[$name]}")
    json=$("$KEYFRAME" --log warn bench range "${urls[@]}" --size 1MiB --concurrency "$CONNS" \
      --warmup 0s --duration "$DURATION" --threads 1 --seed "$round" --verify-dir "$RUN/data" --json)
    after=$(cpu_secs "${PID[$name]}")
    python3 - "$name" "$before" "$after" "$json" >>"$RUN/rows" <<'PY'
import json, sys
name, before, after, out = sys.argv[1:5]
r = json.loads(out)
assert r["verify_failures"] == 0 and r["errors"] == 0, r
gb = r["bytes"] / 1e9
print(name, r["bytes_per_s"] / 1e9, (float(after) - float(before)) / gb, r["client_cpu_s"] / gb)
PY
  done
done
python3 - "$RUN/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print("| server | GB/s | server CPU s/GB | client CPU s/GB |")
print("|---|---:|---:|---:|")
for name in ["keyframe-copy", "keyframe-sendfile", "varnish"]:
    m = [statistics.median(float(r[i]) for r in rows if r[0] == name) for i in (1, 2, 3)]
    print(f"| {name} | {m[0]:.2f} | {m[1]:.3f} | {m[2]:.3f} |")
PY
