//! The multi-region cluster of `deploy/cluster/cluster.sh`, end to end: PostgreSQL,
//! s3s-fs, two origins, a shield edge, regional edges `us`, `eu`, `ap` and the
//! catalog, started by the script from the built binary.
//!
//! Checks: playback from `eu` is sent to the `eu` edge and plays (206 for a range,
//! ffprobe reads the duration); a title licensed only for `us` is refused in `eu`
//! (451 at the catalog, 403 for its `us` token at the `eu` edge); the shield serves
//! one regional edge's miss as a hit to another; a purge reaches every edge; killing
//! one origin keeps playback working; with a `nats-server` on the machine (CI has
//! one), a watch event goes through the cluster's JetStream and folds.
//!
//! Needs PostgreSQL (`psql`, and the server of `KEYFRAME_TEST_DATABASE_URL` or
//! 127.0.0.1:5432) and `s3s-fs`: skipped without them, except under `CI=true`.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{missing, runs};
use reqwest::StatusCode;
use serde_json::{json, Value};

const REGION_HEADER: &str = "X-Keyframe-Region";
/// What a missing prerequisite skips (or, under `CI=true`, fails).
const SUITE: &str = "cluster test";

/// The PostgreSQL server URL without a database, from `KEYFRAME_TEST_DATABASE_URL`.
fn pg_server() -> String {
    let url = std::env::var("KEYFRAME_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", &url));
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

fn s3s_fs() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("S3S_FS") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    if runs("s3s-fs") {
        return Some(PathBuf::from("s3s-fs"));
    }
    let cache = std::env::var("KEYFRAME_CI_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/keyframe-ci")
        });
    let p = cache.join("s3s/bin/s3s-fs");
    p.is_file().then_some(p)
}

/// A cluster started by the script; `down --drop` on drop.
struct Cluster {
    dir: tempfile::TempDir,
    pg: String,
    db: String,
    s3s: PathBuf,
    env: HashMap<String, String>,
}

impl Cluster {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cluster/cluster.sh")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("bash");
        c.arg(Self::script()).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("KEYFRAME_") || k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.env("KEYFRAME_BIN", env!("CARGO_BIN_EXE_keyframe"))
            .env("KEYFRAME_CLUSTER_DIR", self.dir.path())
            .env("KEYFRAME_CLUSTER_PG", &self.pg)
            .env("KEYFRAME_CLUSTER_DB", &self.db)
            .env("S3S_FS", &self.s3s);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run cluster.sh");
        assert!(
            out.status.success(),
            "cluster.sh {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts the cluster, or `None` when a prerequisite is missing.
    fn up() -> Option<Cluster> {
        if !runs("psql") && missing("psql is not installed", SUITE) {
            return None;
        }
        let pg = pg_server();
        let reachable = Command::new("psql")
            .args(["-X", "-tAc", "SELECT 1", &format!("{pg}/postgres")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !reachable && missing(&format!("PostgreSQL is unreachable at {pg}"), SUITE) {
            return None;
        }
        if !runs("ffmpeg") && missing("ffmpeg is not installed", SUITE) {
            return None;
        }
        let s3s = match s3s_fs() {
            Some(p) => p,
            None => {
                missing("s3s-fs is not installed", SUITE);
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut c = Cluster {
            dir: tempfile::tempdir().expect("tempdir"),
            pg,
            db: format!("keyframe_cluster_{}_{nanos}", std::process::id()),
            s3s,
            env: HashMap::new(),
        };
        c.run(&["up"]);
        let text = std::fs::read_to_string(c.dir.path().join("cluster.env")).expect("state");
        c.env = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect();
        Some(c)
    }

    fn get(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from cluster.env"))
    }

    /// Ingests a generated clip; returns the ingest report and the clip's bytes.
    fn ingest(&self, args: &[&str]) -> (Value, Vec<u8>) {
        let mut all = vec!["ingest"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "ingest output is not one JSON object ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        let mut clips: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
            .collect();
        clips.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        let bytes = std::fs::read(clips.last().expect("a generated clip")).expect("clip");
        (report, bytes)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = self.command(&["down", "--drop"]).output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!("cluster.sh down: {}", String::from_utf8_lossy(&o.stderr));
            }
        }
    }
}

struct Viewer {
    http: reqwest::Client,
    catalog: String,
    session: String,
}

impl Viewer {
    async fn sign_up(http: &reqwest::Client, catalog: &str) -> Viewer {
        let user = json!({
            "username": "viewer",
            "password": "correct horse battery",
            "email": "viewer@example.com",
            "date_of_birth": "1990-01-01",
        });
        let r = http
            .post(format!("{catalog}/api/users"))
            .json(&user)
            .send()
            .await
            .expect("sign up");
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
        let r = http
            .post(format!("{catalog}/api/sessions"))
            .json(&json!({"username": "viewer", "password": "correct horse battery"}))
            .send()
            .await
            .expect("sign in");
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.expect("session");
        Viewer {
            http: http.clone(),
            catalog: catalog.to_string(),
            session: body["token"].as_str().expect("token").to_string(),
        }
    }

    /// `GET /api/content/{id}/play` from `region`: status and body.
    async fn play(&self, id: &str, region: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}/api/content/{id}/play", self.catalog))
            .bearer_auth(&self.session)
            .header(REGION_HEADER, region)
            .send()
            .await
            .expect("play");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// A ranged GET from a client in `region`.
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    region: &str,
    range: &str,
) -> (StatusCode, String, Vec<u8>) {
    let r = http
        .get(url)
        .header(REGION_HEADER, region)
        .header("Range", range)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status();
    let cache_status = r
        .headers()
        .get_all("cache-status")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let body = r.bytes().await.expect("body").to_vec();
    (status, cache_status, body)
}

/// This edge's own `Cache-Status` member: the last of the chain.
fn own(chain: &str) -> &str {
    chain.rsplit(", ").next().unwrap_or(chain)
}

/// The sum of a metric's samples whose line starts with `prefix` (0 if none).
async fn metric(http: &reqwest::Client, base: &str, prefix: &str) -> f64 {
    common::metric_sum(&common::metrics_text(http, base).await, prefix).unwrap_or(0.0)
}

/// Object-store reads an origin has made (health checks make none).
async fn origin_reads(http: &reqwest::Client, base: &str) -> f64 {
    metric(
        http,
        base,
        "keyframe_origin_storage_request_duration_seconds_count",
    )
    .await
}

fn ffprobe_duration(url: &str, region: &str) -> Option<f64> {
    if !runs("ffprobe") {
        eprintln!("ffprobe not installed: not probing through the edge");
        return None;
    }
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-headers"])
        .arg(format!("{REGION_HEADER}: {region}\r\n"))
        .args([
            "-show_entries",
            "format=duration",
            "-of",
            "default=noprint_wrappers=1:nokey=1",
            url,
        ])
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "ffprobe through the edge failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_region_cluster_on_one_machine() {
    let started = Instant::now();
    let Some(cluster) = Cluster::up() else {
        return;
    };
    eprintln!("cluster up in {:?}", started.elapsed());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let status = cluster.run(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    for name in [
        "s3", "origin-1", "origin-2", "shield", "edge-us", "edge-eu", "edge-ap", "catalog",
    ] {
        assert!(
            status
                .lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.contains(" up ")),
            "{name} is not up:\n{status}"
        );
    }

    let (everywhere, clip) = cluster.ingest(&["--title", "Everywhere"]);
    let (us_only, _) = cluster.ingest(&["--title", "US only", "--regions", "us"]);
    let id = everywhere["content_id"].as_str().expect("content_id");
    let path = everywhere["path"].as_str().expect("path").to_string();
    let us_id = us_only["content_id"].as_str().expect("content_id");
    assert_ne!(everywhere["key"], us_only["key"], "two different clips");

    let catalog = cluster.get("CATALOG_URL").to_string();
    let viewer = Viewer::sign_up(&http, &catalog).await;

    // Watch events go through the cluster's nats-server -js (when the machine has
    // one: CI does), and a watched title shows in the viewer's history.
    if cluster.env.contains_key("NATS_URL") {
        assert!(status
            .lines()
            .any(|l| l.starts_with("nats ") && l.contains(" up ")));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        let r = viewer
            .http
            .post(format!("{catalog}/api/history"))
            .bearer_auth(&viewer.session)
            .header(REGION_HEADER, "eu")
            .json(&json!({"events": [{"content_id": id, "session_id": "cluster", "seq": 0,
                "kind": "progress", "position_ms": 30_000, "duration_ms": 60_000, "at": now - 1000}]}))
            .send()
            .await
            .expect("history");
        assert_eq!(r.status(), StatusCode::OK);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let h: Value = viewer
                .http
                .get(format!("{catalog}/api/history"))
                .bearer_auth(&viewer.session)
                .send()
                .await
                .expect("history")
                .json()
                .await
                .expect("history json");
            if h["items"][0]["content"]["id"] == id {
                break;
            }
            assert!(Instant::now() < deadline, "the event never folded: {h}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(metric(&http, &catalog, "keyframe_events_folded_total").await >= 1.0);
    } else {
        assert!(
            std::env::var("CI").map(|v| v != "true").unwrap_or(true),
            "CI=true but the cluster started no nats-server"
        );
    }
    let edge_eu = cluster.get("EDGE_EU_URL");
    let edge_us = cluster.get("EDGE_US_URL");
    let edge_ap = cluster.get("EDGE_AP_URL");
    let shield = cluster.get("SHIELD_URL");

    // Playback from eu: sent to the eu edge, with a token, and it plays.
    let (st, play) = viewer.play(id, "eu").await;
    assert_eq!(st, StatusCode::OK, "{play}");
    assert_eq!(play["edge"], edge_eu, "{play}");
    assert_eq!(play["region"], "eu", "{play}");
    let eu_url = play["url"].as_str().expect("url").to_string();
    assert!(eu_url.starts_with(&format!("{edge_eu}{path}?")), "{eu_url}");
    assert!(eu_url.contains("__token__="), "{eu_url}");
    let hits_before = metric(
        &http,
        shield,
        "keyframe_edge_requests_total{cache_status=\"hit\"}",
    )
    .await;
    let (st, cs, body) = fetch(&http, &eu_url, "eu", "bytes=0-1023").await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT, "{cs}");
    assert_eq!(body, clip[..1024], "the eu edge serves the clip's bytes");
    if let Some(d) = ffprobe_duration(&eu_url, "eu") {
        assert!((d - 6.0).abs() < 0.5, "ffprobe duration {d}");
    }
    // Without a token, the edge refuses.
    let (st, _, _) = fetch(&http, &format!("{edge_eu}{path}"), "eu", "bytes=0-9").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "no token");

    // The shield serves eu's miss as a hit to ap.
    let (st, play_ap) = viewer.play(id, "ap").await;
    assert_eq!(st, StatusCode::OK, "{play_ap}");
    assert_eq!(play_ap["edge"], edge_ap);
    let ap_url = play_ap["url"].as_str().expect("url").to_string();
    let (st, cs, body) = fetch(&http, &ap_url, "ap", "bytes=0-1023").await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, clip[..1024]);
    assert!(
        !own(&cs).contains("; hit") && own(&cs).starts_with("keyframe-ap;"),
        "ap had never seen it: {cs}"
    );
    // RFC 9211: the shield's member comes first in the chain, and it was a hit.
    assert!(
        cs.starts_with("keyframe; hit"),
        "the shield's hit is not in the chain: {cs}"
    );
    let hits_after = metric(
        &http,
        shield,
        "keyframe_edge_requests_total{cache_status=\"hit\"}",
    )
    .await;
    assert!(
        hits_after > hits_before,
        "the shield answered ap from its cache (hits {hits_before} → {hits_after}; ap: {cs})"
    );
    // And ap now has it itself.
    let (_, cs, _) = fetch(&http, &ap_url, "ap", "bytes=0-1023").await;
    assert!(own(&cs).contains("; hit"), "ap's second request: {cs}");

    // Licensed only for us: 451 in eu; its us token is refused at the eu edge.
    let (st, refusal) = viewer.play(us_id, "eu").await;
    assert_eq!(st, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{refusal}");
    let (st, play_us) = viewer.play(us_id, "us").await;
    assert_eq!(st, StatusCode::OK, "{play_us}");
    assert_eq!(play_us["edge"], edge_us);
    let us_url = play_us["url"].as_str().expect("url").to_string();
    let (st, _, _) = fetch(&http, &us_url, "us", "bytes=0-99").await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT, "the us viewer plays it");
    let at_eu = us_url.replacen(edge_us, edge_eu, 1);
    let (st, _, body) = fetch(&http, &at_eu, "eu", "bytes=0-99").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "the us token at the eu edge");
    let err: Value = serde_json::from_slice(&body).expect("JSON error");
    assert_eq!(err["code"], "region", "{err}");

    // A purge reaches every edge: each drops the object, and the next request misses
    // all the way to an origin.
    let out = cluster.run(&["purge", &path]);
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    for (name, had_it) in [
        ("shield", true),
        ("edge-us", false),
        ("edge-eu", true),
        ("edge-ap", true),
    ] {
        let line = report
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no purge answer from {name}:\n{report}"));
        assert!(line.contains(" 200 "), "{line}");
        if had_it {
            assert!(
                !line.contains("\"purged\":0"),
                "{name} purged nothing: {line}"
            );
        }
    }
    let o1 = cluster.get("ORIGIN_1_URL").to_string();
    let o2 = cluster.get("ORIGIN_2_URL").to_string();
    let before = (
        origin_reads(&http, &o1).await,
        origin_reads(&http, &o2).await,
    );
    let (st, cs, body) = fetch(&http, &eu_url, "eu", "bytes=0-1023").await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, clip[..1024]);
    assert!(!own(&cs).contains("; hit"), "eu after the purge: {cs}");
    let after = (
        origin_reads(&http, &o1).await,
        origin_reads(&http, &o2).await,
    );
    assert!(
        after.0 > before.0 || after.1 > before.1,
        "after a purge of every edge, an origin was asked again"
    );

    // Killing one origin keeps playback working: stop the one that just read the
    // object (rendezvous hashing sends it there first), purge, and play again.
    let victim = if after.0 > before.0 {
        "origin-1"
    } else {
        "origin-2"
    };
    cluster.run(&["stop", victim]);
    cluster.run(&["purge", &path]);
    let (st, _, body) = fetch(&http, &eu_url, "eu", "bytes=1024-4095").await;
    assert_eq!(
        st,
        StatusCode::PARTIAL_CONTENT,
        "playback with {victim} down"
    );
    assert_eq!(body, clip[1024..4096]);
    let (st, _, body) = fetch(&http, &ap_url, "ap", "bytes=0-").await;
    assert!(st.is_success(), "ap with {victim} down: {st}");
    assert_eq!(body, clip, "the whole clip through ap with {victim} down");
    let status = cluster.run(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        !status.lines().any(|l| l.starts_with(&format!("{victim} "))),
        "{victim} is no longer recorded:\n{status}"
    );

    drop(cluster);
    eprintln!("cluster test took {:?}", started.elapsed());
}
