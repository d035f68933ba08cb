#!/usr/bin/env bash
# Is the load generator the bottleneck? Against nginx serving 4 KiB random
# ranges of a 64 MiB file, `keyframe-bench range` must reach at least 0.8x the
# requests/s of wrk, measured in the same run: ROUNDS interleaved rounds of
# wrk then keyframe-bench, medians and their ratio. nginx binds 127.0.0.1 on a
# free port under a temp dir, and is stopped by pid on exit.
#
#   bash bench/scripts/efficiency.sh
#
# Knobs: ROUNDS (3), DURATION (5s), CONNS (32), RANGE (4096), WRK_THREADS (1),
# KB_THREADS (keyframe-bench runtime workers; default: all cores),
# BENCH (path of the keyframe-bench binary; built in release if unset).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
CONNS="${CONNS:-32}"
RANGE="${RANGE:-4096}"
WRK_THREADS="${WRK_THREADS:-1}"
OBJ_MB=64

for tool in nginx wrk python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done

if [ -z "${BENCH:-}" ]; then
  (cd "$ROOT" && cargo build --quiet --release -p keyframe-bench --bin keyframe-bench)
  BENCH="${CARGO_TARGET_DIR:-$ROOT/target}/release/keyframe-bench"
fi

RUN="$(mktemp -d /tmp/keyframe-efficiency.XXXXXX)"
chmod 755 "$RUN" # nginx workers may drop privileges
NGINX_PID=""
cleanup() {
  if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
    kill "$NGINX_PID"
    wait "$NGINX_PID" 2>/dev/null || true
  fi
  rm -rf "$RUN"
}
trap cleanup EXIT

mkdir -p "$RUN/data" "$RUN/tmp"
python3 - "$RUN/data/obj-0.bin" "$OBJ_MB" <<'PY'
import random, sys
path, mb = sys.argv[1], int(sys.argv[2])
r = random.Random(0)
with open(path, "wb") as f:
    for _ in range(mb):
        f.write(r.randbytes(1 << 20))
PY
chmod 644 "$RUN/data/obj-0.bin"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
# The static origin of bench/scripts/conf/nginx-origin.conf, minus tcp_nopush
# (which can hold back the last segment of a response for ~200 ms).
cat >"$RUN/nginx.conf" <<CONF
worker_processes 1;
pid $RUN/nginx.pid;
error_log $RUN/nginx.error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path $RUN/tmp;
    proxy_temp_path $RUN/tmp;
    fastcgi_temp_path $RUN/tmp;
    uwsgi_temp_path $RUN/tmp;
    scgi_temp_path $RUN/tmp;
    server {
        listen 127.0.0.1:$PORT;
        location /v1/objects/ { alias $RUN/data/; }
    }
}
CONF
nginx -c "$RUN/nginx.conf" -p "$RUN" -e "$RUN/nginx.error.log" -g 'daemon off;' &
NGINX_PID=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
BASE="http://127.0.0.1:$PORT"
URL="$BASE/v1/objects/obj-0.bin"

echo "nginx $(nginx -v 2>&1 | sed 's|.*/||'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(nproc) cores"
echo "4 KiB ranges of one ${OBJ_MB} MiB file, $CONNS connections, $DURATION per run, $ROUNDS rounds"

WRK=() KB=()
for round in $(seq 1 "$ROUNDS"); do
  out=$(RANGE_SIZE="$RANGE" OBJ_SIZE=$((OBJ_MB << 20)) OBJ_COUNT=1 SEED="$round" \
    wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" -s "$HERE/random-range.lua" "$BASE" 2>&1)
  w=$(awk '/Requests\/sec:/ {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "error: wrk saw non-2xx responses" >&2; echo "$out" >&2; exit 1; fi
  json=$("$BENCH" range --url "$URL" --size "$RANGE" --concurrency "$CONNS" \
    --warmup 0s --duration "$DURATION" --verify-dir "$RUN/data" --seed "$round" \
    ${KB_THREADS:+--threads "$KB_THREADS"} --json)
  k=$(python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["requests_per_s"]); assert r["verify_failures"]==0 and r["errors"]==0, r["error_kinds"]' <<<"$json")
  cpu=$(python3 -c 'import json,sys; print(round(json.load(sys.stdin)["client_cpu_s"],2))' <<<"$json")
  printf 'round %d: wrk %10.0f req/s   keyframe-bench %10.0f req/s (client CPU %s s)\n' "$round" "$w" "$k" "$cpu"
  WRK+=("$w") KB+=("$k")
done

python3 - "${WRK[*]}" "${KB[*]}" <<'PY'
import statistics, sys
wrk = [float(x) for x in sys.argv[1].split()]
kb = [float(x) for x in sys.argv[2].split()]
mw, mk = statistics.median(wrk), statistics.median(kb)
ratio = mk / mw if mw else float("nan")
print(f"median: wrk {mw:.0f} req/s, keyframe-bench {mk:.0f} req/s, ratio {ratio:.3f} "
      f"({'PASS' if ratio >= 0.8 else 'FAIL'}: target >= 0.8)")
sys.exit(0 if ratio >= 0.8 else 1)
PY
