//! Shared helpers of the catalog's HTTP suites: a catalog served on 127.0.0.1:0
//! over a test database, and a reqwest client with a few shortcuts.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use keyframe_catalog::clock::SharedClock;
use keyframe_catalog::meta::{Asset, NewContent, Right};
use keyframe_catalog::server::Catalog;
use keyframe_catalog::testing::{StoreUploads, TestDb};
use keyframe_catalog::{Config, Db};
use keyframe_core::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const ADMIN: &str = "admin-token-for-tests-0123456789";
pub const TOKEN_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A config for tests: cheap password hashing, an admin token, a token key, a
/// region header and one edge per region.
pub fn config() -> Config {
    Config {
        admin_token: Some(ADMIN.into()),
        token_key: Some(TOKEN_KEY.into()),
        region_header: "x-region".into(),
        // The test client stands in for the load balancer that sets the header.
        trusted_proxies: vec!["127.0.0.1".into()],
        region_edges: [
            ("eu".to_string(), "http://eu.edge.test".to_string()),
            ("us".to_string(), "http://us.edge.test/".to_string()),
        ]
        .into(),
        edge_url: "http://edge.test".into(),
        argon2_memory_kib: 64,
        argon2_iterations: 1,
        argon2_parallelism: 1,
        ..Config::default()
    }
}

/// A catalog served on an ephemeral port until dropped.
pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
    pub db: Db,
    pub store: Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start(db: &Db, config: Config) -> Server {
        Self::start_with(db, config, None).await
    }

    pub async fn start_with(db: &Db, config: Config, clock: Option<SharedClock>) -> Server {
        let store = keyframe_origin::store::open("memory://").expect("store");
        let mut catalog =
            Catalog::new(config, db.clone(), store.clone()).uploads(Arc::new(StoreUploads {
                db: db.clone(),
                store: store.clone(),
            }));
        if let Some(clock) = clock {
            catalog = catalog.clock(clock);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(catalog.run(listener, async {
            let _ = rx.await;
        }));
        Server {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            db: db.clone(),
            store,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("server");
        }
    }

    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// A request and its status and JSON body (`Value::Null` when not JSON).
    pub async fn send(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let r = rb.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("body");
        (
            status,
            headers,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        auth: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut rb = self.req(method, path);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        if let Some(a) = auth {
            rb = rb.bearer_auth(a);
        }
        let (s, _, v) = self.send(rb).await;
        (s, v)
    }

    pub async fn get(&self, path: &str, auth: Option<&str>) -> (StatusCode, Value) {
        self.json(Method::GET, path, None, auth).await
    }

    pub async fn get_in(
        &self,
        path: &str,
        region: &str,
        auth: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut rb = self.req(Method::GET, path).header("x-region", region);
        if let Some(a) = auth {
            rb = rb.bearer_auth(a);
        }
        let (s, _, v) = self.send(rb).await;
        (s, v)
    }

    /// Signs up `username` (password `password-<username>`) and signs in; returns
    /// the session token.
    pub async fn user(&self, username: &str) -> String {
        let (s, v) = self
            .json(
                Method::POST,
                "/api/users",
                Some(json!({
                    "username": username,
                    "password": format!("password-{username}"),
                    "email": format!("{username}@example.com"),
                    "date_of_birth": "1990-05-17",
                })),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        self.login(username).await
    }

    pub async fn login(&self, username: &str) -> String {
        let (s, v) = self
            .json(
                Method::POST,
                "/api/sessions",
                Some(json!({"username": username, "password": format!("password-{username}")})),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["token"].as_str().expect("token").to_string()
    }
}

/// Asserts an error answer: status, JSON `{error, code}` with this code.
#[track_caller]
pub fn assert_error(got: (StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert!(got.1["error"].is_string(), "{}", got.1);
}

pub fn right(region: &str) -> Right {
    Right {
        region: region.into(),
        available_from: None,
        available_until: None,
    }
}

/// A title with a source file, a poster, categories and rights.
pub fn title(name: &str, description: &str, categories: &[&str], rights: Vec<Right>) -> NewContent {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    NewContent {
        title: name.into(),
        description: description.into(),
        kind: "video".into(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        assets: vec![
            Asset {
                role: "source".into(),
                object_key: format!("sha256/{}/{sha}.mp4", &sha[..2]),
                size: 1000,
                sha256: sha.clone(),
                mime: "video/mp4".into(),
                width: Some(1280),
                height: Some(720),
                duration_ms: Some(60_000),
                video_codec: Some("avc1.64001f".into()),
                faststart: Some(true),
                ..Asset::default()
            },
            Asset {
                role: "poster".into(),
                object_key: format!("sha256/{}/{sha}.jpg", &sha[..2]),
                size: 100,
                sha256: sha.clone(),
                mime: "image/jpeg".into(),
                width: Some(400),
                height: Some(600),
                inline_thumbnail: Some("data:image/jpeg;base64,AAAA".into()),
                ..Asset::default()
            },
        ],
        rights,
    }
}

/// Every test database, with a name for messages.
pub async fn databases() -> Vec<TestDb> {
    keyframe_catalog::testing::all().await
}
