//! The origin's HTTP contract, with a real HTTP client, on every test store
//! (memory, local disk, and the S3 server when configured).

use std::time::{Duration, SystemTime};

use keyframe_origin::testing::{self, TestStore};
use keyframe_origin::{Config, Server};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct Running {
    base: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn start(t: &TestStore, config: Config) -> Running {
    let mut server = Server::new(config, t.store.clone()).expect("server");
    // The local store is served through the origin's direct file path, as
    // `keyframe origin` does for file:// stores.
    if let Some(root) = keyframe_origin::store::local_root(&t.url) {
        server = server.with_local_root(root);
    }
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(server.run(l, async move {
        let _ = rx.await;
    }));
    Running {
        base,
        stop: Some(tx),
    }
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

const HASH: &str = "0f343b0931126a20f133d67c2b018a3b5e0c3a0b9d4f2c6e8a1b3c5d7e9f0a1b";

async fn put(t: &TestStore, key: &str, data: &[u8]) {
    t.store
        .put(&Path::from(key), PutPayload::from(data.to_vec()))
        .await
        .expect("put");
}

fn h<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn the_contract_on_every_store() {
    let client = reqwest::Client::new();
    for t in testing::all() {
        let key = format!("sha256/0f/{HASH}.mp4");
        let data = body(100_000);
        put(&t, &key, &data).await;
        let srv = start(&t, Config::default()).await;
        let url = format!("{}/v1/objects/{key}", srv.base);
        let n = t.name;

        // 200 full, with the contract's headers.
        let r = client.get(&url).send().await.expect("get");
        assert_eq!(r.status(), 200, "{n}");
        assert_eq!(h(&r, "accept-ranges"), "bytes", "{n}");
        assert_eq!(h(&r, "etag"), format!("\"{HASH}\""), "{n}");
        assert_eq!(h(&r, "content-type"), "video/mp4", "{n}");
        assert_eq!(h(&r, "content-length"), "100000", "{n}");
        assert!(h(&r, "cache-control").contains("immutable"), "{n}");
        let lm = h(&r, "last-modified").to_string();
        assert!(httpdate::parse_http_date(&lm).is_ok(), "{n}: {lm}");
        assert_eq!(r.bytes().await.expect("body")[..], data[..], "{n}");

        // HEAD: same headers, no body.
        let r = client.head(&url).send().await.expect("head");
        assert_eq!(r.status(), 200, "{n}");
        assert_eq!(h(&r, "content-length"), "100000", "{n}");

        // Single, open-ended and suffix ranges.
        for (range, a, b) in [
            ("bytes=10-19", 10, 19),
            ("bytes=99990-", 99_990, 99_999),
            ("bytes=-5", 99_995, 99_999),
        ] {
            let r = client
                .get(&url)
                .header("range", range)
                .send()
                .await
                .expect("get");
            assert_eq!(r.status(), 206, "{n} {range}");
            assert_eq!(
                h(&r, "content-range"),
                format!("bytes {a}-{b}/100000"),
                "{n} {range}"
            );
            assert_eq!(
                r.bytes().await.expect("body")[..],
                data[a..=b],
                "{n} {range}"
            );
        }

        // Several ranges: multipart/byteranges with exact framing.
        let r = client
            .get(&url)
            .header("range", "bytes=0-9, 50-59")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 206, "{n}");
        let ct = h(&r, "content-type").to_string();
        assert!(
            ct.starts_with("multipart/byteranges; boundary="),
            "{n}: {ct}"
        );
        let declared: usize = h(&r, "content-length").parse().expect("length");
        let b = r.bytes().await.expect("body");
        assert_eq!(b.len(), declared, "{n}");
        let text = String::from_utf8_lossy(&b);
        assert!(text.contains("Content-Range: bytes 0-9/100000"), "{n}");
        assert!(text.contains("Content-Range: bytes 50-59/100000"), "{n}");

        // Overlapping ranges coalesce into one 206.
        let r = client
            .get(&url)
            .header("range", "bytes=0-9,5-20")
            .send()
            .await
            .expect("get");
        assert_eq!(h(&r, "content-range"), "bytes 0-20/100000", "{n}");

        // 416 with the length; unparseable Range ignored.
        let r = client
            .get(&url)
            .header("range", "bytes=100000-")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 416, "{n}");
        assert_eq!(h(&r, "content-range"), "bytes */100000", "{n}");
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["code"], "range_not_satisfiable", "{n}");
        let r = client
            .get(&url)
            .header("range", "bytes=oops")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "{n}");

        // Conditionals.
        let etag = format!("\"{HASH}\"");
        let r = client
            .get(&url)
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 304, "{n}");
        assert_eq!(h(&r, "etag"), etag, "{n}");
        let r = client
            .get(&url)
            .header("if-match", "\"nope\"")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 412, "{n}");
        let r = client
            .get(&url)
            .header("if-modified-since", &lm)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 304, "{n}");
        let long_ago =
            httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let r = client
            .get(&url)
            .header("if-unmodified-since", &long_ago)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 412, "{n}");
        let r = client
            .get(&url)
            .header("range", "bytes=0-0")
            .header("if-range", &etag)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 206, "{n}");
        let r = client
            .get(&url)
            .header("range", "bytes=0-0")
            .header("if-range", "\"stale\"")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "{n}");

        // Keys: bad is 400, missing is 404, other methods 405.
        for bad in ["a//b", "../etc/passwd", "a/./b", "x%20y"] {
            let r = client
                .get(format!("{}/v1/objects/{bad}", srv.base))
                .send()
                .await
                .expect("get");
            assert!(
                r.status() == 400 || r.status() == 404,
                "{n} {bad}: {}",
                r.status()
            );
            assert!(r.status() != 200);
        }
        let r = client
            .get(format!("{}/v1/objects/a//b", srv.base))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 400, "{n}");
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["code"], "bad_key", "{n}");
        let r = client
            .get(format!("{}/v1/objects/no/such.mp4", srv.base))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 404, "{n}");
        let r = client.delete(&url).send().await.expect("delete");
        assert_eq!(r.status(), 405, "{n}");

        // Health and metrics.
        let r = client
            .get(format!("{}/_keyframe/healthz", srv.base))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "{n}");
        let m = client
            .get(format!("{}/_keyframe/metrics", srv.base))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text");
        assert!(m.contains("keyframe_http_requests_total"), "{n}");
        assert!(m.contains("keyframe_http_response_bytes_total"), "{n}");
        assert!(
            m.contains("keyframe_origin_storage_request_duration_seconds"),
            "{n}"
        );
    }
}

#[tokio::test]
async fn an_empty_object_and_a_large_range_stream() {
    let client = reqwest::Client::new();
    let t = testing::local();
    put(&t, "empty.bin", b"").await;
    let big = body(5 << 20);
    put(&t, "big.bin", &big).await;
    let srv = start(&t, Config::default()).await;
    let r = client
        .get(format!("{}/v1/objects/empty.bin", srv.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("body").len(), 0);
    let r = client
        .get(format!("{}/v1/objects/empty.bin", srv.base))
        .header("range", "bytes=0-")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 416);
    let r = client
        .get(format!("{}/v1/objects/big.bin", srv.base))
        .header("range", "bytes=1000-")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 206);
    assert!(r.bytes().await.expect("body")[..] == big[1000..]);
}

#[tokio::test]
async fn tokens_are_required_when_a_key_is_configured() {
    use keyframe_core::token::{sign, TokenClaims, TokenKey};
    let client = reqwest::Client::new();
    let t = testing::local();
    put(&t, "p/v.mp4", b"0123456789").await;
    let key_text = "a1".repeat(32);
    let srv = start(
        &t,
        Config {
            token_key: Some(key_text.clone()),
            ..Config::default()
        },
    )
    .await;
    let key = TokenKey::from_config(&key_text).expect("key");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let url = format!("{}/v1/objects/p/v.mp4", srv.base);
    let r = client.get(&url).send().await.expect("get");
    assert_eq!(r.status(), 403);
    let tok = sign(
        &key,
        &TokenClaims {
            start: None,
            exp: now + 60,
            acl: "/v1/objects/p/*".into(),
            data: None,
        },
    )
    .expect("sign");
    let r = client
        .get(format!("{url}?__token__={tok}"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let expired = sign(
        &key,
        &TokenClaims {
            start: None,
            exp: now - 1,
            acl: "/v1/objects/p/*".into(),
            data: None,
        },
    )
    .expect("sign");
    let r = client
        .get(format!("{url}?__token__={expired}"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["code"], "token_expired");
}

#[tokio::test]
async fn a_storage_failure_mid_body_aborts_the_response() {
    // A local object that is truncated on disk after its size was cached: the
    // origin must not pass a short body off as complete.
    let client = reqwest::Client::new();
    let t = testing::local();
    let data = body(3 << 20);
    put(&t, "cut.bin", &data).await;
    let srv = start(&t, Config::default()).await;
    let url = format!("{}/v1/objects/cut.bin", srv.base);
    let r = client.head(&url).send().await.expect("head");
    assert_eq!(h(&r, "content-length"), (3 << 20).to_string());
    let path = t.url.strip_prefix("file://").expect("dir").to_string() + "/cut.bin";
    std::fs::write(&path, &data[..1 << 20]).expect("truncate");
    let r = client.get(&url).send().await.expect("get");
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.is_err(),
        "a short body was passed off as complete"
    );
}

/// Issue 19, item 9: the origin answers under the id its client (an edge) sent,
/// and under one of its own when there was none or it was not safe to log.
#[tokio::test]
async fn answers_carry_the_request_id() {
    let client = reqwest::Client::new();
    let t = testing::local();
    put(&t, "a.bin", b"abc").await;
    let srv = start(&t, Config::default()).await;
    let url = format!("{}/v1/objects/a.bin", srv.base);
    let r = client
        .get(&url)
        .header("x-request-id", "edge-7d1c")
        .send()
        .await
        .expect("get");
    assert_eq!(h(&r, "x-request-id"), "edge-7d1c");
    for sent in [None, Some("not safe")] {
        let mut rb = client.get(format!("{}/v1/objects/missing.bin", srv.base));
        if let Some(s) = sent {
            rb = rb.header("x-request-id", s);
        }
        let r = rb.send().await.expect("get");
        assert_eq!(r.status(), 404);
        let id = h(&r, "x-request-id");
        assert_eq!(id.len(), 16, "{sent:?}: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{sent:?}: {id}");
    }
}

#[tokio::test]
async fn with_a_token_key_manifests_carry_the_token_and_cors_follows_the_allowed_origins() {
    use keyframe_core::token::{sign, TokenClaims, TokenKey};
    use keyframe_http::manifest::token_param;
    let client = reqwest::Client::new();
    let t = testing::local();
    let playlist = "#EXTM3U\n#EXT-X-MAP:URI=\"v.mp4\",BYTERANGE=\"10@0\"\n#EXTINF:2,\nv.mp4\n";
    put(&t, "p/v.m3u8", playlist.as_bytes()).await;
    let mpd = "<MPD><Period><BaseURL>v.mp4</BaseURL></Period></MPD>";
    put(&t, "p/v.mpd", mpd.as_bytes()).await;
    let key_text = "a1".repeat(32);
    let srv = start(
        &t,
        Config {
            token_key: Some(key_text.clone()),
            cors_allowed_origins: vec!["https://page.example".into()],
            ..Config::default()
        },
    )
    .await;
    let key = TokenKey::from_config(&key_text).expect("key");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let claims = TokenClaims {
        start: None,
        exp: now + 60,
        acl: "/v1/objects/p/*".into(),
        data: None,
    };
    let param = token_param(&sign(&key, &claims).expect("sign"));
    let url = format!("{}/v1/objects/p/v.m3u8", srv.base);
    let page = "https://page.example";

    let r = client
        .get(format!("{url}?{param}"))
        .header("Origin", page)
        .header("Range", "bytes=0-3")
        .send()
        .await
        .expect("get");
    // The Range is ignored: the whole playlist, rewritten, with its own length and tag.
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "access-control-allow-origin"), page);
    assert!(h(&r, "vary").contains("Origin"));
    assert_eq!(h(&r, "accept-ranges"), "none");
    let etag = h(&r, "etag").to_string();
    let length: usize = h(&r, "content-length").parse().expect("length");
    let text = r.text().await.expect("body");
    assert_eq!(text.len(), length);
    assert_eq!(
        text,
        format!("#EXTM3U\n#EXT-X-MAP:URI=\"v.mp4?{param}\",BYTERANGE=\"10@0\"\n#EXTINF:2,\nv.mp4?{param}\n")
    );
    let r = client
        .get(format!("{}/v1/objects/p/v.mpd?{param}", srv.base))
        .send()
        .await
        .expect("mpd");
    assert_eq!(
        r.text().await.expect("body"),
        format!("<MPD><Period><BaseURL>v.mp4?{param}</BaseURL></Period></MPD>")
    );
    // A token in a cookie is checked but not written into the references.
    let r = client
        .get(&url)
        .header("Cookie", param.as_str())
        .send()
        .await
        .expect("cookie");
    assert_eq!(r.status(), 200);
    assert_ne!(h(&r, "etag"), etag);
    assert_eq!(r.text().await.expect("body"), playlist);

    // Another origin gets no CORS grant; a refusal is readable by the allowed one.
    let r = client
        .get(format!("{url}?{param}"))
        .header("Origin", "https://other.example")
        .send()
        .await
        .expect("other");
    assert_eq!(h(&r, "access-control-allow-origin"), "");
    assert!(h(&r, "vary").contains("Origin"));
    let r = client
        .get(&url)
        .header("Origin", page)
        .send()
        .await
        .expect("no token");
    assert_eq!(r.status(), 403);
    assert_eq!(h(&r, "access-control-allow-origin"), page);
    for (origin, status) in [(page, 204), ("https://other.example", 403)] {
        let r = client
            .request(reqwest::Method::OPTIONS, &url)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "range")
            .send()
            .await
            .expect("preflight");
        assert_eq!(r.status(), status, "{origin}");
    }
}
