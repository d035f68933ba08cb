//! Ingest in a child process: killed with SIGKILL mid-upload it leaves no content
//! row and nothing at a content key, only a temporary marker that `gc` finds; and
//! a large file ingests within the memory budget. The child is this same test
//! binary, run on one test with `KEYFRAME_INGEST_CHILD` set.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::stream;
use keyframe_ingest::{gc, ingest, IngestOptions, Progress, Source, Stage, Tools};

const CHILD: &str = "KEYFRAME_INGEST_CHILD";

/// Prints bytes uploaded so far, one line each, for the parent to watch.
struct Printer;

impl Progress for Printer {
    fn stage(&self, _: Stage) {}
    fn bytes(&self, done: u64) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "PROGRESS {done}");
        let _ = out.flush();
    }
}

/// Peak resident memory of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// The child's side: does nothing unless the parent asked for it.
#[tokio::test]
async fn child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    let store = keyframe_origin::store::open(&std::env::var("KF_STORE").expect("store"))
        .expect("open store");
    let db = keyframe_catalog::Db::connect(&std::env::var("KF_DB").expect("db"))
        .await
        .expect("db");
    match mode.as_str() {
        "crash" => {
            // An endless, slow stream: the parent kills us while it uploads.
            let endless = stream::unfold(0u64, |i| async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                Some((Ok(Bytes::from(vec![(i % 251) as u8; 1 << 20])), i + 1))
            });
            let opts = IngestOptions {
                tools: Tools::none(),
                progress: Some(Arc::new(Printer)),
                ..IngestOptions::default()
            };
            let r = ingest(&store, &db, Source::stream(endless), &opts).await;
            panic!("the endless ingest ended: {r:?}");
        }
        "rss" => {
            let file = std::env::var("KF_FILE").expect("file");
            let opts = IngestOptions {
                tools: Tools::none(),
                ..IngestOptions::default()
            };
            let r = ingest(&store, &db, std::path::Path::new(&file), &opts)
                .await
                .expect("ingest");
            println!("SIZE {}", r.asset.size);
            println!(
                "CHEAP_MOVES {}",
                u64::from(keyframe_ingest::objects::moves_are_cheap(&store))
            );
            println!("VMHWM {}", peak_rss_kib());
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Every file under `root`, as a path relative to it.
fn files_under(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

fn child_command(mode: &str, store_url: &str, db_url: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.arg(common::test_name(module_path!(), "child"))
        .args(["--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .env("KF_STORE", store_url)
        .env("KF_DB", db_url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

#[tokio::test]
async fn kill_9_mid_upload_leaves_nothing_visible_and_gc_finds_the_orphan() {
    let ts = keyframe_origin::testing::local();
    let tdb = keyframe_catalog::testing::sqlite().await.expect("db");
    let mut child = child_command("crash", &ts.url, &tdb.url)
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let uploaded = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("child output");
            if let Some(n) = line.strip_prefix("PROGRESS ") {
                let n: u64 = n.parse().expect("number");
                // Several 8 MiB parts are written by now, and more are in flight.
                if n >= 40 << 20 {
                    return n;
                }
            }
        }
        panic!("the child stopped before uploading 40 MiB");
    })
    .await
    .expect("reader");
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed after {uploaded} bytes: {status}");

    // The database and the store, as another process finds them.
    let db = &tdb.db;
    assert_eq!(count(db, "content").await, 0);
    assert_eq!(count(db, "assets").await, 0);
    assert!(keys(&ts.store, "sha256").await.is_empty(), "no content key");
    let tmp = keys(&ts.store, "tmp").await;
    assert_eq!(tmp.len(), 1, "the upload's marker: {tmp:?}");
    // On disk, besides the marker: the partial upload, staged as `tmp/<uuid>#<n>`,
    // which the store's listings hide.
    let root = keyframe_origin::store::local_root(&ts.url).expect("a file store");
    let on_disk = files_under(&root);
    let staged: Vec<_> = on_disk.iter().filter(|f| f.contains('#')).collect();
    assert_eq!(staged.len(), 1, "the partial upload: {on_disk:?}");
    assert!(
        staged[0].starts_with(&format!("{}#", tmp[0])),
        "{on_disk:?}"
    );

    let young = gc(&ts.store, db, Duration::from_secs(3600), true)
        .await
        .expect("gc");
    assert!(young.orphans.is_empty(), "within the grace period");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let found = gc(&ts.store, db, Duration::from_secs(1), false)
        .await
        .expect("gc");
    let mut keys_found: Vec<_> = found.orphans.iter().map(|o| o.key.clone()).collect();
    keys_found.sort();
    let mut expected = on_disk.clone();
    expected.sort();
    assert_eq!(keys_found, expected, "the marker and the partial upload");
    assert!(
        found.orphan_bytes >= 8 << 20,
        "the partial upload's bytes count: {found:?}"
    );
    let deleted = gc(&ts.store, db, Duration::from_secs(1), true)
        .await
        .expect("gc");
    assert_eq!(deleted.deleted, 2, "{deleted:?}");
    assert!(keys(&ts.store, "").await.is_empty());
    let left = files_under(&root);
    assert!(left.is_empty(), "gc left staged bytes behind: {left:?}");
    tdb.cleanup().await;
}

#[tokio::test]
async fn a_large_file_ingests_within_the_memory_budget() {
    const SIZE: usize = 256 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("large.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        let block: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for i in 0..SIZE / block.len() {
            let mut b = block.clone();
            b[0] = i as u8;
            f.write_all(&b).expect("write");
        }
        f.flush().expect("flush");
    }
    // Local disk (staged, then renamed) and, when configured, S3 (hashed first,
    // then one multipart upload straight to the content key).
    let local = keyframe_origin::testing::local();
    let mut stores = vec![("local", local.url.clone())];
    if let Some(url) = keyframe_origin::testing::s3_url() {
        stores.push(("s3", url));
    }
    for (name, url) in stores {
        let tdb = keyframe_catalog::testing::sqlite().await.expect("db");
        let out = child_command("rss", &url, &tdb.url)
            .env("KF_FILE", &path)
            .output()
            .expect("child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: child failed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value = |what: &str| -> u64 {
            stdout
                .lines()
                .find_map(|l| l.split_once(what).map(|(_, v)| v))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{name}: no {what} in {stdout}"))
        };
        assert_eq!(value("SIZE "), SIZE as u64);
        assert_eq!(value("CHEAP_MOVES "), u64::from(name == "local"), "{name}");
        let peak_mib = value("VMHWM ") / 1024;
        assert!(
            peak_mib <= 100,
            "{name}: peak RSS {peak_mib} MiB for a {} MiB file",
            SIZE >> 20
        );
        eprintln!(
            "{name}: peak RSS {peak_mib} MiB ingesting {} MiB",
            SIZE >> 20
        );
        assert_eq!(count(&tdb.db, "content").await, 1);
        tdb.cleanup().await;
    }
}
