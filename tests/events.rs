//! Watch events on NATS JetStream (`--events nats://…`), end to end: a real
//! `nats-server -js` on a free loopback port (its own store directory), and
//! `keyframe catalog --events` processes folding into one database.
//!
//! Every start event counts a view here (`trending_view_min_secs = 0`, no view
//! window), so "folded exactly once" is exact: a title's views, and the viewer's
//! play count, equal the distinct events acknowledged, whatever the order of
//! delivery.
//!
//! Needs `nats-server` (`/usr/sbin/nats-server` or on `PATH`): skipped without
//! it, except under `CI=true`, where the suite fails. The two-catalog test runs
//! on PostgreSQL when `KEYFRAME_TEST_DATABASE_URL` is set.

use crate::common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{keyframe, missing, Running};
use keyframe_catalog::meta::{NewContent, Right};
use keyframe_catalog::testing::TestDb;
use reqwest::StatusCode;
use serde_json::{json, Value};

const SUITE: &str = "JetStream events tests";

fn nats_bin() -> Option<PathBuf> {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| common::runs("nats-server").then(|| PathBuf::from("nats-server")))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A `nats-server -js` on loopback, killed on drop.
struct Nats {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    /// Further arguments (a cluster node's name, routes, monitor port).
    extra: Vec<String>,
    child: Option<Child>,
}

impl Nats {
    fn start(bin: &Path, dir: &Path) -> Nats {
        Nats::start_with(bin, &dir.join("nats"), free_port(), Vec::new())
    }

    fn start_with(bin: &Path, dir: &Path, port: u16, extra: Vec<String>) -> Nats {
        let mut n = Nats {
            bin: bin.to_path_buf(),
            port,
            dir: dir.to_path_buf(),
            extra,
            child: None,
        };
        n.restart();
        n
    }

    /// A JetStream cluster of `n` nodes on loopback (as deploy/'s three), each
    /// with a monitor port; returns once every node says it is healthy (JetStream
    /// has its meta leader).
    async fn cluster(bin: &Path, dir: &Path, n: usize) -> Vec<Nats> {
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let all = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes: Vec<(Nats, u16)> = (0..n)
            .map(|i| {
                let monitor = free_port();
                let extra = vec![
                    "--server_name".into(),
                    format!("kf-{i}"),
                    "--cluster_name".into(),
                    "keyframe".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", routes[i]),
                    "--routes".into(),
                    all.clone(),
                    "-m".into(),
                    monitor.to_string(),
                ];
                let node = Nats::start_with(bin, &dir.join(format!("kf-{i}")), free_port(), extra);
                (node, monitor)
            })
            .collect();
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        for (_, monitor) in &nodes {
            loop {
                let ok = http
                    .get(format!("http://127.0.0.1:{monitor}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    break;
                }
                assert!(Instant::now() < deadline, "the NATS cluster did not form");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        nodes.into_iter().map(|(n, _)| n).collect()
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port and store) and waits until it answers.
    fn restart(&mut self) {
        let child = Command::new(&self.bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The test's prerequisites, or `None` (skipped) when nats-server is missing.
fn setup() -> Option<(PathBuf, tempfile::TempDir)> {
    let Some(bin) = nats_bin() else {
        missing("nats-server is not installed", SUITE);
        return None;
    };
    Some((bin, tempfile::tempdir().expect("tempdir")))
}

/// `keyframe catalog --events URL` on `db`, every start counting a view, folding
/// `commit` events per transaction at most.
fn catalog(data: &Path, db: &str, nats: &str, commit: u32) -> Running {
    let mut cmd = keyframe();
    cmd.arg("--data-dir")
        .arg(data)
        .args([
            "catalog",
            "--db",
            db,
            "--listen",
            "127.0.0.1:0",
            "--events",
            nats,
        ])
        .env("KEYFRAME_TRENDING_VIEW_MIN_SECS", "0")
        .env("KEYFRAME_TRENDING_VIEW_WINDOW_SECS", "0")
        .env("KEYFRAME_HISTORY_EVENTS_PER_USER_MINUTE", "1000000")
        // A crashed catalog's pulled events come back to the others quickly.
        .env("KEYFRAME_EVENTS_ACK_WAIT_SECS", "2")
        .env("KEYFRAME_HISTORY_COMMIT_EVENTS", commit.to_string());
    Running::start(cmd, 1)
}

/// A fresh database (migrated; PostgreSQL if `postgres` and one is configured)
/// with one title everyone may watch, and the title's id.
async fn database(postgres: bool) -> (TestDb, String) {
    let t = match keyframe_catalog::testing::postgres_url().filter(|_| postgres) {
        Some(admin) => keyframe_catalog::testing::postgres(&admin).await,
        None => keyframe_catalog::testing::sqlite().await,
    }
    .expect("test database");
    let c =
        t.db.create_content(&NewContent {
            title: "Watched".into(),
            description: String::new(),
            kind: "video".into(),
            categories: vec!["test".into()],
            assets: Vec::new(),
            rights: vec![Right {
                region: "*".into(),
                available_from: None,
                available_until: None,
            }],
            renditions: Vec::new(),
        })
        .await
        .expect("content");
    (t, c.id)
}

/// Signs up `name` and returns a session token.
async fn viewer(http: &reqwest::Client, base: &str, name: &str) -> String {
    let r = http
        .post(format!("{base}/api/users"))
        .json(&json!({
            "username": name,
            "password": "correct horse battery",
            "email": format!("{name}@example.com"),
            "date_of_birth": "1990-01-01",
        }))
        .send()
        .await
        .expect("sign up");
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let r = http
        .post(format!("{base}/api/sessions"))
        .json(&json!({"username": name, "password": "correct horse battery"}))
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.expect("session");
    body["token"].as_str().expect("token").to_string()
}

/// `n` start events of fresh sessions `tag-0…`, each a view. They all happened at
/// one time: a view counts only if it is not older than the last counted one, and
/// the stream's consumers fold in any order.
fn starts(content: &str, tag: &str, n: usize) -> Value {
    static AT: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let at = *AT.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64
            - 60_000
    });
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"content_id": content, "session_id": format!("{tag}-{i}"), "seq": 0,
                   "kind": "start", "position_ms": 0, "duration_ms": 3_600_000, "at": at})
        })
        .collect();
    json!({ "events": events })
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: &Value,
) -> (StatusCode, Value, Option<String>) {
    let r = http
        .post(format!("{base}/api/history"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("post history");
    let status = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("").to_string());
    (status, r.json().await.unwrap_or_default(), retry)
}

/// The title's views (all regions) in the counters.
async fn views(db: &keyframe_catalog::Db, content: &str) -> i64 {
    db.content_stats(content)
        .await
        .expect("stats")
        .iter()
        .map(|(_, v, _)| v)
        .sum()
}

/// Waits until the title's views reach `n` (then checks they stay there), and the
/// viewer's play count in the API agrees.
async fn folded_once(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    db: &keyframe_catalog::Db,
    content: &str,
    n: i64,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = views(db, content).await;
        assert!(v <= n, "{v} views of {n} events: an event was folded twice");
        if v == n {
            break;
        }
        if Instant::now() >= deadline {
            let m = common::metrics_text(http, base).await;
            let lines: Vec<&str> = m
                .lines()
                .filter(|l| l.starts_with("keyframe_events"))
                .collect();
            panic!("only {v} of {n} events folded; {base}: {lines:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Redeliveries still in flight must change nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(views(db, content).await, n);
    let h: Value = http
        .get(format!("{base}/api/history"))
        .bearer_auth(token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("history json");
    assert_eq!(h["items"][0]["play_count"], json!(n), "{h}");
}

/// Posts `body` until it is accepted, sent again as it is after each 503 (the
/// stream drops the events it already has), failing past `deadline`.
async fn post_until_accepted(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: &Value,
    deadline: Instant,
) {
    loop {
        let (st, answer, _) = post(http, base, token, body).await;
        if st == StatusCode::OK {
            return;
        }
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        assert!(
            Instant::now() < deadline,
            "appends did not come back: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes `payload` straight to the stream (no message id): as JetStream
/// redelivering a message, or a message appended twice past the duplicate window.
async fn publish_raw(nats: &str, payload: Vec<u8>) {
    let client = async_nats::connect(nats).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    js.publish("keyframe.history.start", payload.into())
        .await
        .expect("publish")
        .await
        .expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_consumer_crash_and_fold_once() {
    let Some((bin, dir)) = setup() else { return };
    let nats = Nats::start(&bin, dir.path());
    let (t, content) = database(false).await;
    let db = t.db.clone();
    let http = reqwest::Client::new();
    // One event per transaction: the consumer lags behind the appends.
    let a = catalog(dir.path(), &t.url, &nats.url(), 1);
    let base = a.url("catalog").to_string();
    let token = viewer(&http, &base, "crash").await;

    // 40 requests of 100 events at once, each answered once JetStream
    // acknowledged its events.
    let answers = futures::future::join_all((0..40).map(|r| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        let body = starts(&content, &format!("c{r}"), 100);
        async move { post(&http, &base, &token, &body).await }
    }))
    .await;
    let mut acked = 0;
    for (st, body, _) in answers {
        assert_eq!(st, StatusCode::OK, "{body}");
        assert_eq!(body["accepted"], 100, "{body}");
        acked += 100;
    }
    // Kill the only consumer while it folds: some events folded, some pulled and
    // not acked, the rest not delivered yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    while views(&db, &content).await == 0 {
        assert!(Instant::now() < deadline, "nothing folded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(a);
    let at_kill = views(&db, &content).await;
    assert!(at_kill < acked, "the consumer finished before the crash");

    // The same event sent again, and delivered twice more past the duplicate window.
    let b = catalog(dir.path(), &t.url, &nats.url(), 50);
    let base = b.url("catalog").to_string();
    let (st, body, _) = post(&http, &base, &token, &starts(&content, "c0", 1)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"accepted": 0, "duplicates": 1}));
    let user_id = db.user_by_username("crash").await.expect("user").id;
    let event = &starts(&content, "c1", 1)["events"][0];
    let env = json!({"user_id": user_id, "region": "", "event": event, "appended_at": 0});
    publish_raw(&nats.url(), serde_json::to_vec(&env).expect("json")).await;
    publish_raw(&nats.url(), serde_json::to_vec(&env).expect("json")).await;

    folded_once(&http, &base, &token, &db, &content, acked).await;
    let m = common::metrics_text(&http, &base).await;
    assert!(m.contains("keyframe_events_consumer_lag_messages"), "{m}");
    assert!(
        common::metric_sum(&m, "keyframe_events_duplicates_total").unwrap_or(0.0) >= 2.0,
        "the redelivered event is a duplicate, twice: {m}"
    );
    assert!(
        common::metric_sum(&m, "keyframe_events_visible_seconds_count").unwrap_or(0.0) > 0.0,
        "{m}"
    );
    drop(b);
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_catalogs_share_the_stream_without_double_counting() {
    let Some((bin, dir)) = setup() else { return };
    let nats = Nats::start(&bin, dir.path());
    // Production is PostgreSQL: this one runs there when a server is configured.
    let (t, content) = database(true).await;
    let db = t.db.clone();
    let http = reqwest::Client::new();
    let a = catalog(dir.path(), &t.url, &nats.url(), 50);
    let b = catalog(dir.path(), &t.url, &nats.url(), 50);
    let token = viewer(&http, a.url("catalog"), "two").await;
    let mut acked = 0;
    for r in 0..20 {
        let base = if r % 2 == 0 {
            a.url("catalog")
        } else {
            b.url("catalog")
        };
        let (st, body, _) = post(
            &http,
            base,
            &token,
            &starts(&content, &format!("t{r}"), 100),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        acked += 100;
    }
    folded_once(&http, b.url("catalog"), &token, &db, &content, acked).await;
    let folded: f64 = [&a, &b]
        .iter()
        .map(|c| {
            let url = c.url("catalog").to_string();
            let http = http.clone();
            async move {
                let m = common::metrics_text(&http, &url).await;
                common::metric_sum(&m, "keyframe_events_folded_total").unwrap_or(0.0)
            }
        })
        .collect::<futures::future::JoinAll<_>>()
        .await
        .iter()
        .sum();
    assert_eq!(
        folded as i64, acked,
        "each event folded by exactly one catalog"
    );
    drop((a, b));
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_stream_is_503_and_loses_no_acknowledged_event() {
    let Some((bin, dir)) = setup() else { return };
    let mut nats = Nats::start(&bin, dir.path());
    let (t, content) = database(false).await;
    let db = t.db.clone();
    let http = reqwest::Client::new();
    let a = catalog(dir.path(), &t.url, &nats.url(), 50);
    let base = a.url("catalog").to_string();
    let token = viewer(&http, &base, "lost").await;
    let (st, body, _) = post(&http, &base, &token, &starts(&content, "before", 200)).await;
    assert_eq!(st, StatusCode::OK, "{body}");

    nats.stop();
    let started = Instant::now();
    let (st, body, retry) = post(&http, &base, &token, &starts(&content, "during", 10)).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "events_unavailable", "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)));
    assert!(started.elapsed() < Duration::from_secs(10));

    nats.restart();
    // Back: appends succeed again (the client reconnects by itself).
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = starts(&content, "after", 100);
    post_until_accepted(&http, &base, &token, &body, deadline).await;
    // Every acknowledged event is folded once; the refused batch may have reached
    // the stream (then it is folded too) or not: at least 300, at most 310.
    let deadline = Instant::now() + Duration::from_secs(20);
    while views(&db, &content).await < 300 {
        assert!(Instant::now() < deadline, "acknowledged events lost");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = views(&db, &content).await;
    assert!((300..=310).contains(&v), "{v} views");
    drop(a);
    t.cleanup().await;
}

/// The production shape (deploy/: three JetStream nodes): the catalog, given all
/// three, creates the stream with three replicas; the node leading the stream
/// dies, and appends go on (answered only once the remaining replicas hold them),
/// every acknowledged event folded once; the node comes back and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_loses_a_node_and_no_acknowledged_event() {
    let Some((bin, dir)) = setup() else { return };
    let mut nodes = Nats::cluster(&bin, dir.path(), 3).await;
    let servers = nodes.iter().map(Nats::url).collect::<Vec<_>>().join(",");
    let (t, content) = database(false).await;
    let db = t.db.clone();
    let http = reqwest::Client::new();
    let a = catalog(dir.path(), &t.url, &servers, 50);
    let base = a.url("catalog").to_string();
    let token = viewer(&http, &base, "replicated").await;
    let (st, body, _) = post(&http, &base, &token, &starts(&content, "before", 200)).await;
    assert_eq!(st, StatusCode::OK, "{body}");

    // Three replicas, one of them the leader: stop that node.
    let client = async_nats::connect(nodes[0].url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("KEYFRAME_HISTORY").await.expect("stream");
    let info = stream.info().await.expect("stream info").clone();
    assert_eq!(info.config.num_replicas, 3, "{info:?}");
    let cluster = info.cluster.clone().expect("clustered stream");
    assert_eq!(cluster.replicas.len(), 2, "{cluster:?}");
    let leader = cluster.leader.clone().expect("a leader");
    let dead = nodes
        .iter()
        .position(|n| n.extra.contains(&leader))
        .expect("the leader is one of ours");
    nodes[dead].stop();

    // Appends go on once the two others elect a leader; a refused batch is sent
    // again as it is (same event ids: the stream drops what it already has).
    let deadline = Instant::now() + Duration::from_secs(30);
    for r in 0..4 {
        let body = starts(&content, &format!("after{r}"), 100);
        post_until_accepted(&http, &base, &token, &body, deadline).await;
    }
    folded_once(&http, &base, &token, &db, &content, 600).await;

    // The node comes back and catches up: the stream has all its replicas current.
    nodes[dead].restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = stream.info().await.expect("stream info").clone();
        let c = info.cluster.expect("clustered");
        let current = c.replicas.iter().filter(|p| p.current).count();
        if c.leader.is_some() && current == 2 && info.state.messages >= 600 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not catch up: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(a);
    t.cleanup().await;
}
