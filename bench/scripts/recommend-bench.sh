#!/usr/bin/env bash
# The recommendation batch at size on synthetic history (issue 7): loads N events
# (zipf titles, zipf viewer activity) through the history fold, then runs the batch
# in a separate process so that each phase's peak RSS is its own.
#
#   bench/scripts/recommend-bench.sh [EVENTS] [DB_URL]
#
# EVENTS defaults to 1000000; DB_URL to a SQLite file under a temporary directory.
# For PostgreSQL pass a URL of an empty database, e.g.
#   createdb -h 127.0.0.1 -U postgres kf_bench
#   bench/scripts/recommend-bench.sh 10000000 postgres://postgres@127.0.0.1:5432/kf_bench
# KF_BENCH_ENGINE=sql runs the batch as SQL inside PostgreSQL instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
events=${1:-1000000}
db=${2:-}
tmp=
if [[ -z "$db" ]]; then
    tmp=$(mktemp -d)
    db="sqlite://$tmp/bench.db"
fi
trap '[[ -n "$tmp" ]] && rm -rf "$tmp"' EXIT
export KF_BENCH_EVENTS=$events KF_BENCH_DB=$db
run() {
    KF_BENCH_PHASE=$1 cargo test --release -p keyframe-catalog --test integration \
        recommend_bench::recommend_batch_at_size -- --ignored --nocapture 2>&1 | grep -E '^(backend|load|batch|recommendations|elapsed)'
}
run load
/usr/bin/time -f "batch process: %e s wall, %M KiB max RSS" \
    env KF_BENCH_PHASE=batch cargo test --release -p keyframe-catalog --test integration \
        recommend_bench::recommend_batch_at_size -- --ignored --nocapture 2>&1 | grep -E '^(backend|batch|recommendations|elapsed)'
