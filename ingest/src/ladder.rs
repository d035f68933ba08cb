//! The adaptive-streaming ladder made at ingest: which renditions a master gets,
//! and the one ffmpeg run that encodes them all (decoding the master once).
//!
//! Every video rendition is H.264 (8-bit 4:2:0, so 10-bit and HEVC masters are
//! transcoded) with keyframes forced at the same times in every rung and nowhere
//! else (`-force_key_frames`, scene-cut detection off), and is written as one CMAF
//! fragmented MP4 cut at those keyframes: fragment `n` of every rung covers the same
//! time, so a player can switch rungs at any segment boundary. Audio is AAC-LC in a
//! rendition of its own, fragmented at the same duration.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::error::IngestError;

pub use keyframe_catalog::ladder::DEFAULT_RUNGS;
/// The default segment (fragment) duration, in seconds.
pub const DEFAULT_SEGMENT_SECS: u32 = 4;
/// The audio rendition's bit rate.
const AUDIO_KBPS: u32 = 128;

/// Which renditions to make; no rungs means no ladder (progressive only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LadderSpec {
    /// Short sides in pixels, largest first.
    pub rungs: Vec<u32>,
    /// Segment duration in seconds (2–10).
    pub segment_secs: u32,
}

impl Default for LadderSpec {
    /// The default ladder.
    fn default() -> Self {
        LadderSpec {
            rungs: DEFAULT_RUNGS.to_vec(),
            segment_secs: DEFAULT_SEGMENT_SECS,
        }
    }
}

impl LadderSpec {
    /// No ladder: the progressive file only.
    pub fn none() -> LadderSpec {
        LadderSpec {
            rungs: Vec::new(),
            segment_secs: DEFAULT_SEGMENT_SECS,
        }
    }

    /// Whether a ladder is asked for.
    pub fn enabled(&self) -> bool {
        !self.rungs.is_empty()
    }

    /// Parses `1080,720,480` (short sides, 16–4320, any order) or `none`.
    pub fn parse(s: &str) -> Result<LadderSpec, String> {
        Ok(LadderSpec {
            rungs: keyframe_catalog::ladder::parse_rungs(s)?,
            segment_secs: DEFAULT_SEGMENT_SECS,
        })
    }

    /// The rungs for a master whose picture is `width`x`height`: those not above its
    /// short side; a master smaller than every rung gets one rung at its own size.
    pub fn rungs_for(&self, width: u32, height: u32) -> Vec<u32> {
        let short = width.min(height) & !1;
        let mut out: Vec<u32> = self.rungs.iter().copied().filter(|&h| h <= short).collect();
        if out.is_empty() && short >= 2 {
            out.push(short);
        }
        out
    }
}

/// The video bit rate of a rung, kbit/s: 5 Mbit/s at 1080 scaled by the 1.5th power
/// of the short side (720 → 2.7, 480 → 1.5, 360 → 0.96, 240 → 0.52 Mbit/s), at
/// least 150 kbit/s.
pub fn video_kbps(short_side: u32) -> u32 {
    let k = 5000.0 * (f64::from(short_side) / 1080.0).powf(1.5);
    (k.round() as u32).max(150)
}

/// One file ffmpeg writes.
#[derive(Clone, Debug)]
pub struct Output {
    pub path: PathBuf,
    /// The short side, for a video rung.
    pub rung: Option<u32>,
}

/// The ffmpeg arguments that encode `input` into `rungs` (and the audio rendition,
/// when `audio`) under `dir`, with progress lines on standard output.
pub fn ffmpeg_args(
    input: &Path,
    rungs: &[u32],
    audio: bool,
    segment_secs: u32,
    dir: &Path,
) -> (Vec<String>, Vec<Output>) {
    let mut args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-y",
        "-v",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
        "-i",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(input.to_string_lossy().into_owned());
    let mut outputs = Vec::new();
    // CMAF (ISO/IEC 23000-19): empty moov, one moof+mdat per fragment, base data
    // offsets relative to the moof, and no mfra trailer so that the init segment and
    // the fragments cover the file exactly.
    let movflags = "+frag_keyframe+empty_moov+default_base_moof+cmaf+skip_trailer";
    if !rungs.is_empty() {
        let n = rungs.len();
        let mut graph = format!("[0:v:0]split={n}");
        for i in 0..n {
            graph.push_str(&format!("[s{i}]"));
        }
        for (i, h) in rungs.iter().enumerate() {
            // The short side becomes `h` whichever way the (auto-rotated) picture
            // stands; square pixels; 8-bit 4:2:0 for every H.264 decoder.
            graph.push_str(&format!(
                ";[s{i}]scale=w='if(gt(iw,ih),-2,{h})':h='if(gt(iw,ih),{h},-2)',\
                 setsar=1,format=yuv420p[v{i}]"
            ));
        }
        args.push("-filter_complex".into());
        args.push(graph);
        for (i, &h) in rungs.iter().enumerate() {
            let kbps = video_kbps(h);
            let path = dir.join(format!("video-{h}.mp4"));
            args.extend([
                "-map".to_string(),
                format!("[v{i}]"),
                "-an".into(),
                "-sn".into(),
                "-dn".into(),
                "-c:v".into(),
                "libx264".into(),
                "-preset".into(),
                "veryfast".into(),
                "-profile:v".into(),
                "high".into(),
                "-b:v".into(),
                format!("{kbps}k"),
                "-maxrate".into(),
                format!("{}k", kbps * 11 / 10),
                "-bufsize".into(),
                format!("{}k", kbps * 2),
                // Keyframes exactly at every segment boundary and nowhere else.
                "-force_key_frames".into(),
                format!("expr:gte(t,n_forced*{segment_secs})"),
                "-g".into(),
                "100000".into(),
                "-keyint_min".into(),
                "1".into(),
                "-sc_threshold".into(),
                "0".into(),
                "-movflags".into(),
                movflags.into(),
                "-f".into(),
                "mp4".into(),
            ]);
            args.push(path.to_string_lossy().into_owned());
            outputs.push(Output {
                path,
                rung: Some(h),
            });
        }
    }
    if audio {
        let path = dir.join("audio.m4a");
        args.extend([
            "-map".to_string(),
            "0:a:0".into(),
            "-vn".into(),
            "-sn".into(),
            "-dn".into(),
            "-c:a".into(),
            "aac".into(),
            "-b:a".into(),
            format!("{AUDIO_KBPS}k"),
            "-ac".into(),
            "2".into(),
            "-ar".into(),
            "48000".into(),
            // Audio has no keyframes to cut at: fragments of the segment duration.
            "-frag_duration".into(),
            (u64::from(segment_secs) * 1_000_000).to_string(),
            "-movflags".into(),
            "+empty_moov+default_base_moof+cmaf+skip_trailer".into(),
            "-f".into(),
            "mp4".into(),
        ]);
        args.push(path.to_string_lossy().into_owned());
        outputs.push(Output { path, rung: None });
    }
    (args, outputs)
}

/// Runs ffmpeg with `args`, calling `progress` with the media time encoded so far
/// (ms, from `-progress`). A failure is one line: ffmpeg's last words.
pub async fn run(
    ffmpeg: &Path,
    args: &[String],
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<(), IngestError> {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| IngestError::Tool(format!("cannot run ffmpeg: {e}")))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // The last few lines of stderr only: a long encode must not grow memory.
    let tail = async move {
        let mut lines = VecDeque::new();
        if let Some(err) = stderr {
            let mut r = BufReader::new(err.take(1 << 30)).lines();
            while let Ok(Some(l)) = r.next_line().await {
                if lines.len() == 8 {
                    lines.pop_front();
                }
                lines.push_back(l);
            }
        }
        lines
    };
    let watch = async move {
        if let Some(out) = stdout {
            let mut r = BufReader::new(out).lines();
            while let Ok(Some(l)) = r.next_line().await {
                if let Some(us) = l.strip_prefix("out_time_us=") {
                    if let Ok(us) = us.trim().parse::<u64>() {
                        progress(us / 1000);
                    }
                }
            }
        }
    };
    let (lines, (), status) = tokio::join!(tail, watch, child.wait());
    let status = status.map_err(|e| IngestError::Tool(format!("ffmpeg failed: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let last = lines
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .unwrap_or_default();
    Err(IngestError::Transcode(format!(
        "transcoding the ladder failed (ffmpeg exited with {status}): {last}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_parse_and_fit_the_master() {
        assert_eq!(LadderSpec::parse("none").expect("none"), LadderSpec::none());
        assert!(!LadderSpec::none().enabled());
        let l = LadderSpec::parse("360, 720p,1080,720").expect("parse");
        assert_eq!(l.rungs, vec![1080, 720, 360]);
        assert!(LadderSpec::parse("720,abc").is_err());
        assert!(LadderSpec::parse("8").is_err());
        assert!(LadderSpec::parse("").is_err());
        let d = LadderSpec::default();
        assert_eq!(d.rungs_for(1920, 1080), vec![1080, 720, 480, 360, 240]);
        assert_eq!(d.rungs_for(1280, 720), vec![720, 480, 360, 240]);
        // Portrait: the short side counts.
        assert_eq!(d.rungs_for(720, 1280), vec![720, 480, 360, 240]);
        // Smaller than every rung: one rung at its own size (even).
        assert_eq!(d.rungs_for(161, 91), vec![90]);
    }

    #[test]
    fn bitrates_fall_with_the_picture() {
        assert_eq!(video_kbps(1080), 5000);
        assert!((2600..2800).contains(&video_kbps(720)));
        assert!(video_kbps(480) < video_kbps(720));
        assert_eq!(video_kbps(16), 150);
    }

    #[test]
    fn one_output_per_rung_and_one_for_audio() {
        let (args, outs) = ffmpeg_args(Path::new("in.mov"), &[720, 360], true, 4, Path::new("/t"));
        assert_eq!(outs.len(), 3);
        assert_eq!(outs[2].rung, None);
        assert!(args.iter().any(|a| a == "expr:gte(t,n_forced*4)"));
        assert_eq!(args.iter().filter(|a| *a == "libx264").count(), 2);
        let (args, outs) = ffmpeg_args(Path::new("in.mp3"), &[], true, 4, Path::new("/t"));
        assert_eq!(outs.len(), 1);
        assert!(!args.iter().any(|a| a == "-filter_complex"));
    }
}
