//! Hot reads (issue 17): in the steady state, the session lookup, `/api/users/me`
//! and title detail (anonymous, and signed in with the viewer's resume point) make
//! no database round trip; and on SQLite, changes another process commits reach
//! the running catalog's caches within the seed's 1 s.

use crate::common;

use std::time::{Duration, Instant};

use common::{config, right, title, Server};
use keyframe_catalog::meta::Asset;
use keyframe_catalog::Db;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn seed_title(db: &Db, name: &str) -> String {
    db.create_content(&title(name, "", &["test"], vec![right("*")]))
        .await
        .expect("create")
        .id
}

/// The hot endpoints, read again and again, then with the database closed: every
/// answer must come from the caches. (Before, the signed-in detail read the resume
/// point from the database on every request: 503 once the pool was closed.)
#[tokio::test]
async fn steady_state_hot_reads_need_no_database() {
    for tdb in keyframe_catalog::testing::all().await {
        let id = seed_title(&tdb.db, "Hot").await;
        let s = Server::start(&tdb.db, config()).await;
        let token = s.user("ada").await;
        let events = json!({"events": [
            {"content_id": id, "session_id": "s1", "seq": 1, "kind": "start",
             "position_ms": 0, "duration_ms": 100_000, "at": 1_700_000_000_000i64},
            {"content_id": id, "session_id": "s1", "seq": 2, "kind": "progress",
             "position_ms": 40_000, "duration_ms": 100_000, "at": 1_700_000_040_000i64},
        ]});
        let (st, v) = s
            .json(Method::POST, "/api/history", Some(events), Some(&token))
            .await;
        assert_eq!(st, StatusCode::OK, "{}: {v}", tdb.name);
        // Let change announcements from the database (NOTIFY, the change log) land.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let detail = format!("/api/content/{id}");
        let mut warm = Vec::new();
        for _ in 0..3 {
            warm = vec![
                s.get("/api/users/me", Some(&token)).await,
                s.get(&detail, None).await,
                s.get(&detail, Some(&token)).await,
            ];
        }
        for (st, v) in &warm {
            assert_eq!(*st, StatusCode::OK, "{}: {v}", tdb.name);
        }
        assert_eq!(warm[2].1["resume_position_ms"], 40_000, "{}", tdb.name);

        // No database from here on: a round trip would fail.
        tdb.db.close().await;
        let cold = [
            s.get("/api/users/me", Some(&token)).await,
            s.get(&detail, None).await,
            s.get(&detail, Some(&token)).await,
        ];
        for ((st, v), (_, before)) in cold.iter().zip(&warm) {
            assert_eq!(*st, StatusCode::OK, "{}: {v}", tdb.name);
            assert_eq!(v, before, "{}", tdb.name);
        }
        drop(s);
        tdb.cleanup().await;
    }
}

/// A new progress event moves the resume point the next read shows: the history
/// writer announces what it committed before it answers.
#[tokio::test]
async fn the_resume_point_follows_each_commit() {
    for tdb in keyframe_catalog::testing::all().await {
        let id = seed_title(&tdb.db, "Followed").await;
        let s = Server::start(&tdb.db, config()).await;
        let token = s.user("bea").await;
        let detail = format!("/api/content/{id}");
        let (_, v) = s.get(&detail, Some(&token)).await;
        assert_eq!(v["resume_position_ms"], Value::Null, "{}: {v}", tdb.name);
        for (seq, pos) in [(1, 30_000), (2, 50_000), (3, 70_000)] {
            let ev = json!({"events": [{"content_id": id, "session_id": "s", "seq": seq,
                "kind": "progress", "position_ms": pos, "duration_ms": 100_000,
                "at": 1_700_000_000_000i64 + seq * 1000}]});
            let (st, v) = s
                .json(Method::POST, "/api/history", Some(ev), Some(&token))
                .await;
            assert_eq!(st, StatusCode::OK, "{}: {v}", tdb.name);
            let (_, v) = s.get(&detail, Some(&token)).await;
            assert_eq!(v["resume_position_ms"], pos, "{}: {v}", tdb.name);
        }
        let (st, _) = s
            .json(Method::DELETE, "/api/history", None, Some(&token))
            .await;
        assert_eq!(st, StatusCode::OK, "{}", tdb.name);
        let (_, v) = s.get(&detail, Some(&token)).await;
        assert_eq!(v["resume_position_ms"], Value::Null, "{}: {v}", tdb.name);
        assert_eq!(v["watched"], Value::Null, "{}: {v}", tdb.name);
        drop(s);
        tdb.cleanup().await;
    }
}

/// Polls `read` until `done` holds of its answer, for at most `limit`.
async fn within<F, Fut>(
    limit: Duration,
    what: &str,
    mut read: F,
    done: impl Fn(&(StatusCode, Value)) -> bool,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (StatusCode, Value)>,
{
    let start = Instant::now();
    loop {
        let got = read().await;
        if done(&got) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not seen within {limit:?}; last answer {} {}",
            got.0,
            got.1
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// On SQLite, what another connection commits (here a pool of its own, as another
/// process would have: `keyframe ingest --avatar`, a direct SQL update, `keyframe
/// user disable`) shows in the running catalog's answers within 1 s. Before, the
/// cached user kept `avatar: null` and the old title until a restart.
#[tokio::test]
async fn sqlite_changes_from_another_connection_show_within_a_second() {
    let tdb = keyframe_catalog::testing::sqlite().await.expect("sqlite");
    let id = seed_title(&tdb.db, "Old name").await;
    let s = Server::start(&tdb.db, config()).await;
    let token = s.user("cyd").await;
    let detail = format!("/api/content/{id}");
    let (st, me) = s.get("/api/users/me", Some(&token)).await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_eq!(me["avatar"], Value::Null);
    let user_id = me["id"].as_str().expect("id").to_string();
    assert_eq!(s.get(&detail, None).await.1["title"], "Old name");

    let other = Db::connect(&tdb.url).await.expect("second connection");
    // An avatar, as `keyframe ingest --avatar` writes it.
    other
        .replace_user_assets(
            &user_id,
            &[Asset {
                role: "avatar".into(),
                object_key: format!("sha256/ab/{}.png", "ab".repeat(32)),
                size: 10,
                sha256: "ab".repeat(32),
                mime: "image/png".into(),
                ..Default::default()
            }],
        )
        .await
        .expect("avatar");
    within(
        Duration::from_secs(1),
        "the avatar",
        || s.get("/api/users/me", Some(&token)),
        |(_, v)| v["avatar"].is_object(),
    )
    .await;

    // A direct SQL update of a title.
    sqlx::query("UPDATE content SET title = 'New name', updated_at = updated_at + 1 WHERE id = $1")
        .bind(&id)
        .execute(other.pool())
        .await
        .expect("update");
    within(
        Duration::from_secs(1),
        "the new title",
        || s.get(&detail, None),
        |(_, v)| v["title"] == "New name",
    )
    .await;

    // `keyframe user disable`: the account's sessions end.
    other
        .set_user_disabled(&user_id, true)
        .await
        .expect("disable");
    within(
        Duration::from_secs(1),
        "the ended session",
        || s.get("/api/users/me", Some(&token)),
        |(st, _)| *st == StatusCode::UNAUTHORIZED,
    )
    .await;
    other.close().await;
    drop(s);
    tdb.cleanup().await;
}
