#!/usr/bin/env bash
# The recommendation batch at size on synthetic history (issues 7 and 20): loads N
# events (zipf titles, zipf viewer activity) through the history fold with
# `keyframe bench history-synth`, then runs the batch once per engine, each in a
# process of its own so that each one's peak RSS is its own.
#
#   bench/scripts/recommend-bench.sh [EVENTS] [DB_URL]
#
# EVENTS defaults to 1000000; DB_URL to a SQLite file under a temporary directory.
# For PostgreSQL pass a URL of an empty database, e.g.
#   createdb -h 127.0.0.1 -U postgres kf_bench
#   bench/scripts/recommend-bench.sh 10000000 postgres://postgres@127.0.0.1:5432/kf_bench
#
# KF_BENCH_ENGINES: the engines to run, in order (default "local datafusion
# ballista"); `sql` needs PostgreSQL. `ballista` starts a scheduler and two executors
# (`keyframe ballista …`, KF_BENCH_EXECUTOR_CONCURRENCY tasks each, default 1) on
# loopback and reports the executors' peak RSS too. `datafusion` and `ballista`
# export a Parquet snapshot into a file:// store under the temporary directory
# (`recommend --snapshot`); the time of the export is part of their wall time.
# KF_BENCH_LOAD=0 skips the load (DB_URL already holds the history);
# KF_BENCH_STATE_ONLY=1 loads with `history-synth --state-only` (the same fold in
# memory, only the per-(viewer, title) state written: for 100M events).
# KF_BENCH_BIN: the keyframe binary (default: built here with `cargo build --release`).
# KF_BENCH_MEMORY_LIMIT (e.g. 1GiB): the memory pool of the datafusion engine
# (`recommend_memory_limit`) and of each Ballista executor (`--memory-limit`);
# past it their sorts and aggregates spill to disk. Default: no limit.
set -euo pipefail
cd "$(dirname "$0")/../.."
events=${1:-1000000}
db=${2:-}
engines=${KF_BENCH_ENGINES:-local datafusion ballista}
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
if [[ -z "$db" ]]; then
    db="sqlite://$tmp/bench.db"
fi
store="file://$tmp/objects"
kf=${KF_BENCH_BIN:-}
if [[ -z "$kf" ]]; then
    cargo build --release --bin keyframe >/dev/null
    kf="${CARGO_TARGET_DIR:-target}/release/keyframe"
fi
export KEYFRAME_LOG=warn

if [[ "${KF_BENCH_LOAD:-1}" != 0 ]]; then
    /usr/bin/time -f "load process: %e s wall, %M KiB max RSS" \
        "$kf" bench history-synth --events "$events" --db "$db" \
        ${KF_BENCH_STATE_ONLY:+--state-only} 2>&1
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo "?"; }

for engine in $engines; do
    target=$engine
    extra=()
    if [[ "$engine" == ballista ]]; then
        sport=$(free_port)
        "$kf" ballista scheduler --listen "127.0.0.1:$sport" >"$tmp/scheduler.log" 2>&1 &
        pids+=("$!")
        wait_port "$sport"
        executors=()
        for i in 1 2; do
            while :; do
                eport=$(free_port)
                python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',$eport+1))" 2>/dev/null && break
            done
            "$kf" ballista executor --scheduler "127.0.0.1:$sport" --listen "127.0.0.1:$eport" \
                --work-dir "$tmp/executor$i" --concurrency "${KF_BENCH_EXECUTOR_CONCURRENCY:-1}" \
                ${KF_BENCH_MEMORY_LIMIT:+--memory-limit "$KF_BENCH_MEMORY_LIMIT"} \
                >"$tmp/executor$i.log" 2>&1 &
            pids+=("$!")
            executors+=("$!")
            wait_port "$eport"
            wait_port "$((eport + 1))"
        done
        target="ballista://127.0.0.1:$sport"
    fi
    if [[ "$engine" == datafusion || "$engine" == ballista ]]; then
        extra=(--snapshot --store "$store")
    fi
    echo "== engine $engine, $events events"
    KEYFRAME_RECOMMEND_MEMORY_LIMIT="${KF_BENCH_MEMORY_LIMIT:-0}" \
        /usr/bin/time -f "batch process ($engine): %e s wall, %M KiB max RSS" \
        "$kf" recommend --engine "$target" --db "$db" "${extra[@]}" --json 2>&1
    if [[ "$engine" == ballista ]]; then
        for p in "${executors[@]}"; do
            echo "ballista executor $p: $(peak_kib "$p") KiB max RSS"
        done
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        pids=()
    fi
done
