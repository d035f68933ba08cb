//! Content over real HTTP, on SQLite and (when configured) PostgreSQL: lists per
//! region, paging, search, filters, sorts, detail, playback URLs and their tokens
//! per region, admin edits and uploads, and cache invalidation.

mod common;

use common::{assert_error, config, right, title, Server, ADMIN, TOKEN_KEY};
use keyframe_catalog::meta::Right;
use keyframe_catalog::Config;
use keyframe_core::token::{verify, TokenKey};
use object_store::ObjectStoreExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn titles(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {v}"))
        .iter()
        .map(|i| i["title"].as_str().expect("title").to_string())
        .collect()
}

/// Five titles: two everywhere, one in eu, one in us, one in eu from the future.
async fn seed(db: &keyframe_catalog::Db) -> Vec<String> {
    let now = keyframe_catalog::db::now_ms();
    let mut ids = Vec::new();
    for (name, desc, cats, rights) in [
        (
            "Big Buck Bunny",
            "A giant rabbit takes revenge",
            vec!["animation", "comedy"],
            vec![right("*")],
        ),
        (
            "Sintel",
            "A girl searches for her dragon",
            vec!["animation", "fantasy"],
            vec![right("eu")],
        ),
        (
            "Tears of Steel",
            "Robots in Amsterdam",
            vec!["scifi"],
            vec![right("us")],
        ),
        (
            "Elephants Dream",
            "Two men in a strange machine",
            vec!["animation"],
            vec![right("*")],
        ),
        (
            "Cosmos Laundromat",
            "A suicidal sheep meets a salesman",
            vec!["comedy"],
            vec![Right {
                region: "eu".into(),
                available_from: Some(now + 86_400_000),
                available_until: None,
            }],
        ),
    ] {
        let c = db
            .create_content(&title(name, desc, &cats, rights))
            .await
            .expect("create");
        ids.push(c.id);
        // Distinct creation times for a stable "newest" order.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    ids
}

#[tokio::test]
async fn lists_show_what_the_region_may_watch_with_paging_filters_and_sorts() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        seed(&t.db).await;
        let name = t.name;

        let (st, v) = s.get_in("/api/content", "eu", None).await;
        assert_eq!(st, StatusCode::OK, "{name}: {v}");
        assert_eq!(v["region"], "eu");
        assert_eq!(
            titles(&v),
            vec!["Elephants Dream", "Sintel", "Big Buck Bunny"],
            "{name}: newest first, eu and everywhere"
        );
        let (_, v) = s.get_in("/api/content", "US", None).await;
        assert_eq!(
            titles(&v),
            vec!["Elephants Dream", "Tears of Steel", "Big Buck Bunny"],
            "{name}"
        );
        let (_, v) = s.get("/api/content", None).await;
        assert!(v["region"].is_null());
        assert_eq!(
            titles(&v),
            vec!["Elephants Dream", "Big Buck Bunny"],
            "{name}: unknown region"
        );
        let (_, v) = s
            .get_in("/api/content?availability=upcoming", "eu", None)
            .await;
        assert_eq!(titles(&v), vec!["Cosmos Laundromat"], "{name}");
        assert_eq!(v["items"][0]["availability"]["available"], false);

        // Sorts and filters.
        let (_, v) = s.get_in("/api/content?sort=title", "eu", None).await;
        assert_eq!(
            titles(&v),
            vec!["Big Buck Bunny", "Elephants Dream", "Sintel"],
            "{name}"
        );
        let (_, v) = s.get_in("/api/content?category=fantasy", "eu", None).await;
        assert_eq!(titles(&v), vec!["Sintel"], "{name}");
        let (_, v) = s
            .get_in("/api/content?category=animation&sort=title", "eu", None)
            .await;
        assert_eq!(
            titles(&v),
            vec!["Big Buck Bunny", "Elephants Dream", "Sintel"],
            "{name}"
        );
        let (_, v) = s.get_in("/api/content?kind=audio", "eu", None).await;
        assert!(titles(&v).is_empty(), "{name}");

        // Paging.
        let (_, p1) = s
            .get_in("/api/content?limit=2&sort=title", "eu", None)
            .await;
        assert_eq!(titles(&p1), vec!["Big Buck Bunny", "Elephants Dream"]);
        assert_eq!(p1["next_offset"], 2);
        let (_, p2) = s
            .get_in("/api/content?limit=2&offset=2&sort=title", "eu", None)
            .await;
        assert_eq!(titles(&p2), vec!["Sintel"]);
        assert!(p2["next_offset"].is_null());

        // Summaries carry a signed poster and the duration.
        let item = &p1["items"][0];
        assert_eq!(item["duration_ms"], 60_000);
        let poster = item["poster"]["url"].as_str().expect("poster");
        assert!(
            poster.starts_with("http://eu.edge.test/v1/objects/sha256/"),
            "{poster}"
        );
        assert!(poster.contains("__token__="), "{poster}");
        assert_eq!(
            item["poster"]["inline_thumbnail"],
            "data:image/jpeg;base64,AAAA"
        );

        // Trending follows plays (a placeholder views counter).
        let token = s.user("ann").await;
        let ids: Vec<String> = p1["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_str().expect("id").to_string())
            .collect();
        for _ in 0..2 {
            let (st, v) = s
                .get_in(&format!("/api/content/{}/play", ids[0]), "eu", Some(&token))
                .await;
            assert_eq!(st, StatusCode::OK, "{v}");
        }
        let (_, v) = s.get_in("/api/content?sort=trending", "eu", None).await;
        assert_eq!(
            titles(&v)[0],
            "Big Buck Bunny",
            "{name}: the oldest, but the most played"
        );

        // Bad queries.
        for q in [
            "limit=0",
            "limit=101",
            "offset=10001",
            "sort=best",
            "availability=soon",
            "limit=x",
        ] {
            assert_error(
                s.get(&format!("/api/content?{q}"), None).await,
                StatusCode::BAD_REQUEST,
                "invalid_query",
            );
        }
        assert_error(
            s.get("/api/content?availability=all", None).await,
            StatusCode::UNAUTHORIZED,
            "admin_required",
        );
        let (st, v) = s
            .get("/api/content?availability=all&limit=100", Some(ADMIN))
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(titles(&v).len(), 5, "{name}: admins see everything");

        let (st, v) = s.get("/api/categories", None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(
            v[0],
            json!({"name": "animation", "count": 3}),
            "{name}: {v}"
        );
        s.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn search_finds_words_and_ignores_sql_and_fts_syntax() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        seed(&t.db).await;
        let name = t.name;
        let search = |q: &str| {
            let q: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
            format!("/api/content?q={q}")
        };
        let (st, v) = s.get_in(&search("bunny"), "eu", None).await;
        assert_eq!(st, StatusCode::OK, "{name}: {v}");
        assert_eq!(titles(&v), vec!["Big Buck Bunny"], "{name}");
        let (_, v) = s.get_in(&search("BIG buc"), "eu", None).await;
        assert_eq!(
            titles(&v),
            vec!["Big Buck Bunny"],
            "{name}: prefixes, any case"
        );
        let (_, v) = s.get_in(&search("dragon"), "eu", None).await;
        assert_eq!(titles(&v), vec!["Sintel"], "{name}: descriptions");
        let (_, v) = s.get_in(&search("dragon"), "us", None).await;
        assert!(titles(&v).is_empty(), "{name}: rights apply to search too");
        let (_, v) = s.get_in(&search("a"), "eu", None).await;
        assert!(titles(&v).len() >= 2, "{name}: {v}");
        for evil in [
            "'; DROP TABLE content; --",
            "\" OR 1=1 --",
            "bunny' OR '1'='1",
            "*",
            "\"",
            "NEAR(big buck)",
            "big AND NOT buck",
            "title:big",
            "!(&|:*)",
            "bunny)) UNION SELECT password_hash FROM users --",
            "%_%",
            "\\",
        ] {
            let (st, v) = s.get_in(&search(evil), "eu", None).await;
            assert_eq!(st, StatusCode::OK, "{name}: {evil}: {v}");
            assert!(
                !v.to_string().contains("argon2"),
                "{name}: {evil} leaked something: {v}"
            );
        }
        // The tables are intact.
        let (_, v) = s.get_in("/api/content", "eu", None).await;
        assert_eq!(titles(&v).len(), 3, "{name}");
        assert_error(
            s.get(&search(&"x".repeat(201)), None).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        );
        s.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn detail_has_assets_media_and_a_null_resume_position() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        let ids = seed(&t.db).await;
        let (st, d) = s
            .get_in(&format!("/api/content/{}", ids[0]), "eu", None)
            .await;
        assert_eq!(st, StatusCode::OK, "{}: {d}", t.name);
        assert_eq!(d["title"], "Big Buck Bunny");
        assert_eq!(d["categories"], json!(["animation", "comedy"]));
        assert_eq!(d["media"]["width"], 1280);
        assert_eq!(d["media"]["video_codec"], "avc1.64001f");
        assert_eq!(d["media"]["faststart"], true);
        assert_eq!(d["assets"].as_array().expect("assets").len(), 2);
        assert!(d["poster"]["url"].is_string());
        assert_eq!(d["availability"]["available"], true);
        assert!(d["rights"].is_null(), "rights only for admins");
        assert!(d["resume_position_ms"].is_null() && d["watched"].is_null());
        let token = s.user("ann").await;
        let (_, d) = s
            .get_in(&format!("/api/content/{}", ids[0]), "eu", Some(&token))
            .await;
        assert!(
            d["resume_position_ms"].is_null() && d["watched"].is_null(),
            "{d}"
        );
        let (_, d) = s
            .get(&format!("/api/content/{}", ids[0]), Some(ADMIN))
            .await;
        assert_eq!(d["rights"][0]["region"], "*");
        // A title not available in the region still has a detail page, marked so.
        let (st, d) = s
            .get_in(&format!("/api/content/{}", ids[2]), "eu", None)
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(d["availability"]["available"], false);
        for missing in [
            "nope",
            "0123456789abcdef0123456789abcdef",
            "..%2F..%2Fetc",
            &"x".repeat(100),
        ] {
            assert_error(
                s.get(&format!("/api/content/{missing}"), None).await,
                StatusCode::NOT_FOUND,
                "content_not_found",
            );
        }
        s.stop().await;
        t.cleanup().await;
    }
}

/// The token in a playback URL, as edges and origins read it.
fn token_of(url: &str) -> String {
    let uri: http::Uri = url.parse().expect("uri");
    keyframe_core::token::extract(&uri, &http::HeaderMap::new()).expect("token")
}

#[tokio::test]
async fn playback_urls_are_signed_per_region_and_rights_are_enforced() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        let ids = seed(&t.db).await;
        let key = TokenKey::from_config(TOKEN_KEY).expect("key");
        let token = s.user("ann").await;
        let name = t.name;
        let source_key = |id: String| {
            let db = t.db.clone();
            async move {
                db.content(&id)
                    .await
                    .expect("content")
                    .assets
                    .into_iter()
                    .find(|a| a.role == "source")
                    .expect("source")
                    .object_key
            }
        };
        let source = source_key(ids[1].clone()).await;
        let path = format!("/v1/objects/{source}");

        let (st, p) = s
            .get_in(&format!("/api/content/{}/play", ids[1]), "eu", Some(&token))
            .await;
        assert_eq!(st, StatusCode::OK, "{name}: {p}");
        assert_eq!(p["edge"], "http://eu.edge.test");
        assert_eq!(p["region"], "eu");
        let url = p["url"].as_str().expect("url");
        assert!(
            url.starts_with(&format!("http://eu.edge.test{path}?__token__=")),
            "{url}"
        );
        let now = keyframe_catalog::db::now_ms() / 1000;
        let claims = verify(&key, &token_of(url), &path, now as u64).expect("valid token");
        assert_eq!(claims.regions(), Some(vec!["eu"]));
        assert_eq!(claims.acl, path, "scoped to exactly that object");
        assert_eq!(p["expires_at"].as_i64(), Some(claims.exp as i64 * 1000));
        assert!(
            (355..=361).contains(&(claims.exp as i64 - now)),
            "ttl 300 s plus the 60 s film, so a viewer can pause and seek to its end: {}",
            claims.exp as i64 - now
        );
        assert!(verify(&key, &token_of(url), "/v1/objects/other.mp4", now as u64).is_err());
        assert!(
            verify(&key, &token_of(url), &path, claims.exp).is_err(),
            "expires"
        );
        // A player renewing the URL of the title it plays (a long pause) gets a
        // fresh token, and the view is not counted again.
        let views = || {
            let db = t.db.clone();
            let id = ids[1].clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT views FROM content WHERE id = $1")
                    .bind(id)
                    .fetch_one(db.pool())
                    .await
                    .expect("views")
            }
        };
        let before = views().await;
        let (st, renewed) = s
            .get_in(
                &format!("/api/content/{}/play?renew=true", ids[1]),
                "eu",
                Some(&token),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{name}: {renewed}");
        assert!(verify(
            &key,
            &token_of(renewed["url"].as_str().expect("url")),
            &path,
            now as u64
        )
        .is_ok());
        assert_eq!(views().await, before, "{name}: a renewal is no new view");
        let (st, _) = s
            .get_in(&format!("/api/content/{}/play", ids[1]), "eu", Some(&token))
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(views().await, before + 1, "{name}: a new playback is");
        assert_error(
            s.get_in(
                &format!("/api/content/{}/play?renew=maybe", ids[1]),
                "eu",
                Some(&token),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        );

        // A title licensed everywhere plays in us with a us token.
        let (st, p) = s
            .get_in(&format!("/api/content/{}/play", ids[0]), "us", Some(&token))
            .await;
        assert_eq!(st, StatusCode::OK, "{p}");
        assert_eq!(p["edge"], "http://us.edge.test");
        let src0 = source_key(ids[0].clone()).await;
        let claims = verify(
            &key,
            &token_of(p["url"].as_str().expect("url")),
            &format!("/v1/objects/{src0}"),
            now as u64,
        )
        .expect("valid");
        assert_eq!(claims.regions(), Some(vec!["us"]));
        // A region without its own edge gets the default edge.
        let (_, p) = s
            .get_in(&format!("/api/content/{}/play", ids[0]), "ap", Some(&token))
            .await;
        assert_eq!(p["edge"], "http://edge.test", "{p}");

        // Rights forbid: 451.
        assert_error(
            s.get_in(&format!("/api/content/{}/play", ids[1]), "us", Some(&token))
                .await,
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "unavailable_in_region",
        );
        assert_error(
            s.get_in(&format!("/api/content/{}/play", ids[4]), "eu", Some(&token))
                .await,
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "unavailable_in_region",
        );
        assert_error(
            s.get(&format!("/api/content/{}/play", ids[1]), Some(&token))
                .await,
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "unavailable_in_region",
        );
        // Not signed in: 401.
        assert_error(
            s.get_in(&format!("/api/content/{}/play", ids[1]), "eu", None)
                .await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        );
        assert_error(
            s.get_in(
                &format!("/api/content/{}/play", ids[1]),
                "eu",
                Some(&"cd".repeat(32)),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "invalid_session",
        );
        assert_error(
            s.get_in("/api/content/nope/play", "eu", Some(&token)).await,
            StatusCode::NOT_FOUND,
            "content_not_found",
        );
        s.stop().await;

        // Public content and no token key: anonymous plays, URLs carry no token;
        // regions from the network table and the default region.
        let s = Server::start(
            &t.db,
            Config {
                public_content: true,
                token_key: None,
                region_networks: vec!["127.0.0.0/8=eu".into()],
                ..config()
            },
        )
        .await;
        let (st, p) = s.get(&format!("/api/content/{}/play", ids[1]), None).await;
        assert_eq!(st, StatusCode::OK, "{name}: {p}");
        assert_eq!(p["region"], "eu", "from the network table");
        assert_eq!(p["url"], format!("http://eu.edge.test{path}"));
        assert!(p["expires_at"].is_i64());
        s.stop().await;
        let s = Server::start(
            &t.db,
            Config {
                public_content: true,
                region_header: String::new(),
                default_region: "us".into(),
                ..config()
            },
        )
        .await;
        let (st, p) = s
            .get_in(&format!("/api/content/{}/play", ids[2]), "eu", None)
            .await;
        assert_eq!(
            st,
            StatusCode::OK,
            "{name}: header ignored when not configured: {p}"
        );
        assert_eq!(p["region"], "us");
        s.stop().await;
        t.cleanup().await;
    }
}

/// A country database placing 81.0.0.0/8 and 127.0.0.0/8 in DE, 3.0.0.0/8 in US.
fn country_mmdb(path: &std::path::Path) {
    use maxminddb_writer::paths::IpAddrWithMask;
    #[derive(serde::Serialize)]
    struct Country {
        iso_code: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Record {
        country: Country,
    }
    let mut db = maxminddb_writer::Database::default();
    db.metadata.database_type = "GeoLite2-Country".into();
    db.metadata.binary_format_major_version = 2;
    let de = db
        .insert_value(Record {
            country: Country { iso_code: "DE" },
        })
        .expect("value");
    let us = db
        .insert_value(Record {
            country: Country { iso_code: "US" },
        })
        .expect("value");
    for (net, data) in [("81.0.0.0/8", de), ("127.0.0.0/8", de), ("3.0.0.0/8", us)] {
        db.insert_node(net.parse::<IpAddrWithMask>().expect("net"), data);
    }
    let file = std::fs::File::create(path).expect("create");
    db.write_to(std::io::BufWriter::new(file)).expect("write");
}

#[tokio::test]
async fn clients_cannot_pick_their_region_and_addresses_resolve_through_geoip() {
    let dir = tempfile::tempdir().expect("dir");
    let mmdb = dir.path().join("country.mmdb");
    country_mmdb(&mmdb);
    let t = common::databases().await.remove(0);
    seed(&t.db).await;
    let region = |v: &Value| v["region"].as_str().map(str::to_string);

    // Nobody trusted (the default): a client's own region header and forwarded
    // address change nothing; its address decides, through the country database.
    let s = Server::start(
        &t.db,
        Config {
            trusted_proxies: Vec::new(),
            client_ip_header: "x-forwarded-for".into(),
            region_geoip_db: Some(mmdb.clone()),
            region_countries: vec!["DE=eu".into(), "US=us".into()],
            ..config()
        },
    )
    .await;
    let (st, v) = s.get("/api/content", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(region(&v).as_deref(), Some("eu"), "127.0.0.1 is in DE");
    let r = s
        .req(Method::GET, "/api/content")
        .header("x-region", "us")
        .header("x-forwarded-for", "3.3.3.3")
        .send()
        .await
        .expect("send");
    let v: Value = r.json().await.expect("json");
    assert_eq!(region(&v).as_deref(), Some("eu"), "spoofed headers ignored");
    assert_eq!(
        titles(&v),
        vec!["Elephants Dream", "Sintel", "Big Buck Bunny"],
        "the eu catalog, not the us one"
    );
    s.stop().await;

    // From a trusted proxy: its region header decides, and without one, the client
    // address it forwards resolves through the country database.
    let s = Server::start(
        &t.db,
        Config {
            trusted_proxies: vec!["127.0.0.0/8".into()],
            client_ip_header: "x-forwarded-for".into(),
            region_geoip_db: Some(mmdb.clone()),
            region_countries: vec!["DE=eu".into(), "US=us".into()],
            ..config()
        },
    )
    .await;
    let (_, v) = s.get_in("/api/content", "us", None).await;
    assert_eq!(region(&v).as_deref(), Some("us"));
    let r = s
        .req(Method::GET, "/api/content")
        .header("x-forwarded-for", "3.3.3.3, 10.0.0.1")
        .send()
        .await
        .expect("send");
    let v: Value = r.json().await.expect("json");
    assert_eq!(region(&v).as_deref(), Some("us"), "3.3.3.3 is in US");
    s.stop().await;
    t.cleanup().await;
}

#[tokio::test]
async fn admins_edit_metadata_and_rights_and_changes_show_at_once() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        let ids = seed(&t.db).await;
        let name = t.name;
        let id = &ids[0];
        // Warm the cache.
        let (_, d) = s.get_in(&format!("/api/content/{id}"), "eu", None).await;
        assert_eq!(d["title"], "Big Buck Bunny");

        let patch = json!({"title": "Huge Hare", "categories": ["classics"]});
        assert_error(
            s.json(
                Method::PATCH,
                &format!("/api/admin/content/{id}"),
                Some(patch.clone()),
                None,
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "admin_required",
        );
        assert_error(
            s.json(
                Method::PATCH,
                &format!("/api/admin/content/{id}"),
                Some(patch.clone()),
                Some("wrong-admin-token"),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "admin_required",
        );
        let (st, d) = s
            .json(
                Method::PATCH,
                &format!("/api/admin/content/{id}"),
                Some(patch),
                Some(ADMIN),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{name}: {d}");
        assert_eq!(d["title"], "Huge Hare");
        let (_, d) = s.get_in(&format!("/api/content/{id}"), "eu", None).await;
        assert_eq!(d["title"], "Huge Hare", "{name}: the cache was invalidated");
        assert_eq!(d["categories"], json!(["classics"]));
        let (_, v) = s.get_in("/api/content?q=hare", "eu", None).await;
        assert_eq!(
            titles(&v),
            vec!["Huge Hare"],
            "{name}: the search index follows"
        );
        let (_, v) = s.get_in("/api/content?q=bunny", "eu", None).await;
        assert!(titles(&v).is_empty(), "{name}");
        for bad in [
            json!({"title": ""}),
            json!({"title": "x".repeat(201)}),
            json!({"kind": "hologram"}),
            json!({"categories": vec!["x"; 21]}),
        ] {
            assert_error(
                s.json(
                    Method::PATCH,
                    &format!("/api/admin/content/{id}"),
                    Some(bad),
                    Some(ADMIN),
                )
                .await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
            );
        }
        assert_error(
            s.json(
                Method::PATCH,
                "/api/admin/content/nope",
                Some(json!({"title": "x"})),
                Some(ADMIN),
            )
            .await,
            StatusCode::NOT_FOUND,
            "content_not_found",
        );

        // Rights: take the title out of eu, give it to us with a window.
        let token = s.user("ann").await;
        assert_eq!(
            s.get_in(&format!("/api/content/{id}/play"), "eu", Some(&token))
                .await
                .0,
            StatusCode::OK
        );
        let now = keyframe_catalog::db::now_ms();
        let (st, d) = s
            .json(
                Method::PUT,
                &format!("/api/admin/content/{id}/rights"),
                Some(json!({"rights": [{"region": "US", "available_from": now - 1000, "available_until": now + 3_600_000}]})),
                Some(ADMIN),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{name}: {d}");
        assert_eq!(d["rights"][0]["region"], "us");
        assert_error(
            s.get_in(&format!("/api/content/{id}/play"), "eu", Some(&token))
                .await,
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "unavailable_in_region",
        );
        assert_eq!(
            s.get_in(&format!("/api/content/{id}/play"), "us", Some(&token))
                .await
                .0,
            StatusCode::OK
        );
        let (_, v) = s.get_in("/api/content", "eu", None).await;
        assert!(!titles(&v).contains(&"Huge Hare".to_string()), "{name}");
        for bad in [
            json!({"rights": [{"region": "e u"}]}),
            json!({"rights": [{"region": "eu"}, {"region": "eu"}]}),
            json!({"rights": [{"region": "eu", "available_from": 10, "available_until": 5}]}),
        ] {
            assert_error(
                s.json(
                    Method::PUT,
                    &format!("/api/admin/content/{id}/rights"),
                    Some(bad),
                    Some(ADMIN),
                )
                .await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
            );
        }
        s.stop().await;

        // Without an admin token configured, admin endpoints are off.
        let s = Server::start(
            &t.db,
            Config {
                admin_token: None,
                ..config()
            },
        )
        .await;
        assert_error(
            s.json(
                Method::PATCH,
                &format!("/api/admin/content/{id}"),
                Some(json!({"title": "x"})),
                Some(ADMIN),
            )
            .await,
            StatusCode::FORBIDDEN,
            "admin_disabled",
        );
        s.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn admins_upload_content_through_the_pipeline() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (st, _, v) = s
            .send(
                s.req(
                    Method::POST,
                    "/api/admin/ingest?filename=clip.mp4&title=My%20Clip&categories=demo,short&regions=eu",
                )
                .bearer_auth(ADMIN)
                .header("content-type", "video/mp4")
                .body(reqwest::Body::wrap_stream(futures::stream::iter(
                    body.chunks(16_384)
                        .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                        .collect::<Vec<_>>(),
                ))),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{}: {v}", t.name);
        assert_eq!(v["size"], 200_000);
        assert_eq!(v["mime"], "video/mp4");
        let key = v["key"].as_str().expect("key");
        assert_eq!(v["path"], format!("/v1/objects/{key}"));
        let stored = s
            .store
            .get(&keyframe_core::key::parse_key(key).expect("key"))
            .await
            .expect("stored")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(&stored[..], &body[..]);
        let (_, list) = s.get_in("/api/content?category=demo", "eu", None).await;
        assert_eq!(titles(&list), vec!["My Clip"], "{}", t.name);

        // The preflight answers as the upload would, without a body.
        let (st, _, _) = s
            .send(
                s.req(Method::GET, "/api/admin/ingest?filename=x.mp4&regions=eu")
                    .bearer_auth(ADMIN),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{}", t.name);
        assert_error(
            s.send(s.req(Method::GET, "/api/admin/ingest?filename=x.mp4"))
                .await
                .into_pair(),
            StatusCode::UNAUTHORIZED,
            "admin_required",
        );
        assert_error(
            s.send(
                s.req(
                    Method::GET,
                    "/api/admin/ingest?filename=x.mp4&regions=no%20such",
                )
                .bearer_auth(ADMIN),
            )
            .await
            .into_pair(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        );
        assert_error(
            s.send(
                s.req(Method::POST, "/api/admin/ingest?filename=x.mp4")
                    .body("x"),
            )
            .await
            .into_pair(),
            StatusCode::UNAUTHORIZED,
            "admin_required",
        );
        assert_error(
            s.send(
                s.req(Method::POST, "/api/admin/ingest?filename=a/b.mp4")
                    .bearer_auth(ADMIN)
                    .body("x"),
            )
            .await
            .into_pair(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        );
        assert_error(
            s.send(
                s.req(Method::POST, "/api/admin/ingest")
                    .bearer_auth(ADMIN)
                    .body("x"),
            )
            .await
            .into_pair(),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        );
        s.stop().await;

        // Without an ingest pipeline: 503.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let store = keyframe_origin::store::open("memory://").expect("store");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(keyframe_catalog::server::run(
            listener,
            config(),
            t.db.clone(),
            store,
            async {
                let _ = rx.await;
            },
        ));
        let r = reqwest::Client::new()
            .post(format!("http://{addr}/api/admin/ingest?filename=x.mp4"))
            .bearer_auth(ADMIN)
            .body("x")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["code"], "ingest_unavailable");
        let _ = tx.send(());
        server.await.expect("join").expect("server");
        t.cleanup().await;
    }
}

trait IntoPair {
    fn into_pair(self) -> (StatusCode, Value);
}

impl IntoPair for (StatusCode, reqwest::header::HeaderMap, Value) {
    fn into_pair(self) -> (StatusCode, Value) {
        (self.0, self.2)
    }
}

/// On PostgreSQL, a change made through one catalog process reaches another's
/// cache through LISTEN/NOTIFY.
#[tokio::test]
async fn changes_reach_other_catalog_processes_on_postgres() {
    for t in common::databases().await {
        if t.name != "postgres" {
            t.cleanup().await;
            continue;
        }
        let a = Server::start(&t.db, config()).await;
        let b = Server::start(&t.db, config()).await;
        let ids = seed(&t.db).await;
        let id = &ids[0];
        let (_, d) = b.get_in(&format!("/api/content/{id}"), "eu", None).await;
        assert_eq!(d["title"], "Big Buck Bunny");
        let (st, _) = a
            .json(
                Method::PATCH,
                &format!("/api/admin/content/{id}"),
                Some(json!({"title": "Renamed"})),
                Some(ADMIN),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        let started = std::time::Instant::now();
        loop {
            let (_, d) = b.get_in(&format!("/api/content/{id}"), "eu", None).await;
            if d["title"] == "Renamed" {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "the other process did not see the change within 1 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        a.stop().await;
        b.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_json_errors() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        assert_error(
            s.get("/api/nope", None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert_error(
            s.json(Method::DELETE, "/api/content", None, None).await,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        );
        let r = s.req(Method::GET, "/").send().await.expect("page");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html"));
        let html = r.text().await.expect("html");
        assert!(html.contains("<video") && html.contains("/app.js"));
        // The page's own addresses answer with the page (deep links, reload),
        // without shadowing the API or anything else.
        for path in [
            "/title/abc123",
            "/search?q=big%20buck",
            "/category/animation",
            "/category/sci%20fi",
        ] {
            let r = s.req(Method::GET, path).send().await.expect("page");
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert!(r.headers()["content-type"]
                .to_str()
                .expect("type")
                .starts_with("text/html"));
            assert!(r.headers().contains_key("content-security-policy"));
            assert_eq!(r.text().await.expect("html"), html, "{path}");
        }
        for path in ["/title", "/title/a/b", "/api/title/x", "/titles/x"] {
            assert_error(s.get(path, None).await, StatusCode::NOT_FOUND, "not_found");
        }
        for (path, ty) in [("/app.js", "text/javascript"), ("/app.css", "text/css")] {
            let r = s.req(Method::GET, path).send().await.expect("asset");
            assert_eq!(r.status(), StatusCode::OK);
            assert!(r.headers()["content-type"]
                .to_str()
                .expect("type")
                .starts_with(ty));
        }
        assert_eq!(
            s.req(Method::GET, "/_keyframe/healthz")
                .send()
                .await
                .expect("health")
                .status(),
            StatusCode::OK
        );
        s.stop().await;
        t.cleanup().await;
    }
}
