#!/usr/bin/env bash
# The origin over S3 (issue 4): random ranges through `keyframe origin --store s3://…`
# against direct ranged GETs to the same S3 server, interleaved by `keyframe bench
# --compare`. Two s3s-fs processes share one directory: one with credentials for the
# origin, one anonymous for the direct GETs (it skips signature checks, so the
# baseline is if anything flattered). s3s-fs reads slowly deep into large files, so
# the default object is small (32 MiB): the server under both A and B is the same.
#
#   bench/scripts/origin-s3.sh [SIZE_MIB] [ROUNDS] [SECS]
#
# Needs `cargo build --release --bin keyframe` and s3s-fs (see bench/scripts/ingest.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-32}
rounds=${2:-3}
secs=${3:-5}
bin=${CARGO_TARGET_DIR:-target}/release/keyframe
[[ -x $bin ]] || { echo "error: build first: cargo build --release --bin keyframe" >&2; exit 1; }
s3s=${S3S_FS:-$(command -v s3s-fs || echo "$HOME/.cache/keyframe-ci/s3s/bin/s3s-fs")}
[[ -x $s3s ]] || { echo "error: s3s-fs not found" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$work/s3/media"
head -c $((size_mib << 20)) /dev/urandom >"$work/s3/media/master.bin"
signed=$(port); anon=$(port); origin=$(port)
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
"$s3s" --host 127.0.0.1 --port "$signed" --access-key bench --secret-key bench-secret "$work/s3" >"$work/s3a.log" 2>&1 &
pids+=("$!")
"$s3s" --host 127.0.0.1 --port "$anon" "$work/s3" >"$work/s3b.log" 2>&1 &
pids+=("$!")
"$bin" --log warn --store "s3://media?endpoint=http://127.0.0.1:$signed&region=us-east-1" \
    origin --listen "127.0.0.1:$origin" >"$work/origin.log" 2>&1 &
pids+=("$!")
sleep 1
for size in 1MiB 64KiB; do
    echo "== $size random ranges: A = keyframe origin over S3, B = direct ranged GET to S3"
    "$bin" bench range --url "http://127.0.0.1:$origin/v1/objects/master.bin" --size "$size" \
        --compare "http://127.0.0.1:$anon/media/master.bin" --rounds "$rounds" \
        --duration "${secs}s" --warmup 1s --concurrency 16 --threads 1
done
