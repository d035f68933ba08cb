#!/usr/bin/env bash
# Watch-event intake over HTTP (issue 7): CLIENTS concurrent viewers post batches
# of BATCH events for SECS seconds to a catalog on port 0, each reading the title's
# detail after every POST until the new resume point shows.
#
#   bench/scripts/history-intake.sh [CLIENTS] [BATCH] [SECS] [DB_URL]
set -euo pipefail
cd "$(dirname "$0")/../.."
export KF_BENCH_CLIENTS=${1:-16} KF_BENCH_BATCH=${2:-100} KF_BENCH_SECS=${3:-20} KF_BENCH_DB=${4:-}
cargo test --release -p keyframe-catalog --test integration recommend_bench::history_intake \
    -- --ignored --nocapture 2>&1 | grep -E '^intake'
