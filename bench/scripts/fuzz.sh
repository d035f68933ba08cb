#!/usr/bin/env bash
# Runs each fuzz target of origin/fuzz for a bounded time and prints, per target,
# how many inputs ran, the coverage reached (libFuzzer's edge counter `cov` and
# feature counter `ft`) and whether it found a crash. Corpora persist under
# $FUZZ_CORPUS, so a later run starts where the last one stopped.
#
#   bash bench/scripts/fuzz.sh                 # every target, SECONDS_EACH=60
#   SECONDS_EACH=300 bash bench/scripts/fuzz.sh range token
#
# Built with the stable toolchain and the instrumentation cargo-fuzz uses with
# `--sanitizer none` (SanitizerCoverage: inline 8-bit counters, PC table, compare
# tracing) plus debug assertions and overflow checks; a panic is a crash. No
# AddressSanitizer: it needs nightly (-Zsanitizer=address); with nightly and
# cargo-fuzz installed, `cd origin/fuzz && cargo fuzz run <target>` adds it.
#
# Knobs: SECONDS_EACH (60), FUZZ_CORPUS (~/.cache/keyframe-fuzz/corpus),
# FUZZ_TARGET_DIR. One process per target, one after the other.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECONDS_EACH="${SECONDS_EACH:-60}"
CORPUS="${FUZZ_CORPUS:-$HOME/.cache/keyframe-fuzz/corpus}"
# Instrumented code differs from the workspace's: a target dir of its own, so the
# two builds never overwrite each other's artifacts.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/fuzz}"
export RUSTFLAGS="--cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares"
MANIFEST="$ROOT/origin/fuzz/Cargo.toml"
all=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$MANIFEST" | grep -v '^keyframe-')
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || read -r -a targets <<<"$(echo $all)"
# An explicit --target, as cargo-fuzz does: RUSTFLAGS then reach the targets'
# code only, not build scripts and proc macros (which would not link without
# libFuzzer's coverage hooks).
HOST="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --locked --release --manifest-path "$MANIFEST" --bins --target "$HOST"
LOGS="$(mktemp -d /tmp/keyframe-fuzz.XXXXXX)"
trap 'rm -rf "$LOGS"' EXIT
status=0
printf '%-15s %8s %14s %10s %8s %8s  %s\n' target seconds execs execs/s cov ft result
for t in "${targets[@]}"; do
  mkdir -p "$CORPUS/$t" "$CORPUS/$t-crashes"
  log="$LOGS/$t.log"
  rc=0
  "$CARGO_TARGET_DIR/$HOST/release/$t" "$CORPUS/$t" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
    -artifact_prefix="$CORPUS/$t-crashes/" >"$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s+=$2} END {print s+0}')
  cov=$(grep -oE '(#[0-9]+|DONE).*cov: [0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+' | awk '{print $2}')
  ft=$(grep -oE '(#[0-9]+|DONE).*ft: [0-9]+' "$log" | tail -1 | grep -oE 'ft: [0-9]+' | awk '{print $2}')
  if [ "$rc" = 0 ]; then result=ok; else result="CRASH (rc $rc): see $CORPUS/$t-crashes"; status=1; grep -m5 -E "panicked|ERROR" "$log" || true; fi
  printf '%-15s %8s %14s %10s %8s %8s  %s\n' "$t" "$SECONDS_EACH" "$execs" "$((execs / SECONDS_EACH))" "${cov:-?}" "${ft:-?}" "$result"
done
exit "$status"
