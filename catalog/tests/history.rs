//! Watch history over real HTTP, on SQLite and (when configured) PostgreSQL: the
//! fold (thresholds, duplicates, out-of-order events), resume points in content
//! detail, continue watching and hiding, paging, validation, export, trending, and
//! privacy deletes that take back everything derived from the deleted events.

use crate::common;

use common::{assert_error, config, right, title, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// An event of session `s` at `at` (duration 100 s, so position ms / 1000 = %).
fn ev(content: &str, s: &str, seq: i64, kind: &str, pos: i64, at: i64) -> Value {
    json!({"content_id": content, "session_id": s, "seq": seq, "kind": kind,
           "position_ms": pos, "duration_ms": 100_000, "at": at})
}

async fn post(s: &Server, token: &str, events: Vec<Value>) -> (StatusCode, Value) {
    s.json(
        Method::POST,
        "/api/history",
        Some(json!({ "events": events })),
        Some(token),
    )
    .await
}

async fn post_in(s: &Server, token: &str, region: &str, events: Vec<Value>) -> Value {
    let rb = s
        .req(Method::POST, "/api/history")
        .header("x-region", region)
        .bearer_auth(token)
        .json(&json!({ "events": events }));
    let (status, _, v) = s.send(rb).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

async fn detail(s: &Server, id: &str, token: &str) -> Value {
    let (st, v) = s.get(&format!("/api/content/{id}"), Some(token)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {v}"))
        .iter()
        .map(|i| i["content"]["id"].as_str().expect("id").to_string())
        .collect()
}

async fn seed(db: &keyframe_catalog::Db, names: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, region) in names {
        let c = db
            .create_content(&title(name, "", &["test"], vec![right(region)]))
            .await
            .expect("create");
        out.push(c.id);
    }
    out
}

#[tokio::test]
async fn events_fold_into_resume_points_idempotently_and_in_order() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        let ids = seed(&t.db, &[("Alpha", "*"), ("Beta", "*")]).await;
        let (a, b) = (&ids[0], &ids[1]);
        let tok = s.user("viewer").await;
        let now = keyframe_catalog::db::now_ms();
        let name = t.name;

        // Never watched: no position, no flag.
        let d = detail(&s, a, &tok).await;
        assert_eq!(d["resume_position_ms"], Value::Null, "{name}");
        assert_eq!(d["watched"], Value::Null, "{name}");

        let batch = vec![
            ev(a, "s1", 0, "start", 0, now - 50_000),
            ev(a, "s1", 1, "progress", 30_000, now - 20_000),
        ];
        let (st, v) = post(&s, &tok, batch.clone()).await;
        assert_eq!(st, StatusCode::OK, "{name}: {v}");
        assert_eq!(v, json!({"accepted": 2, "duplicates": 0}), "{name}");
        // Visible as soon as the POST returned.
        let d = detail(&s, a, &tok).await;
        assert_eq!(d["resume_position_ms"], 30_000, "{name}");
        assert_eq!(d["watched"], false, "{name}");

        // The same batch again changes nothing.
        let (_, v) = post(&s, &tok, batch).await;
        assert_eq!(v, json!({"accepted": 0, "duplicates": 2}), "{name}");
        let (_, h) = s.get("/api/history", Some(&tok)).await;
        assert_eq!(h["items"][0]["play_count"], 1, "{name}: {h}");
        assert_eq!(h["items"][0]["watched_ms"], 30_000, "{name}: {h}");

        // Out of order: seq 3 (later) arrives before seq 2.
        let (_, v) = post(&s, &tok, vec![ev(a, "s1", 3, "pause", 40_000, now - 5_000)]).await;
        assert_eq!(v["accepted"], 1);
        let (_, v) = post(
            &s,
            &tok,
            vec![ev(a, "s1", 2, "progress", 35_000, now - 10_000)],
        )
        .await;
        assert_eq!(v["accepted"], 1);
        assert_eq!(
            detail(&s, a, &tok).await["resume_position_ms"],
            40_000,
            "{name}"
        );

        // A duplicate inside one request counts once.
        let (_, v) = post(
            &s,
            &tok,
            vec![
                ev(b, "s2", 0, "start", 0, now - 9_000),
                ev(b, "s2", 0, "start", 0, now - 9_000),
            ],
        )
        .await;
        assert_eq!(v, json!({"accepted": 1, "duplicates": 1}), "{name}");

        // Thresholds: 4% leaves no resume point; 90% is played.
        post(
            &s,
            &tok,
            vec![ev(b, "s2", 1, "progress", 4_000, now - 8_000)],
        )
        .await;
        let d = detail(&s, b, &tok).await;
        assert_eq!(
            (d["resume_position_ms"].clone(), d["watched"].clone()),
            (Value::Null, json!(false)),
            "{name}"
        );
        post(
            &s,
            &tok,
            vec![ev(b, "s2", 2, "progress", 90_000, now - 7_000)],
        )
        .await;
        let d = detail(&s, b, &tok).await;
        assert_eq!(
            (d["resume_position_ms"].clone(), d["watched"].clone()),
            (Value::Null, json!(true)),
            "{name}"
        );

        // Play URLs carry the resume point too.
        let (st, p) = s.get(&format!("/api/content/{a}/play"), Some(&tok)).await;
        assert_eq!(st, StatusCode::OK, "{p}");
        assert_eq!(p["resume_position_ms"], 40_000, "{name}");

        // Another viewer sees nothing of it.
        let other = s.user("other").await;
        assert_eq!(
            detail(&s, a, &other).await["resume_position_ms"],
            Value::Null
        );

        // History pages, most recent first (Alpha's last event is the newest).
        let (_, h) = s.get("/api/history?limit=1", Some(&tok)).await;
        assert_eq!(ids_of(&h), vec![a.clone()], "{name}");
        assert_eq!(h["next_offset"], 1);
        let (_, h) = s.get("/api/history?limit=1&offset=1", Some(&tok)).await;
        assert_eq!(ids_of(&h), vec![b.clone()], "{name}");
        assert_eq!(h["next_offset"], Value::Null);
        s.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn bad_events_are_client_errors() {
    let t = keyframe_catalog::testing::sqlite().await.expect("db");
    let s = Server::start(
        &t.db,
        keyframe_catalog::Config {
            history_max_batch: 3,
            history_queue_events: 10,
            ..config()
        },
    )
    .await;
    let ids = seed(&t.db, &[("Alpha", "*")]).await;
    let a = &ids[0];
    let tok = s.user("viewer").await;
    let now = keyframe_catalog::db::now_ms();
    let good = ev(a, "s1", 0, "start", 0, now);

    let (st, v) = s
        .json(
            Method::POST,
            "/api/history",
            Some(json!({"events": [good.clone()]})),
            None,
        )
        .await;
    assert_error((st, v), StatusCode::UNAUTHORIZED, "unauthenticated");
    let rb = s
        .req(Method::POST, "/api/history")
        .bearer_auth(&tok)
        .header("content-type", "application/json")
        .body("{\"events\": [");
    let (st, _, v) = s.send(rb).await;
    assert_error((st, v), StatusCode::BAD_REQUEST, "malformed_json");

    let mut bad_kind = good.clone();
    bad_kind["kind"] = json!("ended");
    assert_error(
        post(&s, &tok, vec![bad_kind]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    let mut missing = good.clone();
    missing.as_object_mut().expect("obj").remove("seq");
    assert_error(
        post(&s, &tok, vec![missing]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    for (field, value) in [
        ("seq", json!(-1)),
        ("position_ms", json!(-5)),
        ("duration_ms", json!(0)),
        ("at", json!(now + 3_600_000)),
        ("at", json!(0)),
        ("session_id", json!("")),
        ("session_id", json!("has space")),
    ] {
        let mut e = good.clone();
        e[field] = value;
        assert_error(
            post(&s, &tok, vec![e]).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        );
    }
    let mut unknown = good.clone();
    unknown["content_id"] = json!("0123456789abcdef");
    assert_error(
        post(&s, &tok, vec![unknown]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_content",
    );
    let mut odd = good.clone();
    odd["content_id"] = json!("../../etc");
    assert_error(
        post(&s, &tok, vec![odd]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_content",
    );
    let four: Vec<Value> = (0..4).map(|i| ev(a, "s1", i, "progress", 0, now)).collect();
    assert_error(
        post(&s, &tok, four).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_many_events",
    );
    // Nothing of the refused requests was recorded; an empty batch is fine.
    let (st, v) = post(&s, &tok, vec![]).await;
    assert_eq!(
        (st, v),
        (StatusCode::OK, json!({"accepted": 0, "duplicates": 0}))
    );
    let (_, x) = s.get("/api/history/export", Some(&tok)).await;
    assert_eq!(x["events"], json!([]));

    // Bad queries.
    assert_error(
        s.get("/api/history?limit=0", Some(&tok)).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        s.get("/api/history?limit=x", Some(&tok)).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        s.json(
            Method::DELETE,
            &format!("/api/history?content_id={a}&before=5"),
            None,
            Some(&tok),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        s.json(Method::DELETE, "/api/history?before=-1", None, Some(&tok))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        s.get("/api/trending?region=EU;x", None).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        s.get("/api/recommendations", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(
        s.get("/api/content/0123456789abcdef/similar", None).await,
        StatusCode::NOT_FOUND,
        "content_not_found",
    );
    assert_error(
        s.json(
            Method::DELETE,
            &format!("/api/history/continue/{a}"),
            None,
            Some(&tok),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_in_history",
    );
    s.stop().await;
    t.cleanup().await;
}

#[tokio::test]
async fn continue_watching_hides_and_follows_the_region() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        let ids = seed(&t.db, &[("Alpha", "*"), ("Beta", "*"), ("UsOnly", "us")]).await;
        let tok = s.user("viewer").await;
        let now = keyframe_catalog::db::now_ms();
        for (i, id) in ids.iter().enumerate() {
            let at = now - 60_000 + i as i64 * 1000;
            post_in(
                &s,
                &tok,
                "us",
                vec![ev(id, &format!("s{i}"), 0, "progress", 50_000, at)],
            )
            .await;
        }
        let (_, c) = s.get_in("/api/history/continue", "us", Some(&tok)).await;
        assert_eq!(
            ids_of(&c),
            vec![ids[2].clone(), ids[1].clone(), ids[0].clone()],
            "{}",
            t.name
        );
        assert_eq!(c["items"][0]["position_ms"], 50_000);
        // In eu, the us-only title is not offered.
        let (_, c) = s.get_in("/api/history/continue", "eu", Some(&tok)).await;
        assert_eq!(
            ids_of(&c),
            vec![ids[1].clone(), ids[0].clone()],
            "{}",
            t.name
        );

        // Hiding keeps the position.
        let (st, _) = s
            .json(
                Method::DELETE,
                &format!("/api/history/continue/{}", ids[1]),
                None,
                Some(&tok),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        let (_, c) = s.get_in("/api/history/continue", "eu", Some(&tok)).await;
        assert_eq!(ids_of(&c), vec![ids[0].clone()]);
        assert_eq!(
            detail(&s, &ids[1], &tok).await["resume_position_ms"],
            50_000
        );
        let (_, h) = s.get("/api/history", Some(&tok)).await;
        assert_eq!(h["items"].as_array().expect("items").len(), 3);
        // Watching it again shows it again.
        post_in(
            &s,
            &tok,
            "eu",
            vec![ev(&ids[1], "s1", 1, "progress", 60_000, now)],
        )
        .await;
        let (_, c) = s.get_in("/api/history/continue", "eu", Some(&tok)).await;
        assert_eq!(ids_of(&c), vec![ids[1].clone(), ids[0].clone()]);
        s.stop().await;
        t.cleanup().await;
    }
}

fn ids_of(v: &Value) -> Vec<String> {
    ids(v)
}

async fn stats(db: &keyframe_catalog::Db, id: &str) -> Vec<(String, i64, i64)> {
    db.content_stats(id).await.expect("stats")
}

/// A config where every `start` counts a view (no watch time needed, no window), for
/// the tests of counters and deletes; `trending_cannot_be_bought` tests the rules.
fn every_start_counts() -> keyframe_catalog::Config {
    keyframe_catalog::Config {
        trending_view_min_secs: 0,
        trending_view_window_secs: 0,
        ..config()
    }
}

async fn trending_scores(s: &Server, region: &str) -> Vec<(String, f64)> {
    let (st, v) = s.get(&format!("/api/trending?region={region}"), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["content"]["id"].as_str().expect("id").to_string(),
                i["score"].as_f64().expect("score"),
            )
        })
        .collect()
}

#[tokio::test]
async fn counters_and_trending_follow_the_events() {
    for t in common::databases().await {
        let s = Server::start(&t.db, every_start_counts()).await;
        let ids = seed(&t.db, &[("Alpha", "*"), ("Beta", "*"), ("Gamma", "*")]).await;
        let (a, b) = (&ids[0], &ids[1]);
        let u1 = s.user("one").await;
        let u2 = s.user("two").await;
        let now = keyframe_catalog::db::now_ms();
        // Alpha: two views in eu; Beta: one view in us.
        post_in(
            &s,
            &u1,
            "eu",
            vec![
                ev(a, "x", 0, "start", 0, now - 30_000),
                ev(a, "x", 1, "progress", 20_000, now - 10_000),
            ],
        )
        .await;
        post_in(&s, &u2, "eu", vec![ev(a, "y", 0, "start", 0, now - 20_000)]).await;
        post_in(
            &s,
            &u2,
            "us",
            vec![
                ev(b, "z", 0, "start", 0, now - 20_000),
                ev(b, "z", 1, "stop", 10_000, now - 10_000),
            ],
        )
        .await;
        assert_eq!(
            stats(&t.db, a).await,
            vec![("eu".to_string(), 2, 20_000)],
            "{}",
            t.name
        );
        assert_eq!(
            stats(&t.db, b).await,
            vec![("us".to_string(), 1, 10_000)],
            "{}",
            t.name
        );

        let eu = trending_scores(&s, "eu").await;
        assert_eq!(eu[0].0, *a, "{eu:?}");
        assert!((eu[0].1 - 2.0).abs() < 0.01, "two fresh views ≈ 2: {eu:?}");
        // Every region's trending fills in after the region's own.
        assert_eq!(
            eu.iter().map(|x| x.0.clone()).collect::<Vec<_>>(),
            vec![a.clone(), b.clone()]
        );
        let us = trending_scores(&s, "us").await;
        assert_eq!(
            us.iter().map(|x| x.0.clone()).collect::<Vec<_>>(),
            vec![b.clone(), a.clone()]
        );
        // Without a region: every region together.
        let (_, all) = s.get("/api/trending", None).await;
        assert_eq!(ids_of(&all), vec![a.clone(), b.clone()], "{}", t.name);
        // The content list's trending sort follows the caller's region; titles
        // without views come last.
        let (_, l) = s.get_in("/api/content?sort=trending", "us", None).await;
        let listed: Vec<String> = l["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_str().expect("id").to_string())
            .collect();
        assert_eq!(listed[0], *b, "{}", t.name);
        assert_eq!(listed.len(), 3);
        s.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn deletes_remove_events_and_everything_derived_from_them() {
    for t in common::databases().await {
        let s = Server::start(&t.db, every_start_counts()).await;
        let ids = seed(&t.db, &[("Alpha", "*"), ("Beta", "*")]).await;
        let (a, b) = (&ids[0], &ids[1]);
        let u1 = s.user("one").await;
        let u2 = s.user("two").await;
        let now = keyframe_catalog::db::now_ms();
        let day = 86_400_000;
        // u1: Alpha two days ago and today; Beta today. u2: Alpha today.
        post_in(
            &s,
            &u1,
            "eu",
            vec![
                ev(a, "old", 0, "start", 0, now - 2 * day),
                ev(a, "old", 1, "progress", 30_000, now - 2 * day + 30_000),
                ev(a, "new", 0, "start", 30_000, now - 60_000),
                ev(a, "new", 1, "pause", 40_000, now - 50_000),
                ev(b, "b", 0, "start", 0, now - 40_000),
                ev(b, "b", 1, "progress", 20_000, now - 20_000),
            ],
        )
        .await;
        post_in(
            &s,
            &u2,
            "eu",
            vec![
                ev(a, "u2", 0, "start", 0, now - 30_000),
                ev(a, "u2", 1, "progress", 10_000, now - 20_000),
            ],
        )
        .await;
        let before = trending_scores(&s, "eu").await;
        assert_eq!(
            stats(&t.db, a).await,
            vec![("eu".to_string(), 3, 50_000)],
            "{}",
            t.name
        );

        // Before yesterday: the old session goes; Alpha is refolded from "new".
        let (st, d) = s
            .json(
                Method::DELETE,
                &format!("/api/history?before={}", now - day),
                None,
                Some(&u1),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{d}");
        assert_eq!(d, json!({"events": 2, "titles": 0}), "{}", t.name);
        assert_eq!(
            stats(&t.db, a).await,
            vec![("eu".to_string(), 2, 20_000)],
            "{}",
            t.name
        );
        let (_, h) = s.get("/api/history", Some(&u1)).await;
        let alpha = h["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["content"]["id"] == json!(a))
            .expect("alpha")
            .clone();
        assert_eq!(
            (alpha["play_count"].clone(), alpha["position_ms"].clone()),
            (json!(1), json!(40_000)),
            "{}",
            t.name
        );
        assert_eq!(alpha["first_watched_at"], now - 60_000);
        // The old view decayed by two half-lives weighed 0.25.
        let after = trending_scores(&s, "eu").await;
        let score = |v: &[(String, f64)], id: &str| v.iter().find(|x| x.0 == id).map(|x| x.1);
        let drop = score(&before, a).expect("a") - score(&after, a).expect("a");
        assert!(
            (drop - 0.25).abs() < 0.01,
            "{}: {before:?} → {after:?}",
            t.name
        );

        // One title.
        let (_, d) = s
            .json(
                Method::DELETE,
                &format!("/api/history?content_id={b}"),
                None,
                Some(&u1),
            )
            .await;
        assert_eq!(d, json!({"events": 2, "titles": 1}), "{}", t.name);
        assert_eq!(stats(&t.db, b).await, vec![], "{}", t.name);
        assert_eq!(
            score(&trending_scores(&s, "eu").await, b),
            None,
            "{}",
            t.name
        );
        assert_eq!(detail(&s, b, &u1).await["resume_position_ms"], Value::Null);

        // Everything: only u2's part is left anywhere.
        let (_, d) = s
            .json(Method::DELETE, "/api/history", None, Some(&u1))
            .await;
        assert_eq!(d, json!({"events": 2, "titles": 1}), "{}", t.name);
        let (_, x) = s.get("/api/history/export", Some(&u1)).await;
        assert_eq!(
            (x["events"].clone(), x["titles"].clone()),
            (json!([]), json!([])),
            "{}",
            t.name
        );
        let (_, h) = s.get("/api/history", Some(&u1)).await;
        assert_eq!(h["items"], json!([]));
        assert_eq!(
            stats(&t.db, a).await,
            vec![("eu".to_string(), 1, 10_000)],
            "{}",
            t.name
        );
        let left = score(&trending_scores(&s, "eu").await, a).expect("a");
        assert!((left - 1.0).abs() < 0.01, "{}: {left}", t.name);
        // u2's export is whole.
        let (_, x) = s.get("/api/history/export", Some(&u2)).await;
        assert_eq!(x["events"].as_array().expect("events").len(), 2);
        assert_eq!(x["titles"][0]["content_id"], json!(a));
        s.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn a_stopped_server_has_committed_every_answered_event() {
    let t = keyframe_catalog::testing::sqlite().await.expect("db");
    let s = Server::start(&t.db, every_start_counts()).await;
    let ids = seed(&t.db, &[("Alpha", "*")]).await;
    let tok = s.user("viewer").await;
    let now = keyframe_catalog::db::now_ms();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let rb = s
            .req(Method::POST, "/api/history")
            .bearer_auth(&tok)
            .json(&json!({"events": [ev(&ids[0], &format!("s{i}"), 0, "start", 0, now)]}));
        tasks.push(tokio::spawn(
            async move { rb.send().await.map(|r| r.status()) },
        ));
    }
    let mut ok = 0;
    for task in tasks {
        if matches!(task.await.expect("join"), Ok(StatusCode::OK)) {
            ok += 1;
        }
    }
    s.stop().await;
    let stats = t.db.content_stats(&ids[0]).await.expect("stats");
    assert_eq!(stats.iter().map(|x| x.1).sum::<i64>(), ok);
    assert_eq!(ok, 20);
    t.cleanup().await;
}

#[tokio::test]
async fn trending_cannot_be_bought() {
    for t in common::databases().await {
        let s = Server::start(
            &t.db,
            keyframe_catalog::Config {
                history_events_per_user_minute: 1500,
                ..config()
            },
        )
        .await;
        let name = t.name;
        let ids = seed(&t.db, &[("Here", "eu"), ("Elsewhere", "us")]).await;
        let (here, elsewhere) = (&ids[0], &ids[1]);
        let tok = s.user("buyer").await;
        let now = keyframe_catalog::db::now_ms();
        let starts = |id: &str| -> Vec<Value> {
            (0..1000)
                .map(|i| ev(id, &format!("fake-{i}"), 0, "start", 0, now - 300_000))
                .collect()
        };
        let send = |events: Vec<Value>| {
            s.req(Method::POST, "/api/history")
                .header("x-region", "eu")
                .bearer_auth(&tok)
                .json(&json!({ "events": events }))
        };
        // The attack of issue 17: 1,000 starts with fresh session ids for a title
        // not licensed in the viewer's region. Refused; trending does not move.
        let (st, _, v) = s.send(send(starts(elsewhere))).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{name}: {v}");
        assert_eq!(v["code"], "unavailable_in_region", "{v}");
        assert!(trending_scores(&s, "eu").await.is_empty(), "{name}");
        assert!(trending_scores(&s, "us").await.is_empty(), "{name}");
        // The same for a licensed title: accepted as history, but no view.
        let (st, _, v) = s.send(send(starts(here))).await;
        assert_eq!(st, StatusCode::OK, "{name}: {v}");
        assert_eq!(v["accepted"], 1000, "{v}");
        assert!(
            trending_scores(&s, "eu").await.is_empty(),
            "{name}: no views"
        );
        let views: i64 = stats(&t.db, here).await.iter().map(|x| x.1).sum();
        assert_eq!(views, 0, "{name}: no views counted");

        // Real watching (40 s of progress) counts one view…
        let watch = |sid: &str, from: i64| {
            vec![
                ev(here, sid, 0, "start", 0, from),
                ev(here, sid, 1, "progress", 20_000, from + 20_000),
                ev(here, sid, 2, "progress", 40_000, from + 40_000),
            ]
        };
        let (st, _, v) = s.send(send(watch("real", now - 60_000))).await;
        assert_eq!(st, StatusCode::OK, "{name}: {v}");
        let eu = trending_scores(&s, "eu").await;
        assert_eq!(eu.len(), 1, "{name}: {eu:?}");
        assert!((eu[0].1 - 1.0).abs() < 0.01, "{name}: one view: {eu:?}");
        // …and watching again within the window counts nothing more.
        let (st, _, v) = s.send(send(watch("again", now - 15_000))).await;
        assert_eq!(st, StatusCode::OK, "{name}: {v}");
        let eu = trending_scores(&s, "eu").await;
        assert!((eu[0].1 - 1.0).abs() < 0.01, "{name}: still one: {eu:?}");

        // The viewer's budget (1,500 a minute) is spent: 429 with Retry-After.
        let (st, headers, v) = s.send(send(starts(here))).await;
        assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{name}: {v}");
        assert_eq!(v["code"], "rate_limited", "{v}");
        let retry: u64 = headers["retry-after"]
            .to_str()
            .expect("header")
            .parse()
            .expect("secs");
        assert!((1..=60).contains(&retry), "{retry}");
        // Another viewer is not affected.
        let other = s.user("other").await;
        post_in(&s, &other, "eu", vec![ev(here, "o", 0, "start", 0, now)]).await;
        s.stop().await;
        t.cleanup().await;
    }
}

/// Two folds of one event at once (a JetStream redelivery racing the first
/// delivery on another catalog, `--events`) add it once: on PostgreSQL the second
/// waits for the first's per-viewer lock and then finds the event in the log
/// (without the lock both found it new and both counted the view).
#[tokio::test]
async fn racing_folds_of_one_event_count_it_once() {
    use keyframe_catalog::history::{Event, EventKind, UserBatch};
    for t in common::databases().await {
        let cfg = every_start_counts();
        let s = Server::start(&t.db, cfg.clone()).await;
        let ids = seed(&t.db, &[("Raced", "*")]).await;
        s.user("racer").await;
        let user = t.db.user_by_username("racer").await.expect("user").id;
        let at = keyframe_catalog::db::now_ms() - 1000;
        let rounds = 20;
        for r in 0..rounds {
            let batch = UserBatch {
                user_id: user.clone(),
                region: "eu".into(),
                events: vec![Event {
                    content_id: ids[0].clone(),
                    session_id: format!("race-{r}"),
                    seq: 0,
                    position_ms: 0,
                    duration_ms: 100_000,
                    kind: EventKind::Start,
                    at,
                }],
            };
            let fold = || {
                t.db.record_history(
                    std::slice::from_ref(&batch),
                    cfg.history_thresholds(),
                    cfg.trending_half_life_ms(),
                )
            };
            let (a, b) = tokio::join!(fold(), fold());
            let accepted = a.expect("fold")[0].accepted + b.expect("fold")[0].accepted;
            assert_eq!(accepted, 1, "{}: round {r}", t.name);
        }
        let views: i64 = stats(&t.db, &ids[0]).await.iter().map(|r| r.1).sum();
        assert_eq!(views, rounds, "{}", t.name);
        let state =
            t.db.watch_state(&user, &ids[0])
                .await
                .expect("state")
                .expect("watched");
        assert_eq!(state.play_count, rounds, "{}", t.name);
        s.stop().await;
        t.cleanup().await;
    }
}
