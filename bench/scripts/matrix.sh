#!/usr/bin/env bash
# The benchmark matrix: Keyframe's origin and edge against nginx (static origin,
# and slice + proxy_cache edge) and Varnish (malloc), same data, same load
# generator (wrk), same run, interleaved rounds; medians and ratios go to
# bench/RESULTS.md. Everything binds to 127.0.0.1 and is stopped by pid.
#
#   cargo build --release && bash bench/scripts/matrix.sh
#
# Knobs: ROUNDS (3), DURATION (8s), CONNS (32), OBJ_COUNT (4), OBJ_MB (64).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
source "$HERE/peers.sh"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8s}"
CONNS="${CONNS:-32}"
OBJ_COUNT="${OBJ_COUNT:-4}"
OBJ_MB="${OBJ_MB:-64}"
RUN="$(mktemp -d /tmp/keyframe-bench.XXXXXX)"
# nginx workers and varnishd drop privileges: they must be able to read here.
chmod 755 "$RUN"
DATA="$RUN/data"
RAW="$RUN/raw.tsv"
trap 'peers_down "$RUN"' EXIT

mkdir -p "$DATA"
for i in $(seq 0 $((OBJ_COUNT - 1))); do
  python3 - "$DATA/obj-$i.bin" "$OBJ_MB" "$i" <<'PY'
import random, sys
path, mb, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
with open(path, "wb") as f:
    for _ in range(mb):
        f.write(r.randbytes(1 << 20))
PY
done

peers_up "$RUN" "$DATA" >/dev/null
# shellcheck disable=SC1091
source "$RUN/urls"
declare -A URL=( [nginx-origin]=$NGINX_ORIGIN [keyframe-origin]=$KF_ORIGIN
                 [nginx-slice]=$NGINX_SLICE [varnish]=$VARNISH [keyframe-edge]=$KF_EDGE )
declare -A PIDFILE=( [nginx-origin]=nginx-origin.pid [keyframe-origin]=kf-origin.pid
                     [nginx-slice]=nginx-slice.pid [varnish]=varnish.pid [keyframe-edge]=kf-edge.pid )

server_cpu() { # all processes of a server (varnish and nginx fork workers)
  local pid; pid="$(cat "$RUN/${PIDFILE[$1]}")"
  local total=0
  for p in $pid $(pgrep -P "$pid" 2>/dev/null || true) $(pgrep -P "$(pgrep -P "$pid" 2>/dev/null | head -1)" 2>/dev/null || true); do
    [ -r "/proc/$p/stat" ] || continue
    total=$(python3 -c "import sys; f=open('/proc/$p/stat').read().rsplit(')',1)[1].split(); print($total + int(f[11]) + int(f[12]))")
  done
  echo "$total"
}

run_wrk() { # name workload size cold
  local name="$1" workload="$2" size="$3" cold="$4"
  local before after out
  before=$(server_cpu "$name")
  out=$(RANGE_SIZE="$size" OBJ_SIZE=$((OBJ_MB << 20)) OBJ_COUNT="$OBJ_COUNT" COLD="$cold" SEED=$RANDOM \
    wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$HERE/random-range.lua" "${URL[$name]}" 2>&1)
  after=$(server_cpu "$name")
  python3 - "$name" "$workload" "$before" "$after" "$(getconf CLK_TCK)" "$out" >>"$RAW" <<'PY'
import re, sys
name, workload, before, after, hz, out = sys.argv[1:7]
def num(pattern, scale=None):
    m = re.search(pattern, out)
    if not m: return float("nan")
    v = float(m.group(1))
    if scale and m.group(2): v *= {"K":1e3,"M":1e6,"G":1e9,"KB":1e3,"MB":1e6,"GB":1e9,"B":1}.get(m.group(2), 1)
    return v
reqs = num(r"Requests/sec:\s+([\d.]+)")
bps = num(r"Transfer/sec:\s+([\d.]+)(\w+)", True)
non2xx = num(r"Non-2xx or 3xx responses:\s+(\d+)")
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
p99ms = float(p99.group(1)) * {"us":1e-3,"ms":1,"s":1e3}[p99.group(2)] if p99 else float("nan")
secs = float(re.search(r"(\d+) requests in ([\d.]+)s", out).group(2)) if re.search(r"requests in", out) else 1
cpu = (int(after) - int(before)) / int(hz)
gb = bps * secs / 1e9
print(f"{name}\t{workload}\t{reqs:.1f}\t{bps:.0f}\t{p99ms:.2f}\t{cpu/gb if gb else float('nan'):.3f}\t{0 if non2xx != non2xx else int(non2xx)}")
PY
}

# wrk reads 8 KiB at a time: on 1 MiB responses it saturates its core near 1 GB/s on
# loopback whatever the server. Keyframe's own load generator (hyper, large reads,
# one worker thread: the same share of the machine) also drives the 1 MiB hits.
run_kb() { # name workload size [bench command: range | cold]
  local name="$1" workload="$2" size="$3" how="${4:-range}"
  local before after json urls=()
  for i in $(seq 0 $((OBJ_COUNT - 1))); do urls+=(--url "${URL[$name]}/v1/objects/obj-$i.bin"); done
  before=$(server_cpu "$name")
  json=$("$KEYFRAME" --log warn bench "$how" "${urls[@]}" --size "$size" --concurrency "$CONNS" \
    --warmup 1s --duration "$DURATION" --threads 1 --seed "$RANDOM" --verify-dir "$DATA" --json)
  after=$(server_cpu "$name")
  python3 - "$name" "$workload" "$before" "$after" "$(getconf CLK_TCK)" "$json" >>"$RAW" <<'PY'
import json, sys
name, workload, before, after, hz, out = sys.argv[1:7]
r = json.loads(out)
assert r["verify_failures"] == 0, r.get("first_verify_failure")
cpu = (int(after) - int(before)) / int(hz)
# The server's CPU counter also ran during the 1 s warm-up: count its bytes too.
gb = r["bytes_per_s"] * (r["elapsed_s"] + 1) / 1e9
print(f"{name}\t{workload}\t{r['requests_per_s']:.1f}\t{r['bytes_per_s']:.0f}\t{r['latency_ms']['p99']:.2f}\t{cpu/gb if gb else float('nan'):.3f}\t{r['errors']}")
PY
}

echo -e "server\tworkload\treq_s\tbytes_s\tp99_ms\tcpu_s_per_gb\tnon2xx" >"$RAW"
# Warm the caches so "hit" workloads measure hits.
for name in nginx-slice varnish keyframe-edge; do
  for i in $(seq 0 $((OBJ_COUNT - 1))); do
    curl -s -o /dev/null "${URL[$name]}/v1/objects/obj-$i.bin"
    curl -s -o /dev/null "${URL[$name]}/v1/objects/obj-$i.bin"
  done
done
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round" >&2
  for name in nginx-origin keyframe-origin; do
    run_wrk "$name" "origin 1MiB ranges" $((1 << 20)) 0
    run_wrk "$name" "origin 4KiB ranges" 4096 0
  done
  for name in nginx-slice varnish keyframe-edge; do
    run_wrk "$name" "edge hit 1MiB ranges" $((1 << 20)) 0
    run_wrk "$name" "edge hit 4KiB ranges" 4096 0
    run_kb "$name" "edge hit 1MiB ranges (keyframe bench)" $((1 << 20))
  done
  for name in nginx-slice keyframe-edge; do
    run_wrk "$name" "edge cold 1MiB ranges" $((1 << 20)) 1
    run_kb "$name" "edge cold 1MiB ranges (keyframe bench)" $((1 << 20)) cold
  done
done
edge_metrics="$(curl -s "$KF_EDGE/_keyframe/metrics")"
python3 "$HERE/results.py" "$RAW" "$ROOT/bench/RESULTS.md" "$CONNS" "$DURATION" "$ROUNDS" "$OBJ_COUNT" "$OBJ_MB" <<<"$edge_metrics"
echo "wrote bench/RESULTS.md (raw: $RAW)" >&2
