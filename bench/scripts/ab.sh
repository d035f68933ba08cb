#!/usr/bin/env bash
# A/B of two Keyframe builds' edges on the same data, in the same run: both edges
# front one nginx origin; interleaved rounds of 4 KiB hits (wrk), 1 MiB hits and
# cold 1 MiB ranges (`keyframe bench`, one thread, bytes verified); medians of
# each and the ratio B/A. The edges run one worker pinned to core 0, the load
# generator is pinned to core 1, so neither steals the other's core.
#
#   KEYFRAME_A=old/keyframe KEYFRAME_B=new/keyframe bash bench/scripts/ab.sh
#
# Knobs: ROUNDS (3), DURATION (6s), CONNS (32), OBJ_COUNT (4), OBJ_MB (64).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${KEYFRAME_A:?set KEYFRAME_A to the baseline keyframe binary}"
: "${KEYFRAME_B:?set KEYFRAME_B to the candidate keyframe binary}"
KEYFRAME="$KEYFRAME_B"
source "$HERE/peers.sh"
ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-6s}" CONNS="${CONNS:-32}"
OBJ_COUNT="${OBJ_COUNT:-4}" OBJ_MB="${OBJ_MB:-64}"
RUN="$(mktemp -d /tmp/keyframe-ab.XXXXXX)"
chmod 755 "$RUN"
mkdir -p "$RUN/data"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$RUN/nginx-origin.pid" ] && kill "$(cat "$RUN/nginx-origin.pid")" 2>/dev/null || true
}
trap cleanup EXIT
for i in $(seq 0 $((OBJ_COUNT - 1))); do head -c $((OBJ_MB << 20)) /dev/urandom >"$RUN/data/obj-$i.bin"; done
p_origin=$(free_port)
render "$HERE/conf/nginx-origin.conf" "$RUN/nginx-origin.conf" PORT="$p_origin" ROOT="$RUN/data" RUN="$RUN"
nginx -c "$RUN/nginx-origin.conf" -p "$RUN" -e "$RUN/nginx-origin.error.log"
wait_port "$p_origin"

declare -A URL PID
start_edge() { # name binary [cache-memory]
  local port; port=$(free_port)
  taskset -c 0 "$2" --log warn --threads 1 edge --listen "127.0.0.1:$port" \
    --upstream "http://127.0.0.1:$p_origin" --cache-memory "${3:-1GiB}" >"$RUN/$1.log" 2>&1 &
  PID[$1]=$!
  PIDS+=("$!")
  URL[$1]="http://127.0.0.1:$port"
  wait_port "$port"
}
start_edge A "$KEYFRAME_A"
start_edge B "$KEYFRAME_B"
# Cold runs need a cache that forgets: a small tier, fed keys never asked before.
start_edge A-cold "$KEYFRAME_A" 64MiB
start_edge B-cold "$KEYFRAME_B" 64MiB
for name in A B; do
  for i in $(seq 0 $((OBJ_COUNT - 1))); do
    curl -s -o /dev/null "${URL[$name]}/v1/objects/obj-$i.bin"
    curl -s -o /dev/null "${URL[$name]}/v1/objects/obj-$i.bin"
  done
done

: >"$RUN/rows"
wrk_4k() { # name round
  local out
  out=$(RANGE_SIZE=4096 OBJ_SIZE=$((OBJ_MB << 20)) OBJ_COUNT="$OBJ_COUNT" COLD=0 SEED=$2 \
    taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" -s "$HERE/random-range.lua" "${URL[$1]}" 2>&1)
  python3 - "$1" "$out" >>"$RUN/rows" <<'PY'
import re, sys
name, out = sys.argv[1:3]
assert "Non-2xx" not in out, out
print(name, "hit-4KiB-req/s", re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
PY
}
kb() { # name round how label
  local urls=() json
  for i in $(seq 0 $((OBJ_COUNT - 1))); do urls+=(--url "${URL[$1]}/v1/objects/obj-$i.bin"); done
  json=$(taskset -c 1 "$KEYFRAME_B" --log warn bench "$3" "${urls[@]}" --size 1MiB --concurrency "$CONNS" \
    --warmup 0s --duration "$DURATION" --threads 1 --seed "$2" --verify-dir "$RUN/data" --json)
  python3 - "$1" "$4" "$json" >>"$RUN/rows" <<'PY'
import json, sys
name, label, out = sys.argv[1:4]
r = json.loads(out)
assert r["verify_failures"] == 0 and r["errors"] == 0, r
print(name.removesuffix("-cold"), label, r["bytes_per_s"] / 1e9)
PY
}
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round" >&2
  order="A B"; [ $((round % 2)) = 0 ] && order="B A"  # neither always goes first
  for name in $order; do
    wrk_4k "$name" "$round"
    kb "$name" "$round" range "hit-1MiB-GB/s"
    kb "$name-cold" "$round" cold "cold-1MiB-GB/s"
  done
done
python3 - "$RUN/rows" "$ROUNDS" "$DURATION" "$CONNS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"A/B: {sys.argv[2]} interleaved rounds of {sys.argv[3]}, {sys.argv[4]} connections, edges pinned to core 0, load to core 1")
print("| workload | A | B | B/A |")
print("|---|---:|---:|---:|")
for w in ["hit-4KiB-req/s", "hit-1MiB-GB/s", "cold-1MiB-GB/s"]:
    a = statistics.median(float(r[2]) for r in rows if r[0] == "A" and r[1] == w)
    b = statistics.median(float(r[2]) for r in rows if r[0] == "B" and r[1] == w)
    print(f"| {w} | {a:.3f} | {b:.3f} | {b / a:.3f} |")
PY
