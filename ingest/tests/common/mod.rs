//! Shared helpers of the ingest suites: generated media, and looks at what a
//! store and a database hold.

#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use futures::TryStreamExt;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use keyframe_catalog::Db;
use keyframe_core::store::Store;
use object_store::path::Path as StorePath;
use object_store::ObjectStoreExt;
use sqlx::Row;

/// Whether ffmpeg and ffprobe can make and read test media. Under `CI=true` their
/// absence is a failure, so media assertions never pass by being skipped.
pub fn have_ffmpeg() -> bool {
    let found = keyframe_ingest::probe::find_on_path("ffmpeg").is_some()
        && keyframe_ingest::probe::find_on_path("ffprobe").is_some();
    if !found {
        assert!(
            std::env::var("CI").map(|v| v != "true").unwrap_or(true),
            "CI=true but ffmpeg/ffprobe are not on PATH: the media tests must run in CI"
        );
        eprintln!("ffmpeg is not on PATH: skipping media assertions");
    }
    found
}

/// A 2-second 320x240 test video with a sine tone (H.264 when libx264 exists,
/// MPEG-4 part 2 otherwise), with `moov` first or last. `None` without ffmpeg.
pub fn video(dir: &Path, faststart: bool) -> Option<PathBuf> {
    if !have_ffmpeg() {
        return None;
    }
    let encoders = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .expect("ffmpeg -encoders");
    let codec = if String::from_utf8_lossy(&encoders.stdout).contains("libx264") {
        "libx264"
    } else {
        "mpeg4"
    };
    let out = dir.join(if faststart { "fast.mp4" } else { "slow.mp4" });
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-nostdin", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=2:size=320x240:rate=25",
        ])
        .args(["-f", "lavfi", "-i", "sine=duration=2"])
        .args([
            "-c:v",
            codec,
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ]);
    if faststart {
        cmd.args(["-movflags", "+faststart"]);
    }
    let status = cmd.arg(&out).status().expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make the test video");
    Some(out)
}

/// A colourful test picture.
pub fn picture(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    }))
}

/// A picture encoded as PNG or JPEG.
pub fn encoded(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let mut v = Vec::new();
    picture(w, h)
        .write_to(&mut Cursor::new(&mut v), format)
        .expect("encode");
    v
}

/// Writes `bytes` to `dir/name`.
pub fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}

/// Every key under `prefix` (all keys when empty), sorted.
pub async fn keys(store: &Store, prefix: &str) -> Vec<String> {
    let p = (!prefix.is_empty()).then(|| StorePath::from(prefix));
    let mut v: Vec<String> = store
        .list(p.as_ref())
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    v.sort();
    v
}

/// An object's bytes.
pub async fn read(store: &Store, key: &str) -> Vec<u8> {
    store
        .get(&StorePath::from(key))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes")
        .to_vec()
}

/// Rows in a table.
pub async fn count(db: &Db, table: &str) -> i64 {
    let sql = match table {
        "content" => "SELECT COUNT(*) FROM content",
        "assets" => "SELECT COUNT(*) FROM assets",
        "rights" => "SELECT COUNT(*) FROM rights",
        other => panic!("no count for {other}"),
    };
    sqlx::query(sql)
        .fetch_one(db.pool())
        .await
        .expect("count")
        .try_get::<i64, _>(0)
        .expect("count value")
}

/// Makes every insert into `assets` fail, so a content commit fails midway.
pub async fn break_asset_inserts(db: &Db) {
    use keyframe_catalog::Backend;
    let sql = match db.backend() {
        Backend::Sqlite => {
            "CREATE TRIGGER kf_fail_assets BEFORE INSERT ON assets \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION kf_fail_assets() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER kf_fail_assets BEFORE INSERT ON assets \
             FOR EACH ROW EXECUTE FUNCTION kf_fail_assets();"
        }
    };
    sqlx::raw_sql(sql)
        .execute(db.pool())
        .await
        .expect("install trigger");
}

/// The SHA-256 of bytes, as lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
