#!/usr/bin/env bash
# Ladder packaging cost (issue 18): `keyframe ingest --ladder 1080,720,480,360` of a
# 1080p master against the same ffmpeg ladder run by hand (the arguments of
# ingest/src/ladder.rs `ffmpeg_args`: keep them in step). Everything Keyframe adds
# is reading the fragments, writing the manifests, hashing and storing the files:
# the target is ≤ 5% more wall time, and ≤ 100 MiB peak RSS for Keyframe itself
# (its own VmHWM, sampled from /proc, not ffmpeg's). Interleaved rounds; prints the
# median seconds of each and Keyframe's peak RSS. Needs a quiet machine.
#
#   bench/scripts/ladder.sh [SECONDS] [ROUNDS]     # default: a 600 s master, 3 rounds
#
# Needs a release build (`cargo build --release --bin keyframe`), ffmpeg with libx264.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-600}
rounds=${2:-3}
bin=${KEYFRAME_BIN:-${CARGO_TARGET_DIR:-target}/release/keyframe}
[[ -x $bin ]] || { echo "error: build first: cargo build --release --bin keyframe" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "error: ffmpeg is not on PATH" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seg=4
rungs=(1080 720 480 360)

echo "generating a ${secs} s 1920x1080 master" >&2
ffmpeg -v error -nostdin -y -f lavfi -i "testsrc2=duration=$secs:size=1920x1080:rate=25" \
  -f lavfi -i "sine=frequency=440:duration=$secs" -c:v libx264 -preset veryfast -crf 20 \
  -pix_fmt yuv420p -c:a aac -shortest "$work/master.mp4"

kbps() { python3 -c "print(max(150, round(5000 * ($1 / 1080) ** 1.5)))"; }

by_hand() {
  local out=$1 graph="[0:v:0]split=${#rungs[@]}" i=0 args=()
  mkdir -p "$out"
  for h in "${rungs[@]}"; do graph+="[s$i]"; i=$((i + 1)); done
  i=0
  for h in "${rungs[@]}"; do
    graph+=";[s$i]scale=w='if(gt(iw,ih),-2,$h)':h='if(gt(iw,ih),$h,-2)',setsar=1,format=yuv420p[v$i]"
    local k; k=$(kbps "$h")
    args+=(-map "[v$i]" -an -sn -dn -c:v libx264 -preset veryfast -profile:v high
      -b:v "${k}k" -maxrate "$((k * 11 / 10))k" -bufsize "$((k * 2))k"
      -force_key_frames "expr:gte(t,n_forced*$seg)" -g 100000 -keyint_min 1 -sc_threshold 0
      -movflags +frag_keyframe+empty_moov+default_base_moof+cmaf+skip_trailer -f mp4 "$out/video-$h.mp4")
    i=$((i + 1))
  done
  args+=(-map 0:a:0 -vn -sn -dn -c:a aac -b:a 128k -ac 2 -ar 48000 -frag_duration $((seg * 1000000))
    -movflags +empty_moov+default_base_moof+cmaf+skip_trailer -f mp4 "$out/audio.m4a")
  ffmpeg -hide_banner -nostdin -y -v error -nostats -i "$work/master.mp4" -filter_complex "$graph" "${args[@]}"
}

# Runs keyframe ingest, sampling its own peak RSS (VmHWM) until it exits.
ingest() {
  local data=$1 peak=0
  "$bin" --data-dir "$data" ingest --ladder "$(IFS=,; echo "${rungs[*]}")" "$work/master.mp4" 2>/dev/null &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    local hwm
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [[ -n $hwm && $hwm -gt $peak ]] && peak=$hwm
    sleep 0.2
  done
  wait "$pid"
  echo "$peak" >"$data.rss"
}

hand=() kf=() rss=()
for r in $(seq "$rounds"); do
  t0=$(date +%s.%N); by_hand "$work/hand$r"; t1=$(date +%s.%N)
  hand+=("$(echo "$t1 - $t0" | bc)"); rm -rf "$work/hand$r"
  t0=$(date +%s.%N); ingest "$work/kf$r"; t1=$(date +%s.%N)
  kf+=("$(echo "$t1 - $t0" | bc)"); rss+=("$(cat "$work/kf$r.rss")"); rm -rf "$work/kf$r"
  echo "round $r: by hand ${hand[-1]} s, keyframe ingest ${kf[-1]} s, keyframe peak RSS ${rss[-1]} KiB" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
mh=$(median "${hand[@]}"); mk=$(median "${kf[@]}"); mr=$(median "${rss[@]}")
echo "ffmpeg ladder by hand: $mh s (median of $rounds)"
echo "keyframe ingest --ladder: $mk s ($(echo "scale=1; ($mk / $mh - 1) * 100" | bc)% more), peak RSS $((mr / 1024)) MiB"
