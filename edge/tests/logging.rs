//! What the edge logs at `info`: the requests clients make, not the routine
//! traffic between Keyframe's own servers (issue 16, item 5).

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{config, data, get, Obj, TestEdge, TestOrigin};

/// A `MakeWriter` that keeps what is written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().expect("lock"))
            .lines()
            .map(String::from)
            .collect()
    }
}

// Every chunk a regional edge fetches from its shield, and every health check,
// was a line at `info` (93,047 lines for two 3 GB transfers): they go to debug;
// the client's own request stays at info, once.
#[tokio::test(flavor = "current_thread")]
async fn chunk_fetches_and_health_checks_are_not_logged_at_info() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The current-thread runtime polls every server task on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let origin = TestOrigin::start().await;
    let len = 5 * 4096 + 10;
    origin.put("/v1/objects/m.mp4", Obj::cacheable(data(len, 3), 3600));
    let shield = TestEdge::start(config(&[origin.url()], 4096)).await;
    let mut cfg = config(&[origin.url()], 4096);
    cfg.parent = Some(format!("http://{}", shield.addr));
    let regional = TestEdge::start(cfg).await;
    let client = reqwest::Client::new();
    let (status, _, body) = get(&client, &regional.url("/v1/objects/m.mp4"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body.expect("body").len(), len);
    for edge in [&shield, &regional] {
        let (status, _, _) = get(&client, &edge.url("/_keyframe/healthz"), None).await;
        assert_eq!(status, 200);
    }
    let access: Vec<String> = out
        .lines()
        .into_iter()
        .filter(|l| l.contains("keyframe::access"))
        .collect();
    assert!(
        origin.gets() >= 2,
        "the shield fetched chunks for the regional edge"
    );
    assert_eq!(access.len(), 1, "{access:#?}");
    assert!(access[0].contains("m.mp4") && access[0].contains("status=200"));
    regional.shutdown().await;
    shield.shutdown().await;
}
