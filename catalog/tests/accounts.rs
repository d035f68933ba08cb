//! Accounts and sessions over real HTTP, on SQLite and (when configured) PostgreSQL:
//! sign-up validation, sign-in, cookies, bearer tokens, logout, profile edits,
//! avatars, rate limits, rehashing, and session expiry on an injected clock.

use crate::common;

use std::sync::Arc;

use common::{assert_error, config, Server};
use keyframe_catalog::clock::ManualClock;
use keyframe_catalog::Config;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn signup(username: &str, password: &str) -> serde_json::Value {
    json!({
        "username": username,
        "password": password,
        "email": format!("{username}@example.com"),
        "date_of_birth": "1990-05-17",
    })
}

#[tokio::test]
async fn signup_validates_and_never_returns_the_hash() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        let (st, v) = s
            .json(
                Method::POST,
                "/api/users",
                Some(signup("ann", "correct horse")),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{}: {v}", t.name);
        assert_eq!(v["username"], "ann");
        assert_eq!(v["email"], "ann@example.com");
        assert_eq!(v["date_of_birth"], "1990-05-17");
        assert!(v["avatar"].is_null());
        let text = v.to_string();
        assert!(
            !text.contains("argon2") && !text.contains("password"),
            "{text}"
        );

        assert_error(
            s.json(
                Method::POST,
                "/api/users",
                Some(signup("ann", "another pass")),
                None,
            )
            .await,
            StatusCode::CONFLICT,
            "username_taken",
        );
        for (body, what) in [
            (signup("an", "correct horse"), "short username"),
            (signup(&"a".repeat(33), "correct horse"), "long username"),
            (signup("Ann", "correct horse"), "uppercase"),
            (
                signup("ann'; DROP TABLE users; --", "correct horse"),
                "sql in username",
            ),
            (signup("bob", "short"), "short password"),
            (signup("bob", &"x".repeat(1025)), "overlong password"),
            (
                json!({"username": "bob", "password": "correct horse", "email": "nope", "date_of_birth": "1990-05-17"}),
                "email",
            ),
            (
                json!({"username": "bob", "password": "correct horse", "email": "b@example.com", "date_of_birth": "1990-02-30"}),
                "date",
            ),
            (
                json!({"username": "bob", "password": "correct horse", "email": "b@example.com", "date_of_birth": "2999-01-01"}),
                "future date",
            ),
        ] {
            let got = s.json(Method::POST, "/api/users", Some(body), None).await;
            assert_eq!(
                got.0,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}: {what}: {}",
                t.name,
                got.1
            );
            assert_eq!(got.1["code"], "invalid_field", "{what}");
        }
        assert_error(
            s.json(
                Method::POST,
                "/api/users",
                Some(json!({"username": "bob", "password": "correct horse"})),
                None,
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        );
        assert_error(
            s.json(
                Method::POST,
                "/api/users",
                Some(json!({"username": 5, "password": "correct horse", "email": "b@example.com", "date_of_birth": "1990-01-01"})),
                None,
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        );
        let (st, _, v) = s
            .send(
                s.req(Method::POST, "/api/users")
                    .header("content-type", "application/json")
                    .body("{\"username\": \"bob\", "),
            )
            .await;
        assert_error((st, v), StatusCode::BAD_REQUEST, "malformed_json");
        let (st, _, v) = s
            .send(s.req(Method::POST, "/api/users").body("username=bob"))
            .await;
        assert_error((st, v), StatusCode::UNSUPPORTED_MEDIA_TYPE, "json_required");
        let (st, _, v) = s
            .send(
                s.req(Method::POST, "/api/users")
                    .header("content-type", "application/json")
                    .body(format!("{{\"username\": \"{}\"}}", "x".repeat(3 << 20))),
            )
            .await;
        assert_error((st, v), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        s.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn sign_in_cookie_bearer_profile_and_logout() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        s.json(
            Method::POST,
            "/api/users",
            Some(signup("ann", "correct horse")),
            None,
        )
        .await;

        assert_error(
            s.json(
                Method::POST,
                "/api/sessions",
                Some(json!({"username": "ann", "password": "wrong horse"})),
                None,
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );
        assert_error(
            s.json(
                Method::POST,
                "/api/sessions",
                Some(json!({"username": "nobody", "password": "wrong horse"})),
                None,
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );

        let (st, headers, v) = s
            .send(
                s.req(Method::POST, "/api/sessions")
                    .json(&json!({"username": "ann", "password": "correct horse"})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{}: {v}", t.name);
        let token = v["token"].as_str().expect("token").to_string();
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(v["user"]["username"], "ann");
        assert!(v["expires_at"].as_i64().expect("expiry") > keyframe_catalog::db::now_ms());
        let cookie = headers["set-cookie"].to_str().expect("cookie");
        assert!(
            cookie.starts_with(&format!("kf_session={token};")),
            "{cookie}"
        );
        for part in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(part), "{cookie}");
        }
        // The database keeps only the hash.
        let stored =
            t.db.session(&keyframe_catalog::auth::token_hash(&token))
                .await;
        assert!(stored.is_ok(), "{}", t.name);
        assert!(t.db.session(&token).await.is_err());

        // Cookie and bearer both work.
        let (st, _, me) = s
            .send(
                s.req(Method::GET, "/api/users/me")
                    .header("cookie", format!("theme=dark; kf_session={token}")),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{me}");
        assert_eq!(me["username"], "ann");
        let (st, me) = s.get("/api/users/me", Some(&token)).await;
        assert_eq!(st, StatusCode::OK, "{me}");

        assert_error(
            s.get("/api/users/me", None).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        );
        assert_error(
            s.get("/api/users/me", Some(&"ab".repeat(32))).await,
            StatusCode::UNAUTHORIZED,
            "invalid_session",
        );
        assert_error(
            s.get("/api/users/me", Some("not-a-token")).await,
            StatusCode::UNAUTHORIZED,
            "invalid_session",
        );

        // Profile edits are visible at once (the user cache is invalidated).
        let (st, v) = s
            .json(
                Method::PATCH,
                "/api/users/me",
                Some(json!({"display_name": "Ann A.", "email": "ann@new.example"})),
                Some(&token),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (_, me) = s.get("/api/users/me", Some(&token)).await;
        assert_eq!(me["display_name"], "Ann A.");
        assert_eq!(me["email"], "ann@new.example");
        assert_error(
            s.json(
                Method::PATCH,
                "/api/users/me",
                Some(json!({"email": "bad"})),
                Some(&token),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        );

        // A password change needs the current one and ends the other sessions.
        let other = s.login_with("ann", "correct horse").await;
        assert_error(
            s.json(
                Method::PATCH,
                "/api/users/me",
                Some(json!({"password": "battery staple", "current_password": "nope nope"})),
                Some(&token),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );
        let (st, v) = s
            .json(
                Method::PATCH,
                "/api/users/me",
                Some(json!({"password": "battery staple", "current_password": "correct horse"})),
                Some(&token),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_error(
            s.get("/api/users/me", Some(&other)).await,
            StatusCode::UNAUTHORIZED,
            "invalid_session",
        );
        assert_eq!(s.get("/api/users/me", Some(&token)).await.0, StatusCode::OK);
        s.login_with("ann", "battery staple").await;

        // Logout ends the session and clears the cookie.
        let (st, headers, _) = s
            .send(s.req(Method::DELETE, "/api/sessions").bearer_auth(&token))
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        assert!(headers["set-cookie"]
            .to_str()
            .expect("cookie")
            .contains("Max-Age=0"));
        assert_error(
            s.get("/api/users/me", Some(&token)).await,
            StatusCode::UNAUTHORIZED,
            "invalid_session",
        );
        s.stop().await;
        t.cleanup().await;
    }
}

trait LoginWith {
    async fn login_with(&self, username: &str, password: &str) -> String;
}

impl LoginWith for Server {
    async fn login_with(&self, username: &str, password: &str) -> String {
        let (st, v) = self
            .json(
                Method::POST,
                "/api/sessions",
                Some(json!({"username": username, "password": password})),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["token"].as_str().expect("token").to_string()
    }
}

#[tokio::test]
async fn sessions_expire_by_the_injected_clock() {
    for t in common::databases().await {
        let clock = Arc::new(ManualClock::new(keyframe_catalog::db::now_ms()));
        let s = Server::start_with(
            &t.db,
            Config {
                session_ttl_secs: 60,
                ..config()
            },
            Some(clock.clone()),
        )
        .await;
        let token = s.user("ann").await;
        assert_eq!(s.get("/api/users/me", Some(&token)).await.0, StatusCode::OK);
        clock.advance_ms(59_000);
        assert_eq!(
            s.get("/api/users/me", Some(&token)).await.0,
            StatusCode::OK,
            "{}",
            t.name
        );
        clock.advance_ms(1_000);
        assert_error(
            s.get("/api/users/me", Some(&token)).await,
            StatusCode::UNAUTHORIZED,
            "session_expired",
        );
        // Once gone, it stays gone (the row is removed in the background).
        let mut gone = false;
        for _ in 0..50 {
            let code = s.get("/api/users/me", Some(&token)).await.1["code"].clone();
            if code == "invalid_session" {
                gone = true;
                break;
            }
            assert_eq!(code, "session_expired");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(gone, "{}: expired session row removed", t.name);
        assert_eq!(s.login("ann").await.len(), 64);
        s.stop().await;
        t.cleanup().await;
    }
}

/// A sign-in from `ip` (through the trusted proxy's `X-Forwarded-For`), with a
/// device cookie if given: status, `Retry-After`, the `kf_device` cookie set.
async fn sign_in_from(
    s: &Server,
    ip: &str,
    username: &str,
    password: &str,
    device: Option<&str>,
) -> (StatusCode, Option<u64>, Option<String>) {
    let mut rb = s
        .req(Method::POST, "/api/sessions")
        .header("x-forwarded-for", ip)
        .json(&json!({"username": username, "password": password}));
    if let Some(d) = device {
        rb = rb.header("cookie", format!("kf_device={d}"));
    }
    let (st, headers, v) = s.send(rb).await;
    if st == StatusCode::TOO_MANY_REQUESTS {
        assert_eq!(v["code"], "rate_limited", "{v}");
    }
    let retry = headers
        .get("retry-after")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse().ok());
    let device = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find_map(|c| c.strip_prefix("kf_device="))
        .and_then(|c| c.split(';').next())
        .map(str::to_string);
    (st, retry, device)
}

#[tokio::test]
async fn login_throttling_never_locks_out_the_owner() {
    for t in common::databases().await {
        let s = Server::start(
            &t.db,
            Config {
                client_ip_header: "x-forwarded-for".into(),
                login_failures_before_delay: 3,
                login_failures_per_client: 6,
                ..config()
            },
        )
        .await;
        let name = t.name;
        for user in ["ann", "bob"] {
            let (st, v) = s
                .json(
                    Method::POST,
                    "/api/users",
                    Some(signup(user, "correct horse")),
                    None,
                )
                .await;
            assert_eq!(st, StatusCode::CREATED, "{v}");
        }
        // An attacker guesses ann's password: free failures, then growing waits.
        let attacker = "198.51.100.66";
        for _ in 0..3 {
            let (st, _, _) = sign_in_from(&s, attacker, "ann", "wrong horse", None).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{name}");
        }
        let (st, _, _) = sign_in_from(&s, attacker, "ann", "wrong horse", None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{name}: the 4th is answered");
        let (st, retry, _) = sign_in_from(&s, attacker, "ANN", "wrong horse", None).await;
        assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{name}: then it waits");
        assert_eq!(retry, Some(1), "{name}: the first wait is a second");
        // The owner, elsewhere, signs in at once.
        let (st, _, device) = sign_in_from(&s, "203.0.113.5", "ann", "correct horse", None).await;
        assert_eq!(
            st,
            StatusCode::CREATED,
            "{name}: the owner is not locked out"
        );
        assert!(device.is_some(), "{name}: a device cookie");

        // Password spraying from one address meets its ceiling…
        let office = "192.0.2.10";
        let (st, _, bob_device) = sign_in_from(&s, office, "bob", "correct horse", None).await;
        assert_eq!(st, StatusCode::CREATED, "{name}");
        let bob_device = bob_device.expect("device cookie");
        for i in 0..6 {
            let (st, _, _) = sign_in_from(&s, office, &format!("u{i}"), "wrong horse", None).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{name}: {i}");
        }
        let (st, retry, _) = sign_in_from(&s, office, "u9", "wrong horse", None).await;
        assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{name}: spraying stops");
        assert!(retry.is_some_and(|r| (1..=900).contains(&r)), "{retry:?}");
        // …but bob, who signed in from this browser before, still gets in.
        let (st, _, again) =
            sign_in_from(&s, office, "bob", "correct horse", Some(&bob_device)).await;
        assert_eq!(st, StatusCode::CREATED, "{name}: a known browser is spared");
        assert_eq!(again.as_deref(), Some(bob_device.as_str()));
        // A device cookie of another user, or a made-up one, does not help.
        let (st, _, _) = sign_in_from(&s, office, "u9", "wrong horse", Some(&bob_device)).await;
        assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{name}");
        s.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn passwords_are_rehashed_at_login_when_parameters_change() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        s.user("ann").await;
        s.stop().await;
        let before =
            t.db.user_by_username("ann")
                .await
                .expect("user")
                .password_hash;
        assert!(
            before.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{before}"
        );

        let s = Server::start(
            &t.db,
            Config {
                argon2_memory_kib: 128,
                argon2_iterations: 2,
                ..config()
            },
        )
        .await;
        s.login("ann").await;
        let after =
            t.db.user_by_username("ann")
                .await
                .expect("user")
                .password_hash;
        assert!(
            after.starts_with("$argon2id$v=19$m=128,t=2,p=1$"),
            "{}: {after}",
            t.name
        );
        // And the new hash still lets ann in.
        s.login("ann").await;
        s.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn avatars_go_through_the_upload_pipeline() {
    for t in common::databases().await {
        let s = Server::start(
            &t.db,
            Config {
                max_avatar_bytes: 1024,
                ..config()
            },
        )
        .await;
        let token = s.user("ann").await;
        let png = {
            let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
            b.extend_from_slice(&[0u8; 100]);
            b
        };
        let (st, _, v) = s
            .send(
                s.req(Method::PUT, "/api/users/me/avatar")
                    .bearer_auth(&token)
                    .header("content-type", "image/png")
                    .body(png.clone()),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{}: {v}", t.name);
        let url = v["avatar"]["url"].as_str().expect("avatar url");
        assert!(
            url.starts_with("http://edge.test/v1/objects/sha256/"),
            "{url}"
        );
        assert!(url.contains("?__token__="), "{url}");
        let (_, me) = s.get("/api/users/me", Some(&token)).await;
        assert_eq!(me["avatar"]["mime"], "image/png");

        let (st, _, v) = s
            .send(
                s.req(Method::PUT, "/api/users/me/avatar")
                    .bearer_auth(&token)
                    .body("not an image"),
            )
            .await;
        assert_error(
            (st, v),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_media",
        );
        let (st, _, v) = s
            .send(
                s.req(Method::PUT, "/api/users/me/avatar")
                    .bearer_auth(&token)
                    .body(vec![0u8; 2048]),
            )
            .await;
        assert_error((st, v), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        let (st, _, v) = s
            .send(s.req(Method::PUT, "/api/users/me/avatar").body(png))
            .await;
        assert_error((st, v), StatusCode::UNAUTHORIZED, "unauthenticated");
        s.stop().await;
        t.cleanup().await;
    }
}

async fn rows(db: &keyframe_catalog::Db, sql: &str, user_id: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(user_id.to_string())
        .fetch_one(db.pool())
        .await
        .expect("count")
        .try_get::<i64, _>(0)
        .expect("count value")
}

/// `DELETE /api/users/me`, confirmed by the password, removes the account with its
/// sessions, avatar and watch history (and the views it added) in one go; another
/// viewer is untouched; the OpenAPI document describes it.
#[tokio::test]
async fn an_account_deletes_itself_with_everything_that_is_its() {
    for t in common::databases().await {
        // Every start counts a view here, so the views the account added are seen to go.
        let every_start_counts = keyframe_catalog::Config {
            trending_view_min_secs: 0,
            trending_view_window_secs: 0,
            ..config()
        };
        let s = Server::start(&t.db, every_start_counts).await;
        let ann = s.user("ann").await;
        let ann_again = s.login("ann").await;
        let bob = s.user("bob").await;
        let title =
            t.db.create_content(&common::title("Film", "", &["x"], vec![common::right("*")]))
                .await
                .expect("title");
        let now = keyframe_catalog::db::now_ms();
        for tok in [&ann, &bob] {
            let (st, v) = s
                .json(
                    Method::POST,
                    "/api/history",
                    Some(
                        json!({"events": [{"content_id": title.id, "session_id": "s1", "seq": 0,
                        "kind": "start", "position_ms": 0, "duration_ms": 100_000, "at": now}]}),
                    ),
                    Some(tok),
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{}: {v}", t.name);
        }
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&[0u8; 100]);
        let (st, _, v) = s
            .send(
                s.req(Method::PUT, "/api/users/me/avatar")
                    .bearer_auth(&ann)
                    .body(png),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{}: {v}", t.name);
        let (_, me) = s.get("/api/users/me", Some(&ann)).await;
        let ann_id = me["id"].as_str().expect("id").to_string();
        let views = |db: keyframe_catalog::Db, id: String| async move {
            db.content_stats(&id)
                .await
                .expect("stats")
                .iter()
                .map(|x| x.1)
                .sum::<i64>()
        };
        assert_eq!(views(t.db.clone(), title.id.clone()).await, 2, "{}", t.name);

        // Not signed in; a wrong password; no password: nothing happens.
        assert_error(
            s.json(
                Method::DELETE,
                "/api/users/me",
                Some(json!({"password": "password-ann"})),
                None,
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        );
        assert_error(
            s.json(
                Method::DELETE,
                "/api/users/me",
                Some(json!({"password": "wrong password"})),
                Some(&ann),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );
        let (st, _) = s
            .json(Method::DELETE, "/api/users/me", Some(json!({})), Some(&ann))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{}", t.name);
        let (st, _) = s.get("/api/users/me", Some(&ann)).await;
        assert_eq!(st, StatusCode::OK, "{}", t.name);

        let (st, headers, v) = s
            .send(
                s.req(Method::DELETE, "/api/users/me")
                    .bearer_auth(&ann)
                    .json(&json!({"password": "password-ann"})),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{}: {v}", t.name);
        assert!(
            headers
                .get("set-cookie")
                .and_then(|c| c.to_str().ok())
                .is_some_and(|c| c.contains("kf_session=;") || c.contains("Max-Age=0")),
            "{headers:?}"
        );
        for tok in [&ann, &ann_again] {
            let (st, _) = s.get("/api/users/me", Some(tok)).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{}", t.name);
        }
        let (st, _) = s
            .json(
                Method::POST,
                "/api/sessions",
                Some(json!({"username": "ann", "password": "password-ann"})),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{}", t.name);
        for sql in [
            "SELECT COUNT(*) FROM users WHERE id = $1",
            "SELECT COUNT(*) FROM sessions WHERE user_id = $1",
            "SELECT COUNT(*) FROM assets WHERE user_id = $1",
            "SELECT COUNT(*) FROM watch_events WHERE user_id = $1",
            "SELECT COUNT(*) FROM watch_state WHERE user_id = $1",
        ] {
            assert_eq!(rows(&t.db, sql, &ann_id).await, 0, "{}: {sql}", t.name);
        }
        // Her view is taken back; Bob's stays, and so does Bob.
        assert_eq!(views(t.db.clone(), title.id.clone()).await, 1, "{}", t.name);
        let (st, _) = s.get("/api/users/me", Some(&bob)).await;
        assert_eq!(st, StatusCode::OK, "{}", t.name);

        let (_, doc) = s.get("/api/openapi.json", None).await;
        assert!(
            doc["paths"]["/api/users/me"]["delete"].is_object(),
            "{}",
            doc["paths"]["/api/users/me"]
        );
        s.stop().await;
        t.cleanup().await;
    }
}

/// A disabled account (`keyframe user disable`) cannot sign in and its sessions
/// are gone; enabled again, it signs in.
#[tokio::test]
async fn a_disabled_account_cannot_sign_in() {
    for t in common::databases().await {
        let s = Server::start(&t.db, config()).await;
        let ann = s.user("ann").await;
        let (_, me) = s.get("/api/users/me", Some(&ann)).await;
        let id = me["id"].as_str().expect("id").to_string();
        let ended = t.db.set_user_disabled(&id, true).await.expect("disable");
        assert_eq!(ended.len(), 1, "{}", t.name);
        let users = t.db.list_users().await.expect("list");
        assert!(users[0].disabled_at.is_some(), "{}", t.name);
        let login = json!({"username": "ann", "password": "password-ann"});
        assert_error(
            s.json(Method::POST, "/api/sessions", Some(login.clone()), None)
                .await,
            StatusCode::FORBIDDEN,
            "account_disabled",
        );
        assert_eq!(
            rows(
                &t.db,
                "SELECT COUNT(*) FROM sessions WHERE user_id = $1",
                &id
            )
            .await,
            0
        );
        t.db.set_user_disabled(&id, false).await.expect("enable");
        assert!(t.db.list_users().await.expect("list")[0]
            .disabled_at
            .is_none());
        let (st, _) = s
            .json(Method::POST, "/api/sessions", Some(login), None)
            .await;
        assert_eq!(st, StatusCode::CREATED, "{}", t.name);
        assert!(matches!(
            t.db.set_user_disabled("no-such-user", true).await,
            Err(keyframe_catalog::DbError::NotFound)
        ));
        s.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn cookie_requests_from_another_site_are_refused() {
    let t = common::databases().await.remove(0);
    let s = Server::start(&t.db, config()).await;
    s.json(
        Method::POST,
        "/api/users",
        Some(signup("ann", "correct horse")),
        None,
    )
    .await;
    let (st, _, v) = s
        .send(
            s.req(Method::POST, "/api/sessions")
                .json(&json!({"username": "ann", "password": "correct horse"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let token = v["token"].as_str().expect("token").to_string();
    let cookie = format!("kf_session={token}");
    let own_origin = s.base.trim_end_matches('/').to_string();

    // A page elsewhere makes the browser send the cookie: refused, with JSON.
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let (st, _, v) = s
            .send(
                s.req(Method::DELETE, "/api/history")
                    .header("cookie", &cookie)
                    .header(name, value),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{name}: {value}: {v}");
        assert_eq!(v["code"], "cross_site_request", "{v}");
        assert!(v["error"].is_string(), "{v}");
    }
    // The browser's own Sec-Fetch-Site beats a proxy-mangled Origin.
    let (st, _, v) = s
        .send(
            s.req(Method::DELETE, "/api/sessions")
                .header("cookie", &cookie)
                .header("origin", "https://evil.example")
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "logout too: {v}");
    // Still signed in: nothing above did anything.
    let (st, v) = s.get("/api/users/me", Some(&token)).await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // The site's own page, a user typing, a non-browser client, safe methods, and
    // bearer tokens (which a browser never adds by itself) all pass.
    for headers in [
        vec![("origin", own_origin.as_str())],
        vec![("sec-fetch-site", "same-origin")],
        vec![("sec-fetch-site", "none")],
        vec![],
    ] {
        let mut rb = s
            .req(Method::DELETE, "/api/history")
            .header("cookie", &cookie);
        for (n, v) in &headers {
            rb = rb.header(*n, *v);
        }
        let (st, _, v) = s.send(rb).await;
        assert_eq!(st, StatusCode::OK, "{headers:?}: {v}");
    }
    let (st, _, v) = s
        .send(
            s.req(Method::GET, "/api/history")
                .header("cookie", &cookie)
                .header("origin", "https://evil.example")
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "a safe method: {v}");
    let (st, _, v) = s
        .send(
            s.req(Method::DELETE, "/api/history")
                .bearer_auth(&token)
                .header("origin", "https://evil.example")
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "bearer: {v}");
    s.stop().await;
    t.cleanup().await;
}

#[tokio::test]
async fn common_passwords_and_bidi_names_are_refused() {
    let t = common::databases().await.remove(0);
    let s = Server::start(&t.db, config()).await;
    for common in [
        "password123",
        "Password123",
        "12345678",
        "qwertyuiop",
        "1q2w3e4r",
    ] {
        let (st, v) = s
            .json(
                Method::POST,
                "/api/users",
                Some(signup("ann", common)),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{common}: {v}");
        assert_eq!(v["code"], "invalid_field", "{v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("common")),
            "{v}"
        );
    }
    let (st, v) = s
        .json(
            Method::POST,
            "/api/users",
            Some(signup("ann", "correct horse")),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let token = s.login_with("ann", "correct horse").await;
    // Changing to a common password is refused too.
    let (st, v) = s
        .json(
            Method::PATCH,
            "/api/users/me",
            Some(json!({"password": "iloveyou1", "current_password": "correct horse"})),
            Some(&token),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // A name that would display reversed ("Trojan Source") is refused…
    for name in ["\u{202E}nimda", "ann\u{2067}x\u{2069}", "a\u{200F}b"] {
        let (st, v) = s
            .json(
                Method::PATCH,
                "/api/users/me",
                Some(json!({ "display_name": name })),
                Some(&token),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}: {v}");
        assert_eq!(v["code"], "invalid_field", "{v}");
    }
    // …while right-to-left scripts themselves are fine.
    let (st, v) = s
        .json(
            Method::PATCH,
            "/api/users/me",
            Some(json!({ "display_name": "شادی Ann" })),
            Some(&token),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    s.stop().await;
    t.cleanup().await;
}
