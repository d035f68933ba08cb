//! HTTPS on the origin: a self-signed certificate (rcgen), ALPN choosing HTTP/2 or
//! HTTP/1.1, checked with curl and with a rustls client; handshake failures and
//! timeouts drop only their own connection; configuration errors name the option.

#[path = "support/tls.rs"]
mod tls_support;
use tls_support::*;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keyframe_origin::testing::{self, TestStore};
use keyframe_origin::{Config, Server};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

struct Running {
    addr: SocketAddr,
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
    let server = Server::new(config, t.store.clone()).expect("server");
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(server.run(l, async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
    }
}

fn tls_config(p: &Pki) -> Config {
    Config {
        tls_cert: Some(p.cert.clone()),
        tls_key: Some(p.key.clone()),
        ..Config::default()
    }
}

/// A TLS origin with a one-second header timeout, serving a 10-byte object
/// (the store is returned to live as long as the server).
async fn start_with_a_one_second_header_timeout(p: &Pki) -> (TestStore, Running) {
    let t = memory_with_object(&body(10)).await;
    let srv = start(
        &t,
        Config {
            header_timeout_secs: 1,
            ..tls_config(p)
        },
    )
    .await;
    (t, srv)
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

const KEY: &str = "sha256/0f/0f343b0931126a20f133d67c2b018a3b5e0c3a0b9d4f2c6e8a1b3c5d7e9f0a1b.mp4";

async fn memory_with_object(data: &[u8]) -> TestStore {
    let t = testing::all().into_iter().next().expect("memory store");
    assert_eq!(t.name, "memory");
    t.store
        .put(&Path::from(KEY), PutPayload::from(data.to_vec()))
        .await
        .expect("put");
    t
}

#[tokio::test]
async fn https_with_alpn_h2_and_http11_via_curl() {
    let p = pki();
    let data = body(100_000);
    let t = memory_with_object(&data).await;
    let srv = start(&t, tls_config(&p)).await;
    let url = format!("https://localhost:{}/v1/objects/{KEY}", srv.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", srv.addr.port());
    let ip_url = format!("https://127.0.0.1:{}/v1/objects/{KEY}", srv.addr.port());

    let Some(r) = curl(&p.cert, &url, &["--http2", "--resolve", &resolve]).await else {
        return;
    };
    assert_eq!((r.version.as_str(), r.status), ("2", 200));
    assert_eq!(r.body, data);

    let r = curl(&p.cert, &ip_url, &["--http1.1"]).await.expect("curl");
    assert_eq!((r.version.as_str(), r.status), ("1.1", 200));
    assert_eq!(r.body, data);

    for flag in ["--http2", "--http1.1"] {
        let r = curl(&p.cert, &ip_url, &[flag, "-r", "1000-1999"])
            .await
            .expect("curl");
        assert_eq!(r.status, 206, "{flag}");
        assert_eq!(r.body, &data[1000..2000], "{flag}");
    }
    drop(p.dir);
}

#[tokio::test]
async fn https_with_a_rustls_client() {
    let p = pki();
    let data = body(50_000);
    let t = memory_with_object(&data).await;
    let srv = start(&t, tls_config(&p)).await;
    let path = format!("/v1/objects/{KEY}");
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let (proto, status, _, b) = rustls_get(srv.addr, &p.cert_pem, alpn, &path, None).await;
        assert_eq!(proto, alpn);
        assert_eq!(status, 200);
        assert_eq!(b.as_ref(), &data[..]);
        let (_, status, cr, b) =
            rustls_get(srv.addr, &p.cert_pem, alpn, &path, Some("bytes=-100")).await;
        assert_eq!(status, 206);
        assert_eq!(cr, "bytes 49900-49999/50000");
        assert_eq!(b.as_ref(), &data[49_900..]);
    }
}

#[tokio::test]
async fn plain_http_to_the_tls_port_fails_and_serving_goes_on() {
    let p = pki();
    let data = body(1000);
    let t = memory_with_object(&data).await;
    let srv = start(&t, tls_config(&p)).await;
    let path = format!("/v1/objects/{KEY}");

    // A plain HTTP request is not a TLS ClientHello: the connection is dropped.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let r = client
        .get(format!("http://{}{path}", srv.addr))
        .send()
        .await;
    assert!(r.is_err(), "plain HTTP got an answer: {r:?}");

    // The server goes on serving TLS clients.
    let (_, status, _, b) = rustls_get(srv.addr, &p.cert_pem, b"h2", &path, None).await;
    assert_eq!((status, b.len()), (200, 1000));
}

#[tokio::test]
async fn a_stalled_handshake_is_cut_after_the_header_timeout() {
    let p = pki();
    let (_t, srv) = start_with_a_one_second_header_timeout(&p).await;
    let started = Instant::now();
    let mut idle = TcpStream::connect(srv.addr).await.expect("connect");
    // Half a ClientHello record header, then nothing.
    idle.write_all(&[0x16, 0x03]).await.expect("write");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("the server kept a stalled handshake open")
        .unwrap_or(0);
    assert_eq!(n, 0, "expected EOF");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Others are served meanwhile and after.
    let path = format!("/v1/objects/{KEY}");
    let (_, status, _, _) = rustls_get(srv.addr, &p.cert_pem, b"http/1.1", &path, None).await;
    assert_eq!(status, 200);
}

/// A client that completes its handshake and then says nothing is closed once the
/// header timeout, counted from the accept, is over (the version detection after
/// the handshake used to wait for its first byte forever).
#[tokio::test]
async fn a_silent_connection_after_the_handshake_is_closed_after_the_header_timeout() {
    let p = pki();
    let (_t, srv) = start_with_a_one_second_header_timeout(&p).await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let started = Instant::now();
        let mut quiet = tls_connect(srv.addr, &p.cert_pem, alpn).await;
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), quiet.read(&mut buf))
            .await
            .expect("the server kept a silent TLS connection open")
            .unwrap_or(0);
        assert_eq!(n, 0, "expected EOF");
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
            "closed after {after:?}"
        );
    }
    let path = format!("/v1/objects/{KEY}");
    let (_, status, _, _) = rustls_get(srv.addr, &p.cert_pem, b"http/1.1", &path, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn tls_configuration_errors_name_the_option() {
    let p = pki();
    let t = memory_with_object(&body(10)).await;
    let only_cert = Config {
        tls_cert: Some(p.cert.clone()),
        ..Config::default()
    };
    let e = Server::new(only_cert, t.store.clone()).expect_err("cert without key");
    assert!(e.to_string().starts_with("tls-key:"), "{e}");

    let only_key = Config {
        tls_key: Some(p.key.clone()),
        ..Config::default()
    };
    let e = Server::new(only_key, t.store.clone()).expect_err("key without cert");
    assert!(e.to_string().starts_with("tls-cert:"), "{e}");

    let missing = p.dir.path().join("nope.pem");
    let e = Server::new(
        Config {
            tls_cert: Some(missing.clone()),
            ..tls_config(&p)
        },
        t.store.clone(),
    )
    .expect_err("missing cert file");
    assert!(e.to_string().starts_with("tls-cert:"), "{e}");
    assert!(e.to_string().contains("nope.pem"), "{e}");

    // A certificate where the key should be.
    let e = Server::new(
        Config {
            tls_key: Some(p.cert.clone()),
            ..tls_config(&p)
        },
        t.store.clone(),
    )
    .expect_err("no key in file");
    assert!(e.to_string().starts_with("tls-key:"), "{e}");
    assert!(e.to_string().contains("cert.pem"), "{e}");
    assert!(!e.to_string().contains('\n'), "{e}");
}
