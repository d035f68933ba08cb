#!/usr/bin/env bash
# Hot catalog reads (issues 6 and 17), measured at the client: each endpoint at a
# fixed rate (open loop: latency from each request's intended send time, so a stall
# is never hidden) by `keyframe bench whole --rate`, against `keyframe serve` on
# SQLite: the title detail anonymous and signed in (with a resume point), the
# signed-in viewer (`/api/users/me`), and the first page of the listing. The
# server-side time (request in to response head out, the access log's `micros`) is
# printed beside it to show where the time goes.
#
#   bench/scripts/catalog-hot.sh [RATE] [SECS]
#
# With `taskset` available, the server runs on core 0 and the load generator on
# core 1 (SERVER_CPU / LOAD_CPU override them; empty: unpinned).
# Needs a release build (`cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-1000}
secs=${2:-10}
bin=${CARGO_TARGET_DIR:-target}/release/keyframe
[[ -x $bin ]] || { echo "error: build first: cargo build --release" >&2; exit 1; }
server_cpu=${SERVER_CPU-0}
load_cpu=${LOAD_CPU-1}
pin() { # pin CPU CMD...
    local cpu=$1; shift
    if [[ -n $cpu ]] && command -v taskset >/dev/null; then taskset -c "$cpu" "$@"; else "$@"; fi
}

work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

head -c 100000 /dev/urandom >"$work/clip.bin"
id=$("$bin" --log warn --data-dir "$work/data" ingest --json --title "Hot title" \
    --description "A title read very often" --category demo "$work/clip.bin" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["content_id"])')
pin "$server_cpu" "$bin" --log warn,keyframe::access=info --log-format json --data-dir "$work/data" \
    serve --catalog-listen 127.0.0.1:0 --edge-listen 127.0.0.1:0 --origin-listen 127.0.0.1:0 \
    >"$work/serve.out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "catalog listening" "$work/serve.out" && break; sleep 0.1; done
catalog=$(sed -n 's/^catalog listening on //p' "$work/serve.out")
[[ -n $catalog ]] || { echo "error: the catalog did not start" >&2; cat "$work/serve.out" >&2; exit 1; }

# A viewer with a session and a resume point in the title.
token=$(python3 - "$catalog" "$id" <<'EOF_PY'
import json, sys, urllib.request
base, cid = sys.argv[1], sys.argv[2]
def call(method, path, body, token=None):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
                                 headers={"content-type": "application/json"})
    if token:
        req.add_header("authorization", "Bearer " + token)
    return json.load(urllib.request.urlopen(req))
password = "hot-reads-measured-at-the-client"
call("POST", "/api/users", {"username": "hotviewer", "password": password,
     "email": "hot@example.com", "date_of_birth": "1990-05-17"})
token = call("POST", "/api/sessions", {"username": "hotviewer", "password": password})["token"]
call("POST", "/api/history", {"events": [
    {"content_id": cid, "session_id": "s1", "seq": 1, "kind": "start", "position_ms": 0,
     "duration_ms": 600000, "at": 1700000000000},
    {"content_id": cid, "session_id": "s1", "seq": 2, "kind": "progress", "position_ms": 120000,
     "duration_ms": 600000, "at": 1700000120000}]}, token)
print(token)
EOF_PY
)

measure() { # measure NAME PATH [BENCH ARGS...]
    local name=$1 path=$2; shift 2
    local before
    before=$(wc -l <"$work/serve.out")
    echo "$name: GET $path at $rate req/s for $secs s" >&2
    pin "$load_cpu" "$bin" bench whole --url "$catalog$path" --rate "$rate" --connections 32 \
        --warmup 2s --duration "${secs}s" --threads 1 --json "$@" >"$work/$name.json"
    tail -n +"$((before + 1))" "$work/serve.out" >"$work/$name.log"
}
measure detail-anonymous "/api/content/$id"
measure detail-signed-in "/api/content/$id" --header "Authorization: Bearer $token"
measure users-me "/api/users/me" --header "Authorization: Bearer $token"
measure listing "/api/content?limit=20"

python3 - "$work" "$rate" "$secs" <<'EOF_PY'
import json, sys
work, rate, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
print("| endpoint | requests | errors | p50 | p95 | p99 | p99.9 | max | server p95 | server max |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name in ["detail-anonymous", "detail-signed-in", "users-me", "listing"]:
    r = json.load(open(f"{work}/{name}.json"))
    l = r["latency_ms"]
    server = []
    for line in open(f"{work}/{name}.log"):
        try:
            f = json.loads(line).get("fields", {})
        except ValueError:
            continue
        if f.get("server") == "catalog" and "micros" in f:
            server.append(f["micros"] / 1000)
    # The measured window is the last rate × secs requests (the warmup comes first).
    w = sorted(server[-int(rate * secs):]) or [float("nan")]
    q = lambda p: w[min(len(w) - 1, int(p * len(w)))]
    print(f"| {name} | {r['requests']} | {r['errors']} | {l['p50']:.2f} | {l['p95']:.2f} | "
          f"{l['p99']:.2f} | {l['p99.9']:.2f} | {l['max']:.2f} | {q(0.95):.3f} | {w[-1]:.3f} |")
print(f"(ms; client side from the intended send time at {rate:.0f} req/s; target p95 <= 2 ms, max <= 5 ms)")
EOF_PY
