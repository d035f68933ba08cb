#!/usr/bin/env bash
# Keyframe's thread modes side by side, unpinned, with the load generator on the
# same cores (issue 21): the default (one single-threaded runtime per core, each
# with its own SO_REUSEPORT listener), `--threads 1` (one worker), and
# `--threads $(nproc)` (one shared work-stealing runtime with a worker per core,
# the default before). Edge cache hits and origin ranges, random unaligned ranges
# of RANGE_SIZES (bench/scripts/random-range.lua), `wrk -t1 -c$CONNS`,
# interleaved rounds (the order reversed every other round), medians of req/s and
# server CPU µs per request (utime+stime from /proc).
#
#   cargo build --release && bash bench/scripts/threads.sh
#
# Knobs: ROUNDS (3), DURATION (5s), CONNS (64), OBJ_COUNT (4), OBJ_MB (64),
# RANGE_SIZES ("4096"), MODES ("default 1 $(nproc)"). BASELINE=/path/to/keyframe
# adds that binary's default and `--threads 1` (modes `base-default`, `base-1`),
# interleaved with the rest: an A/B of a change.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/peers.sh"

ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-5s}" CONNS="${CONNS:-64}"
OBJ_COUNT="${OBJ_COUNT:-4}" OBJ_MB="${OBJ_MB:-64}" RANGE_SIZES="${RANGE_SIZES:-4096}"
CORES="$(nproc)"
RUN="$(mktemp -d /tmp/keyframe-threads.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$RUN"
}
trap cleanup EXIT

DATA="$RUN/data"
mkdir -p "$DATA"
for i in $(seq 0 $((OBJ_COUNT - 1))); do
  head -c $((OBJ_MB << 20)) /dev/urandom >"$DATA/obj-$i.bin"
done
cat "$DATA"/* >/dev/null

declare -A URL PID
start() { # name threads-flag… -- command…
  local name="$1" port; shift
  port=$(free_port)
  local flags=()
  while [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  "${BIN:-$KEYFRAME}" --log warn "${flags[@]}" "$@" --listen "127.0.0.1:$port" >"$RUN/$name.log" 2>&1 &
  PID[$name]=$!
  PIDS+=($!)
  URL[$name]="http://127.0.0.1:$port"
  wait_port "$port"
}
# The edge's upstream: an origin of its own, off the measured path once warm.
start upstream --threads 1 -- --store "file://$DATA" origin
NAMES=()
MODES_LIST=(${MODES:-default 1 $CORES})
if [ -n "${BASELINE:-}" ]; then MODES_LIST+=(base-default base-1); fi
for mode in "${MODES_LIST[@]}"; do
  BIN="$KEYFRAME"; threads="$mode"
  case "$mode" in base-*) BIN="$BASELINE"; threads="${mode#base-}" ;; esac
  flags=(); [ "$threads" = default ] || flags=(--threads "$threads")
  BIN="$BIN" start "edge-$mode" "${flags[@]}" -- edge --upstream "${URL[upstream]}" \
    --cache-memory "$((OBJ_COUNT * OBJ_MB * 5 / 4 + 64))MiB"
  BIN="$BIN" start "origin-$mode" "${flags[@]}" -- --store "file://$DATA" origin
  NAMES+=("edge-$mode" "origin-$mode")
  for i in $(seq 0 $((OBJ_COUNT - 1))); do # warm the edge: hits only
    curl -sf -o /dev/null "${URL[edge-$mode]}/v1/objects/obj-$i.bin"
    curl -sf -o /dev/null "${URL[edge-$mode]}/v1/objects/obj-$i.bin"
  done
done

ticks() { # user+system clock ticks of a process so far
  local st
  st=$(cat "/proc/$1/stat")
  st=${st##*) }
  read -r -a f <<<"$st"
  echo $((f[11] + f[12]))
}

ROWS="$RUN/rows.tsv"
: >"$ROWS"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  order=("${NAMES[@]}")
  if [ $((round % 2)) = 0 ]; then
    order=(); for ((i = ${#NAMES[@]} - 1; i >= 0; i--)); do order+=("${NAMES[i]}"); done
  fi
  for size in $RANGE_SIZES; do
    for name in "${order[@]}"; do
      before=$(ticks "${PID[$name]}")
      out=$(RANGE_SIZE="$size" OBJ_SIZE=$((OBJ_MB << 20)) OBJ_COUNT="$OBJ_COUNT" COLD=0 SEED=$RANDOM \
        wrk -t1 -c"$CONNS" -d"$DURATION" -s "$HERE/random-range.lua" "${URL[$name]}" 2>&1)
      after=$(ticks "${PID[$name]}")
      python3 - "$name" "$size" "$before" "$after" "$(getconf CLK_TCK)" "$out" >>"$ROWS" <<'PY'
import re, sys
name, size, before, after, hz, out = sys.argv[1:7]
for bad in ("Non-2xx", "Socket errors"):
    if bad in out:
        print(f"warning: {name}: " + next(l for l in out.splitlines() if bad in l).strip(), file=sys.stderr)
reqs = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
total = int(re.search(r"(\d+) requests in", out).group(1))
cpu_us = (int(after) - int(before)) / int(hz) * 1e6 / max(total, 1)
print(f"{name}\t{size}\t{reqs:.1f}\t{cpu_us:.2f}")
PY
    done
  done
done

# ROWS_OUT: keep every run's row (name, size, req/s, CPU µs/req) there.
if [ -n "${ROWS_OUT:-}" ]; then cp "$ROWS" "$ROWS_OUT"; fi
python3 - "$ROWS" "$CORES" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    name, size, reqs, cpu = line.split("\t")
    rows[(name, int(size))].append((float(reqs), float(cpu)))
cores = sys.argv[2]
print(f"| server | range | mode | req/s (median) | vs --threads 1 | server CPU µs/req |")
print("|---|---|---|---|---|---|")
for (name, size) in sorted(rows):
    server, mode = name.split("-", 1)
    med = statistics.median(r for r, _ in rows[(name, size)])
    one = statistics.median(r for r, _ in rows[(f"{server}-1", size)])
    cpu = statistics.median(c for _, c in rows[(name, size)])
    base = mode.startswith("base-")
    if base:
        mode = mode[len("base-"):]
        one = statistics.median(r for r, _ in rows[(f"{server}-base-1", size)])
    label = {"default": "default (runtime per core)", "1": "--threads 1"}.get(mode, f"--threads {mode} (shared runtime)")
    if base:
        label = "BASELINE " + label
    print(f"| {server} | {size} B | {label} | {med:.0f} | {med / one:.2f}× | {cpu:.1f} |")
PY
echo
echo "Runs: $(sed -n 's/.*/&/p' "$ROWS" | wc -l) (every wrk: wrk -t1 -c$CONNS -d$DURATION -s bench/scripts/random-range.lua URL, RANGE_SIZE=size OBJ_SIZE=$((OBJ_MB << 20)) OBJ_COUNT=$OBJ_COUNT)"
