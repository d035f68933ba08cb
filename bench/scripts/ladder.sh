#!/usr/bin/env bash
# Ladder packaging cost (issue 18): `keyframe ingest --ladder 1080,720,480,360` of a
# 1080p master against the same ffmpeg ladder run by hand (the arguments of
# ingest/src/ladder.rs `ffmpeg_args`: keep them in step). Everything Keyframe adds
# is reading the fragments, writing the manifests, hashing and storing the files:
# the target is ≤ 5% more wall time, and ≤ 100 MiB peak RSS for Keyframe itself
# (its own VmHWM, sampled from /proc, not ffmpeg's). Interleaved rounds; prints the
# median wall seconds of each, the median CPU seconds (user + sys of the whole process
# tree, ffmpeg included, from /usr/bin/time: robust to other load on a shared
# machine, where wall time is not) and Keyframe's peak RSS.
#
#   bench/scripts/ladder.sh [SECONDS] [ROUNDS]     # default: a 600 s master, 3 rounds
#   MASTER=FILE bench/scripts/ladder.sh            # reuse a master made by an earlier run
#   KEEP_MASTER=FILE bench/scripts/ladder.sh       # keep the generated master there
#
# Needs a release build (`cargo build --release --bin keyframe`), ffmpeg with libx264.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-600}
rounds=${2:-3}
bin=${KEYFRAME_BIN:-${CARGO_TARGET_DIR:-target}/release/keyframe}
[[ -x $bin ]] || { echo "error: build first: cargo build --release --bin keyframe" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "error: ffmpeg is not on PATH" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "error: /usr/bin/time (GNU time) is missing" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seg=4
rungs=(1080 720 480 360)

if [[ -n ${MASTER:-} ]]; then
  ln -s "$(realpath "$MASTER")" "$work/master.mp4"
else
  echo "generating a ${secs} s 1920x1080 master" >&2
  ffmpeg -v error -nostdin -y -f lavfi -i "testsrc2=duration=$secs:size=1920x1080:rate=25" \
    -f lavfi -i "sine=frequency=440:duration=$secs" -c:v libx264 -preset veryfast -crf 20 \
    -pix_fmt yuv420p -c:a aac -shortest "$work/master.mp4"
  [[ -n ${KEEP_MASTER:-} ]] && cp "$work/master.mp4" "$KEEP_MASTER"
fi

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
  /usr/bin/time -f '%e %U %S' -o "$out.time" \
    ffmpeg -hide_banner -nostdin -y -v error -nostats -i "$work/master.mp4" -filter_complex "$graph" "${args[@]}"
}

# Runs keyframe ingest under /usr/bin/time, sampling Keyframe's own peak RSS (VmHWM,
# read with shell builtins; the sampling's processes are not in the measured tree)
# until it exits.
ingest() {
  local data=$1 peak=0 anon=0 file=0 kpid=""
  /usr/bin/time -f '%e %U %S' -o "$data.time" \
    "$bin" --data-dir "$data" ingest --ladder "$(IFS=,; echo "${rungs[*]}")" "$work/master.mp4" 2>/dev/null &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [[ -z $kpid ]]; then
      kpid=$(pgrep -P "$pid" | head -n 1 || true)
    fi
    if [[ -n $kpid ]]; then
      local k v _
      while read -r k v _; do
        if [[ $k == VmHWM: && $v -gt $peak ]]; then peak=$v; fi
        if [[ $k == RssAnon: && $v -gt $anon ]]; then anon=$v; fi
        if [[ $k == RssFile: && $v -gt $file ]]; then file=$v; fi
      done 2>/dev/null <"/proc/$kpid/status" || true
    fi
    sleep 0.2
  done
  wait "$pid"
  echo "$peak" >"$data.rss"
  echo "keyframe's sampled peaks: RssAnon $anon KiB, RssFile $file KiB (VmHWM $peak KiB)" >&2
}

# Wall seconds and CPU seconds (user + sys) from a /usr/bin/time file.
wall() { awk 'END {print $1}' "$1"; }
cpu() { awk 'END {print $2 + $3}' "$1"; }
hand=() kf=() hand_cpu=() kf_cpu=() rss=()
for r in $(seq "$rounds"); do
  by_hand "$work/hand$r"
  hand+=("$(wall "$work/hand$r.time")") hand_cpu+=("$(cpu "$work/hand$r.time")")
  rm -rf "$work/hand$r"
  ingest "$work/kf$r"
  kf+=("$(wall "$work/kf$r.time")") kf_cpu+=("$(cpu "$work/kf$r.time")")
  rss+=("$(cat "$work/kf$r.rss")"); rm -rf "$work/kf$r"
  echo "round $r: by hand ${hand[-1]} s (cpu ${hand_cpu[-1]} s), keyframe ingest ${kf[-1]} s" \
    "(cpu ${kf_cpu[-1]} s), keyframe peak RSS ${rss[-1]} KiB, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
more() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (a / b - 1) * 100}'; }
mh=$(median "${hand[@]}"); mk=$(median "${kf[@]}"); mr=$(median "${rss[@]}")
ch=$(median "${hand_cpu[@]}"); ck=$(median "${kf_cpu[@]}")
echo "ffmpeg ladder by hand: $mh s wall, $ch s cpu (medians of $rounds)"
echo "keyframe ingest --ladder: $mk s wall ($(more "$mk" "$mh")% more), $ck s cpu ($(more "$ck" "$ch")% more), peak RSS $((mr / 1024)) MiB"
