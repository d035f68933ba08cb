#!/usr/bin/env bash
# Why the default (a runtime per core) loses to `--threads 1` when the load generator
# shares the cores, and whether nginx's workers do the same (issue 21): Keyframe's
# edge (4 KiB hits) at the default and at `--threads 1`, nginx's static origin with
# `worker_processes 1` and 2, unpinned, `wrk -t1 -c64 -d5s` of random 4 KiB ranges over
# 4 x 64 MiB, 3 interleaved rounds. Per run: req/s, context switches per request
# (voluntary + involuntary, all the server's threads and processes, from /proc) and
# server CPU µs per request.
#
#   cargo build --release && bash bench/scripts/wakeups.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/peers.sh"
KF="$KEYFRAME"
RUN=$(mktemp -d /tmp/ctx.XXXX)
chmod 755 $RUN; DATA=$RUN/data; mkdir -p $DATA $RUN/tmp-origin; chmod 755 $DATA
for i in 0 1 2 3; do head -c $((64<<20)) /dev/urandom > $DATA/obj-$i.bin; chmod 644 $DATA/obj-$i.bin; done
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null || true; done; rm -rf $RUN' EXIT
declare -A URL PID
start() { local name=$1; shift; local port; port=$(free_port); "$@" --listen 127.0.0.1:$port >$RUN/$name.log 2>&1 & PID[$name]=$!; PIDS+=($!); URL[$name]=http://127.0.0.1:$port; wait_port $port; }
start up $KF --log warn --threads 1 --store file://$DATA origin
start edge-default $KF --log warn edge --upstream ${URL[up]} --cache-memory 400MiB
start edge-1 $KF --log warn --threads 1 edge --upstream ${URL[up]} --cache-memory 400MiB
for w in 1 2; do
  port=$(free_port)
  render $HERE/conf/nginx-origin.conf $RUN/nginx-$w.conf PORT=$port ROOT=$DATA RUN=$RUN
  sed -i "s/^worker_processes .*/worker_processes $w;/; s|pid .*|pid $RUN/nginx-$w.pid;|" $RUN/nginx-$w.conf
  nginx -c $RUN/nginx-$w.conf -p $RUN -e $RUN/nginx-$w.err; wait_port $port
  PID[nginx-$w]=$(cat $RUN/nginx-$w.pid); PIDS+=(${PID[nginx-$w]}); URL[nginx-$w]=http://127.0.0.1:$port
done
for n in edge-default edge-1; do for i in 0 1 2 3; do curl -sf -o /dev/null ${URL[$n]}/v1/objects/obj-$i.bin; curl -sf -o /dev/null ${URL[$n]}/v1/objects/obj-$i.bin; done; done
ctx() { local t=0; for p in $1 $(pgrep -P $1 || true); do for f in /proc/$p/task/*/status; do t=$((t + $(awk '/ctxt_switches/ {s+=$2} END {print s}' $f))); done; done; echo $t; }
ticks() { local t=0; for p in $1 $(pgrep -P $1 || true); do read -r -a st </proc/$p/stat; t=$((t+st[13]+st[14])); done; echo $t; }
for round in 1 2 3; do
 for n in edge-default edge-1 nginx-1 nginx-2; do
  c0=$(ctx ${PID[$n]}); t0=$(ticks ${PID[$n]})
  out=$(RANGE_SIZE=4096 OBJ_SIZE=$((64<<20)) OBJ_COUNT=4 COLD=0 SEED=$RANDOM wrk -t1 -c64 -d5s -s $HERE/random-range.lua ${URL[$n]} 2>&1)
  c1=$(ctx ${PID[$n]}); t1=$(ticks ${PID[$n]})
  req=$(echo "$out" | awk '/requests in/ {print $1}'); rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  echo "$n rps=$rps ctx/req=$(python3 -c "print(round(($c1-$c0)/$req,3))") cpu_us/req=$(python3 -c "print(round(($t1-$t0)/$(getconf CLK_TCK)*1e6/$req,1))") $(echo "$out" | grep -E 'Non-2xx|Socket' || true)"
 done
done
