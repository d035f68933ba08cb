#!/usr/bin/env bash
# The hit path with one core each (issue 21): Keyframe's edge (cache hits) against
# Varnish (malloc), Keyframe's origin against nginx (static, sendfile), every
# server pinned to core 0 (`taskset -c 0`) and the load generator to core 1, so a
# server gets exactly one core and the load generator never steals it. Then the
# same servers unpinned, with the load generator unpinned too, where Keyframe at
# its DEFAULT thread count (one worker per core) runs beside `--threads 1`: the
# default must not lose when a client shares the cores.
#
# Random unaligned 1 MiB and 4 KiB ranges (bench/scripts/random-range.lua) over a
# page-cached set of OBJ_COUNT files of OBJ_MB MiB, `wrk -t1 -c$CONNS`; 1 MiB hits
# also through `keyframe bench range --threads 1` (large reads: wrk reads 8 KiB at
# a time and tops out near 1 GB/s). Interleaved rounds, medians; req/s, GB/s and
# server CPU s/GB (utime+stime from /proc of the server's processes, children
# included: Varnish's cache process and nginx's worker are children). Prints
# markdown tables for bench/RESULTS.md and the exact command lines used.
#
#   cargo build --release && bash bench/scripts/pinned.sh
#   OBJ_MB=1024 bash bench/scripts/pinned.sh      # the issue's 4 GiB set
#
# Knobs: ROUNDS (3), DURATION (8s), CONNS (64), OBJ_COUNT (4), OBJ_MB (256),
# SERVER_CORE (0), CLIENT_CORE (1), UNPINNED (1: also the unpinned table),
# SENDFILE (1 for sets up to 2 GiB: also a pinned edge with `sendfile = true`,
# whose chunks go out of sealed memfds without a copy; a third copy of the set).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/peers.sh"

ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-8s}" CONNS="${CONNS:-64}"
OBJ_COUNT="${OBJ_COUNT:-4}" OBJ_MB="${OBJ_MB:-256}"
SERVER_CORE="${SERVER_CORE:-0}" CLIENT_CORE="${CLIENT_CORE:-1}" UNPINNED="${UNPINNED:-1}"
ALL_CORES="0-$(($(nproc) - 1))"
# Every cache holds the whole set, with room for its own overhead.
CACHE_MB=$((OBJ_COUNT * OBJ_MB * 5 / 4 + 64))
export CACHE_SIZE="${CACHE_MB}m" KF_CACHE_MEMORY="${CACHE_MB}MiB" KF_THREADS=1
SENDFILE="${SENDFILE:-$([ $((OBJ_COUNT * OBJ_MB)) -le 2048 ] && echo 1 || echo 0)}"

RUN="$(mktemp -d /tmp/keyframe-pinned.XXXXXX)"
chmod 755 "$RUN" # nginx workers and varnishd drop privileges
DATA="$RUN/data"
cleanup() {
  peers_down "$RUN"
  for f in kf-edge-default kf-origin-default kf-edge-sendfile; do
    [ -f "$RUN/$f.pid" ] && kill "$(cat "$RUN/$f.pid")" 2>/dev/null || true
  done
}
trap cleanup EXIT

mkdir -p "$DATA"
for i in $(seq 0 $((OBJ_COUNT - 1))); do
  head -c $((OBJ_MB << 20)) /dev/urandom >"$DATA/obj-$i.bin"
done
cat "$DATA"/* >/dev/null # into the page cache

# Everything peers.sh starts inherits the pinning (Varnish's and nginx's children
# and threads too).
taskset -c "$SERVER_CORE" bash "$HERE/peers.sh" up "$RUN" "$DATA" >/dev/null
# shellcheck disable=SC1091
source "$RUN/urls"
# Keyframe at its default thread count (no --threads): for the unpinned table only.
p_edge_default=$(free_port) p_origin_default=$(free_port)
"$KEYFRAME" --log warn edge --listen "127.0.0.1:$p_edge_default" --upstream "$NGINX_ORIGIN" \
  --cache-memory "$KF_CACHE_MEMORY" >"$RUN/kf-edge-default.log" 2>&1 &
echo $! >"$RUN/kf-edge-default.pid"
"$KEYFRAME" --log warn --store "file://$DATA" origin --listen "127.0.0.1:$p_origin_default" \
  >"$RUN/kf-origin-default.log" 2>&1 &
echo $! >"$RUN/kf-origin-default.pid"
wait_port "$p_edge_default"
wait_port "$p_origin_default"
if [ "$SENDFILE" = 1 ]; then
  p_edge_sendfile=$(free_port)
  KEYFRAME_SENDFILE=true taskset -c "$SERVER_CORE" "$KEYFRAME" --log warn --threads 1 edge \
    --listen "127.0.0.1:$p_edge_sendfile" --upstream "$NGINX_ORIGIN" --cache-memory "$KF_CACHE_MEMORY" \
    >"$RUN/kf-edge-sendfile.log" 2>&1 &
  echo $! >"$RUN/kf-edge-sendfile.pid"
  wait_port "$p_edge_sendfile"
fi

declare -A URL=( [keyframe-edge]=$KF_EDGE [varnish]=$VARNISH [keyframe-origin]=$KF_ORIGIN
                 [nginx]=$NGINX_ORIGIN [keyframe-edge-default]=http://127.0.0.1:$p_edge_default
                 [keyframe-origin-default]=http://127.0.0.1:$p_origin_default )
declare -A PID=( [keyframe-edge]=$(cat "$RUN/kf-edge.pid") [varnish]=$(cat "$RUN/varnish.pid")
                 [keyframe-origin]=$(cat "$RUN/kf-origin.pid") [nginx]=$(cat "$RUN/nginx-origin.pid")
                 [keyframe-edge-default]=$(cat "$RUN/kf-edge-default.pid")
                 [keyframe-origin-default]=$(cat "$RUN/kf-origin-default.pid") )
if [ "$SENDFILE" = 1 ]; then
  URL[keyframe-edge-sendfile]=http://127.0.0.1:$p_edge_sendfile
  PID[keyframe-edge-sendfile]=$(cat "$RUN/kf-edge-sendfile.pid")
fi

tree() { # a pid and all its descendants
  local p
  echo "$1"
  for p in $(pgrep -P "$1" 2>/dev/null || true); do tree "$p"; done
}
ticks() { # user+system clock ticks of a server's processes so far
  local p total=0 st
  for p in $(tree "$1"); do
    st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    st=${st##*) } # fields from the third on (the name may hold spaces)
    read -r -a f <<<"$st"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}
cmdline() { tr '\0' ' ' <"/proc/$1/cmdline"; }
affinity() { # cores name
  local p
  for p in $(tree "${PID[$2]}"); do taskset -a -p -c "$1" "$p" >/dev/null; done
}

# Warm the caches so "hit" runs measure hits.
for name in keyframe-edge varnish keyframe-edge-default ${URL[keyframe-edge-sendfile]:+keyframe-edge-sendfile}; do
  for i in $(seq 0 $((OBJ_COUNT - 1))); do
    curl -sf -o /dev/null "${URL[$name]}/v1/objects/obj-$i.bin"
    curl -sf -o /dev/null "${URL[$name]}/v1/objects/obj-$i.bin"
  done
done

ROWS="$RUN/rows.tsv"
: >"$ROWS"
CMDS="$RUN/commands"
: >"$CMDS"
note_cmd() { grep -qxF -- "$1" "$CMDS" || echo "$1" >>"$CMDS"; }

run_wrk() { # table name workload range_size pin(yes|no)
  local table="$1" name="$2" workload="$3" size="$4" pin="$5" before after out cmd
  cmd="wrk -t1 -c$CONNS -d$DURATION --latency -s bench/scripts/random-range.lua ${URL[$name]}"
  local env=(RANGE_SIZE="$size" OBJ_SIZE=$((OBJ_MB << 20)) OBJ_COUNT="$OBJ_COUNT" COLD=0 SEED=$RANDOM)
  local pre=()
  [ "$pin" = yes ] && pre=(taskset -c "$CLIENT_CORE")
  note_cmd "RANGE_SIZE=$size OBJ_SIZE=$((OBJ_MB << 20)) OBJ_COUNT=$OBJ_COUNT ${pre[*]} ${cmd/${URL[$name]}/URL}"
  before=$(ticks "${PID[$name]}")
  out=$(env "${env[@]}" "${pre[@]}" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$HERE/random-range.lua" "${URL[$name]}" 2>&1)
  after=$(ticks "${PID[$name]}")
  python3 - "$table" "$name" "$workload" "$before" "$after" "$(getconf CLK_TCK)" "$out" >>"$ROWS" <<'PY'
import re, sys
table, name, workload, before, after, hz, out = sys.argv[1:8]
for bad in ("Non-2xx", "Socket errors"):
    if bad in out:
        print(f"warning: {name} {workload}: " + next(l for l in out.splitlines() if bad in l).strip(), file=sys.stderr)
reqs = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
m = re.search(r"requests in ([\d.]+)(ms|s|m),\s+([\d.]+)(B|KB|MB|GB|TB) read", out)
secs = float(m.group(1)) * {"ms": 1e-3, "s": 1, "m": 60}[m.group(2)]
gb = float(m.group(3)) * {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}[m.group(4)] / 1e9
cpu = (int(after) - int(before)) / int(hz)
print(f"{table}\t{name}\t{workload}\t{reqs:.1f}\t{gb / secs:.4f}\t{cpu / gb:.4f}")
PY
}

run_kb() { # table name pin(yes|no): 1 MiB ranges read in large pieces
  local table="$1" name="$2" pin="$3" before after json urls=() pre=()
  for i in $(seq 0 $((OBJ_COUNT - 1))); do urls+=(--url "${URL[$name]}/v1/objects/obj-$i.bin"); done
  [ "$pin" = yes ] && pre=(taskset -c "$CLIENT_CORE")
  note_cmd "${pre[*]} keyframe --log warn bench range --url URL/v1/objects/obj-{0..$((OBJ_COUNT - 1))}.bin --size 1MiB --concurrency $CONNS --warmup 0s --duration $DURATION --threads 1 --verify-dir DATA --json"
  before=$(ticks "${PID[$name]}")
  json=$("${pre[@]}" "$KEYFRAME" --log warn bench range "${urls[@]}" --size 1MiB --concurrency "$CONNS" \
    --warmup 0s --duration "$DURATION" --threads 1 --seed "$RANDOM" --verify-dir "$DATA" --json)
  after=$(ticks "${PID[$name]}")
  python3 - "$table" "$name" "$before" "$after" "$(getconf CLK_TCK)" "$json" >>"$ROWS" <<'PY'
import json, sys
table, name, before, after, hz, out = sys.argv[1:7]
r = json.loads(out)
assert r["verify_failures"] == 0 and r["errors"] == 0, r
gb = r["bytes"] / 1e9
cpu = (int(after) - int(before)) / int(hz)
print(f"{table}\t{name}\t1MiB (keyframe bench)\t{r['requests_per_s']:.1f}\t{r['bytes_per_s'] / 1e9:.4f}\t{cpu / gb:.4f}")
PY
}

pinned_round() {
  local name
  for name in "$@"; do affinity "$SERVER_CORE" "$name"; done
  for name in "$@"; do
    run_wrk pinned "$name" "1MiB" $((1 << 20)) yes
    run_wrk pinned "$name" "4KiB" 4096 yes
    run_kb pinned "$name" yes
  done
}
unpinned_round() {
  local name
  for name in "$@"; do affinity "$ALL_CORES" "$name"; done
  for name in "$@"; do
    run_wrk unpinned "$name" "1MiB" $((1 << 20)) no
    run_wrk unpinned "$name" "4KiB" 4096 no
  done
}

PINNED=(keyframe-edge varnish keyframe-origin nginx)
[ "$SENDFILE" = 1 ] && PINNED+=(keyframe-edge-sendfile)
UNPIN=(keyframe-edge-default keyframe-edge varnish keyframe-origin-default keyframe-origin nginx)
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  # Neither side always goes first.
  if [ $((round % 2)) = 1 ]; then order=("${PINNED[@]}"); else order=(); for ((i = ${#PINNED[@]} - 1; i >= 0; i--)); do order+=("${PINNED[i]}"); done; fi
  pinned_round "${order[@]}"
  if [ "$UNPINNED" = 1 ]; then
    if [ $((round % 2)) = 1 ]; then order=("${UNPIN[@]}"); else
      order=(); for ((i = ${#UNPIN[@]} - 1; i >= 0; i--)); do order+=("${UNPIN[i]}"); done; fi
    unpinned_round "${order[@]}"
  fi
done

{
  echo "Servers (pinned: \`taskset -c $SERVER_CORE\` around all of them, then \`taskset -a -p -c CORES\` per process between tables):"
  for name in $(printf '%s\n' "${!PID[@]}" | sort); do
    env=""; [ "$name" = keyframe-edge-sendfile ] && env="KEYFRAME_SENDFILE=true "
    echo "    $name: $env$(cmdline "${PID[$name]}")"
  done
  echo "Load (URL and DATA as above; pinned runs prefixed with \`taskset -c $CLIENT_CORE\`):"
  sed 's/^/    /' "$CMDS"
} | sed "s|$KEYFRAME|keyframe|g; s|$RUN|\$RUN|g" >"$RUN/commands.md"

python3 - "$ROWS" "$ROUNDS" "$DURATION" "$CONNS" "$OBJ_COUNT" "$OBJ_MB" "$RUN/commands.md" <<'PY'
import statistics, sys
from collections import defaultdict
rows, rounds, duration, conns, count, mb, cmds = sys.argv[1:8]
by = defaultdict(list)
for line in open(rows):
    t, name, w, rq, gbs, cpu = line.rstrip("\n").split("\t")
    by[(t, name, w)].append((float(rq), float(gbs), float(cpu)))
def med(t, name, w, i):
    v = [r[i] for r in by.get((t, name, w), [])]
    return statistics.median(v) if v else float("nan")
workloads = ["1MiB", "1MiB (keyframe bench)", "4KiB"]
def table(t, servers):
    print("| server | workload | req/s | GB/s | server CPU s/GB |")
    print("|---|---|---:|---:|---:|")
    for w in workloads:
        for s in servers:
            if (t, s, w) in by:
                print(f"| {s} | {w} | {med(t, s, w, 0):,.0f} | {med(t, s, w, 1):.3f} | {med(t, s, w, 2):.3f} |")
def ratios(t, pairs):
    print("| workload | Keyframe ÷ peer | req/s | GB/s | CPU s/GB |")
    print("|---|---|---:|---:|---:|")
    for w in workloads:
        for a, b in pairs:
            if (t, a, w) in by and (t, b, w) in by:
                r = [med(t, a, w, i) / med(t, b, w, i) for i in range(3)]
                print(f"| {w} | {a} ÷ {b} | {r[0]:.2f}× | {r[1]:.2f}× | {r[2]:.2f}× |")
print(f"### Pinned: each server on one core, the load generator on another\n")
print(f"Medians of {rounds} interleaved rounds of {duration}, `wrk -t1 -c{conns}` (and `keyframe bench`, {conns} connections), "
      f"random unaligned ranges over {count} × {mb} MiB page-cached files; hits warmed.\n")
table("pinned", ["keyframe-edge", "keyframe-edge-sendfile", "varnish", "keyframe-origin", "nginx"])
print()
ratios("pinned", [("keyframe-edge", "varnish"), ("keyframe-edge-sendfile", "varnish"), ("keyframe-origin", "nginx")])
if any(k[0] == "unpinned" for k in by):
    print(f"\n### Unpinned: servers and load generator share every core\n")
    print("`-default` is Keyframe with no `--threads` (one worker per core); the others run `--threads 1`.\n")
    table("unpinned", ["keyframe-edge-default", "keyframe-edge", "varnish",
                       "keyframe-origin-default", "keyframe-origin", "nginx"])
    print()
    ratios("unpinned", [("keyframe-edge-default", "keyframe-edge"), ("keyframe-edge-default", "varnish"),
                        ("keyframe-edge", "varnish"), ("keyframe-origin-default", "keyframe-origin"),
                        ("keyframe-origin-default", "nginx"), ("keyframe-origin", "nginx")])
print("\nCommands:\n")
print(open(cmds).read())
PY
echo "raw rows: $ROWS" >&2
