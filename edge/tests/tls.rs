//! HTTPS on the edge: an edge with a certificate in front of a plain-HTTP origin
//! answers over TLS with ALPN (HTTP/2 and HTTP/1.1), ranges included.

use crate::common;
#[path = "../../origin/tests/support/tls.rs"]
mod tls_support;
use tls_support::*;

use std::net::SocketAddr;

use common::*;
use keyframe_edge::{Config, Server};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::oneshot;

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

    let (proto, status, _, body) =
        rustls_get(addr, &p.cert_pem, b"h2", "/v/a.mp4", Some("bytes=100-199")).await;
    assert_eq!(proto, b"h2");
    assert_eq!(status, 206);
    assert_eq!(body.as_ref(), &obj[100..200]);

    let url = format!("https://127.0.0.1:{}/v/a.mp4", addr.port());
    let Some(Curl {
        version: v,
        status,
        body,
    }) = curl(&p.cert, &url, &["--http2"]).await
    else {
        return;
    };
    assert_eq!((v.as_str(), status), ("2", 200));
    assert_eq!(body, obj);
    let Curl {
        version: v,
        status,
        body,
    } = curl(&p.cert, &url, &["--http1.1", "-r", "70000-139999"])
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
