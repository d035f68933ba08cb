//! The DataFusion engine gives the local engine's lists on the same synthetic
//! history; snapshots are read only when a manifest names them; the same on S3
//! (s3s-fs in CI, `KEYFRAME_TEST_S3`).

use std::collections::BTreeMap;

use keyframe_catalog::history::Thresholds;
use keyframe_catalog::recommend::{self, synth, Recommended};
use keyframe_catalog::{Config, Db};
use keyframe_engine::{snapshot, Engine, EngineError, Location};
use object_store_df::ObjectStoreExt;

async fn db(dir: &std::path::Path) -> Db {
    let db = Db::connect(&format!("sqlite://{}", dir.join("kf.db").display()))
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    db
}

fn config() -> Config {
    Config {
        recommend_threads: 2,
        recommend_top_k: 8,
        recommend_per_user: 6,
        recommend_seed_titles: 4,
        recommend_max_titles_per_user: 12,
        ..Config::default()
    }
}

fn synth_config(seed: u64) -> synth::SynthConfig {
    synth::SynthConfig {
        users: 150,
        titles: 80,
        events: 12_000,
        seed,
        until_ms: 1_900_000_000_000,
        ..synth::SynthConfig::default()
    }
}

async fn load(db: &Db, cfg: &synth::SynthConfig, pop: &synth::Population) {
    synth::load(
        db,
        synth::sessions(cfg, pop),
        2000,
        Thresholds::default(),
        86_400_000,
    )
    .await
    .expect("load");
}

/// Every current list, by subject.
async fn lists(db: &Db, pop: &synth::Population) -> BTreeMap<String, Vec<Recommended>> {
    let mut out = BTreeMap::new();
    let subjects = pop
        .titles
        .iter()
        .map(|t| recommend::item_subject(t))
        .chain(pop.users.iter().map(|u| recommend::user_subject(u)));
    for s in subjects {
        let l = recommend::current_list(db, &s, 1000).await.expect("list");
        out.insert(s, l);
    }
    out
}

fn assert_same(
    want: &BTreeMap<String, Vec<Recommended>>,
    got: &BTreeMap<String, Vec<Recommended>>,
) {
    let mut nonempty = (0, 0);
    for (s, a) in want {
        recommend::same_list(a, &got[s], 1e-9).unwrap_or_else(|e| panic!("{s}: {e}"));
        if !a.is_empty() {
            if s.starts_with("item:") {
                nonempty.0 += 1;
            } else {
                nonempty.1 += 1;
            }
        }
    }
    // The comparison is not vacuous: most titles and viewers have lists.
    assert!(nonempty.0 > 40 && nonempty.1 > 100, "{nonempty:?}");
}

/// The DataFusion plans over a snapshot in `store_url` give the local engine's
/// lists; a later, partial snapshot (no manifest) is never read.
async fn datafusion_matches_local(store_url: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let db = db(dir.path()).await;
    let cfg = synth_config(11);
    let pop = synth::populate(&db, &cfg).await.expect("populate");
    load(&db, &cfg, &pop).await;
    let config = config();
    let loc = Location::parse(store_url).expect("location");

    // No manifest yet: nothing to read.
    let r = keyframe_engine::run(&db, &config, &loc, &Engine::DataFusion, false).await;
    assert!(matches!(r, Err(EngineError::NoSnapshot)), "{r:?}");

    let local = recommend::run_local(&db, &config).await.expect("local");
    let want = lists(&db, &pop).await;
    let report = keyframe_engine::run(&db, &config, &loc, &Engine::DataFusion, true)
        .await
        .expect("datafusion");
    assert_eq!(report.engine, "datafusion");
    assert!(report.generation > local.generation);
    assert_eq!(report.users, local.users);
    assert_eq!(report.watched, local.watched);
    assert_eq!(report.users_with_picks, local.users_with_picks);
    assert_eq!(report.titles, local.titles);
    assert_same(&want, &lists(&db, &pop).await);

    // More history folds in, and an export dies half-way: its files are there, the
    // manifest still names the first snapshot, which is what the engine reads.
    load(&db, &synth_config(12), &pop).await;
    let store = loc.store().expect("store");
    let partial = format!(
        "{}/9999999999999-partial/watch/part-00.parquet",
        snapshot::PREFIX
    );
    store
        .put(&loc.path(&partial), b"not parquet at all".to_vec().into())
        .await
        .expect("put partial");
    let m = snapshot::current(&loc)
        .await
        .expect("manifest")
        .expect("some");
    assert!(!m.id.contains("partial"));
    keyframe_engine::run(&db, &config, &loc, &Engine::DataFusion, false)
        .await
        .expect("datafusion on the named snapshot");
    assert_same(&want, &lists(&db, &pop).await);
    // While the local engine, on the database, sees the new history.
    recommend::run_local(&db, &config).await.expect("local");
    assert_ne!(
        lists(&db, &pop).await,
        want,
        "the second load changed nothing: the test proves nothing"
    );
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datafusion_on_local_disk_matches_local_engine() {
    let dir = tempfile::tempdir().expect("tmp");
    datafusion_matches_local(&format!("file://{}", dir.path().join("objects").display())).await;
}

/// With a `recommend_memory_limit` of 16 MiB, less than two sorts' default merge
/// reservations (10 MB each), the plans still run and give the local engine's
/// lists: joins that can spill, reservations sized to the pool, a partition per
/// core. (Before, a pool this small refused the second sort: "Resources exhausted".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datafusion_within_a_small_memory_pool_matches_local_engine() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = db(dir.path()).await;
    let cfg = synth_config(13);
    let pop = synth::populate(&db, &cfg).await.expect("populate");
    load(&db, &cfg, &pop).await;
    let mut config = config();
    config.recommend_memory_limit = "16MiB".parse().expect("size");
    let loc = Location::parse(&format!("file://{}", dir.path().join("objects").display()))
        .expect("location");
    recommend::run_local(&db, &config).await.expect("local");
    let want = lists(&db, &pop).await;
    keyframe_engine::run(&db, &config, &loc, &Engine::DataFusion, true)
        .await
        .expect("datafusion within 16 MiB");
    assert_same(&want, &lists(&db, &pop).await);
    db.close().await;
}

/// The S3 URL of the test server, with a fresh prefix; `None` outside CI without one.
fn s3_url() -> Option<String> {
    match std::env::var("KEYFRAME_TEST_S3") {
        Ok(u) if !u.is_empty() => {
            let mut url = url::Url::parse(&u).expect("KEYFRAME_TEST_S3 is a URL");
            url.set_path(&format!("t-{}", uuid::Uuid::new_v4().simple()));
            Some(url.to_string())
        }
        _ => {
            assert!(
                std::env::var("CI").map(|v| v != "true").unwrap_or(true),
                "CI=true but KEYFRAME_TEST_S3 is not set: the S3 suite must run in CI"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datafusion_on_s3_matches_local_engine() {
    let Some(url) = s3_url() else {
        eprintln!("KEYFRAME_TEST_S3 is not set: skipped");
        return;
    };
    datafusion_matches_local(&url).await;
}

#[test]
fn stores_the_engines_cannot_read_are_refused() {
    for bad in [
        "memory://",
        "ftp://x",
        "file://",
        "s3://",
        "s3://b?colour=red",
    ] {
        assert!(Location::parse(bad).is_err(), "{bad}");
    }
    let loc = Location::parse("s3://bucket/some/prefix?endpoint=http://127.0.0.1:9&region=r")
        .expect("s3");
    assert_eq!(loc.url("a/b"), "s3://bucket/some/prefix/a/b");
    assert_eq!(loc.path("a/b").as_ref(), "some/prefix/a/b");
}

/// `history-synth --state-only` leaves the state the event path leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_only_load_leaves_the_folds_state() {
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (da, dbb) = (db(a.path()).await, db(b.path()).await);
    let cfg = synth_config(5);
    let pop = synth::populate(&da, &cfg).await.expect("populate");
    synth::populate(&dbb, &cfg).await.expect("populate");
    load(&da, &cfg, &pop).await;
    let loaded = synth::load_state(
        &dbb,
        synth::sessions(&cfg, &pop),
        700,
        Thresholds::default(),
    )
    .await
    .expect("state only");
    assert!(loaded.events >= cfg.events);
    let rows = |db: Db| async move {
        let mut v = Vec::new();
        let mut s = recommend::watch_rows(&db);
        use futures::TryStreamExt;
        while let Some(r) = s.try_next().await.expect("row") {
            v.push((r.user_id, r.content_id, r.region, r.last_at));
        }
        drop(s);
        v.sort();
        db.close().await;
        v
    };
    let (x, y) = (rows(da).await, rows(dbb).await);
    assert!(x.len() > 300, "{}", x.len());
    assert_eq!(x, y);
}
