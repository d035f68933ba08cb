//! Benchmarks at size, ignored by default; `bench/scripts/history-intake.sh` runs
//! the intake one in release mode (`bench/scripts/recommend-bench.sh` now runs the
//! batch through the `keyframe` binary; `recommend_batch_at_size` is the same job
//! from a test build, e.g. for `KF_BENCH_ENGINE=sql`). Settings come from
//! the environment:
//!
//! * `KF_BENCH_DB`: the database URL (default: a SQLite file in a temporary
//!   directory, kept only for the run). For PostgreSQL give a fresh database.
//! * `KF_BENCH_EVENTS` (default 1000000), `KF_BENCH_USERS` (default events / 100),
//!   `KF_BENCH_TITLES` (default 5000).
//! * `KF_BENCH_PHASE`: `load` (populate and fold the synthetic history), `batch`
//!   (run the recommendation batch once), or `all` (default). Run them as separate
//!   processes to read each one's peak RSS (printed from `VmHWM`).
//!
//! Intake (`history_intake`): `KF_BENCH_CLIENTS` (default 16) clients each post
//! batches of `KF_BENCH_BATCH` (default 100) events over HTTP to a catalog on port 0
//! for `KF_BENCH_SECS` (default 20) seconds; after each POST the client reads the
//! title's detail and records how long until the new resume point is visible.
//! `KF_BENCH_EVENTS_URL=nats://HOST:PORT`: the catalog takes the events through that
//! NATS JetStream (`events`, issue 20) instead of its in-process writer.

use std::time::{Duration, Instant};

use keyframe_catalog::history::Thresholds;
use keyframe_catalog::recommend::{self, synth};
use keyframe_catalog::{Config, Db};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn open() -> (Db, Option<tempfile::TempDir>) {
    match std::env::var("KF_BENCH_DB") {
        Ok(url) if !url.is_empty() => {
            let db = Db::connect(&url).await.expect("connect");
            db.migrate().await.expect("migrate");
            (db, None)
        }
        _ => {
            let dir = tempfile::tempdir().expect("tmp");
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            let db = Db::connect(&url).await.expect("connect");
            db.migrate().await.expect("migrate");
            (db, Some(dir))
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark; see the module doc"]
async fn recommend_batch_at_size() {
    let events = env_u64("KF_BENCH_EVENTS", 1_000_000);
    let cfg = synth::SynthConfig {
        events,
        users: env_u64("KF_BENCH_USERS", (events / 100).max(100)) as usize,
        titles: env_u64("KF_BENCH_TITLES", 5000) as usize,
        ..Default::default()
    };
    let phase = std::env::var("KF_BENCH_PHASE").unwrap_or_else(|_| "all".into());
    let (db, _dir) = open().await;
    println!(
        "backend {:?}, {} events, {} users, {} titles",
        db.backend(),
        cfg.events,
        cfg.users,
        cfg.titles
    );
    if phase == "load" || phase == "all" {
        let t = Instant::now();
        let pop = synth::populate(&db, &cfg).await.expect("populate");
        let loaded = synth::load(
            &db,
            synth::sessions(&cfg, &pop),
            5000,
            Thresholds::default(),
            86_400_000,
        )
        .await
        .expect("load");
        println!(
            "load: {} events folded in {:.1} s = {:.0} events/s (with populate {:.1} s); peak RSS {:.0} MiB",
            loaded.events,
            loaded.seconds,
            loaded.events as f64 / loaded.seconds,
            t.elapsed().as_secs_f64(),
            peak_rss_mib()
        );
    }
    if phase == "batch" || phase == "all" {
        let config = Config {
            recommend_engine: std::env::var("KF_BENCH_ENGINE").unwrap_or_else(|_| "local".into()),
            ..Config::default()
        };
        let report = recommend::run_once(&db, &config).await.expect("batch");
        println!("{report}");
        println!("batch: peak RSS {:.0} MiB", peak_rss_mib());
    }
    db.close().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark; run by bench/scripts/history-intake.sh"]
async fn history_intake() {
    use keyframe_catalog::server::Catalog;
    let clients = env_u64("KF_BENCH_CLIENTS", 16) as usize;
    let batch = env_u64("KF_BENCH_BATCH", 100) as usize;
    let secs = env_u64("KF_BENCH_SECS", 20);
    let (db, _dir) = open().await;
    let cfg = synth::SynthConfig {
        users: clients,
        titles: 100,
        events: 0,
        ..Default::default()
    };
    let pop = synth::populate(&db, &cfg).await.expect("populate");
    // Sessions for the synthetic viewers, straight in the table (their tokens are
    // what a sign-in would have made).
    let mut tokens = Vec::new();
    for u in &pop.users {
        let (token, hash) = keyframe_catalog::auth::new_session_token();
        db.create_session(&hash, u, keyframe_catalog::db::now_ms() + 3_600_000)
            .await
            .expect("session");
        tokens.push(token);
    }
    let store = keyframe_origin::store::open("memory://").expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // The viewers are in eu (some synthetic titles are licensed there only), and the
    // per-viewer event budget is off: this measures the intake, not the limit.
    // KF_BENCH_EVENTS_URL=nats://…: through JetStream (issue 20) instead of the writer.
    let config = Config {
        default_region: "eu".into(),
        history_events_per_user_minute: u32::MAX,
        events: std::env::var("KF_BENCH_EVENTS_URL")
            .ok()
            .filter(|e| !e.is_empty()),
        ..Config::default()
    };
    let server = tokio::spawn(
        Catalog::new(config, db.clone(), store).run(listener, async {
            let _ = stopped.await;
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let base = base.clone();
        let titles = pop.titles.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut sent = 0u64;
            let mut visible = Vec::new();
            let mut appends = Vec::new();
            let mut seq = 0i64;
            let mut n = 0usize;
            while Instant::now() < deadline {
                let title = &titles[(i * 7 + n) % titles.len()];
                n += 1;
                let now = keyframe_catalog::db::now_ms();
                let events: Vec<serde_json::Value> = (0..batch)
                    .map(|k| {
                        seq += 1;
                        serde_json::json!({"content_id": title, "session_id": format!("c{i}"),
                            "seq": seq, "kind": "progress", "position_ms": 100_000 + k as i64 * 10,
                            "duration_ms": 1_000_000, "at": now - 1000 + k as i64})
                    })
                    .collect();
                let want = 100_000 + (batch as i64 - 1) * 10;
                let posted = Instant::now();
                let r = http
                    .post(format!("{base}/api/history"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({ "events": events }))
                    .send()
                    .await
                    .expect("post");
                assert!(r.status().is_success(), "{}", r.status());
                let returned = Instant::now();
                appends.push(returned - posted);
                sent += batch as u64;
                loop {
                    let d: serde_json::Value = http
                        .get(format!("{base}/api/content/{title}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("get")
                        .json()
                        .await
                        .expect("json");
                    if d["resume_position_ms"] == serde_json::json!(want) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                visible.push(returned.elapsed());
            }
            (sent, visible, appends)
        }));
    }
    let mut sent = 0;
    let mut visible = Vec::new();
    let mut appends = Vec::new();
    for t in tasks {
        let (s, v, a) = t.await.expect("client");
        sent += s;
        visible.extend(v);
        appends.extend(a);
    }
    appends.sort();
    let elapsed = started.elapsed().as_secs_f64();
    visible.sort();
    let p = |q: f64| visible[((visible.len() as f64 * q) as usize).min(visible.len() - 1)];
    let pa = |q: f64| appends[((appends.len() as f64 * q) as usize).min(appends.len() - 1)];
    println!(
        "intake-post: POST answered (committed, or appended and acknowledged with KF_BENCH_EVENTS_URL): \
         p50 {:?} p95 {:?} max {:?}",
        pa(0.5),
        pa(0.95),
        appends.last().copied().unwrap_or_default()
    );
    println!(
        "intake: {sent} events in {elapsed:.1} s = {:.0} events/s ({clients} clients × {batch}-event batches); \
         resume visible after POST: p50 {:?} p95 {:?} max {:?} (each client also reads detail after every POST)",
        sent as f64 / elapsed,
        p(0.5),
        p(0.95),
        visible.last().copied().unwrap_or_default()
    );
    let _ = stop.send(());
    server.await.expect("join").expect("server");
    db.close().await;
}
