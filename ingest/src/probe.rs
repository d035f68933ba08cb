//! Media probing and rewriting with the external `ffprobe` and `ffmpeg` tools, when
//! they are on `PATH`: duration, container, codecs, size and bitrate; the
//! `+faststart` rewrite; a poster frame. Every tool is optional: without it the
//! pipeline still ingests, reporting one warning instead of the information.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

use crate::error::IngestError;

/// How long `ffprobe` may take on one file.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long extracting one poster frame may take.
const POSTER_TIMEOUT: Duration = Duration::from_secs(120);

/// The external tools the pipeline may use; `None` where a tool is not available.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tools {
    pub ffprobe: Option<PathBuf>,
    pub ffmpeg: Option<PathBuf>,
}

impl Tools {
    /// Looks for `ffprobe` and `ffmpeg` on `PATH`.
    pub fn detect() -> Tools {
        Tools {
            ffprobe: find_on_path("ffprobe"),
            ffmpeg: find_on_path("ffmpeg"),
        }
    }

    /// No tools at all: media is stored without probing, posters or rewrites.
    pub fn none() -> Tools {
        Tools::default()
    }
}

/// The first executable file called `name` in the directories of `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// What probing found out about an audio or video file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaInfo {
    pub duration_ms: Option<i64>,
    pub container: Option<String>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// Bits per second, over the whole file.
    pub bitrate: Option<i64>,
}

impl MediaInfo {
    /// Whether the file has a picture stream (not counting cover art).
    pub fn has_video(&self) -> bool {
        self.video_codec.is_some()
    }
}

#[derive(Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<i64>,
    height: Option<i64>,
    #[serde(default)]
    disposition: Disposition,
}

#[derive(Default, Deserialize)]
struct Disposition {
    #[serde(default)]
    attached_pic: i64,
}

#[derive(Deserialize)]
struct ProbeFormat {
    format_name: Option<String>,
    duration: Option<String>,
    bit_rate: Option<String>,
}

/// Parses `ffprobe -print_format json -show_format -show_streams` output. The
/// container is named after `ext` (the canonical extension of the detected type)
/// when ffprobe lists it among the format's names, such as `mov,mp4,m4a,…`.
pub fn parse_ffprobe(json: &[u8], ext: &str) -> Result<MediaInfo, serde_json::Error> {
    let out: ProbeOutput = serde_json::from_slice(json)?;
    let mut info = MediaInfo::default();
    for s in &out.streams {
        match s.codec_type.as_deref() {
            Some("video") if s.disposition.attached_pic == 0 && info.video_codec.is_none() => {
                info.video_codec = s.codec_name.clone();
                info.width = s.width;
                info.height = s.height;
            }
            Some("audio") if info.audio_codec.is_none() => {
                info.audio_codec = s.codec_name.clone();
            }
            _ => {}
        }
    }
    if let Some(f) = out.format {
        info.container = f.format_name.map(|names| {
            if names.split(',').any(|n| n == ext) {
                ext.to_string()
            } else {
                names.split(',').next().unwrap_or(&names).to_string()
            }
        });
        info.duration_ms = f
            .duration
            .and_then(|d| d.trim().parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(|d| (d * 1000.0).round() as i64);
        info.bitrate = f.bit_rate.and_then(|b| b.trim().parse::<i64>().ok());
    }
    Ok(info)
}

/// Runs ffprobe on `file`.
pub async fn ffprobe(ffprobe: &Path, file: &Path, ext: &str) -> Result<MediaInfo, String> {
    let mut cmd = Command::new(ffprobe);
    cmd.args([
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ])
    .arg(file);
    let out = run(cmd, Some(PROBE_TIMEOUT)).await?;
    parse_ffprobe(&out, ext).map_err(|e| format!("ffprobe printed unexpected output: {e}"))
}

/// Rewrites an ISO media file with its `moov` box first (`-c copy`, no re-encoding)
/// into `out`.
pub async fn faststart(
    ffmpeg: &Path,
    input: &Path,
    mime: &str,
    out: &Path,
) -> Result<(), IngestError> {
    let format = match mime {
        "video/quicktime" => "mov",
        "audio/mp4" => "ipod",
        _ => "mp4",
    };
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(input)
        .args([
            "-map",
            "0",
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            "-f",
            format,
        ])
        .arg(out);
    run(cmd, None)
        .await
        .map(drop)
        .map_err(|e| IngestError::Tool(format!("--faststart rewrite failed: {e}")))
}

/// One frame of a video as a JPEG, at most 1920 pixels wide, taken a tenth of the
/// way in (at most 5 s in) so that it is rarely a black opening frame.
pub async fn poster(
    ffmpeg: &Path,
    input: &Path,
    duration_ms: Option<i64>,
    dir: &Path,
) -> Result<Vec<u8>, String> {
    let at_ms = duration_ms.map(|d| (d / 10).clamp(0, 5000)).unwrap_or(0);
    let out = dir.join("poster.jpg");
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-v", "error", "-nostdin", "-y", "-ss"])
        .arg(format!("{}.{:03}", at_ms / 1000, at_ms % 1000))
        .arg("-i")
        .arg(input)
        .args([
            "-frames:v",
            "1",
            "-an",
            "-sn",
            "-dn",
            "-vf",
            "scale='min(1920,iw)':-2",
            "-c:v",
            "mjpeg",
            "-q:v",
            "3",
            "-f",
            "image2",
        ])
        .arg(&out);
    run(cmd, Some(POSTER_TIMEOUT)).await?;
    let bytes = tokio::fs::read(&out)
        .await
        .map_err(|e| format!("ffmpeg wrote no poster frame: {e}"))?;
    if bytes.is_empty() {
        return Err("ffmpeg wrote an empty poster frame".into());
    }
    Ok(bytes)
}

/// Runs a tool to completion and returns its standard output; a failure carries
/// the last line the tool wrote on standard error.
async fn run(mut cmd: Command, timeout: Option<Duration>) -> Result<Vec<u8>, String> {
    let name = cmd
        .as_std()
        .get_program()
        .to_string_lossy()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| format!("cannot run {name}: {e}"))?;
    let waited = match timeout {
        Some(t) => tokio::time::timeout(t, child.wait_with_output())
            .await
            .map_err(|_| format!("{name} took longer than {} s", t.as_secs()))?,
        None => child.wait_with_output().await,
    };
    let out = waited.map_err(|e| format!("{name} failed: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!(
            "{name} exited with {}: {}",
            out.status,
            last.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "streams": [
        {"index": 0, "codec_name": "h264", "codec_type": "video", "width": 320, "height": 240,
         "disposition": {"default": 1, "attached_pic": 0}},
        {"index": 1, "codec_name": "aac", "codec_type": "audio", "sample_rate": "44100"}
      ],
      "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "2.023000",
                 "bit_rate": "123456", "size": "31234"}
    }"#;

    #[test]
    fn parses_ffprobe_json() {
        let info = parse_ffprobe(SAMPLE.as_bytes(), "mp4").expect("parse");
        assert_eq!(
            info,
            MediaInfo {
                duration_ms: Some(2023),
                container: Some("mp4".into()),
                video_codec: Some("h264".into()),
                audio_codec: Some("aac".into()),
                width: Some(320),
                height: Some(240),
                bitrate: Some(123456),
            }
        );
        assert!(info.has_video());
    }

    #[test]
    fn cover_art_is_not_video_and_unknown_names_keep_ffprobes() {
        let json = r#"{"streams": [
            {"codec_name": "mjpeg", "codec_type": "video", "width": 500, "height": 500,
             "disposition": {"attached_pic": 1}},
            {"codec_name": "mp3", "codec_type": "audio"}],
          "format": {"format_name": "mp3", "duration": "N/A"}}"#;
        let info = parse_ffprobe(json.as_bytes(), "bin").expect("parse");
        assert_eq!(info.video_codec, None);
        assert_eq!(info.width, None);
        assert_eq!(info.audio_codec.as_deref(), Some("mp3"));
        assert_eq!(info.container.as_deref(), Some("mp3"));
        assert_eq!(info.duration_ms, None);
        assert!(parse_ffprobe(b"not json", "mp4").is_err());
        assert_eq!(
            parse_ffprobe(b"{}", "mp4").expect("empty"),
            MediaInfo::default()
        );
    }

    #[test]
    fn path_lookup() {
        assert!(find_on_path("keyframe-no-such-tool-here").is_none());
        assert!(find_on_path("sh").is_some());
    }
}
