#!/usr/bin/env bash
# Where the CPU of a 1 MiB cache hit goes, Keyframe's edge against Varnish (issue 21):
# both pinned to core 0 and warmed over 4 x 256 MiB, `keyframe bench range --size 1MiB
# --concurrency 64 --threads 1` on core 1, `perf record -e cpu-clock -g` of the
# server for 6 s of it. Writes /tmp/perf-edge.data and /tmp/perf-varnish.data; read them
# with `perf report -i FILE --no-children --sort dso` (and `--sort sym`).
# Needs perf (Debian: linux-perf). Throughput under perf is not a benchmark.
#
#   cargo build --release && bash bench/scripts/profile-hits.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/peers.sh"
RUN=$(mktemp -d /tmp/prof.XXXX); chmod 755 $RUN
DATA=$RUN/data; mkdir -p $DATA; chmod 755 $DATA
for i in 0 1 2 3; do head -c $((256<<20)) /dev/urandom > $DATA/obj-$i.bin; chmod 644 $DATA/obj-$i.bin; done
CACHE_SIZE=1400m KF_CACHE_MEMORY=1400MiB peers_up $RUN $DATA > $RUN/urls.out
source $RUN/urls
trap 'peers_down $RUN; rm -rf $RUN' EXIT
EDGE=$(cat $RUN/kf-edge.pid); VM=$(cat $RUN/varnish.pid); VC=$(pgrep -P $VM | head -1)
taskset -a -cp 0 $EDGE >/dev/null; taskset -a -cp 0 $VM >/dev/null; taskset -a -cp 0 $VC >/dev/null
for u in $KF_EDGE $VARNISH; do for i in 0 1 2 3; do curl -sf -o /dev/null $u/v1/objects/obj-$i.bin; curl -sf -o /dev/null $u/v1/objects/obj-$i.bin; done; done
load() { taskset -c 1 $KEYFRAME --log warn bench range --url $1/v1/objects/obj-0.bin --url $1/v1/objects/obj-1.bin --url $1/v1/objects/obj-2.bin --url $1/v1/objects/obj-3.bin --size 1MiB --concurrency 64 --warmup 1s --duration 10s --threads 1 2>&1 | tail -4; }
for n in edge varnish; do
  if [ $n = edge ]; then u=$KF_EDGE; p=$EDGE; else u=$VARNISH; p=$VC; fi
  load $u > $RUN/$n.load & L=$!
  sleep 2
  perf record -q -e cpu-clock -F 2000 -g -p $p -o /tmp/perf-$n.data -- sleep 6 2>/dev/null
  wait $L; echo "== $n"; cat $RUN/$n.load
done
