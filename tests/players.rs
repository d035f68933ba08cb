//! Real players against the origin and through the edge: ffprobe reads an MP4's
//! duration (including one whose index sits at the end), ffmpeg seeks to the
//! middle and decodes, aria2c downloads in parallel segments and gets identical
//! bytes. Skipped when the tools are absent, except under `CI=true`.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{have_tools, serve_node, Running};

fn encoder() -> &'static str {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if out.contains("libx264") {
        "libx264"
    } else {
        "mpeg4"
    }
}

fn make_clip(path: &Path, faststart: bool) {
    let mut c = Command::new("ffmpeg");
    c.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=10:size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=10",
        "-c:v",
        encoder(),
        "-g",
        "25",
        "-c:a",
        "aac",
        "-shortest",
    ]);
    if faststart {
        c.args(["-movflags", "+faststart"]);
    }
    let st = c.arg(path).status().expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not make a test clip");
}

#[test]
fn ffprobe_ffmpeg_and_aria2c_through_origin_and_edge() {
    if !have_tools(&["ffmpeg", "ffprobe", "aria2c"], "player tests") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let media = tmp.path().join("objects/media");
    std::fs::create_dir_all(&media).expect("mkdir");
    make_clip(&media.join("fast.mp4"), true);
    make_clip(&media.join("slow.mp4"), false);
    let node = Running::start(serve_node(tmp.path(), &[]), 3);
    for server in ["origin", "edge"] {
        for clip in ["fast.mp4", "slow.mp4"] {
            let url = format!("{}/v1/objects/media/{clip}", node.url(server));
            let out = Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "format=duration",
                    "-of",
                    "csv=p=0",
                    &url,
                ])
                .output()
                .expect("ffprobe");
            assert!(
                out.status.success(),
                "{server} {clip}: ffprobe failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let d: f64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("a duration");
            assert!((9.5..10.5).contains(&d), "{server} {clip}: duration {d}");

            let out = Command::new("ffmpeg")
                .args([
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-ss",
                    "5",
                    "-i",
                    &url,
                    "-t",
                    "1",
                    "-f",
                    "null",
                    "-",
                ])
                .output()
                .expect("ffmpeg");
            assert!(
                out.status.success(),
                "{server} {clip}: seek failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );

            let dl = tmp.path().join(format!("dl-{server}"));
            let out = Command::new("aria2c")
                .args(["-q", "-x4", "-s4", "-k1M", "--allow-overwrite=true", "-d"])
                .arg(&dl)
                .args(["-o", clip, &url])
                .output()
                .expect("aria2c");
            assert!(
                out.status.success(),
                "{server} {clip}: aria2c failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            let got = std::fs::read(dl.join(clip)).expect("downloaded");
            let want = std::fs::read(media.join(clip)).expect("original");
            assert!(got == want, "{server} {clip}: aria2c bytes differ");
        }
    }
    assert!(node.terminate().success());
}

/// A title ingested with a ladder plays in ffprobe and ffmpeg from its HLS
/// multivariant playlist (and its DASH MPD) through the origin and the edge: all
/// streams found, a seek to 2 s decodes a frame.
#[test]
fn ladder_plays_in_ffprobe_and_ffmpeg_through_origin_and_edge() {
    if !have_tools(&["ffmpeg", "ffprobe"], "ladder player tests") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let clip = tmp.path().join("clip.mp4");
    let st = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=duration=9:size=320x180:rate=25")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=9"])
        .args([
            "-c:v",
            encoder(),
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&clip)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    let out = common::keyframe()
        .arg("--data-dir")
        .arg(tmp.path())
        .args(["ingest", "--json", "--ladder", "180,90"])
        .arg(&clip)
        .output()
        .expect("ingest");
    assert!(
        out.status.success(),
        "ingest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let path = |role: &str| -> String {
        report["ladder"]
            .as_array()
            .expect("ladder")
            .iter()
            .find(|a| a["role"] == role)
            .and_then(|a| a["path"].as_str())
            .unwrap_or_else(|| panic!("a {role} in {report}"))
            .to_string()
    };
    let (hls, dash) = (path("hls"), path("dash"));
    let node = Running::start(serve_node(tmp.path(), &[]), 3);
    for server in ["origin", "edge"] {
        for manifest in [&hls, &dash] {
            let url = format!("{}{manifest}", node.url(server));
            let out = Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "stream=codec_type,width,height",
                    "-of",
                    "csv=p=0",
                    &url,
                ])
                .output()
                .expect("ffprobe");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{server} {manifest}: ffprobe failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for stream in ["video,320,180", "video,160,90", "audio"] {
                assert!(
                    text.lines().any(|l| l.starts_with(stream)),
                    "{server} {manifest}: no {stream} stream in {text}"
                );
            }
        }
        // ffmpeg 5.1's DASH demuxer hangs on single-file SegmentLists (its own
        // `-f dash -single_file 1` output too), so decoding is checked on HLS; the
        // browsers' players (hls.js, Shaka) play both.
        let url = format!("{}{hls}", node.url(server));
        let decode = |extra: &[&str], after: &[&str]| {
            let out = Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error"])
                .args(extra)
                .arg("-i")
                .arg(&url)
                .args(after)
                .args(["-f", "null", "-"])
                .output()
                .expect("ffmpeg");
            assert!(
                out.status.success(),
                "{server}: ffmpeg {extra:?} {after:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // Every segment of every stream decodes.
        decode(&[], &["-map", "0"]);
        // A seek to 2 s decodes a frame. (Video only: ffmpeg 5.1's HLS demuxer
        // misreads an fMP4 audio segment it seeks into, its own
        // `-hls_segment_type fmp4` output alike.)
        decode(&["-ss", "2"], &["-map", "0:v:0", "-frames:v", "1"]);
    }
    assert!(node.terminate().success());
}
