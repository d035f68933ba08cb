//! Active health checks: an upstream that answers 5xx (or not at all) is taken out
//! of rotation by the probe, before any client request has to fail over, and comes
//! back once it answers again.

mod common;

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
    let edge = TestEdge::start(keyframe_edge::Config {
        health_check_secs: 1,
        health_check_path: "/_keyframe/healthz".into(),
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
