//! A tiny adaptive-streaming ladder for the player tests, made with ffmpeg's DASH
//! muxer (which also writes HLS playlists over the same files): two H.264 rungs
//! (320x180 at 800 kb/s, 160x90 at 150 kb/s) and AAC audio as its own rendition,
//! each one single-file fragmented MP4 addressed by byte ranges (HLS
//! `EXT-X-BYTERANGE`, DASH `SegmentList` `mediaRange`), 2-second segments with
//! aligned keyframes. Stored as objects under `abr/<title>/`, so every manifest
//! reference is relative, as Keyframe's own packaging writes them. And
//! `ingest_ladder`: a real ladder from `keyframe ingest`, for the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// The token key the player tests sign with (`serve --token-key`).
pub const TOKEN_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The files of the ladder: the multivariant playlist, three media playlists, the
/// MPD and three renditions.
pub const FILES: &[&str] = &[
    "master.m3u8",
    "media_0.m3u8",
    "media_1.m3u8",
    "media_2.m3u8",
    "stream.mpd",
    "stream-stream0.mp4",
    "stream-stream1.mp4",
    "stream-stream2.mp4",
];

/// Makes a `seconds`-long ladder in `dir` (created).
pub fn make_ladder(dir: &Path, seconds: u32) {
    std::fs::create_dir_all(dir).expect("ladder dir");
    let st = Command::new("ffmpeg")
        .current_dir(dir)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc2=duration={seconds}:size=320x180:rate=25"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args([
            "-filter_complex",
            "[0:v]noise=alls=25:allf=t,split=2[hi][b];[b]scale=160:90[lo]",
            "-map",
            "[hi]",
            "-map",
            "[lo]",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
            "-b:v:0",
            "800k",
            "-maxrate:v:0",
            "800k",
            "-bufsize:v:0",
            "800k",
            "-b:v:1",
            "150k",
            "-maxrate:v:1",
            "150k",
            "-bufsize:v:1",
            "150k",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "dash",
            "-single_file",
            "1",
            "-seg_duration",
            "2",
            "-use_template",
            "0",
            "-use_timeline",
            "0",
            "-hls_playlist",
            "1",
            "-adaptation_sets",
            "id=0,streams=v id=1,streams=a",
            "stream.mpd",
        ])
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not make the test ladder");
    for f in FILES {
        assert!(dir.join(f).is_file(), "ffmpeg wrote no {f}");
    }
}

/// Copies a ladder into a `file://` store's directory (`<data>/objects`) as the
/// objects `abr/<title>/<file>`; their URL prefix.
pub fn store_ladder(data: &Path, ladder: &Path, title: &str) -> String {
    let dir: PathBuf = data.join("objects").join("abr").join(title);
    std::fs::create_dir_all(&dir).expect("object dir");
    for f in FILES {
        std::fs::copy(ladder.join(f), dir.join(f)).expect("copy ladder file");
    }
    format!("/v1/objects/abr/{title}/")
}

/// A token for every object under `prefix` (the way the catalog signs a title's
/// files), valid for `ttl`.
pub fn sign(prefix: &str, ttl: Duration) -> String {
    use keyframe_core::token::{sign, TokenClaims, TokenKey};
    let key = TokenKey::from_config(TOKEN_KEY).expect("token key");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = TokenClaims {
        start: None,
        exp: now + ttl.as_secs(),
        acl: format!("{prefix}*"),
        data: None,
    };
    sign(&key, &claims).expect("sign")
}

/// Ingests `clip` with `keyframe ingest --ladder RUNGS` (title "Ladder") into the
/// node data dir `data`; returns the new title's content id.
pub fn ingest_ladder(data: &Path, clip: &Path, rungs: &str) -> String {
    let out = super::keyframe()
        .arg("--data-dir")
        .arg(data)
        .args(["ingest", "--json", "--title", "Ladder", "--ladder", rungs])
        .arg(clip)
        .output()
        .expect("ingest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = out
        .stdout
        .split(|b| *b == b'\n')
        .find(|l| !l.is_empty())
        .expect("a JSON line");
    let v: serde_json::Value = serde_json::from_slice(line).expect("ingest JSON");
    v["content_id"].as_str().expect("content_id").to_string()
}
