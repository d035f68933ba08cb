//! The recommendation batch on SQLite and (when configured) PostgreSQL: a dataset
//! small enough to work out by hand, region exclusion, the SQL engine giving the
//! in-process answer, the API with its trending fill-in, privacy deletes, and a
//! synthetic smoke run.
//!
//! The hand-worked dataset (titles A B C D; D only in `us`):
//!   u1 watched A, B, C · u2 A then B · u3 B, C · u4 A, D
//!   n(A)=3 n(B)=3 n(C)=2 n(D)=1; co(AB)=2 co(AC)=1 co(BC)=2 co(AD)=1
//!   cosine: AB = 2/3, AC = 1/√6, BC = 2/√6, AD = 1/√3
//!   similar(A) = B .667, D .577, C .408 · similar(B) = C .816, A .667
//!   similar(C) = B .816, A .408 · similar(D) = A .577
//!   u2 (in eu, watched B most recently): C = 2/√6 + 1/√6 (because B); D is
//!   excluded in eu. In us, u2 would also get D = 1/√3 (because A).

use crate::common;

use common::{config, right, title, Server};
use keyframe_catalog::history::{Event, EventKind, Thresholds, UserBatch};
use keyframe_catalog::recommend::{self, current_list, item_subject, user_subject};
use keyframe_catalog::{Config, Db};
use reqwest::{Method, StatusCode};
use serde_json::Value;

struct Data {
    /// A, B, C, D.
    t: Vec<String>,
    /// u1..u4 (ids), with their session tokens when made over HTTP.
    u: Vec<String>,
}

async fn user_id(s: &Server, token: &str) -> String {
    let (_, me) = s.get("/api/users/me", Some(token)).await;
    me["id"].as_str().expect("id").to_string()
}

/// The hand-worked dataset; `u2_region` is u2's region.
async fn seed(s: &Server, db: &Db, u2_region: &str) -> (Data, Vec<String>) {
    let mut t = Vec::new();
    for (name, region) in [("A", "*"), ("B", "*"), ("C", "*"), ("D", "us")] {
        t.push(
            db.create_content(&title(name, "", &[], vec![right(region)]))
                .await
                .expect("title")
                .id,
        );
    }
    let mut tokens = Vec::new();
    let mut u = Vec::new();
    for name in ["uone", "utwo", "uthree", "ufour"] {
        let tok = s.user(name).await;
        u.push(user_id(s, &tok).await);
        tokens.push(tok);
    }
    let now = keyframe_catalog::db::now_ms();
    let watched: [(usize, &[usize]); 4] =
        [(0, &[0, 1, 2]), (1, &[0, 1]), (2, &[1, 2]), (3, &[0, 3])];
    for (who, titles) in watched {
        let region = if who == 1 { u2_region } else { "eu" };
        let events = titles
            .iter()
            .enumerate()
            .map(|(k, &ti)| Event {
                content_id: t[ti].clone(),
                session_id: format!("s{who}-{k}"),
                seq: 0,
                position_ms: 50_000,
                duration_ms: 100_000,
                kind: EventKind::Progress,
                // Later titles in the list are more recent.
                at: now - 100_000 + k as i64 * 1000,
            })
            .collect();
        db.record_history(
            &[UserBatch {
                user_id: u[who].clone(),
                region: region.into(),
                events,
            }],
            Thresholds::default(),
            86_400_000,
        )
        .await
        .expect("record");
    }
    (Data { t, u }, tokens)
}

fn cfg(engine: &str) -> Config {
    Config {
        recommend_engine: engine.into(),
        recommend_threads: 2,
        ..config()
    }
}

fn close(got: &[(String, f64)], want: &[(&String, f64)]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(&g.0, w.0, "{got:?}");
        assert!((g.1 - w.1).abs() < 1e-9, "{got:?}");
    }
}

async fn list(db: &Db, subject: &str) -> Vec<(String, f64)> {
    current_list(db, subject, 100)
        .await
        .expect("list")
        .into_iter()
        .map(|r| (r.content_id, r.score))
        .collect()
}

#[tokio::test]
async fn the_hand_worked_dataset() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        let (d, _) = seed(&s, &t.db, "eu").await;
        let (a, b, c, dd) = (&d.t[0], &d.t[1], &d.t[2], &d.t[3]);
        assert_eq!(
            recommend::current_generation(&t.db).await.expect("gen"),
            None
        );
        let report = recommend::run_once(&t.db, &cfg("local"))
            .await
            .expect("batch");
        assert_eq!(
            (
                report.titles,
                report.pairs,
                report.users,
                report.users_with_picks
            ),
            (4, 4, 4, 3),
            "{}: {report}",
            t.name
        );
        assert!(report.to_string().contains("generation 1"), "{report}");
        let (r3, r6) = (3f64.sqrt(), 6f64.sqrt());
        close(
            &list(&t.db, &item_subject(a)).await,
            &[(b, 2.0 / 3.0), (dd, 1.0 / r3), (c, 1.0 / r6)],
        );
        close(
            &list(&t.db, &item_subject(b)).await,
            &[(c, 2.0 / r6), (a, 2.0 / 3.0)],
        );
        close(
            &list(&t.db, &item_subject(c)).await,
            &[(b, 2.0 / r6), (a, 1.0 / r6)],
        );
        close(&list(&t.db, &item_subject(dd)).await, &[(a, 1.0 / r3)]);
        // u2 in eu: C because of B; D is not available there.
        let picks = current_list(&t.db, &user_subject(&d.u[1]), 10)
            .await
            .expect("picks");
        assert_eq!(picks.len(), 1, "{}: {picks:?}", t.name);
        assert_eq!(
            (&picks[0].content_id, picks[0].reason.as_ref()),
            (c, Some(b))
        );
        assert!((picks[0].score - 3.0 / r6).abs() < 1e-9);
        // u1 watched A, B, C: D would come from A, but u1 is in eu too.
        assert!(current_list(&t.db, &user_subject(&d.u[0]), 10)
            .await
            .expect("picks")
            .is_empty());
        // u3 (B, C; C most recent): A from C and B (1/√6 + 2/3), because B.
        let p3 = current_list(&t.db, &user_subject(&d.u[2]), 10)
            .await
            .expect("picks");
        assert_eq!(p3.len(), 1);
        assert_eq!((&p3[0].content_id, p3[0].reason.as_ref()), (a, Some(b)));
        assert!((p3[0].score - (1.0 / r6 + 2.0 / 3.0)).abs() < 1e-9);

        // A second run swaps in a new generation and leaves one.
        let again = recommend::run_once(&t.db, &cfg("local"))
            .await
            .expect("batch");
        assert_eq!(again.generation, 2);
        assert_eq!(again.rows, report.rows);
        s.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn region_decides_which_picks_a_viewer_gets() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        let (d, _) = seed(&s, &t.db, "us").await;
        recommend::run_once(&t.db, &cfg("local"))
            .await
            .expect("batch");
        let picks = current_list(&t.db, &user_subject(&d.u[1]), 10)
            .await
            .expect("picks");
        let got: Vec<(&String, Option<&String>)> = picks
            .iter()
            .map(|p| (&p.content_id, p.reason.as_ref()))
            .collect();
        // In us, D (only licensed there) is a pick, because of A.
        assert_eq!(
            got,
            vec![(&d.t[2], Some(&d.t[1])), (&d.t[3], Some(&d.t[0]))],
            "{}",
            t.name
        );
        s.stop().await;
        t.cleanup().await;
    }
}

async fn generation_rows(db: &Db) -> Vec<(String, i64, String, f64, Option<String>)> {
    use sqlx::Row;
    sqlx::query(
        "SELECT r.subject, r.rank, r.content_id, r.score, r.reason FROM recommendations r \
         JOIN recommend_current g ON r.generation = g.generation ORDER BY r.subject, r.rank",
    )
    .fetch_all(db.pool())
    .await
    .expect("rows")
    .iter()
    .map(|r| {
        (
            r.try_get(0).expect("subject"),
            r.try_get(1).expect("rank"),
            r.try_get(2).expect("content"),
            r.try_get(3).expect("score"),
            r.try_get(4).expect("reason"),
        )
    })
    .collect()
}

fn same(
    local: &[(String, i64, String, f64, Option<String>)],
    sql: &[(String, i64, String, f64, Option<String>)],
) {
    assert_eq!(local.len(), sql.len());
    for (l, s) in local.iter().zip(sql) {
        assert_eq!((&l.0, l.1, &l.2, &l.4), (&s.0, s.1, &s.2, &s.4));
        assert!((l.3 - s.3).abs() < 1e-9, "{l:?} vs {s:?}");
    }
}

/// The SQL engine (PostgreSQL, as Citus would run it) gives the in-process answer.
#[tokio::test]
async fn the_sql_engine_gives_the_same_answer() {
    let Some(url) = keyframe_catalog::testing::postgres_url() else {
        return;
    };
    let t = keyframe_catalog::testing::postgres(&url).await.expect("pg");
    let s = Server::start(&t.db, config()).await;
    seed(&s, &t.db, "eu").await;
    recommend::run_once(&t.db, &cfg("local"))
        .await
        .expect("local");
    let local = generation_rows(&t.db).await;
    assert_eq!(local.len(), 4 + 2 + 2 + 1 + 1 + 1 + 1, "{local:?}");
    let report = recommend::run_once(&t.db, &cfg("sql")).await.expect("sql");
    assert_eq!((report.engine.as_str(), report.generation), ("sql", 2));
    same(&local, &generation_rows(&t.db).await);

    // And on synthetic data, for the similar lists.
    let syn = keyframe_catalog::testing::postgres(&url).await.expect("pg");
    let c = recommend::synth::SynthConfig {
        users: 300,
        titles: 80,
        events: 20_000,
        ..Default::default()
    };
    let pop = recommend::synth::populate(&syn.db, &c)
        .await
        .expect("populate");
    recommend::synth::load(
        &syn.db,
        recommend::synth::sessions(&c, &pop),
        2000,
        Thresholds::default(),
        86_400_000,
    )
    .await
    .expect("load");
    let small = Config {
        recommend_max_titles_per_user: 15,
        ..cfg("local")
    };
    recommend::run_once(&syn.db, &small).await.expect("local");
    let items = |rows: Vec<(String, i64, String, f64, Option<String>)>| -> Vec<_> {
        rows.into_iter()
            .filter(|r| r.0.starts_with("item:"))
            .collect()
    };
    let local = items(generation_rows(&syn.db).await);
    assert!(local.len() > 500, "{}", local.len());
    recommend::run_once(
        &syn.db,
        &Config {
            recommend_engine: "sql".into(),
            ..small
        },
    )
    .await
    .expect("sql");
    same(&local, &items(generation_rows(&syn.db).await));
    s.stop().await;
    t.cleanup().await;
    syn.cleanup().await;
}

fn item_ids(v: &Value) -> Vec<(String, String)> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|i| {
            (
                i["content"]["id"].as_str().expect("id").to_string(),
                i["source"].as_str().expect("source").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_api_reads_the_generation_and_trending_fills_in() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        let (d, tokens) = seed(&s, &t.db, "eu").await;
        let fresh =
            t.db.create_content(&title("E", "", &[], vec![right("*")]))
                .await
                .expect("title")
                .id;
        // Before any batch: trending only.
        let (st, v) = s
            .get_in("/api/recommendations", "eu", Some(&tokens[1]))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["generation"], Value::Null);
        assert!(item_ids(&v).iter().all(|x| x.1 == "trending"), "{v}");

        recommend::run_once(&t.db, &cfg("local"))
            .await
            .expect("batch");
        // Someone watches E for 35 s (a view needs 30): it trends.
        let fan = s.user("fan").await;
        let now = keyframe_catalog::db::now_ms();
        let (st, v) = s
            .json(
                Method::POST,
                "/api/history",
                Some(serde_json::json!({"events": [
                    {"content_id": fresh, "session_id": "f", "seq": 0, "kind": "start",
                     "position_ms": 0, "duration_ms": 100_000, "at": now - 40_000},
                    {"content_id": fresh, "session_id": "f", "seq": 1, "kind": "progress",
                     "position_ms": 35_000, "duration_ms": 100_000, "at": now - 5_000}]})),
                Some(&fan),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let newer =
            t.db.create_content(&title("F", "", &[], vec![right("*")]))
                .await
                .expect("title")
                .id;
        let (_, v) = s
            .get_in("/api/recommendations?limit=3", "eu", Some(&tokens[1]))
            .await;
        let got = item_ids(&v);
        assert_eq!(
            got[0],
            (d.t[2].clone(), "personal".to_string()),
            "{}: {v}",
            t.name
        );
        assert_eq!(v["items"][0]["because"]["title"], "B");
        // Then trending (E), without what u2 watched or was offered.
        assert_eq!(got[1..], [(fresh.clone(), "trending".to_string())], "{v}");
        // A new viewer: trending only.
        let newbie = s.user("newbie").await;
        let (_, v) = s.get_in("/api/recommendations", "eu", Some(&newbie)).await;
        assert_eq!(
            item_ids(&v),
            [(fresh.clone(), "trending".to_string())],
            "{v}"
        );

        // Similar titles of A in eu: B, C (D is us-only), then trending.
        let (_, v) = s
            .get_in(
                &format!("/api/content/{}/similar?limit=3", d.t[0]),
                "eu",
                None,
            )
            .await;
        let got = item_ids(&v);
        assert_eq!(
            got[..2],
            [
                (d.t[1].clone(), "similar".to_string()),
                (d.t[2].clone(), "similar".to_string())
            ],
            "{v}"
        );
        assert!(got.iter().all(|x| x.0 != d.t[3] && x.0 != d.t[0]), "{v}");
        // In us, D is there.
        let (_, v) = s
            .get_in(&format!("/api/content/{}/similar", d.t[0]), "us", None)
            .await;
        assert_eq!(
            item_ids(&v)[1],
            (d.t[3].clone(), "similar".to_string()),
            "{v}"
        );
        // A new title: trending fills in.
        let (st, v) = s
            .get_in(&format!("/api/content/{newer}/similar"), "eu", None)
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(
            item_ids(&v),
            [(fresh.clone(), "trending".to_string())],
            "{v}"
        );
        // A title never lists itself.
        let (_, v) = s
            .get_in(&format!("/api/content/{fresh}/similar"), "eu", None)
            .await;
        assert_eq!(item_ids(&v), [], "{v}");

        // Erasing history removes the viewer's picks at once, and the next batch
        // has nothing of theirs.
        let (st, _) = s
            .json(Method::DELETE, "/api/history", None, Some(&tokens[1]))
            .await;
        assert_eq!(st, StatusCode::OK);
        assert!(current_list(&t.db, &user_subject(&d.u[1]), 10)
            .await
            .expect("picks")
            .is_empty());
        let report = recommend::run_once(&t.db, &cfg("local"))
            .await
            .expect("batch");
        assert_eq!(report.users, 4, "u1, u3, u4 and the fan");
        assert!(current_list(&t.db, &user_subject(&d.u[1]), 10)
            .await
            .expect("picks")
            .is_empty());
        // Without u2, n(A) = 2 and co(AB) = 1: sim(A, D) = 1/√(2·1) comes
        // first, then sim(A, B) = sim(A, C) = 1/√(2·2).
        let a = list(&t.db, &item_subject(&d.t[0])).await;
        assert_eq!(a[0].0, d.t[3], "{a:?}");
        assert!((a[0].1 - 0.5f64.sqrt()).abs() < 1e-9, "{a:?}");
        let b = a.iter().find(|x| x.0 == d.t[1]).expect("B is similar to A");
        assert!((b.1 - 0.5).abs() < 1e-9, "{a:?}");
        s.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn synthetic_history_runs_through_the_batch() {
    let t = keyframe_catalog::testing::sqlite().await.expect("db");
    let c = recommend::synth::SynthConfig {
        users: 200,
        titles: 60,
        events: 10_000,
        ..Default::default()
    };
    let pop = recommend::synth::populate(&t.db, &c)
        .await
        .expect("populate");
    let loaded = recommend::synth::load(
        &t.db,
        recommend::synth::sessions(&c, &pop),
        2000,
        Thresholds::default(),
        86_400_000,
    )
    .await
    .expect("load");
    assert!(loaded.events >= 10_000);
    // Loading the same sessions again adds nothing.
    let again = recommend::synth::load(
        &t.db,
        recommend::synth::sessions(&c, &pop),
        2000,
        Thresholds::default(),
        86_400_000,
    )
    .await
    .expect("load");
    assert_eq!(again.events, 0);
    let report = recommend::run_once(&t.db, &Config::default())
        .await
        .expect("batch");
    assert!(report.titles > 30 && report.users > 100, "{report}");
    // The most popular title has 20 similar titles.
    let top = current_list(&t.db, &item_subject(&pop.titles[0]), 100)
        .await
        .expect("list");
    assert_eq!(top.len(), 20);
    assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
    t.cleanup().await;
}
