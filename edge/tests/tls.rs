//! HTTPS on the edge: an edge with a certificate in front of a plain-HTTP origin
//! answers over TLS with ALPN (HTTP/2 and HTTP/1.1), ranges included.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyframe_edge::{Config, Server};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

struct Pki {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    cert_pem: String,
}

fn pki() -> Pki {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let cert_pem = ck.cert.pem();
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    Pki {
        _dir: dir,
        cert,
        key,
        cert_pem,
    }
}

/// An edge on 127.0.0.1:0 serving HTTPS.
async fn start_tls(config: Config) -> (SocketAddr, oneshot::Sender<()>) {
    let server = Server::new(config).expect("edge config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(server.run(listener, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// curl's HTTP version, status and body, or `None` without curl.
async fn curl(ca: &std::path::Path, url: &str, extra: &[&str]) -> Option<(String, u16, Vec<u8>)> {
    if Command::new("curl")
        .arg("--version")
        .output()
        .await
        .is_err()
    {
        eprintln!("curl not installed; skipping the curl checks");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("body");
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg("-o")
        .arg(&out)
        .args(["-w", "%{http_version} %{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .await
        .expect("run curl");
    assert!(
        o.status.success(),
        "curl {url} {extra:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let w = String::from_utf8_lossy(&o.stdout).to_string();
    let (version, status) = w.split_once(' ').expect("curl -w output");
    Some((
        version.to_string(),
        status.parse().expect("status"),
        std::fs::read(&out).unwrap_or_default(),
    ))
}

/// An HTTP/2 GET over rustls (ALPN `h2` only): negotiated protocol, status, body.
async fn h2_get(addr: SocketAddr, ca_pem: &str, path: &str, range: &str) -> (Vec<u8>, u16, Bytes) {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("pem")).expect("root");
    }
    let mut cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    let negotiated = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::get(format!("https://localhost:{}{path}", addr.port()))
        .header(http::header::RANGE, range)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("h2 request");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (negotiated, status, body)
}

#[tokio::test]
async fn an_edge_with_tls_in_front_of_a_plain_origin() {
    let origin = TestOrigin::start().await;
    let obj = data(300_000, 7);
    origin.put("/v/a.mp4", Obj::cacheable(obj.clone(), 60));
    let p = pki();
    let (addr, _stop) = start_tls(Config {
        tls_cert: Some(p.cert.clone()),
        tls_key: Some(p.key.clone()),
        ..config(&[origin.url()], 64 << 10)
    })
    .await;

    let (proto, status, body) = h2_get(addr, &p.cert_pem, "/v/a.mp4", "bytes=100-199").await;
    assert_eq!(proto, b"h2");
    assert_eq!(status, 206);
    assert_eq!(body.as_ref(), &obj[100..200]);

    let url = format!("https://127.0.0.1:{}/v/a.mp4", addr.port());
    let Some((v, status, body)) = curl(&p.cert, &url, &["--http2"]).await else {
        return;
    };
    assert_eq!((v.as_str(), status), ("2", 200));
    assert_eq!(body, obj);
    let (v, status, body) = curl(&p.cert, &url, &["--http1.1", "-r", "70000-139999"])
        .await
        .expect("curl");
    assert_eq!((v.as_str(), status), ("1.1", 206));
    assert_eq!(body, &obj[70_000..140_000]);

    // Plain HTTP to the HTTPS port gets no answer.
    let plain = format!("http://127.0.0.1:{}/v/a.mp4", addr.port());
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-o", "/dev/null", &plain])
        .output()
        .await
        .expect("run curl");
    assert!(!o.status.success(), "plain HTTP was answered");
}

#[test]
fn a_cert_without_a_key_is_a_config_error_naming_tls_key() {
    let p = pki();
    let e = Server::new(Config {
        tls_cert: Some(p.cert.clone()),
        ..config(&["http://127.0.0.1:1".into()], 64 << 10)
    })
    .expect_err("cert without key");
    assert!(e.to_string().starts_with("tls-key:"), "{e}");
}

#[tokio::test]
async fn an_edge_fetches_from_an_https_upstream_it_trusts_and_refuses_one_it_does_not() {
    let origin = TestOrigin::start().await;
    let obj = data(200_000, 9);
    origin.put("/v/b.mp4", Obj::cacheable(obj.clone(), 60));
    let p = pki();
    // An HTTPS shield in front of the origin is the HTTPS upstream.
    let (shield, _stop) = start_tls(Config {
        tls_cert: Some(p.cert.clone()),
        tls_key: Some(p.key.clone()),
        ..config(&[origin.url()], 64 << 10)
    })
    .await;
    let upstream = format!("https://127.0.0.1:{}", shield.port());
    let client = reqwest::Client::new();

    let trusting = TestEdge::start(Config {
        upstream_ca: Some(p.cert.clone()),
        ..config(std::slice::from_ref(&upstream), 64 << 10)
    })
    .await;
    let (status, _, body) = get(&client, &trusting.url("/v/b.mp4"), Some("bytes=1000-99999")).await;
    assert_eq!(status, 206);
    assert_eq!(body.expect("body").as_ref(), &obj[1000..100_000]);
    let (status, _, body) = get(&client, &trusting.url("/v/b.mp4"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body.expect("body").as_ref(), obj.as_slice());

    // Without the CA, the self-signed upstream is not trusted: 502, as JSON.
    let wary = TestEdge::start(config(std::slice::from_ref(&upstream), 64 << 10)).await;
    let (status, headers, body) = get(&client, &wary.url("/v/b.mp4"), None).await;
    assert_eq!(status, 502);
    assert!(headers["content-type"]
        .to_str()
        .expect("type")
        .starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&body.expect("body")).expect("json");
    assert_eq!(v["code"], "upstream_unavailable", "{v}");
    trusting.shutdown().await;
    wary.shutdown().await;
}

#[test]
fn an_upstream_ca_that_will_not_load_is_a_config_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("ca.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    for ca in [junk, dir.path().join("missing.pem")] {
        let e = Server::new(Config {
            upstream_ca: Some(ca.clone()),
            ..config(&["https://127.0.0.1:1".into()], 64 << 10)
        })
        .expect_err("bad upstream-ca");
        assert!(e.to_string().starts_with("upstream-ca:"), "{ca:?}: {e}");
    }
}
