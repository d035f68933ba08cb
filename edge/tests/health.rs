//! Active health checks and rotation: an upstream that cannot be reached is taken
//! out by the probe, before any client request has to fail over; one whose real
//! requests fail leaves too; any answer to a probe is a live server (a generic
//! origin has no health endpoint), unless `health_check_strict`; each
//! transition is logged once each way.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

/// `keyframe_edge_upstream_healthy` for the upstream on `port`, if reported.
async fn healthy(client: &reqwest::Client, edge: &TestEdge, port: u16) -> Option<i64> {
    let text = client
        .get(edge.url("/_keyframe/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with("keyframe_edge_upstream_healthy{"))
        .find(|l| l.contains(&format!(":{port}")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn wait_for(client: &reqwest::Client, edge: &TestEdge, port: u16, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if healthy(client, edge, port).await == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "upstream :{port} never reported healthy={want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn object_requests(o: &TestOrigin) -> usize {
    o.state
        .requests
        .lock()
        .expect("lock")
        .iter()
        .filter(|(p, _)| p.starts_with("/v/"))
        .count()
}

#[tokio::test]
async fn a_failing_upstream_leaves_rotation_and_comes_back() {
    let good = TestOrigin::start().await;
    let bad = TestOrigin::start().await;
    for i in 0..24 {
        let o = Obj::cacheable(data(2000, i), 60);
        good.put(&format!("/v/{i}"), o.clone());
        bad.put(&format!("/v/{i}"), o);
    }
    bad.state.down.store(true, Ordering::SeqCst);
    // Strict: the probe's 503 takes `bad` out before any request goes there.
    let edge = TestEdge::start(keyframe_edge::Config {
        health_check_secs: 1,
        health_check_path: "/_keyframe/healthz".into(),
        health_check_strict: true,
        ..config(&[good.url(), bad.url()], 64 << 10)
    })
    .await;
    let client = reqwest::Client::new();
    wait_for(&client, &edge, bad.addr.port(), 0).await;
    assert_eq!(healthy(&client, &edge, good.addr.port()).await, Some(1));

    // Rendezvous hashing would send about half of these to `bad`; the probe took
    // it out, so none go there and every answer is whole.
    for i in 0..24 {
        let (status, _, body) = get(&client, &edge.url(&format!("/v/{i}")), None).await;
        assert_eq!(status, 200, "/v/{i}");
        assert_eq!(body.expect("body").as_ref(), data(2000, i).as_slice());
    }
    assert_eq!(
        object_requests(&bad),
        0,
        "requests reached the failing upstream"
    );
    assert_eq!(object_requests(&good), 24);

    // It recovers: the next probe puts it back.
    bad.state.down.store(false, Ordering::SeqCst);
    wait_for(&client, &edge, bad.addr.port(), 1).await;
    for i in 100..140 {
        let o = Obj::cacheable(data(1000, i), 60);
        good.put(&format!("/v/{i}"), o.clone());
        bad.put(&format!("/v/{i}"), o);
        let (status, _, _) = get(&client, &edge.url(&format!("/v/{i}")), None).await;
        assert_eq!(status, 200);
    }
    assert!(
        object_requests(&bad) > 0,
        "the recovered upstream got none of 40 new objects"
    );
    edge.shutdown().await;
}

use crate::scripted;

use std::sync::{Arc, Mutex};

use http::Method;
use scripted::{Canned, Scripted};

/// Log lines written while a test runs (a `tracing` subscriber for this thread:
/// `#[tokio::test]` runs every task of the edge on it).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    /// Captures this thread's events at `info` and above until the guard drops.
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (logs, tracing::subscriber::set_default(sub))
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().expect("lock"))
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn matching(&self, level: &str, text: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(level) && l.contains(text))
            .collect()
    }
}

fn cacheable(body: &[u8]) -> Canned {
    Canned::new(200, &[("cache-control", "max-age=600")], body)
}

/// GETs on `origin` for paths under `prefix`.
fn gets_under(origin: &Scripted, prefix: &str) -> usize {
    origin
        .seen()
        .iter()
        .filter(|s| s.method == Method::GET && s.path.starts_with(prefix))
        .count()
}

// A generic origin has no /_keyframe/healthz: it answers the probe 404, or 500
// from a framework that fails on unknown paths. Any HTTP answer means the server
// is up, so it stays in rotation and gets its share.
#[tokio::test]
async fn a_generic_origin_without_a_health_endpoint_stays_in_rotation() {
    let a = Scripted::start().await;
    let b = Scripted::start().await;
    b.script(
        "/_keyframe/healthz",
        Canned::new(500, &[], b"Internal Server Error"),
    );
    for i in 0..24 {
        a.script(&format!("/g/{i}"), cacheable(b"g"));
        b.script(&format!("/g/{i}"), cacheable(b"g"));
    }
    let edge = TestEdge::start(keyframe_edge::Config {
        health_check_secs: 1,
        ..config(&[a.url(), b.url()], 64 << 10)
    })
    .await;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.count(&Method::GET, "/_keyframe/healthz") < 2
        || b.count(&Method::GET, "/_keyframe/healthz") < 2
    {
        assert!(Instant::now() < deadline, "no probes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(healthy(&client, &edge, b.addr.port()).await, Some(1));
    for i in 0..24 {
        let (status, _, _) = get(&client, &edge.url(&format!("/g/{i}")), None).await;
        assert_eq!(status, 200);
    }
    assert!(
        gets_under(&b, "/g/") > 0,
        "the origin answering its probe 500 was taken out of rotation"
    );
    assert!(gets_under(&a, "/g/") > 0);
    edge.shutdown().await;
}

// Each upstream can have its own health path; a path that names no upstream is a
// configuration error.
#[tokio::test]
async fn health_paths_are_set_per_upstream() {
    let a = Scripted::start().await;
    let b = Scripted::start().await;
    b.script("/status", Canned::new(200, &[], b"fine"));
    let mut paths = std::collections::BTreeMap::new();
    paths.insert(format!("{}/", b.url()), "/status".to_string());
    let cfg = keyframe_edge::Config {
        health_check_secs: 1,
        health_check_paths: paths,
        ..config(&[a.url(), b.url()], 64 << 10)
    };
    let mut wrong = cfg.clone();
    wrong
        .health_check_paths
        .insert("http://127.0.0.1:1".into(), "/status".into());
    let err = keyframe_edge::Server::new(wrong).expect_err("an unknown upstream");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    let edge = TestEdge::start(cfg).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.count(&Method::GET, "/status") < 2 || a.count(&Method::GET, "/_keyframe/healthz") < 2 {
        assert!(
            Instant::now() < deadline,
            "a: {:?}, b: {:?}",
            a.seen(),
            b.seen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.count(&Method::GET, "/_keyframe/healthz"), 0);
    assert_eq!(a.count(&Method::GET, "/status"), 0);
    edge.shutdown().await;
}

// The probe only shows that a server answers; real requests show whether it
// serves. One that answers its probe but fails real requests (5xx) leaves
// rotation after three, and the probe does not bring it back while it fails.
#[tokio::test]
async fn an_origin_is_judged_by_its_real_traffic() {
    let a = Scripted::start().await;
    let b = Scripted::start().await;
    b.script("/_keyframe/healthz", Canned::new(200, &[], b"ok\n"));
    for i in 0..30 {
        a.script(&format!("/t/{i}"), cacheable(b"t"));
        b.script(&format!("/t/{i}"), Canned::new(503, &[], b"overloaded"));
    }
    let (logs, _guard) = Logs::capture();
    let edge = TestEdge::start(keyframe_edge::Config {
        health_check_secs: 1,
        ..config(&[a.url(), b.url()], 64 << 10)
    })
    .await;
    let client = reqwest::Client::new();
    // Three seconds of requests: three probes that find `b` answering.
    let started = Instant::now();
    for i in 0..30 {
        let (status, _, _) = get(&client, &edge.url(&format!("/t/{i}")), None).await;
        assert_eq!(status, 200, "failover serves /t/{i}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        b.count(&Method::GET, "/_keyframe/healthz") >= 2,
        "probes ran"
    );
    // Three take it out; after that, one trial request per cool-down (5 s).
    let trials = started.elapsed().as_secs() as usize / 5;
    let failed = gets_under(&b, "/t/");
    assert!(
        (3..=3 + trials).contains(&failed),
        "the failing origin got {failed} real requests: its probe kept putting it back"
    );
    let warned = logs.matching("WARN", "out of rotation");
    assert_eq!(warned.len(), 1, "{:#?}", logs.lines());
    assert!(
        warned[0].contains(&b.addr.to_string()) && warned[0].contains("503"),
        "{warned:?}"
    );
    edge.shutdown().await;
}

// An origin that dies under traffic is logged once as it leaves rotation (WARN,
// with why) and once as it comes back (INFO), however many requests fail
// between; requests are what notice, with the probes off.
#[tokio::test]
async fn an_origin_dying_under_traffic_is_logged_once_each_way() {
    let origin = Scripted::start().await;
    origin.script(
        "/live",
        Canned::new(200, &[("cache-control", "no-store")], b"ok"),
    );
    let (logs, _guard) = Logs::capture();
    let edge = TestEdge::start(config(&[origin.url()], 64 << 10)).await;
    let client = reqwest::Client::new();
    let (status, _, _) = get(&client, &edge.url("/live"), None).await;
    assert_eq!(status, 200);
    origin.set_dead(true);
    for _ in 0..8 {
        let (status, _, _) = get(&client, &edge.url("/live"), None).await;
        assert!(status >= 500, "{status}");
    }
    origin.set_dead(false);
    for _ in 0..4 {
        let (status, _, _) = get(&client, &edge.url("/live"), None).await;
        assert_eq!(status, 200);
    }
    let name = origin.addr.to_string();
    let out = logs.matching("WARN", "out of rotation");
    assert_eq!(out.len(), 1, "{:#?}", logs.lines());
    assert!(out[0].contains(&name), "{out:?}");
    let back = logs.matching("INFO", "back in rotation");
    assert_eq!(back.len(), 1, "{:#?}", logs.lines());
    assert!(back[0].contains(&name), "{back:?}");
    edge.shutdown().await;
}

// Probes, the edge's of its upstreams and a load balancer's of the edge, are
// routine: they log at debug, so `info` is not one line per probe.
#[tokio::test]
async fn health_checks_log_at_debug() {
    let origin = Scripted::start().await;
    origin.script("/x", cacheable(b"x"));
    let (logs, _guard) = Logs::capture();
    let edge = TestEdge::start(keyframe_edge::Config {
        health_check_secs: 1,
        ..config(&[origin.url()], 64 << 10)
    })
    .await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let (status, _, _) = get(&client, &edge.url("/_keyframe/healthz"), None).await;
        assert_eq!(status, 200);
    }
    let (status, _, _) = get(&client, &edge.url("/x"), None).await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while origin.count(&Method::GET, "/_keyframe/healthz") < 2 {
        assert!(Instant::now() < deadline, "no probes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = logs.lines();
    assert!(
        lines.iter().any(|l| l.contains("path=\"/x\"")),
        "the access log is on: {lines:#?}"
    );
    let probes: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("healthz") || l.contains("health check"))
        .collect();
    assert!(probes.is_empty(), "probes logged at info: {probes:#?}");
    edge.shutdown().await;
}
