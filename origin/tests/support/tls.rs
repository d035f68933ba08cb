//! TLS helpers shared by the origin's and the edge's HTTPS tests (the edge's
//! includes this file with `#[path]`): a self-signed certificate, curl, and a
//! rustls client speaking HTTP/2 or HTTP/1.1.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A self-signed certificate for `localhost` and `127.0.0.1`, as PEM files.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
}

pub fn pki() -> Pki {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let cert_pem = ck.cert.pem();
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    Pki {
        dir,
        cert,
        key,
        cert_pem,
    }
}

/// What a curl run saw: HTTP version, status and the body.
pub struct Curl {
    pub version: String,
    pub status: u16,
    pub body: Vec<u8>,
}

/// Runs curl against `url` trusting `ca`, or `None` when curl is not installed.
pub async fn curl(ca: &std::path::Path, url: &str, extra: &[&str]) -> Option<Curl> {
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
    Some(Curl {
        version: version.to_string(),
        status: status.parse().expect("status"),
        body: std::fs::read(&out).unwrap_or_default(),
    })
}

/// A TLS connection to `addr` (as `localhost`, trusting `ca_pem`) offering only
/// `alpn`, with its handshake done.
pub async fn tls_connect(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
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
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.expect("connect");
    TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake")
}

/// A GET over rustls offering only `alpn`; returns the negotiated protocol, the
/// status, the `Content-Range` and the body.
pub async fn rustls_get(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[u8],
    path: &str,
    range: Option<&str>,
) -> (Vec<u8>, u16, String, Bytes) {
    let tls = tls_connect(addr, ca_pem, alpn).await;
    let negotiated = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
    let io = TokioIo::new(tls);
    let mut req = http::Request::get(format!("https://localhost:{}{path}", addr.port()));
    if let Some(r) = range {
        req = req.header(http::header::RANGE, r);
    }
    let resp = if alpn == b"h2" {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        let req = req.body(Empty::<Bytes>::new()).expect("request");
        send.send_request(req).await.expect("h2 request")
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        let req = req
            .header(http::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .expect("request");
        send.send_request(req).await.expect("h1 request")
    };
    let status = resp.status().as_u16();
    let content_range = resp
        .headers()
        .get(http::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (negotiated, status, content_range, body)
}
