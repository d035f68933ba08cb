#!/usr/bin/env bash
# Origin offload under memory pressure: simulated players (`keyframe bench players`,
# sequential 512 KiB ranges, seeks) over a working set four times each cache's memory
# (Keyframe's edge, Varnish malloc, nginx slice + proxy_cache, all in front of the
# same nginx origin). Reports bytes the origin sent (its access log) ÷ bytes the
# players received: lower is better, and above 1.0 a cache costs the origin more
# than no cache would. KEYFRAME_B, if set, is a second build run the same way.
#
#   cargo build --release && bash bench/scripts/offload.sh
#
# Knobs: PLAYERS (32), BITRATE (40Mbps), DURATION (20s), CACHE (64MiB, Keyframe),
# CACHE_NGINX (64m, Varnish and nginx), ONLY_PEERS (skip Keyframe),
# OBJ_COUNT (4), OBJ_MB (64).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/peers.sh"
PLAYERS="${PLAYERS:-32}" BITRATE="${BITRATE:-40Mbps}" DURATION="${DURATION:-20s}"
CACHE="${CACHE:-64MiB}" CACHE_NGINX="${CACHE_NGINX:-64m}" OBJ_COUNT="${OBJ_COUNT:-4}" OBJ_MB="${OBJ_MB:-64}"
RUN="$(mktemp -d /tmp/keyframe-offload.XXXXXX)"
chmod 755 "$RUN"
mkdir -p "$RUN/data"
cleanup() { peers_down "$RUN"; [ -f "$RUN/b.pid" ] && kill "$(cat "$RUN/b.pid")" 2>/dev/null || true; }
trap cleanup EXIT
for i in $(seq 0 $((OBJ_COUNT - 1))); do head -c $((OBJ_MB << 20)) /dev/urandom >"$RUN/data/obj-$i.bin"; done
ORIGIN_LOG=1 CACHE_SIZE="$CACHE_NGINX" KF_CACHE_MEMORY="$CACHE" peers_up "$RUN" "$RUN/data" >/dev/null
# shellcheck disable=SC1091
source "$RUN/urls"
edges=()
[ -z "${ONLY_PEERS:-}" ] && edges+=("keyframe=$KF_EDGE")
if [ -n "${KEYFRAME_B:-}" ]; then
  port=$(free_port)
  "$KEYFRAME_B" --log warn --threads "${KF_THREADS:-1}" edge --listen "127.0.0.1:$port" \
    --upstream "$NGINX_ORIGIN" --cache-memory "$CACHE" >"$RUN/b.log" 2>&1 &
  echo $! >"$RUN/b.pid"
  wait_port "$port"
  edges+=("keyframe-B=http://127.0.0.1:$port")
fi
edges+=("varnish=$VARNISH" "nginx-slice=$NGINX_SLICE")
echo "| cache | served GB | origin GB | origin ÷ served | rebuffers | rebuffer ratio | failed requests |"
echo "|---|---:|---:|---:|---:|---:|---|"
for pair in "${edges[@]}"; do
  name=${pair%%=*} url=${pair#*=}
  urls=(); for i in $(seq 0 $((OBJ_COUNT - 1))); do urls+=(--url "$url/v1/objects/obj-$i.bin"); done
  before=$(wc -l <"$RUN/origin.access.log")
  json=$("$KEYFRAME" --log warn bench players "${urls[@]}" --players "$PLAYERS" --bitrate "$BITRATE" \
    --chunk 512KiB --buffer 10s --seek-interval 10s --duration "$DURATION" --verify-dir "$RUN/data" --json) || true  # non-zero exit when requests failed: reported below
  sleep 1
  up=$(tail -n +"$((before + 1))" "$RUN/origin.access.log" | awk '{s += $1} END {print s + 0}')
  python3 - "$name" "$json" "$up" <<'PY'
import json, sys
name, out, up = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
assert out["verify_failures"] == 0, out
served = out["bytes"]
p = out["players"]
errors = ", ".join(f"{k}: {v}" for k, v in sorted(out.get("error_kinds", {}).items())) or "0"
print(f"| {name} | {served/1e9:.2f} | {up/1e9:.2f} | {up/served:.3f} | {p['rebuffers']} | {p['rebuffer_ratio']:.4f} | {errors} |")
PY
done
# nginx enforces max_size from its cache manager, in the background.
echo
echo "nginx slice cache on disk at the end: $(du -sh "$RUN/slice-cache" | cut -f1) (max_size $CACHE_NGINX)"
