#!/usr/bin/env bash
# Ingest throughput and memory (issue 3): `keyframe ingest` of one large file into
# a local store against the floor of doing the same work by hand (`sha256sum FILE;
# cp FILE DEST`), and, when s3s-fs is available, into an S3-compatible server
# against a plain multipart upload of the same bytes (ingest/examples/put_multipart.rs).
# Interleaved rounds; prints the median seconds, MB/s and peak RSS of each.
#
#   bench/scripts/ingest.sh [SIZE_MIB] [ROUNDS]
#
# Needs release builds (`cargo build --release --bin keyframe` and
# `cargo build --release -p keyframe-ingest --example put_multipart`); s3s-fs from
# `cargo install s3s-fs@0.14.1 --features binary --locked` (or $S3S_FS).
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-2048}
rounds=${2:-3}
bin=${CARGO_TARGET_DIR:-target}/release/keyframe
put=${CARGO_TARGET_DIR:-target}/release/examples/put_multipart
[[ -x $bin && -x $put ]] || { echo "error: build first (see the header of $0)" >&2; exit 1; }
s3s=${S3S_FS:-$(command -v s3s-fs || echo "$HOME/.cache/keyframe-ci/s3s/bin/s3s-fs")}

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

echo "generating $size_mib MiB of incompressible data" >&2
head -c $((size_mib << 20)) /dev/urandom >"$work/master.bin"

s3_url=
if [[ -x $s3s ]]; then
    mkdir -p "$work/s3/bench"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
    "$s3s" --host 127.0.0.1 --port "$port" --access-key bench --secret-key bench-secret "$work/s3" \
        >"$work/s3s.log" 2>&1 &
    pids+=("$!")
    sleep 1
    s3_url="s3://bench?endpoint=http://127.0.0.1:$port&region=us-east-1"
fi

# One timed run: prints "seconds max_rss_kib".
timed() {
    if ! /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null; then
        echo "error: failed: $*" >&2
        exit 1
    fi
    tail -n 1 "$work/time"
}

declare -A secs rss
run_round() {
    rm -rf "$work/copy" "$work/local"
    sync
    secs[floor]+="$(timed bash -c "sha256sum '$work/master.bin' && cp '$work/master.bin' '$work/copy'" | cut -d' ' -f1) "
    rm -f "$work/copy"
    r=$(timed "$bin" --log warn --data-dir "$work/local" ingest --json "$work/master.bin")
    secs[local]+="${r% *} "; rss[local]+="${r#* } "
    if [[ -n $s3_url ]]; then
        rm -rf "$work/s3/bench/"* "$work/s3db"
        r=$(timed "$bin" --log warn --data-dir "$work/s3db" --store "$s3_url" ingest --json "$work/master.bin")
        secs[s3]+="${r% *} "; rss[s3]+="${r#* } "
        rm -rf "$work/s3/bench/"*
        r=$(timed "$put" "$s3_url" plain/master.bin "$work/master.bin")
        secs[s3plain]+="${r% *} "; rss[s3plain]+="${r#* } "
    fi
}
for i in $(seq 1 "$rounds"); do
    echo "round $i/$rounds" >&2
    run_round
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-28s %8s %8s %10s\n' "what ($size_mib MiB)" seconds "MB/s" "peak RSS"
for k in floor local s3plain s3; do
    [[ -n ${secs[$k]:-} ]] || continue
    s=$(echo "${secs[$k]}" | median)
    mbs=$(awk -v s="$s" -v m="$size_mib" 'BEGIN {printf "%.0f", m * 1.048576 / s}')
    r=-
    [[ -n ${rss[$k]:-} ]] && r="$(( $(echo "${rss[$k]}" | median) / 1024 )) MiB"
    case $k in
        floor) name="sha256sum + cp" ;;
        local) name="keyframe ingest (file://)" ;;
        s3) name="keyframe ingest (s3s-fs)" ;;
        s3plain) name="plain multipart (s3s-fs)" ;;
    esac
    printf '%-28s %8s %8s %10s\n' "$name" "$s" "$mbs" "$r"
done
