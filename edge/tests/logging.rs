//! What the edge logs at `info`: the requests clients make, not the routine
//! traffic between Keyframe's own servers (issue 16, item 5); and the request id
//! that ties a request's access line to the fetches it caused (issue 19, item 9).

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
    /// Starts capturing everything down to `level` on this thread.
    fn start(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (out, tracing::subscriber::set_default(subscriber))
    }

    /// The lines of `target` that mention `what`, waiting (a little) for at
    /// least one: an access line is written when the server drops the body.
    async fn wait_for(&self, target: &str, what: &str) -> Vec<String> {
        for _ in 0..200 {
            let found = self.matching(target, what);
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no {target} line with {what}: {:#?}", self.lines());
    }

    fn matching(&self, target: &str, what: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(target) && l.contains(what))
            .collect()
    }

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

async fn get_with_id(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let mut rb = client.get(url).header("x-request-id", id);
    if let Some(r) = range {
        rb = rb.header("range", r);
    }
    rb.send().await.expect("send")
}

// A miss's upstream fetch, and a later request's chunk fetch, log under the id of
// the client request that caused them (in its `request{id=…}` span, though they
// run on tasks of their own), send that id upstream, and the answer echoes it.
#[tokio::test(flavor = "current_thread")]
async fn fetches_log_under_the_id_of_the_request_that_caused_them() {
    let (out, _guard) = Captured::start(tracing::Level::DEBUG);
    let origin = TestOrigin::start().await;
    let len = 8 * 4096;
    origin.put("/v1/objects/m.mp4", Obj::cacheable(data(len, 5), 3600));
    let edge = TestEdge::start(config(&[origin.url()], 4096)).await;
    let client = reqwest::Client::new();
    let url = edge.url("/v1/objects/m.mp4");

    let resp = get_with_id(&client, &url, "miss-1", Some("bytes=0-99")).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["x-request-id"], "miss-1");
    assert_eq!(resp.bytes().await.expect("body").len(), 100);
    let access = out.wait_for("keyframe::access", "m.mp4").await;
    assert!(access[0].contains("request{id=miss-1}"), "{access:#?}");
    let fetches = out.matching("keyframe::upstream", "m.mp4");
    assert!(!fetches.is_empty(), "{:#?}", out.lines());
    for f in &fetches {
        assert!(f.contains("request{id=miss-1}"), "{f}");
    }

    // Chunk 6 is not cached: a chunk fetch on behalf of this request.
    let resp = get_with_id(&client, &url, "chunk-2", Some("bytes=24576-24675")).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.expect("body").len(), 100);
    out.wait_for("keyframe::access", "request{id=chunk-2}")
        .await;
    let chunk = out.matching("keyframe::upstream", "request{id=chunk-2}");
    assert!(!chunk.is_empty(), "{:#?}", out.lines());

    // The origin was asked under the same ids.
    let seen: Vec<String> = origin
        .state
        .requests
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, h)| {
            h.get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(seen.iter().any(|i| i == "miss-1"), "{seen:?}");
    assert!(seen.iter().any(|i| i == "chunk-2"), "{seen:?}");
    assert!(
        seen.iter().all(|i| i == "miss-1" || i == "chunk-2"),
        "{seen:?}"
    );
    edge.shutdown().await;
}

// An id a client sends that could forge a log field is not used: the request gets
// one of the edge's own, in the log and in the answer.
#[tokio::test(flavor = "current_thread")]
async fn unsafe_request_ids_are_replaced() {
    let (out, _guard) = Captured::start(tracing::Level::INFO);
    let origin = TestOrigin::start().await;
    origin.put("/v1/objects/s.mp4", Obj::cacheable(data(100, 1), 3600));
    let edge = TestEdge::start(config(&[origin.url()], 4096)).await;
    let client = reqwest::Client::new();
    let resp = get_with_id(
        &client,
        &edge.url("/v1/objects/s.mp4"),
        "x status=500",
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    assert_eq!(id.len(), 16, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    let _ = resp.bytes().await;
    let access = out.wait_for("keyframe::access", "s.mp4").await;
    assert!(
        access[0].contains(&format!("request{{id={id}}}")),
        "{access:#?}"
    );
    assert!(!access[0].contains("x status=500"), "{access:#?}");
    edge.shutdown().await;
}

// Two clients missing the same object at once make one upstream fetch: it logs
// under the leader's id, and the other request logs which fetch it joined.
#[tokio::test(flavor = "current_thread")]
async fn a_request_that_joins_a_fetch_names_it() {
    let (out, _guard) = Captured::start(tracing::Level::DEBUG);
    let origin = TestOrigin::start().await;
    origin.put("/v1/objects/c.mp4", Obj::cacheable(data(1000, 2), 3600));
    origin
        .state
        .delay_ms
        .store(300, std::sync::atomic::Ordering::SeqCst);
    let edge = TestEdge::start(config(&[origin.url()], 4096)).await;
    let client = reqwest::Client::new();
    let url = edge.url("/v1/objects/c.mp4");
    let (a, b) = tokio::join!(
        get_with_id(&client, &url, "first", None),
        get_with_id(&client, &url, "second", None)
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    assert_eq!(origin.gets(), 1, "one fetch for both");
    let fetch = out.matching("keyframe::upstream", "c.mp4");
    assert_eq!(fetch.len(), 1, "{:#?}", out.lines());
    let (leader, follower) = if fetch[0].contains("request{id=first}") {
        ("first", "second")
    } else {
        ("second", "first")
    };
    assert!(
        fetch[0].contains(&format!("request{{id={leader}}}")),
        "{fetch:#?}"
    );
    let joined = out.matching("joined the fetch", &format!("fetch={leader}"));
    assert_eq!(joined.len(), 1, "{:#?}", out.lines());
    assert!(
        joined[0].contains(&format!("request{{id={follower}}}")),
        "{joined:#?}"
    );
    edge.shutdown().await;
}
