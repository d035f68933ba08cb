//! The metadata store suite, run on SQLite and (when configured) PostgreSQL.

use keyframe_catalog::meta::{Asset, NewContent, Right};
use keyframe_catalog::testing;
use keyframe_catalog::DbError;

fn sample() -> NewContent {
    NewContent {
        title: "Big Buck Bunny".into(),
        description: "a rabbit".into(),
        kind: "video".into(),
        categories: vec!["animation".into(), "short".into(), "animation".into()],
        assets: vec![Asset {
            role: "source".into(),
            object_key: format!("sha256/ab/{}.mp4", "ab".repeat(32)),
            size: 1234,
            sha256: "ab".repeat(32),
            mime: "video/mp4".into(),
            width: Some(1920),
            height: Some(1080),
            duration_ms: Some(596_000),
            faststart: Some(true),
            ..Asset::default()
        }],
        rights: vec![
            Right {
                region: "eu".into(),
                available_from: None,
                available_until: None,
            },
            Right {
                region: "us".into(),
                available_from: Some(10),
                available_until: Some(20),
            },
        ],
        renditions: Vec::new(),
    }
}

#[tokio::test]
async fn content_round_trips_with_assets_and_rights() {
    for t in testing::all().await {
        let c = t.db.create_content(&sample()).await.expect("create");
        let back = t.db.content(&c.id).await.expect("read");
        assert_eq!(back, c, "{}", t.name);
        assert_eq!(back.categories, vec!["animation", "short"], "{}", t.name);
        assert_eq!(back.assets.len(), 1, "{}", t.name);
        assert_eq!(back.assets[0].faststart, Some(true), "{}", t.name);
        assert_eq!(back.assets[0].width, Some(1920), "{}", t.name);
        assert_eq!(back.rights.len(), 2, "{}", t.name);
        assert!(
            back.rights[1].open_at(15) && !back.rights[1].open_at(20),
            "{}",
            t.name
        );
        assert!(
            t.db.object_referenced(&c.assets[0].object_key)
                .await
                .expect("ref"),
            "{}",
            t.name
        );
        assert!(
            !t.db.object_referenced("nope").await.expect("ref"),
            "{}",
            t.name
        );
        assert!(
            matches!(t.db.content("missing").await, Err(DbError::NotFound)),
            "{}",
            t.name
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn a_failed_commit_leaves_nothing_behind() {
    for t in testing::all().await {
        let mut bad = sample();
        // The same region twice violates the rights primary key, after the content
        // row and the asset row were written in the same transaction.
        bad.rights.push(Right {
            region: "eu".into(),
            available_from: None,
            available_until: None,
        });
        let err = t.db.create_content(&bad).await.expect_err("must fail");
        assert!(
            matches!(err, DbError::AlreadyExists(_)),
            "{}: {err:?}",
            t.name
        );
        assert!(
            !t.db
                .object_referenced(&bad.assets[0].object_key)
                .await
                .expect("ref"),
            "{}: asset row leaked from a rolled-back transaction",
            t.name
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn users_are_unique_and_sessions_expire_by_row() {
    for t in testing::all().await {
        let u =
            t.db.create_user("ada", "ada@example.org", "$argon2id$x", Some("1990-01-01"))
                .await
                .expect("user");
        let err =
            t.db.create_user("ada", "other@example.org", "$argon2id$y", None)
                .await
                .expect_err("dup");
        assert!(
            matches!(err, DbError::AlreadyExists(_)),
            "{}: {err:?}",
            t.name
        );
        assert_eq!(
            t.db.user_by_username("ada").await.expect("by name").id,
            u.id,
            "{}",
            t.name
        );
        assert!(
            matches!(t.db.user_by_id("nobody").await, Err(DbError::NotFound)),
            "{}",
            t.name
        );
        t.db.create_session("h1", &u.id, 99).await.expect("session");
        assert_eq!(
            t.db.session("h1").await.expect("get").expires_at,
            99,
            "{}",
            t.name
        );
        t.db.delete_session("h1").await.expect("delete");
        assert!(
            matches!(t.db.session("h1").await, Err(DbError::NotFound)),
            "{}",
            t.name
        );
        let err =
            t.db.create_session("h2", "no-such-user", 1)
                .await
                .expect_err("fk");
        assert!(
            matches!(err, DbError::MissingReference(_)),
            "{}: {err:?}",
            t.name
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn migrations_are_idempotent() {
    for t in testing::all().await {
        t.db.migrate().await.expect("second migrate is a no-op");
        t.cleanup().await;
    }
}

#[tokio::test]
async fn bad_urls_and_unreachable_servers_are_clear_errors() {
    assert!(matches!(
        keyframe_catalog::Db::connect("mysql://x").await,
        Err(DbError::Scheme(_))
    ));
    let err = keyframe_catalog::Db::connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .expect_err("down");
    assert!(matches!(err, DbError::Unavailable(_)), "{err:?}");
}
