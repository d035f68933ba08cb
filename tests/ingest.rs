//! `keyframe ingest`, `keyframe gc` and `keyframe recommend` as an admin runs them:
//! files into the default store and database, one error line per bad file while
//! the others go on, the bytes served by the origin, deduplication, and remote
//! mode streaming to a running catalog.

use crate::common;

use std::path::Path;

use common::{keyframe, serve_node, Running};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn run(data: &Path, args: &[&str]) -> (i32, String, String) {
    let out = keyframe()
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("run keyframe");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bytes(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

fn path_of(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn ingest_serves_dedupes_and_reports_bad_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let good = tmp.path().join("clip.bin");
    let body = bytes(3 << 20, 7);
    std::fs::write(&good, &body).expect("write");
    let missing = tmp.path().join("missing.mp4");

    let (code, out, err) = run(
        &data,
        &[
            "ingest",
            "--json",
            "--title",
            "Clip",
            "--category",
            "demo",
            "--regions",
            "eu,us",
            good.to_str().expect("utf8"),
            missing.to_str().expect("utf8"),
        ],
    );
    assert_eq!(code, 1, "one file failed: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("missing.mp4"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    let r = &lines[0];
    let sha = hex::encode(Sha256::digest(&body));
    assert_eq!(r["sha256"], sha.as_str());
    assert_eq!(r["size"], body.len() as u64);
    assert_eq!(r["already_stored"], false);
    let key = r["key"].as_str().expect("key");
    assert!(
        key.starts_with(&format!("sha256/{}/{sha}", &sha[..2])),
        "{key}"
    );
    assert_eq!(r["path"], format!("/v1/objects/{key}").as_str());
    assert!(r["content_id"].is_string(), "{r}");

    // The same bytes again: a new title, no new object.
    let (code, out, err) = run(&data, &["ingest", "--json", good.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    let again = &json_lines(&out)[0];
    assert_eq!(again["key"], key);
    assert_eq!(again["already_stored"], true);
    assert_ne!(again["content_id"], r["content_id"]);

    // Nothing unreferenced is left behind.
    let (code, out, err) = run(&data, &["gc", "--grace", "0s", "--json"]);
    assert_eq!(code, 0, "{err}");
    let gc: Value = serde_json::from_str(out.trim()).expect("gc json");
    assert_eq!(gc["orphans"], serde_json::json!([]), "{gc}");

    // The origin serves the ingested bytes at the reported path.
    let mut cmd = keyframe();
    cmd.arg("--data-dir")
        .arg(&data)
        .args(["origin", "--listen", "127.0.0.1:0"]);
    let origin = Running::start(cmd, 1);
    let got = reqwest::get(format!(
        "{}{}",
        origin.url("origin"),
        r["path"].as_str().expect("path")
    ))
    .await
    .expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("body").as_ref(), body.as_slice());

    // `keyframe bench` takes `ingest --json` output as its manifest and checks
    // every whole object it fetches against the manifest's SHA-256.
    let manifest = tmp.path().join("manifest.jsonl");
    std::fs::write(&manifest, format!("{r}\n")).expect("manifest");
    let out = keyframe()
        .args([
            "bench",
            "whole",
            "--url",
            origin.url("origin"),
            "--manifest",
        ])
        .arg(&manifest)
        .args([
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--concurrency",
            "2",
            "--verify-sample",
            "1",
            "--json",
        ])
        .output()
        .expect("bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(text.trim()).expect("bench json");
    assert!(
        report["requests"].as_u64().expect("requests") > 0,
        "{report}"
    );
    assert_eq!(report["errors"], 0, "{report}");

    // The batch runs on what is there (no history yet: an empty generation).
    let (code, out, err) = run(&data, &["recommend", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(out.trim()).expect("report");
    assert!(
        report["generation"].as_i64().expect("generation") >= 1,
        "{report}"
    );
    assert_eq!(report["engine"], "local");
    let (code, _, err) = run(&data, &["recommend", "--engine", "quantum"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[tokio::test]
async fn remote_ingest_streams_to_the_catalog() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("node");
    let node = Running::start(
        serve_node(&data, &["--admin-token", "s3cret-admin-token"]),
        3,
    );
    let file = tmp.path().join("upload.bin");
    let body = bytes(5 << 20, 11);
    std::fs::write(&file, &body).expect("write");
    let elsewhere = tmp.path().join("admin");

    let (code, out, err) = run(
        &elsewhere,
        &[
            "ingest",
            "--json",
            "--server",
            node.url("catalog"),
            "--admin-token",
            "s3cret-admin-token",
            "--title",
            "Remote",
            file.to_str().expect("utf8"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let r = &json_lines(&out)[0];
    assert_eq!(r["sha256"], hex::encode(Sha256::digest(&body)).as_str());
    assert_eq!(r["size"], body.len() as u64);
    // The catalog's node stored it: its edge serves the bytes.
    let got = reqwest::get(format!(
        "{}{}",
        node.url("edge"),
        r["path"].as_str().expect("path")
    ))
    .await
    .expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("body").as_ref(), body.as_slice());
    // The title is in the catalog with its metadata.
    let id = r["content_id"].as_str().expect("id");
    let detail: Value = reqwest::Client::new()
        .get(format!("{}/api/content/{id}", node.url("catalog")))
        .send()
        .await
        .expect("detail")
        .json()
        .await
        .expect("json");
    assert_eq!(detail["title"], "Remote", "{detail}");
    assert!(
        !elsewhere.join("keyframe.db").exists(),
        "remote mode wrote locally"
    );

    // The same output as a local ingest: the same JSON fields, the same line.
    let local = tmp.path().join("local");
    let (code, out, err) = run(
        &local,
        &["ingest", "--json", "--title", "Remote", path_of(&file)],
    );
    assert_eq!(code, 0, "{err}");
    let l = &json_lines(&out)[0];
    let fields =
        |v: &Value| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
    assert_eq!(fields(r), fields(l), "remote {r}\nlocal {l}");
    for same in [
        "key", "size", "sha256", "mime", "path", "title", "kind", "warnings", "assets",
    ] {
        assert_eq!(r[same], l[same], "{same}");
    }
    let text = |data: &Path, extra: &[&str]| {
        let args = [&["ingest"][..], extra, &[path_of(&file)]].concat();
        let (code, out, err) = run(data, &args);
        assert_eq!(code, 0, "{err}");
        // Content ids differ; everything else must not.
        let id = out
            .split("content ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .expect("id");
        out.replace(id, "ID")
    };
    let remote_line = text(
        &elsewhere,
        &[
            "--server",
            node.url("catalog"),
            "--admin-token",
            "s3cret-admin-token",
        ],
    );
    assert_eq!(remote_line, text(&local, &[]));

    // A wrong token, a bad parameter, a server that is not there, and a missing
    // token: one line each, nothing on stdout, exit 1.
    let catalog = node.url("catalog");
    let path = file.to_str().expect("utf8");
    let admin = ["--admin-token", "s3cret-admin-token"];
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["--server", catalog, "--admin-token", "wrong"], "401"),
        (
            [
                &["--server", catalog][..],
                &admin,
                &["--regions", "not a region"],
            ]
            .concat(),
            "422",
        ),
        (
            vec!["--server", "http://127.0.0.1:1", "--admin-token", "t"],
            "cannot reach",
        ),
        (vec!["--server", catalog], "--admin-token"),
    ];
    for (flags, needle) in cases {
        let args = [&["ingest"][..], &flags, &[path]].concat();
        let (code, out, err) = run(&elsewhere, &args);
        // A missing token is a usage error; the others fail at run time.
        let expected = if needle == "--admin-token" { 2 } else { 1 };
        assert_eq!(code, expected, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // The catalog's pipeline refuses broken media as a local ingest does.
    let noise = tmp.path().join("noise.mp4");
    std::fs::write(&noise, bytes(5000, 3)).expect("write");
    let args = [
        &["ingest", "--server", catalog][..],
        &admin,
        &[path_of(&noise)],
    ]
    .concat();
    let (code, out, err) = run(&elsewhere, &args);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("422") && err.contains("not playable media"),
        "{err}"
    );
}

/// Media that does not decode is refused with one line and exit 1 (or, with
/// `--allow-broken`, stored as `other` with a warning), and warnings are the same
/// in `--json` as on stderr. Re-ingesting identical bytes says so, and
/// `--if-new` makes no second title.
#[test]
fn broken_media_is_refused_and_warnings_reach_json() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let noise = tmp.path().join("noise.mp4");
    std::fs::write(&noise, bytes(5000, 3)).expect("write");
    let (code, out, err) = run(&data, &["ingest", path_of(&noise)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("noise.mp4"),
        "{err}"
    );

    let (code, out, err) = run(
        &data,
        &["ingest", "--json", "--allow-broken", path_of(&noise)],
    );
    assert_eq!(code, 0, "{err}");
    let r = &json_lines(&out)[0];
    assert_eq!(r["kind"], "other", "{r}");
    let warnings: Vec<String> = r["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| {
            format!(
                "warning: {}: {}",
                path_of(&noise),
                w.as_str().expect("text")
            )
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{r}");
    let stderr: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(stderr, warnings, "stderr and --json differ");

    // The same bytes again: said, and with --if-new, no new title.
    let (code, out, err) = run(
        &data,
        &["ingest", "--json", "--allow-broken", path_of(&noise)],
    );
    assert_eq!(code, 0, "{err}");
    let again = &json_lines(&out)[0];
    assert_eq!(
        again["same_bytes_as"],
        serde_json::json!([r["content_id"]]),
        "{again}"
    );
    assert!(err.contains("same bytes as title"), "{err}");
    let (code, out, err) = run(
        &data,
        &["ingest", "--allow-broken", "--if-new", path_of(&noise)],
    );
    assert_eq!(code, 0, "{err}");
    let first = r["content_id"].as_str().expect("id");
    assert!(
        out.contains(&format!("already content {first} (skipped)")),
        "{out}"
    );

    if !common::have_tools(&["ffmpeg", "ffprobe"], "broken-media CLI test") {
        return;
    }
    let video = tmp.path().join("slow.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=duration=2:size=160x120:rate=10")
        .args(["-c:v", "mpeg4", "-f", "mp4"])
        .arg(&video)
        .status()
        .expect("ffmpeg");
    assert!(made.success());
    let whole = std::fs::read(&video).expect("read");
    let cut = tmp.path().join("cut.mp4");
    std::fs::write(&cut, &whole[..100]).expect("write");
    let (code, out, err) = run(&data, &["ingest", "--json", path_of(&cut)]);
    assert_eq!(code, 1, "a cut MP4 was accepted: {out}");
    assert!(err.contains("cut.mp4"), "{err}");

    // moov at the end (ffmpeg's default) is a warning in --json as on stderr.
    let (code, out, err) = run(&data, &["ingest", "--json", path_of(&video)]);
    assert_eq!(code, 0, "{err}");
    let r = &json_lines(&out)[0];
    assert_eq!(r["kind"], "video", "{r}");
    let moov: Vec<&Value> = r["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter(|w| w.as_str().is_some_and(|w| w.starts_with("moov at the end")))
        .collect();
    assert_eq!(moov.len(), 1, "{r}");
    assert!(
        err.contains(&format!(
            "warning: {}: {}",
            path_of(&video),
            moov[0].as_str().expect("text")
        )),
        "{err}"
    );
}

/// A title ingested with `--regions eu` says where it plays, is refused by a plain
/// `serve` (its one region is `local`) and plays, through the node's edge, on
/// `serve --region eu`.
#[tokio::test]
async fn a_region_title_plays_on_a_node_of_that_region() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let file = tmp.path().join("clip.bin");
    let body = bytes(64 << 10, 5);
    std::fs::write(&file, &body).expect("write");
    let (code, out, err) = run(
        &data,
        &["ingest", "--json", "--regions", "eu", path_of(&file)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("playable only in region(s) eu"), "{err}");
    let id = json_lines(&out)[0]["content_id"]
        .as_str()
        .expect("id")
        .to_string();
    for (region, status) in [(None, 451), (Some("eu"), 200)] {
        let mut cmd = serve_node(&data, &[]);
        if let Some(r) = region {
            cmd.args(["--region", r]);
        }
        cmd.env("KEYFRAME_PUBLIC_CONTENT", "true");
        let node = Running::start(cmd, 3);
        let r = reqwest::get(format!("{}/api/content/{id}/play", node.url("catalog")))
            .await
            .expect("play");
        assert_eq!(r.status().as_u16(), status, "region {region:?}");
        let v: Value = r.json().await.expect("json");
        if status == 200 {
            assert_eq!(v["region"], "eu", "{v}");
            let got = reqwest::get(v["url"].as_str().expect("url"))
                .await
                .expect("get");
            assert_eq!(got.status(), 200, "{v}");
            assert_eq!(got.bytes().await.expect("body").as_ref(), body.as_slice());
        } else {
            assert_eq!(v["code"], "unavailable_in_region", "{v}");
        }
        assert!(node.terminate().success());
    }
}

/// `ingest --server` makes the same ladder as a local ingest: the catalog's upload
/// runs the pipeline with the `--ladder` the client asked for (its temporary files
/// under the node's data dir), and the node's edge serves the multivariant
/// playlist.
#[tokio::test]
async fn remote_ingest_makes_the_ladder_too() {
    if !common::have_tools(&["ffmpeg", "ffprobe"], "remote ladder test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let clip = tmp.path().join("clip.mp4");
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=duration=3:size=320x180:rate=25")
        .args(["-f", "lavfi", "-i", "sine=duration=3", "-c:v", "libx264"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"])
        .arg(&clip)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    // The upload's temporary files go under the data dir, never the system's
    // (here unusable); what a crash left there is removed when the server starts.
    let data = tmp.path().join("node");
    let stale = data.join("tmp/uploads/keyframe-ingest-stale");
    std::fs::create_dir_all(&stale).expect("stale dir");
    std::fs::write(stale.join("input"), b"left by a crash").expect("stale file");
    let mut cmd = serve_node(&data, &["--admin-token", "s3cret-admin-token"]);
    cmd.env("TMPDIR", tmp.path().join("no-such-dir"));
    let node = Running::start(cmd, 3);
    // (The listen lines come as the sockets are bound, just before the catalog
    // sets its uploads up.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stale.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!stale.exists(), "stale upload files are removed at start");
    let roles = |out: &str| -> (Vec<String>, Value) {
        let r = json_lines(out).remove(0);
        let mut roles: Vec<String> = r["ladder"]
            .as_array()
            .expect("ladder")
            .iter()
            .map(|a| a["role"].as_str().expect("role").to_string())
            .collect();
        roles.sort();
        (roles, r)
    };
    let (code, out, err) = run(
        &tmp.path().join("admin"),
        &[
            "ingest",
            "--json",
            "--ladder",
            "90",
            "--server",
            node.url("catalog"),
            "--admin-token",
            "s3cret-admin-token",
            path_of(&clip),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (remote, r) = roles(&out);
    let (code, out, err) = run(
        &tmp.path().join("local"),
        &["ingest", "--json", "--ladder", "90", path_of(&clip)],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(remote, roles(&out).0);
    assert_eq!(
        remote,
        [
            "dash",
            "hls",
            "hls-media",
            "hls-media",
            "rendition",
            "rendition"
        ]
    );
    let hls = r["ladder"]
        .as_array()
        .expect("ladder")
        .iter()
        .find(|a| a["role"] == "hls")
        .and_then(|a| a["path"].as_str())
        .expect("hls")
        .to_string();
    let got = reqwest::get(format!("{}{hls}", node.url("edge")))
        .await
        .expect("get");
    assert_eq!(got.status(), 200);
    assert!(got.text().await.expect("text").starts_with("#EXTM3U\n"));
    let left: Vec<_> = std::fs::read_dir(data.join("tmp/uploads"))
        .expect("the uploads' temp dir")
        .collect();
    assert!(left.is_empty(), "temp files outlived the upload: {left:?}");
    assert!(node.terminate().success());
}
