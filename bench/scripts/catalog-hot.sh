#!/usr/bin/env bash
# Hot catalog reads (issue 6): content detail at a fixed 1,000 requests/s (open
# loop, latency from the intended send time) against `keyframe serve` on SQLite,
# measured by `keyframe bench` from the client, and from the catalog's own access
# log (`micros`, request in to response head out) for the server-side figures.
#
#   bench/scripts/catalog-hot.sh [RATE] [SECS]
#
# Needs a release build (`cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-1000}
secs=${2:-10}
bin=${CARGO_TARGET_DIR:-target}/release/keyframe
[[ -x $bin ]] || { echo "error: build first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

head -c 100000 /dev/urandom >"$work/clip.bin"
id=$("$bin" --log warn --data-dir "$work/data" ingest --json --title "Hot title" \
    --description "A title read very often" --category demo "$work/clip.bin" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["content_id"])')
"$bin" --log warn,keyframe::access=info --log-format json --data-dir "$work/data" serve --catalog-listen 127.0.0.1:0 \
    --edge-listen 127.0.0.1:0 --origin-listen 127.0.0.1:0 >"$work/serve.out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "catalog listening" "$work/serve.out" && break; sleep 0.1; done
catalog=$(sed -n 's/^catalog listening on //p' "$work/serve.out")
url="$catalog/api/content/$id"
echo "GET $url at $rate req/s for $secs s" >&2
"$bin" bench whole --url "$url" --rate "$rate" --connections 32 --warmup 2s \
    --duration "${secs}s" --threads 1 --json >"$work/report.json"
python3 - "$work/report.json" "$work/serve.out" "$rate" "$secs" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_ms"]
print(f"requests {r['requests']}, errors {r['errors']}, {r['requests_per_s']:.0f} req/s")
print(f"client latency ms: p50 {l['p50']:.3f}  p90 {l['p90']:.3f}  p99 {l['p99']:.3f}  "
      f"p99.9 {l['p99.9']:.3f}  max {l['max']:.3f}")
server = []
for line in open(sys.argv[2]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    f = e.get("fields", {})
    if f.get("server") == "catalog" and str(f.get("path", "")).startswith("/api/content/"):
        server.append(f["micros"] / 1000)
# The measured window is the last rate × secs requests (the warmup comes first).
n = int(float(sys.argv[3]) * float(sys.argv[4]))
w = sorted(server[-n:])
q = lambda p: w[min(len(w) - 1, int(p * len(w)))]
print(f"server latency ms ({len(w)} requests): p50 {q(0.5):.3f}  p95 {q(0.95):.3f}  "
      f"p99 {q(0.99):.3f}  max {w[-1]:.3f}")
EOF
