//! The adaptive-streaming ladder made at ingest, with the real ffmpeg: the
//! manifests' byte ranges cover each rendition exactly, every video segment starts
//! on a keyframe (ffprobe's packet flags), HLS and DASH list the same segments, and
//! awkward masters (audio only, portrait, variable frame rate, 10-bit HEVC, cut
//! short, a failing encoder) give the right ladder or nothing at all.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use keyframe_ingest::cmaf;
use keyframe_ingest::{ingest, IngestError, IngestOptions, LadderSpec, Progress, Stage, Tools};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A test master: `seconds` of testsrc at `size` (`WxH`) with a tone, through
/// `video_args` (codec, pixel format, filters), or a tone alone when `size` is
/// empty.
fn master(dir: &Path, name: &str, seconds: u32, size: &str, video_args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut c = Command::new("ffmpeg");
    c.args(["-v", "error", "-nostdin", "-y"]);
    if !size.is_empty() {
        c.args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc=duration={seconds}:size={size}:rate=25"),
        ]);
    }
    c.args([
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={seconds}"),
    ]);
    c.args(video_args).args(["-shortest"]).arg(&out);
    let st = c.status().expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not make {name}");
    out
}

fn ladder(rungs: &[u32]) -> IngestOptions {
    IngestOptions {
        ladder: LadderSpec {
            rungs: rungs.to_vec(),
            segment_secs: 2,
        },
        ..IngestOptions::default()
    }
}

/// (offset, length) ranges of a media playlist: the init map first.
fn hls_ranges(playlist: &str) -> (String, Vec<(u64, u64)>) {
    let mut uri = String::new();
    let mut out = Vec::new();
    for line in playlist.lines() {
        if let Some(map) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            let (u, rest) = map.split_once('"').expect("map uri");
            uri = u.to_string();
            let r = rest
                .trim_start_matches(",BYTERANGE=\"")
                .trim_end_matches('"');
            out.push(range(r));
        } else if let Some(r) = line.strip_prefix("#EXT-X-BYTERANGE:") {
            out.push(range(r));
        } else if !line.starts_with('#') && !line.is_empty() {
            assert_eq!(line, uri, "every segment is in the same file");
        }
    }
    (uri, out)
}

fn range(r: &str) -> (u64, u64) {
    let (len, at) = r.split_once('@').expect("n@o");
    (at.parse().expect("offset"), len.parse().expect("length"))
}

/// Per `BaseURL`, the (offset, length) ranges of the MPD: init first.
fn mpd_ranges(mpd: &str) -> Vec<(String, Vec<(u64, u64)>)> {
    let mut out: Vec<(String, Vec<(u64, u64)>)> = Vec::new();
    for line in mpd.lines().map(str::trim) {
        if let Some(u) = line.strip_prefix("<BaseURL>") {
            out.push((u.trim_end_matches("</BaseURL>").to_string(), Vec::new()));
        }
        let attr = line
            .strip_prefix("<Initialization range=\"")
            .or_else(|| line.strip_prefix("<SegmentURL mediaRange=\""));
        if let Some(a) = attr {
            let (first, last) = a.trim_end_matches("\"/>").split_once('-').expect("a-b");
            let (first, last): (u64, u64) = (first.parse().expect("a"), last.parse().expect("b"));
            out.last_mut()
                .expect("a BaseURL first")
                .1
                .push((first, last - first + 1));
        }
    }
    out
}

/// The key a relative reference from a manifest names.
fn key_of(rel: &str) -> String {
    format!("sha256/{}", rel.trim_start_matches("../"))
}

/// The file positions of the keyframes of a rendition's video packets.
fn keyframe_positions(path: &Path) -> (Vec<u64>, Vec<u64>) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pos,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(out.status.success());
    let (mut all, mut keys) = (Vec::new(), Vec::new());
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let (pos, flags) = l.split_once(',').expect("pos,flags");
        let pos: u64 = pos.parse().expect("pos");
        all.push(pos);
        if flags.contains('K') {
            keys.push(pos);
        }
    }
    (all, keys)
}

/// The video renditions, after checking that there is an audio one.
fn videos(c: &Checked) -> Vec<(u32, u32, usize)> {
    assert!(c.renditions.iter().any(|r| r.0 == 0), "an audio rendition");
    c.renditions.iter().copied().filter(|r| r.0 != 0).collect()
}

struct Checked {
    /// (width, height, segment count) per video rendition, audio as (0, 0, n).
    renditions: Vec<(u32, u32, usize)>,
    multivariant: String,
    mpd: String,
    codecs: Vec<String>,
}

/// Everything the manifests promise, checked against the stored objects.
async fn check_ladder(
    store: &keyframe_core::store::Store,
    r: &keyframe_ingest::IngestReport,
    dir: &Path,
) -> Checked {
    let role = |name: &str| -> Vec<&keyframe_catalog::meta::Asset> {
        r.ladder.iter().filter(|a| a.role == name).collect()
    };
    let [hls] = role("hls")[..] else {
        panic!("one multivariant playlist: {:?}", r.ladder)
    };
    let [dash] = role("dash")[..] else {
        panic!("one MPD")
    };
    let renditions = role("rendition");
    let playlists = role("hls-media");
    assert_eq!(renditions.len(), playlists.len());
    let multivariant = String::from_utf8(read(store, &hls.object_key).await).expect("utf8");
    assert!(multivariant.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"));
    for p in &playlists {
        let rel = format!("../{}", p.object_key.trim_start_matches("sha256/"));
        assert!(multivariant.contains(&rel), "{multivariant} lists {rel}");
    }
    let mpd = String::from_utf8(read(store, &dash.object_key).await).expect("utf8");
    let dash_ranges = mpd_ranges(&mpd);
    assert_eq!(dash_ranges.len(), renditions.len(), "{mpd}");
    let mut out = Vec::new();
    let mut codecs = Vec::new();
    let mut video_durations: Vec<Vec<f64>> = Vec::new();
    for p in &playlists {
        let text = String::from_utf8(read(store, &p.object_key).await).expect("utf8");
        assert!(
            text.contains("#EXT-X-INDEPENDENT-SEGMENTS\n") && text.ends_with("#EXT-X-ENDLIST\n")
        );
        assert!(!text.contains('?'), "no query strings in stored manifests");
        let (uri, ranges) = hls_ranges(&text);
        let key = key_of(&uri);
        let bytes = read(store, &key).await;
        // The init map and the segments cover the file exactly, in order.
        let mut at = 0;
        for (offset, len) in &ranges {
            assert_eq!(*offset, at, "no gap or overlap in {key}");
            assert!(*len > 0);
            at += len;
        }
        assert_eq!(at, bytes.len() as u64, "the ranges cover all of {key}");
        // DASH lists the same ranges of the same file.
        let (_, d) = dash_ranges
            .iter()
            .find(|(u, _)| *u == uri)
            .unwrap_or_else(|| panic!("{uri} in the MPD"));
        assert_eq!(d, &ranges, "HLS and DASH list the same segments of {uri}");
        // Our index agrees, and ffprobe sees a keyframe first in every segment.
        let local = dir.join(key.replace('/', "_"));
        std::fs::write(&local, &bytes).expect("write");
        let index = cmaf::read(
            &mut std::fs::File::open(&local).expect("open"),
            bytes.len() as u64,
        )
        .expect("index");
        codecs.push(index.codecs.clone());
        match index.kind {
            cmaf::TrackKind::Video { width, height } => {
                let (packets, keys) = keyframe_positions(&local);
                for (offset, len) in &ranges[1..] {
                    let first = packets
                        .iter()
                        .filter(|p| (*offset..offset + len).contains(p))
                        .min()
                        .expect("packets in every segment");
                    assert!(
                        keys.contains(first),
                        "segment at {offset} of {key} starts on a keyframe"
                    );
                }
                let per_segment = keys.len() as f64 / (ranges.len() - 1) as f64;
                assert!(
                    (per_segment - 1.0).abs() < f64::EPSILON,
                    "one keyframe per segment: {per_segment}"
                );
                assert!(
                    text.contains(&format!("RESOLUTION={width}x{height}"))
                        || multivariant.contains(&format!("RESOLUTION={width}x{height}"))
                );
                video_durations.push(index.fragments.iter().map(|f| index.secs(f)).collect());
                out.push((width, height, ranges.len() - 1));
            }
            cmaf::TrackKind::Audio { .. } => out.push((0, 0, ranges.len() - 1)),
        }
    }
    // Keyframes aligned across rungs: every rung's segments have the same times.
    for d in video_durations.iter().skip(1) {
        assert_eq!(d.len(), video_durations[0].len());
        for (a, b) in d.iter().zip(&video_durations[0]) {
            assert!(
                (a - b).abs() < 0.05,
                "aligned segments: {d:?} vs {:?}",
                video_durations[0]
            );
        }
    }
    out.sort_unstable();
    Checked {
        renditions: out,
        multivariant,
        mpd,
        codecs,
    }
}

/// What a progress display is told.
#[derive(Default)]
struct Seen {
    total: Mutex<Option<Option<u64>>>,
    done_ms: AtomicU64,
}

impl Progress for Seen {
    fn stage(&self, stage: Stage) {
        if let Stage::Transcoding { total_ms } = stage {
            *self.total.lock().expect("lock") = Some(total_ms);
        }
    }
    fn bytes(&self, _done: u64) {}
    fn transcoded(&self, done_ms: u64) {
        self.done_ms.fetch_max(done_ms, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn a_ladder_is_packaged_over_byte_ranges_of_single_files() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let m = master(
        dir.path(),
        "master.mp4",
        7,
        "320x180",
        &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    );
    for tdb in keyframe_catalog::testing::all().await {
        let ts = keyframe_origin::testing::local();
        let (store, db) = (&ts.store, &tdb.db);
        // 360 and 240 are above the master's 180: left out.
        let seen = Arc::new(Seen::default());
        let o = IngestOptions {
            progress: Some(seen.clone()),
            ..ladder(&[360, 240, 180, 90])
        };
        let r = ingest(store, db, m.as_path(), &o).await.expect(tdb.name);
        // The progress bar follows ffmpeg's `-progress` to the end of the master.
        let total = *seen.total.lock().expect("lock");
        assert!(
            matches!(total, Some(Some(t)) if (6900..=7100).contains(&t)),
            "a transcoding stage with the master's duration: {total:?}"
        );
        let done = seen.done_ms.load(Ordering::Relaxed);
        assert!((6500..=7200).contains(&done), "transcoded up to {done} ms");
        let c = check_ladder(store, &r, dir.path()).await;
        assert_eq!(
            c.renditions,
            vec![(0, 0, 4), (160, 90, 4), (320, 180, 4)],
            "{}",
            tdb.name
        );
        assert!(
            c.codecs.iter().any(|c| c.starts_with("avc1.64")),
            "{:?}",
            c.codecs
        );
        assert!(c.codecs.contains(&"mp4a.40.2".to_string()));
        assert!(c.multivariant.contains("TYPE=AUDIO,GROUP-ID=\"audio\""));
        assert!(c.multivariant.contains("AUDIO=\"audio\""));
        // The master's 25 frames a second, on every video variant and in the MPD.
        let variants = c.multivariant.matches("#EXT-X-STREAM-INF:").count();
        assert_eq!(variants, 2, "{}", c.multivariant);
        assert_eq!(
            c.multivariant.matches(",FRAME-RATE=25.000,").count(),
            variants,
            "{}",
            c.multivariant
        );
        assert_eq!(c.mpd.matches(" frameRate=\"25\"").count(), 2, "{}", c.mpd);
        // Committed with the title in its one transaction.
        let id = r.content_id.clone().expect("id");
        let content = db.content(&id).await.expect("content");
        assert_eq!(
            content.assets.len(),
            1 + 1 + r.ladder.len(),
            "source, poster, ladder"
        );
        let rows = db.renditions(&id).await.expect("renditions");
        assert_eq!(rows.len(), 3);
        assert!(rows
            .iter()
            .all(|row| row.bandwidth >= row.average_bandwidth && row.segments == 4));
        assert!(content.ladder_manifests().is_some());
        tdb.cleanup().await;
    }
}

#[tokio::test]
async fn awkward_masters_get_the_ladder_they_can_have() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let ts = keyframe_origin::testing::local();
    let tdb = keyframe_catalog::testing::sqlite().await.expect("db");
    let (store, db) = (&ts.store, &tdb.db);

    // Audio only (an M4A, and an MP4 with no video track): an audio-only ladder.
    for name in ["tone.m4a", "tone.mp4"] {
        let m = master(dir.path(), name, 5, "", &["-c:a", "aac"]);
        let r = ingest(store, db, m.as_path(), &ladder(&[180, 90]))
            .await
            .expect(name);
        let c = check_ladder(store, &r, dir.path()).await;
        assert_eq!(c.renditions, vec![(0, 0, 3)], "{name}");
        assert!(
            !c.multivariant.contains("EXT-X-MEDIA"),
            "{}",
            c.multivariant
        );
        assert!(c.multivariant.contains("CODECS=\"mp4a.40.2\""));
    }

    // Portrait: the short side is the rung.
    let m = master(
        dir.path(),
        "portrait.mp4",
        4,
        "180x320",
        &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    );
    let r = ingest(store, db, m.as_path(), &ladder(&[180, 90]))
        .await
        .expect("portrait");
    let c = check_ladder(store, &r, dir.path()).await;
    assert_eq!(videos(&c), vec![(90, 160, 2), (180, 320, 2)]);

    // Variable frame rate (frames dropped unevenly, timestamps kept).
    let m = master(
        dir.path(),
        "vfr.mp4",
        6,
        "320x180",
        &[
            "-vf",
            "select='not(eq(mod(n\\,7)\\,3))*not(eq(mod(n\\,5)\\,1))'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
    );
    let r = ingest(store, db, m.as_path(), &ladder(&[180, 90]))
        .await
        .expect("vfr");
    let c = check_ladder(store, &r, dir.path()).await;
    assert_eq!(videos(&c).len(), 2);

    // 10-bit HEVC: transcoded to 8-bit H.264.
    let m = master(
        dir.path(),
        "hevc10.mp4",
        4,
        "320x180",
        &[
            "-c:v",
            "libx265",
            "-pix_fmt",
            "yuv420p10le",
            "-x265-params",
            "log-level=error",
            "-c:a",
            "aac",
        ],
    );
    let r = ingest(store, db, m.as_path(), &ladder(&[180]))
        .await
        .expect("hevc");
    let c = check_ladder(store, &r, dir.path()).await;
    assert_eq!(videos(&c), vec![(320, 180, 2)]);
    assert!(c.codecs.iter().any(|c| c.starts_with("avc1.64")));
    tdb.cleanup().await;
}

#[tokio::test]
async fn a_bad_master_or_a_failed_rung_leaves_nothing_visible() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let ts = keyframe_origin::testing::local();
    let tdb = keyframe_catalog::testing::sqlite().await.expect("db");
    let (store, db) = (&ts.store, &tdb.db);
    let m = master(
        dir.path(),
        "whole.mp4",
        4,
        "320x180",
        &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    );
    let bytes = std::fs::read(&m).expect("read");
    let cut = file(dir.path(), "cut.mp4", &bytes[..bytes.len() / 2]);
    let e = ingest(store, db, cut.as_path(), &ladder(&[180]))
        .await
        .expect_err("a truncated master is refused");
    assert!(matches!(e, IngestError::Broken(_)), "{e}");

    // An encoder that fails (after probing succeeded): the title fails whole.
    let fake = dir.path().join("ffmpeg");
    std::fs::write(&fake, "#!/bin/sh\necho 'Conversion failed!' >&2\nexit 1\n").expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let scratch = tempfile::tempdir().expect("scratch");
    let o = IngestOptions {
        tools: Tools {
            ffmpeg: Some(fake),
            ..Tools::detect()
        },
        temp_dir: Some(scratch.path().to_path_buf()),
        ..ladder(&[180])
    };
    let e = ingest(store, db, m.as_path(), &o)
        .await
        .expect_err("a failed rung fails the title");
    assert!(matches!(e, IngestError::Transcode(_)), "{e}");
    assert!(e.to_string().contains("Conversion failed!"), "{e}");
    for table in ["content", "assets", "renditions"] {
        assert_eq!(count(db, table).await, 0, "no {table} rows");
    }
    assert!(keys(store, "sha256").await.is_empty(), "no objects stored");
    let leftovers = std::fs::read_dir(scratch.path()).expect("scratch").count();
    assert_eq!(leftovers, 0, "temporary files removed");

    // Without ffmpeg: progressive only, one warning.
    let o = IngestOptions {
        tools: Tools {
            ffmpeg: None,
            ..Tools::detect()
        },
        ..ladder(&[180])
    };
    let r = ingest(store, db, m.as_path(), &o)
        .await
        .expect("progressive");
    assert!(r.ladder.is_empty());
    assert!(
        r.warnings.iter().any(|w| w.contains("no adaptive ladder")),
        "{:?}",
        r.warnings
    );
    tdb.cleanup().await;
}
