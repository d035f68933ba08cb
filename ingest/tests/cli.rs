//! `run_cli` and `run_gc` as the binary runs them: in a child process (this test
//! binary, on one test with `KEYFRAME_INGEST_CLI` set) whose stdout and stderr are
//! pipes, so the output is exactly what a script would see.

use crate::common;

use std::process::{Command, Stdio};

use clap::Parser;
use common::*;
use image::ImageFormat;
use keyframe_ingest::{run_cli, run_gc, GcArgs, IngestArgs};

const CHILD: &str = "KEYFRAME_INGEST_CLI";

#[derive(Parser)]
struct Cmd {
    #[command(subcommand)]
    sub: Sub,
}

#[derive(clap::Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Sub {
    Ingest(IngestArgs),
    Gc(GcArgs),
}

/// The child's side: parses the arguments it is given and runs the command.
#[tokio::test]
async fn child() {
    let Ok(args) = std::env::var(CHILD) else {
        return;
    };
    let store = keyframe_origin::store::open(&std::env::var("KF_STORE").expect("store"))
        .expect("open store");
    let db = keyframe_catalog::Db::connect(&std::env::var("KF_DB").expect("db"))
        .await
        .expect("db");
    // As `keyframe` does on start.
    db.migrate().await.expect("migrate");
    let argv = std::iter::once("keyframe").chain(args.split('\u{1f}'));
    let ok = match Cmd::parse_from(argv).sub {
        Sub::Ingest(a) => run_cli(a, store, db).await,
        Sub::Gc(a) => run_gc(a, store, db).await,
    };
    std::process::exit(if ok { 0 } else { 1 });
}

struct Run {
    ok: bool,
    /// Lines of stdout that the command printed (libtest's own lines removed).
    stdout: Vec<String>,
    stderr: Vec<String>,
}

fn run(args: &[&str], store_url: &str, db_url: &str) -> Run {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            common::test_name(module_path!(), "child").as_str(),
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ])
        .env(CHILD, args.join("\u{1f}"))
        .env("KF_STORE", store_url)
        .env("KF_DB", db_url)
        .stdin(Stdio::null())
        .output()
        .expect("run child");
    let lines = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .map(|l| l.trim_start_matches("running 1 test").to_string())
            .filter(|l| !l.trim().is_empty())
            .collect()
    };
    Run {
        ok: out.status.success(),
        stdout: lines(&out.stdout),
        stderr: lines(&out.stderr),
    }
}

#[tokio::test]
async fn a_batch_with_bad_files_ingests_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = file(dir.path(), "good.bin", b"good bytes");
    let picture = file(
        dir.path(),
        "picture.png",
        &encoded(200, 100, ImageFormat::Png),
    );
    let empty = file(dir.path(), "empty.bin", b"");
    let mut broken = encoded(200, 100, ImageFormat::Png);
    broken.truncate(broken.len() / 2);
    let corrupt = file(dir.path(), "corrupt.png", &broken);
    let missing = dir.path().join("missing.mp4");
    let sub = dir.path().join("a-directory");
    std::fs::create_dir(&sub).expect("mkdir");
    let ts = keyframe_origin::testing::local();
    let tdb = keyframe_catalog::testing::sqlite().await.expect("db");
    let p = |p: &std::path::Path| p.display().to_string();
    let files = [
        p(&good),
        p(&missing),
        p(&sub),
        p(&empty),
        p(&corrupt),
        p(&picture),
    ];
    let mut args = vec!["ingest", "--json", "--category", "test"];
    args.extend(files.iter().map(String::as_str));
    let r = run(&args, &ts.url, &tdb.url);
    assert!(!r.ok, "bad files make the exit status non-zero");
    // One clear line per bad file, nothing else (no progress bar off a terminal).
    assert_eq!(r.stderr.len(), 4, "{:#?}", r.stderr);
    for (line, (file, why)) in r.stderr.iter().zip([
        (&files[1], "cannot read"),
        (&files[2], "is a directory"),
        (&files[3], "empty"),
        (&files[4], "corrupt"),
    ]) {
        assert!(line.starts_with(&format!("error: {file}: ")), "{line}");
        assert!(line.contains(why), "{line}");
    }
    assert_eq!(r.stdout.len(), 2, "{:#?}", r.stdout);
    let objects: Vec<serde_json::Value> = r
        .stdout
        .iter()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    for (o, (file, mime)) in objects.iter().zip([
        (&files[0], "application/octet-stream"),
        (&files[5], "image/png"),
    ]) {
        assert_eq!(o["file"], file.as_str());
        assert_eq!(o["mime"], mime);
        let key = o["key"].as_str().expect("key");
        assert_eq!(o["path"], format!("/v1/objects/{key}"));
        assert_eq!(o["sha256"].as_str().map(str::len), Some(64));
        assert!(o["size"].as_i64().is_some_and(|s| s > 0));
        let id = o["content_id"].as_str().expect("content_id");
        let c = tdb.db.content(id).await.expect("committed");
        assert_eq!(c.categories, vec!["test"]);
    }
    assert_eq!(objects[1]["width"], 200);
    assert_eq!(objects[1]["assets"].as_array().map(Vec::len), Some(3));
    assert_eq!(count(&tdb.db, "content").await, 2);

    // Readable lines without --json; all good means success.
    let r = run(
        &["ingest", "--title", "Again", &files[0], &files[5]],
        &ts.url,
        &tdb.url,
    );
    assert!(r.ok, "{:?}", r.stderr);
    assert_eq!(r.stdout.len(), 2, "{:?}", r.stdout);
    assert!(
        r.stdout[0].starts_with(&format!("{}: content ", files[0])),
        "{}",
        r.stdout[0]
    );
    assert!(
        r.stdout[0].contains("bytes already stored"),
        "{}",
        r.stdout[0]
    );
    assert!(r.stdout[1].contains("200x100"), "{}", r.stdout[1]);
    assert!(
        r.stderr.iter().all(|l| l.starts_with("warning: ")),
        "{:?}",
        r.stderr
    );
    tdb.cleanup().await;
}

#[tokio::test]
async fn avatar_and_gc_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let me = file(dir.path(), "me.jpg", &encoded(150, 150, ImageFormat::Jpeg));
    let text = file(dir.path(), "notes.txt", b"not an image");
    let ts = keyframe_origin::testing::local();
    let tdb = keyframe_catalog::testing::sqlite().await.expect("db");
    let user = tdb
        .db
        .create_user("grace", "grace@example.com", "x", None)
        .await
        .expect("user");
    let me_s = me.display().to_string();
    let r = run(
        &["ingest", "--avatar", "grace", "--json", &me_s],
        &ts.url,
        &tdb.url,
    );
    assert!(r.ok, "{:?}", r.stderr);
    let o: serde_json::Value = serde_json::from_str(&r.stdout[0]).expect("json");
    assert_eq!(o["user_id"], user.id.as_str());
    assert_eq!(o["content_id"], serde_json::Value::Null);
    assert_eq!(o["mime"], "image/jpeg");
    assert_eq!(tdb.db.user_assets(&user.id).await.expect("assets").len(), 4);

    let text_s = text.display().to_string();
    let r = run(&["ingest", "--avatar", "grace", &text_s], &ts.url, &tdb.url);
    assert!(!r.ok);
    assert_eq!(r.stderr.len(), 1, "{:?}", r.stderr);
    assert!(r.stderr[0].contains("unsupported type"), "{}", r.stderr[0]);
    let r = run(
        &["ingest", "--avatar", "grace", &me_s, &me_s],
        &ts.url,
        &tdb.url,
    );
    assert!(!r.ok);
    assert!(r.stderr[0].contains("exactly one"), "{:?}", r.stderr);
    let r = run(&["ingest", "--avatar", "nobody", &me_s], &ts.url, &tdb.url);
    assert!(!r.ok);
    assert!(
        r.stderr[0].contains("no user named 'nobody'"),
        "{:?}",
        r.stderr
    );

    // Nothing unreferenced: gc lists nothing and succeeds.
    let r = run(&["gc", "--grace", "0", "--json"], &ts.url, &tdb.url);
    assert!(r.ok, "{:?}", r.stderr);
    let o: serde_json::Value = serde_json::from_str(&r.stdout[0]).expect("json");
    assert_eq!(o["orphans"].as_array().map(Vec::len), Some(0));
    assert_eq!(o["scanned"], 4);
    let r = run(&["gc"], &ts.url, &tdb.url);
    assert!(r.ok);
    assert!(
        r.stdout[0].starts_with("0 unreferenced object(s) older than 24h"),
        "{:?}",
        r.stdout
    );
    tdb.cleanup().await;
}
