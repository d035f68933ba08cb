//! `keyframe recommend` on a real Ballista cluster (a scheduler and two executors
//! started from the `keyframe` binary's `ballista` commands on loopback) gives the
//! local engine's lists on the same synthetic history (`keyframe bench
//! history-synth`); with nothing listening at the scheduler address it fails with
//! one line and leaves the current generation alone. The catalog's schedule runs
//! the DataFusion engine as well.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use keyframe_catalog::recommend::{self, Recommended};

use crate::common::{keyframe, Running};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Two consecutive free ports (an executor's Flight and gRPC ports).
fn free_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(args: &[&str]) -> Output {
    keyframe().args(args).output().expect("run keyframe")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "keyframe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn lists(
    db_url: &str,
    titles: usize,
    users: usize,
) -> (Option<i64>, BTreeMap<String, Vec<Recommended>>) {
    let db = keyframe_catalog::Db::connect(db_url).await.expect("db");
    let subjects = (0..titles)
        .map(|i| recommend::item_subject(&format!("synth-t{i:07}")))
        .chain((0..users).map(|i| recommend::user_subject(&format!("synth-u{i:08}"))));
    let mut out = BTreeMap::new();
    for s in subjects {
        out.insert(
            s.clone(),
            recommend::current_list(&db, &s, 1000).await.expect("list"),
        );
    }
    let generation = recommend::current_generation(&db)
        .await
        .expect("generation");
    db.close().await;
    (generation, out)
}

fn executor(scheduler: u16, port: u16, work: &Path) -> Running {
    let mut cmd = keyframe();
    cmd.args(["ballista", "executor", "--scheduler"])
        .arg(format!("127.0.0.1:{scheduler}"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--work-dir")
        .arg(work)
        .args(["--concurrency", "1"]);
    Running::start(cmd, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballista_cluster_gives_the_local_engines_lists() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = format!("sqlite://{}", dir.path().join("kf.db").display());
    let store = format!("file://{}", dir.path().join("objects").display());
    let (titles, users) = (60, 120);
    let line = ok(&[
        "bench",
        "history-synth",
        "--events",
        "8000",
        "--users",
        "120",
        "--titles",
        "60",
        "--seed",
        "3",
        "--db",
        &db,
    ]);
    assert!(line.starts_with("history-synth: "), "{line}");
    let tunables = [
        ("KEYFRAME_RECOMMEND_TOP_K", "6"),
        ("KEYFRAME_RECOMMEND_PER_USER", "5"),
        ("KEYFRAME_RECOMMEND_MAX_TITLES_PER_USER", "10"),
    ];
    let recommend = |engine: &str, extra: &[&str]| {
        let mut cmd = keyframe();
        cmd.envs(tunables)
            .args([
                "recommend",
                "--json",
                "--engine",
                engine,
                "--db",
                &db,
                "--store",
                &store,
            ])
            .args(extra);
        cmd.output().expect("run keyframe recommend")
    };
    let out = recommend("local", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (local_generation, want) = lists(&db, titles, users).await;

    // The catalog's own schedule runs the snapshot engines too: `keyframe catalog`
    // with `recommend_engine = "datafusion"` exports a snapshot and swaps in a new
    // generation with the local engine's lists (before, every scheduled run failed).
    let mut cmd = keyframe();
    cmd.envs(tunables)
        .env("KEYFRAME_RECOMMEND_ENGINE", "datafusion")
        .env("KEYFRAME_RECOMMEND_INTERVAL_SECS", "1")
        .args([
            "catalog",
            "--listen",
            "127.0.0.1:0",
            "--db",
            &db,
            "--store",
            &store,
        ]);
    let catalog = Running::start(cmd, 1);
    let deadline = Instant::now() + Duration::from_secs(300);
    let scheduled = loop {
        let (generation, got) = lists(&db, titles, users).await;
        if generation > local_generation {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "the catalog's scheduled datafusion batch swapped in no generation"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    drop(catalog);
    for (s, a) in &want {
        recommend::same_list(a, &scheduled[s], 1e-9).unwrap_or_else(|e| panic!("{s}: {e}"));
    }

    let scheduler = free_port();
    let mut cmd = keyframe();
    cmd.args(["ballista", "scheduler", "--listen"])
        .arg(format!("127.0.0.1:{scheduler}"));
    let _scheduler = Running::start(cmd, 1);
    wait_port(scheduler);
    let (e1, e2) = (free_pair(), free_pair());
    let _e1 = executor(scheduler, e1, &dir.path().join("e1"));
    let _e2 = executor(scheduler, e2, &dir.path().join("e2"));
    for p in [e1, e1 + 1, e2, e2 + 1] {
        wait_port(p);
    }

    let engine = format!("ballista://127.0.0.1:{scheduler}");
    let out = recommend(&engine, &["--snapshot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["engine"], "ballista");
    let (generation, got) = lists(&db, titles, users).await;
    let mut nonempty = 0;
    for (s, a) in &want {
        recommend::same_list(a, &got[s], 1e-9).unwrap_or_else(|e| panic!("{s}: {e}"));
        nonempty += usize::from(!a.is_empty());
    }
    assert!(nonempty > 100, "{nonempty} lists");

    // Nothing listening: one line, exit 1, the current generation stays.
    let dead = format!("ballista://127.0.0.1:{}", free_port());
    let out = recommend(&dead, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("recommendation batch failed"), "{err}");
    let (after, same) = lists(&db, titles, users).await;
    assert_eq!(after, generation);
    assert_eq!(same, got);

    // A scheduler URL without a host is refused as well.
    let out = recommend("ballista://", &[]);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
}
