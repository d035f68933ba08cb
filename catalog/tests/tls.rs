//! The catalog over HTTPS (`tls_cert`/`tls_key`, through the origin's TLS config and
//! accept loop), and when the session cookie is `Secure`: over HTTPS, directly or
//! through a trusted proxy's `X-Forwarded-Proto`, and never because an untrusted
//! client says so.

use crate::common;
#[path = "../../origin/tests/support/tls.rs"]
mod tls_support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{config, Server};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyframe_catalog::server::Catalog;
use keyframe_catalog::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn signup(username: &str) -> Value {
    json!({
        "username": username,
        "password": format!("tls-test-passphrase-{username}"),
        "email": format!("{username}@example.com"),
        "date_of_birth": "1990-05-17",
    })
}

fn login(username: &str) -> Value {
    json!({"username": username, "password": format!("tls-test-passphrase-{username}")})
}

/// One request over rustls offering only `alpn` (`h2` or `http/1.1`): the status,
/// the headers and the JSON body (`Null` when not JSON).
async fn https(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[u8],
    method: Method,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> (StatusCode, http::HeaderMap, Value) {
    let stream = tls_support::tls_connect(addr, ca_pem, alpn).await;
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(alpn),
        "ALPN {:?} not negotiated",
        String::from_utf8_lossy(alpn)
    );
    let io = TokioIo::new(stream);
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("https://localhost:{}{path}", addr.port()));
    if let Some(token) = bearer {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let bytes = match &body {
        Some(v) => {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let resp = if alpn == b"h2" {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        send.send_request(req.body(Full::new(bytes)).expect("request"))
            .await
            .expect("h2 request")
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        let req = req
            .header(http::header::HOST, "localhost")
            .body(Full::new(bytes))
            .expect("request");
        send.send_request(req).await.expect("h1 request")
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

fn set_cookie(headers: &http::HeaderMap) -> String {
    headers
        .get(http::header::SET_COOKIE)
        .expect("a Set-Cookie")
        .to_str()
        .expect("text")
        .to_string()
}

fn is_secure(cookie: &str) -> bool {
    cookie
        .split(';')
        .any(|a| a.trim().eq_ignore_ascii_case("secure"))
}

#[tokio::test]
async fn over_https_the_session_cookie_is_secure_and_hsts_is_sent() {
    let pki = tls_support::pki();
    let t = keyframe_catalog::testing::sqlite().await.expect("sqlite");
    let cfg = Config {
        tls_cert: Some(pki.cert.clone()),
        tls_key: Some(pki.key.clone()),
        header_timeout_secs: 1,
        ..config()
    };
    let store = keyframe_origin::store::open("memory://").expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(Catalog::new(cfg, t.db.clone(), store).run(listener, async {
        let _ = stopped.await;
    }));
    let ca = pki.cert_pem.as_str();

    // Sign up over HTTP/1.1, sign in over HTTP/2: both TLS.
    let (st, _, v) = https(
        addr,
        ca,
        b"http/1.1",
        Method::POST,
        "/api/users",
        Some(signup("ann")),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let (st, headers, v) = https(
            addr,
            ca,
            alpn,
            Method::POST,
            "/api/sessions",
            Some(login("ann")),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        let cookie = set_cookie(&headers);
        assert!(cookie.starts_with("kf_session="), "{cookie}");
        assert!(is_secure(&cookie), "not Secure over HTTPS: {cookie}");
        assert_eq!(
            headers
                .get(http::header::STRICT_TRANSPORT_SECURITY)
                .map(|v| v.to_str().expect("text")),
            Some("max-age=31536000"),
        );
        // Signing out clears the cookie with the same attributes.
        let token = v["token"].as_str().expect("token");
        let (st, headers, _) = https(
            addr,
            ca,
            alpn,
            Method::DELETE,
            "/api/sessions",
            None,
            Some(token),
        )
        .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        let cleared = set_cookie(&headers);
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        assert!(is_secure(&cleared), "{cleared}");
    }

    // HTTPS only: a plain HTTP request on the port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/_keyframe/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");

    // The handshake runs under the header timeout: a client that connects and sends
    // nothing is closed after it (1 s here), not held open.
    let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("a silent connection was held open for 10 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A half-open handshake (a few bytes, then nothing) is closed too.
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(&[0x16, 0x03, 0x01]).await.expect("write");
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf))
        .await
        .expect("a stalled handshake was held open for 10 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    let _ = stop.send(());
    task.await.expect("join").expect("server");
    t.cleanup().await;
}

/// Signs in on a plain-HTTP catalog with `X-Forwarded-Proto` (if any) and says
/// whether the cookie came back `Secure` (and that no HSTS header came with it).
async fn secure_over_plain(s: &Server, forwarded_proto: Option<&str>) -> bool {
    let mut rb = s.req(Method::POST, "/api/sessions").json(&login("bob"));
    if let Some(p) = forwarded_proto {
        rb = rb.header("x-forwarded-proto", p);
    }
    let (st, headers, v) = s.send(rb).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert!(headers.get("strict-transport-security").is_none());
    let secure = is_secure(headers["set-cookie"].to_str().expect("text"));
    // Signing out clears it alike.
    let mut rb = s
        .req(Method::DELETE, "/api/sessions")
        .bearer_auth(v["token"].as_str().expect("token"));
    if let Some(p) = forwarded_proto {
        rb = rb.header("x-forwarded-proto", p);
    }
    let (st, headers, _) = s.send(rb).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        is_secure(headers["set-cookie"].to_str().expect("text")),
        secure,
        "sign-out's cookie differs from sign-in's"
    );
    secure
}

#[tokio::test]
async fn over_plain_http_the_cookie_is_secure_only_when_a_trusted_proxy_says_https() {
    let t = keyframe_catalog::testing::sqlite().await.expect("sqlite");

    // Behind a trusted proxy (this test's loopback address).
    let s = Server::start(
        &t.db,
        Config {
            trusted_proxies: vec!["127.0.0.0/8".into()],
            ..config()
        },
    )
    .await;
    let (st, v) = s
        .json(Method::POST, "/api/users", Some(signup("bob")), None)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert!(
        !secure_over_plain(&s, None).await,
        "plain HTTP, no proxy word"
    );
    assert!(
        secure_over_plain(&s, Some("https")).await,
        "trusted proxy, https"
    );
    assert!(
        !secure_over_plain(&s, Some("http")).await,
        "trusted proxy, http"
    );
    s.stop().await;

    // The same header from a client that is not a trusted proxy changes nothing.
    let s = Server::start(
        &t.db,
        Config {
            trusted_proxies: vec!["192.0.2.0/24".into()],
            ..config()
        },
    )
    .await;
    assert!(
        !secure_over_plain(&s, Some("https")).await,
        "untrusted client"
    );
    s.stop().await;
    // Nor with no trusted proxies at all (the default; the suites' config trusts
    // the test client).
    let s = Server::start(
        &t.db,
        Config {
            trusted_proxies: Vec::new(),
            ..config()
        },
    )
    .await;
    assert!(
        !secure_over_plain(&s, Some("https")).await,
        "no proxies trusted"
    );
    s.stop().await;

    // `cookie_secure` still forces it.
    let s = Server::start(
        &t.db,
        Config {
            cookie_secure: true,
            trusted_proxies: Vec::new(),
            ..config()
        },
    )
    .await;
    assert!(secure_over_plain(&s, None).await, "cookie_secure");
    s.stop().await;
    t.cleanup().await;
}
