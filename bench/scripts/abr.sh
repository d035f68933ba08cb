#!/usr/bin/env bash
# ABR players through Keyframe's edge and through nginx's slice cache (issue 18):
# a 60 s 1280x720 testsrc clip ingested with a ladder (`--ladder 720,360,180`), one
# `keyframe serve` with a token key (the catalog's /play URL carries the token; the
# edge writes it into every playlist it serves), and nginx's slice cache
# (conf/nginx-slice.conf, 1 MiB slices) in front of the same origin. On each,
# `keyframe bench players --abr` runs twice, cold cache then warm, with players
# round-robin over bandwidth caps. Prints each run's report and a summary table.
#
#   bench/scripts/abr.sh [PLAYERS] [DURATION]   # default: 16 players, 30s per run
#   CAPS=none,4Mbps,1500kbps,600kbps bench/scripts/abr.sh
#   OUT=DIR bench/scripts/abr.sh    # also keep each run's JSON report and the logs in DIR
#
# Needs a release build (`cargo build --release --bin keyframe`), ffmpeg with
# libx264, nginx, python3, curl. Everything listens on loopback, on free ports; the
# script stops what it started (by pid) and removes its temp dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
players=${1:-16}
duration=${2:-30s}
caps=${CAPS:-none,4Mbps,1500kbps,600kbps}
bin=${KEYFRAME_BIN:-${CARGO_TARGET_DIR:-target}/release/keyframe}
[[ -x $bin ]] || { echo "error: build first: cargo build --release --bin keyframe" >&2; exit 1; }
for tool in ffmpeg nginx python3 curl; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not on PATH" >&2; exit 1; }
done
# free_port, wait_port, render (sourcing starts nothing).
source bench/scripts/peers.sh

work=$(mktemp -d)
chmod 755 "$work" # nginx workers may drop privileges
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -f $work/nginx-slice.pid ]] && kill "$(cat "$work/nginx-slice.pid")" 2>/dev/null || true
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n ${OUT:-} ]]; then
    mkdir -p "$OUT" && cp "$work"/*.json "$work"/*.log "$OUT"/ 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# testsrc with temporal noise: a plain test pattern compresses so well that every
# rung of the ladder lands near the same bit rate, and there is nothing to adapt.
echo "generating a 60 s 1280x720 clip" >&2
ffmpeg -v error -nostdin -y -f lavfi -i "testsrc=duration=60:size=1280x720:rate=25,noise=alls=12:allf=t" \
  -f lavfi -i "sine=frequency=440:duration=60" -c:v libx264 -preset veryfast -b:v 6M -pix_fmt yuv420p \
  -c:a aac -shortest -movflags +faststart "$work/clip.mp4"

echo "ingesting it with a 720/360/180 ladder" >&2
"$bin" --log warn --data-dir "$work/data" ingest --ladder 720,360,180 --title "ABR bench" \
  --json "$work/clip.mp4" >"$work/ingest.json"
read -r content_id hls_path < <(python3 -c '
import json, sys
j = json.loads(open(sys.argv[1]).read().splitlines()[-1])
hls = [r["path"] for r in j["ladder"] if r["role"] == "hls"][0]
print(j["content_id"], hls)' "$work/ingest.json")

p_cat=$(free_port); p_edge=$(free_port); p_origin=$(free_port); p_slice=$(free_port)
key=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
cat >"$work/keyframe.toml" <<TOML
public_content = true
edge_url = "http://127.0.0.1:$p_edge"
TOML
"$bin" --log warn --threads "${KF_THREADS:-1}" --data-dir "$work/data" serve --config "$work/keyframe.toml" \
  --catalog-listen "127.0.0.1:$p_cat" --edge-listen "127.0.0.1:$p_edge" \
  --origin-listen "127.0.0.1:$p_origin" --token-key "$key" >"$work/serve.log" 2>&1 &
pids+=($!)
wait_port "$p_cat"; wait_port "$p_edge"; wait_port "$p_origin"

mkdir -p "$work/tmp-slice" "$work/slice-cache"
render bench/scripts/conf/nginx-slice.conf "$work/nginx-slice.conf" PORT="$p_slice" \
  ORIGIN_PORT="$p_origin" RUN="$work" CACHE_SIZE=1g
nginx -c "$work/nginx-slice.conf" -p "$work" -e "$work/nginx-slice.error.log"
wait_port "$p_slice"

# The signed URL a player gets from the catalog (anonymous: public_content).
edge_url=$(curl -fsS "http://127.0.0.1:$p_cat/api/content/$content_id/play" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["hls"])')
# nginx in front of the origin, which under `serve` asks for no token.
nginx_url="http://127.0.0.1:$p_slice$hls_path"

bench() { # name url
  for pass in cold warm; do
    echo "== $1 ($pass cache): $players players, caps $caps, $duration" >&2
    "$bin" --threads 1 bench players --abr "$2" --players "$players" --abr-caps "$caps" \
      --duration "$duration" --json >"$work/$1-$pass.json"
    python3 - "$work/$1-$pass.json" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1])); a = r["abr"]
print("  startup p50/p95/max %.0f/%.0f/%.0f ms, rebuffer ratio %.4f, avg %.2f Mbps, %.2f switches/player, %d errors"
      % (a["startup_ms_p50"], a["startup_ms_p95"], a["startup_ms_max"], a["rebuffer_ratio"],
         a["avg_bitrate_bps"] / 1e6, a["switches_per_player"], r["errors"]))
PY
  done
}
bench edge "$edge_url"
bench nginx-slice "$nginx_url"

python3 - "$work" "$caps" <<'PY'
import json, sys, collections
work, caps = sys.argv[1], sys.argv[2]
print("| server | cache | startup p50 / p95 / max (ms) | rebuffer ratio | avg bitrate (Mbps) | switches / player | errors |")
print("|---|---|---|---|---|---|---|")
per_cap = []
for name in ("edge", "nginx-slice"):
    for p in ("cold", "warm"):
        r = json.load(open(f"{work}/{name}-{p}.json")); a = r["abr"]
        print(f"| {name} | {p} | {a['startup_ms_p50']:.0f} / {a['startup_ms_p95']:.0f} / {a['startup_ms_max']:.0f} "
              f"| {a['rebuffer_ratio']:.4f} | {a['avg_bitrate_bps']/1e6:.2f} | {a['switches_per_player']:.2f} | {r['errors']} |")
        groups = collections.OrderedDict()
        for pl in a["per_player"]:
            groups.setdefault(pl.get("cap_bps"), []).append(pl)
        for cap, g in groups.items():
            per_cap.append((name, p, "none" if cap is None else f"{cap/1e6:g} Mbps",
                            sum(x.get("startup_ms") or float("nan") for x in g) / len(g),
                            sum(x["avg_bitrate_bps"] for x in g) / len(g) / 1e6,
                            sum(x["switches"] for x in g) / len(g),
                            sum(x["rebuffers"] for x in g)))
print()
print("| server | cache | cap | startup mean (ms) | avg bitrate (Mbps) | switches / player | rebuffers |")
print("|---|---|---|---|---|---|---|")
for row in per_cap:
    print("| %s | %s | %s | %.0f | %.2f | %.2f | %d |" % row)
print()
for name in ("edge", "nginx-slice"):
    r = json.load(open(f"{work}/{name}-cold.json"))
    print(f"{name}: {r['requests']} requests, {r['bytes']} bytes in the cold run; media playlists "
          + ", ".join(str(x["playlist_bytes"]) for x in r["abr"]["renditions"]) + " bytes")
r = json.load(open(f"{work}/edge-cold.json"))["abr"]
print()
print("ladder: " + ", ".join(f"{x.get('resolution', 'audio')} {x['average_bandwidth']/1e6:.2f} Mbps "
                             f"(peak {x['bandwidth']/1e6:.2f})" for x in r["renditions"])
      + (" + audio" if r["separate_audio"] else "") + f", {r['renditions'][0]['segments']} segments")
PY
