#!/usr/bin/env bash
# Where the CPU of a hit goes, Keyframe against its peer (issue 21): both servers
# pinned to core 0 and warmed over 4 x 256 MiB, `keyframe bench range --size SIZE
# --concurrency 64 --threads 1` on core 1, `perf record -e cpu-clock -g` of each
# server for 6 s of it. Beside the profile, what the kernel did per response in the
# same 6 s: loopback packets (each a segment the sender's core also receives, in its
# softirq) and bytes per packet, and wake-ups (context switches) of the server and of
# the client. Writes /tmp/perf-NAME.data; read them with
# `perf report -i FILE --no-children --sort dso` (and `--sort sym`).
# Needs perf (Debian: linux-perf). Throughput under perf is not a benchmark.
#
#   cargo build --release && bash bench/scripts/profile-hits.sh
#   SIZE=4KiB PAIR=origin bash bench/scripts/profile-hits.sh   # origin against nginx
#
# Knobs: SIZE (1MiB), PAIR (edge: the edge's hits against Varnish; origin: the
# origin against nginx's static files), PERF (1; 0: only the counters).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/peers.sh"
SIZE="${SIZE:-1MiB}" PAIR="${PAIR:-edge}" PERF="${PERF:-1}"
case "$SIZE" in [0-9]*KiB | [0-9]*MiB) ;; *) echo "error: SIZE must be like 4KiB or 1MiB, not '$SIZE'" >&2; exit 2 ;; esac
case "$PAIR" in edge | origin) ;; *) echo "error: PAIR must be edge or origin, not '$PAIR'" >&2; exit 2 ;; esac
RUN=$(mktemp -d /tmp/prof.XXXX); chmod 755 "$RUN"
DATA=$RUN/data; mkdir -p "$DATA"; chmod 755 "$DATA"
for i in 0 1 2 3; do head -c $((256<<20)) /dev/urandom > "$DATA/obj-$i.bin"; chmod 644 "$DATA/obj-$i.bin"; done
cat "$DATA"/* >/dev/null
CACHE_SIZE=1400m KF_CACHE_MEMORY=1400MiB peers_up "$RUN" "$DATA" > "$RUN/urls.out"
source "$RUN/urls"
trap 'peers_down "$RUN"; rm -rf "$RUN"' EXIT
pin() { taskset -a -cp 0 "$1" >/dev/null; }
EDGE=$(cat "$RUN/kf-edge.pid"); ORIGIN=$(cat "$RUN/kf-origin.pid")
VM=$(cat "$RUN/varnish.pid"); VC=$(pgrep -P "$VM" | head -1)
NM=$(cat "$RUN/nginx-origin.pid"); NW=$(pgrep -P "$NM" | head -1)
for p in "$EDGE" "$ORIGIN" "$VM" "$VC" "$NM" "$NW"; do pin "$p"; done
if [ "$PAIR" = edge ]; then
  NAMES="edge varnish"
  for u in $KF_EDGE $VARNISH; do for i in 0 1 2 3; do
    curl -sf -o /dev/null "$u/v1/objects/obj-$i.bin"; curl -sf -o /dev/null "$u/v1/objects/obj-$i.bin"
  done; done
else
  NAMES="origin nginx"
fi
url() { case $1 in edge) echo "$KF_EDGE";; varnish) echo "$VARNISH";; origin) echo "$KF_ORIGIN";; nginx) echo "$NGINX_ORIGIN";; esac; }
pid() { case $1 in edge) echo "$EDGE";; varnish) echo "$VC";; origin) echo "$ORIGIN";; nginx) echo "$NW";; esac; }

# Context switches (voluntary + not) of every thread of a process so far.
switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'
}
# Loopback's transmitted bytes and packets so far.
lo() { awk '$1 == "lo:" { print $10, $11 }' /proc/net/dev; }

load() {
  local u=$1
  taskset -c 1 "$KEYFRAME" --log warn bench range --url "$u/v1/objects/obj-0.bin" --url "$u/v1/objects/obj-1.bin" \
    --url "$u/v1/objects/obj-2.bin" --url "$u/v1/objects/obj-3.bin" --size "$SIZE" --concurrency 64 \
    --warmup 1s --duration 10s --threads 1 2>&1 | tail -4
}

ROWS=""
for n in $NAMES; do
  u=$(url "$n"); p=$(pid "$n")
  load "$u" > "$RUN/$n.load" & L=$!
  sleep 2
  B=$(pgrep -n -f "bench range --url $u") || { echo "error: the load on $u did not start:" >&2; cat "$RUN/$n.load" >&2; exit 1; }
  read -r b0 k0 < <(lo); s0=$(switches "$p"); c0=$(switches "$B")
  a0=$(cpu_secs "$p")
  if [ "$PERF" = 1 ]; then
    perf record -q -e cpu-clock -F 2000 -g -p "$p" -o "/tmp/perf-$n.data" -- sleep 6 2>/dev/null
  else
    sleep 6
  fi
  read -r b1 k1 < <(lo); s1=$(switches "$p"); c1=$(switches "$B"); a1=$(cpu_secs "$p")
  wait $L; echo "== $n"; cat "$RUN/$n.load"
  # Responses in the window: bytes over loopback ÷ the response size (requests and
  # ACKs add under 1% at 1 MiB, more at 4 KiB: compare rows of one size). Packets
  # count both directions (the client's ACKs too).
  ROWS+="$(python3 - "$n" "$SIZE" "$b0" "$b1" "$k0" "$k1" "$s0" "$s1" "$c0" "$c1" "$a0" "$a1" <<'PY'
import sys
n, size = sys.argv[1], sys.argv[2]
b0, b1, k0, k1, s0, s1, c0, c1 = map(int, sys.argv[3:11])
a0, a1 = map(float, sys.argv[11:13])
unit = {"KiB": 1 << 10, "MiB": 1 << 20}
num = float(size[:-3]); mult = unit[size[-3:]]
resp = (b1 - b0) / (num * mult)
pk = k1 - k0
print(f"| {n} | {size} | {(b1-b0)/6/1e9:.3f} | {pk/resp:.1f} | {(b1-b0)/pk/1024:.1f} | "
      f"{(s1-s0)/resp:.3f} | {(c1-c0)/resp:.3f} | {(a1-a0)/resp*1e6:.1f} |")
PY
)"$'\n'
done
echo
echo "| server | range | GB/s on lo$([ "$PERF" = 1 ] && echo " (under perf)") | lo packets / response | KiB / packet | server switches / response | client switches / response | server CPU µs / response |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
printf '%s' "$ROWS"
