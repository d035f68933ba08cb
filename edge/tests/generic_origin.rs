//! The edge in front of a generic (scripted) origin, the way a shared cache is used
//! in front of any HTTP server: one upstream request per client request on a miss,
//! only the current client's headers upstream, pass-through that keeps ranges and
//! validators, origins that answer ranges their own way, client body errors.

use crate::common;

use std::sync::Arc;

use bytes::Bytes;
use common::scripted::{ranged, Reply, ScriptedOrigin, Seen};
use common::{config, data, TestEdge};

const CHUNK: u64 = 4096;

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

async fn get_with(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Bytes) {
    let mut rb = client.get(url);
    for (n, v) in headers {
        rb = rb.header(*n, *v);
    }
    let resp = rb.send().await.expect("send");
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let body = resp.bytes().await.expect("body");
    (status, h, body)
}

/// Whether any request the origin saw carries `needle` in any header value.
fn carried(seen: &[Seen], needle: &str) -> Vec<String> {
    seen.iter()
        .flat_map(|s| {
            s.headers.iter().filter_map(move |(n, v)| {
                let v = v.to_str().unwrap_or("");
                v.contains(needle)
                    .then(|| format!("{} {}: {n}: {v}", s.method, s.path))
            })
        })
        .collect()
}

// Issue 15, defect 1: an answer the edge may not store costs one upstream request,
// and that one answer serves the client, whole or in the range it asked for.
#[tokio::test]
async fn an_unstorable_miss_is_one_upstream_request_whose_answer_serves_the_client() {
    let client = reqwest::Client::new();
    let body = Bytes::from(data(10_000, 1));
    for (what, headers) in [
        ("no-store", vec![("cache-control", "no-store")]),
        ("private", vec![("cache-control", "private, max-age=60")]),
        (
            "set-cookie",
            vec![("cache-control", "max-age=60"), ("set-cookie", "s=1")],
        ),
        ("no freshness, no validator", vec![]),
    ] {
        let b = body.clone();
        let origin = ScriptedOrigin::start(move |req| ranged(&b, req, &headers)).await;
        let edge = TestEdge::start(config(&[origin.url()], CHUNK)).await;
        let (status, _, got) = get_with(&client, &edge.url("/whole"), &[]).await;
        assert_eq!(status, 200, "{what}");
        assert!(got == body, "{what}: the whole body differs");
        assert_eq!(origin.count(), 1, "{what}: {:?}", origin.seen());
        origin.clear();
        let (status, h, got) =
            get_with(&client, &edge.url("/part"), &[("range", "bytes=5000-5099")]).await;
        assert_eq!(status, 206, "{what}");
        assert_eq!(
            header(&h, "content-range"),
            "bytes 5000-5099/10000",
            "{what}"
        );
        assert!(got[..] == body[5000..5100], "{what}: the range differs");
        assert_eq!(origin.count(), 1, "{what}: {:?}", origin.seen());
        edge.shutdown().await;
    }
}

// Defect 1 for an answer that is stored: one request fills every chunk the
// client's range touches (no probe of one chunk, then the others).
#[tokio::test]
async fn a_cacheable_miss_is_one_upstream_request_too() {
    let client = reqwest::Client::new();
    let body = Bytes::from(data(10_000, 5));
    let b = body.clone();
    let origin = ScriptedOrigin::start(move |req| {
        ranged(
            &b,
            req,
            &[("cache-control", "max-age=60"), ("etag", "\"c\"")],
        )
    })
    .await;
    let edge = TestEdge::start(config(&[origin.url()], CHUNK)).await;
    let (status, _, got) =
        get_with(&client, &edge.url("/two"), &[("range", "bytes=3000-6000")]).await;
    assert_eq!(status, 206);
    assert!(got[..] == body[3000..=6000]);
    assert_eq!(origin.count(), 1, "{:?}", origin.seen());
    assert_eq!(origin.seen()[0].header("range"), "bytes=0-8191");
    origin.clear();
    let (status, _, got) = get_with(&client, &edge.url("/whole"), &[]).await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert_eq!(origin.count(), 1, "{:?}", origin.seen());
    assert_eq!(origin.seen()[0].header("range"), "");
    // Both are stored: hits from now on.
    origin.clear();
    let (status, h, got) = get_with(&client, &edge.url("/two"), &[("range", "bytes=0-8191")]).await;
    assert_eq!(status, 206);
    assert!(got[..] == body[..8192]);
    assert!(header(&h, "cache-status").contains("hit"), "{h:?}");
    let (status, h, got) = get_with(&client, &edge.url("/whole"), &[]).await;
    assert_eq!(status, 200);
    assert!(got == body);
    assert!(header(&h, "cache-status").contains("hit"), "{h:?}");
    assert_eq!(origin.count(), 0, "{:?}", origin.seen());
    edge.shutdown().await;
}

// Defect 1 with coalescing: clients that joined a miss whose answer is not
// storable never get another client's answer; each costs one request, no more.
#[tokio::test]
async fn clients_coalesced_on_an_unstorable_miss_each_get_their_own_answer() {
    let client = reqwest::Client::new();
    let origin = ScriptedOrigin::start(|req| {
        Reply::new(200)
            .header("cache-control", "private")
            .body(format!("for {}", req.header("cookie")))
            .delay(150)
    })
    .await;
    let edge = TestEdge::start(config(&[origin.url()], CHUNK)).await;
    let url = edge.url("/me");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let cookie = format!("id={i}");
                let (status, _, body) = get_with(&client, &url, &[("cookie", &cookie)]).await;
                (status, cookie, body)
            })
        })
        .collect();
    for t in tasks {
        let (status, cookie, body) = t.await.expect("task");
        assert_eq!(status, 200);
        assert_eq!(body, format!("for {cookie}"), "someone else's answer");
    }
    assert_eq!(origin.count(), 8, "{:?}", origin.seen());
    edge.shutdown().await;
}

// Defect 2: a chunk fetch carries only what the cache key and the stored Vary
// need, never the cookies or credentials of the client whose request created
// the entry; a refresh carries the current request's headers and the validators.
#[tokio::test]
async fn chunk_fetches_and_refreshes_carry_no_other_clients_headers() {
    let client = reqwest::Client::new();
    let body = Bytes::from(data(3 * CHUNK as usize + 100, 2));
    let b = body.clone();
    let origin = ScriptedOrigin::start(move |req| {
        let headers = [
            ("cache-control", "public, max-age=60"),
            ("etag", "\"v1\""),
            ("vary", "accept-language"),
        ];
        ranged(&b, req, &headers)
    })
    .await;
    let edge = TestEdge::start(config(&[origin.url()], CHUNK)).await;
    let url = edge.url("/v.mp4");
    let a = [
        ("cookie", "who=alice"),
        ("authorization", "Bearer alice-secret"),
        ("user-agent", "alice-agent"),
        ("accept-language", "fr"),
    ];
    let (status, _, got) = get_with(
        &client,
        &url,
        &[a[0], a[1], a[2], a[3], ("range", "bytes=0-99")],
    )
    .await;
    assert_eq!(status, 206);
    assert!(got[..] == body[..100]);
    origin.clear();
    // Bob's request for the last chunk: a hit on the entry, a fetch of chunk 3.
    let (status, _, got) = get_with(
        &client,
        &url,
        &[
            ("accept-language", "fr"),
            ("cookie", "who=bob"),
            ("range", "bytes=12300-12339"),
        ],
    )
    .await;
    assert_eq!(status, 206);
    assert!(got[..] == body[12300..12340]);
    let seen = origin.seen();
    assert!(!seen.is_empty(), "the last chunk came from nowhere");
    for leak in ["alice", "who=bob"] {
        assert!(
            carried(&seen, leak).is_empty(),
            "{:?}",
            carried(&seen, leak)
        );
    }
    assert!(
        seen.iter().all(|s| s.header("accept-language") == "fr"),
        "a chunk fetch must select the stored variant: {seen:?}"
    );

    // A refresh: the entry is stale (max-age=0 now), Carol's request revalidates it.
    let b = body.clone();
    let origin = ScriptedOrigin::start(move |req| {
        if req.header("if-none-match") == "\"v2\"" {
            return Reply::new(304)
                .header("cache-control", "max-age=0")
                .header("etag", "\"v2\"");
        }
        ranged(
            &b,
            req,
            &[("cache-control", "max-age=0"), ("etag", "\"v2\"")],
        )
    })
    .await;
    let edge2 = TestEdge::start(config(&[origin.url()], CHUNK)).await;
    let url = edge2.url("/r.mp4");
    let (status, _, _) = get_with(
        &client,
        &url,
        &[
            ("cookie", "who=alice"),
            ("user-agent", "alice-agent"),
            ("range", "bytes=0-9"),
        ],
    )
    .await;
    assert_eq!(status, 206);
    origin.clear();
    let (status, _, got) = get_with(
        &client,
        &url,
        &[
            ("cookie", "who=carol"),
            ("user-agent", "carol-agent"),
            ("range", "bytes=0-9"),
        ],
    )
    .await;
    assert_eq!(status, 206);
    assert!(got[..] == body[..10]);
    let seen = origin.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].header("if-none-match"), "\"v2\"");
    assert_eq!(seen[0].header("cookie"), "who=carol");
    assert_eq!(seen[0].header("user-agent"), "carol-agent");
    edge.shutdown().await;
    edge2.shutdown().await;
}

// Defect 3: pass-through (and a miss the origin answers unstorably) forwards the
// client's Range and validators as they are.
#[tokio::test]
async fn pass_forwards_the_clients_range_and_validators() {
    let client = reqwest::Client::new();
    let body = Bytes::from(data(10_000, 3));
    let b = body.clone();
    let origin = ScriptedOrigin::start(move |req| {
        if req.header("if-none-match") == "\"e\"" {
            return Reply::new(304).header("etag", "\"e\"");
        }
        ranged(&b, req, &[("cache-control", "no-store"), ("etag", "\"e\"")])
    })
    .await;
    let edge = TestEdge::start(config(&[origin.url()], CHUNK)).await;
    let url = edge.url("/p");
    let (status, _, _) = get_with(&client, &url, &[]).await;
    assert_eq!(status, 200);
    // The URL now passes: the client's headers go as they are.
    let conditionals = [
        ("if-match", "\"e\""),
        ("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ];
    origin.clear();
    let (status, h, got) = get_with(
        &client,
        &url,
        &[
            ("range", "bytes=10-19"),
            ("if-range", "\"e\""),
            conditionals[0],
            conditionals[1],
            conditionals[2],
        ],
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(header(&h, "content-range"), "bytes 10-19/10000");
    assert!(got[..] == body[10..20]);
    let seen = origin.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].header("range"), "bytes=10-19");
    assert_eq!(seen[0].header("if-range"), "\"e\"");
    for (n, v) in conditionals {
        assert_eq!(seen[0].header(n), v, "{n}");
    }
    let (status, _, got) = get_with(&client, &url, &[("if-none-match", "\"e\"")]).await;
    assert_eq!(status, 304, "the origin's own 304 reaches the client");
    assert!(got.is_empty());
    assert_eq!(origin.seen()[1].header("if-none-match"), "\"e\"");
    edge.shutdown().await;
}

/// An origin that answers ranges its own way: `shape` turns the range asked for
/// (None: no Range) into the range it answers (None: the whole 200).
fn odd_origin(
    body: Bytes,
    cc: &'static str,
    shape: impl Fn(Option<(u64, u64)>) -> Option<(u64, u64)> + Send + Sync + 'static,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |req| {
        let len = body.len() as u64;
        let asked = common::scripted::single_range(req, len);
        let r = match shape(asked) {
            Some((a, b)) => Reply::new(206)
                .header("content-range", &format!("bytes {a}-{b}/{len}"))
                .body(body.slice(a as usize..=b as usize)),
            None => Reply::new(200).body(body.clone()),
        };
        r.header("cache-control", cc).header("etag", "\"odd\"")
    }
}

// Defect 4: an origin that answers a range other than the one asked for, or
// ignores Range, gets the client the right bytes (never a 502), cacheable or not.
#[tokio::test]
async fn origins_answering_ranges_their_own_way_serve_the_right_bytes() {
    let client = reqwest::Client::new();
    let len = 5 * CHUNK as usize + 77;
    let body = Bytes::from(data(len, 4));
    type Shape = Arc<dyn Fn(Option<(u64, u64)>) -> Option<(u64, u64)> + Send + Sync>;
    let shapes: Vec<(&str, Shape)> = vec![
        ("ignores Range", Arc::new(|_| None)),
        // Starts at a multiple of 1000 below the asked start, to the asked end.
        (
            "starts earlier",
            Arc::new(|r| r.map(|(a, b)| (a / 1000 * 1000, b))),
        ),
        // Sends at most 1000 bytes from the asked start.
        (
            "sends less",
            Arc::new(|r| r.map(|(a, b)| (a, b.min(a + 999)))),
        ),
        // Sends everything from the asked start to the end.
        ("sends more", {
            let last = len as u64 - 1;
            Arc::new(move |r| r.map(|(a, _)| (a, last)))
        }),
        // Ranges for the first request, then the whole 200 each time.
        ("206 then 200", {
            let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            Arc::new(move |r| {
                if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    r
                } else {
                    None
                }
            })
        }),
    ];
    for cc in ["max-age=60", "no-store"] {
        for (what, shape) in &shapes {
            let shape = shape.clone();
            let origin =
                ScriptedOrigin::start(odd_origin(body.clone(), cc, move |r| shape(r))).await;
            let edge = TestEdge::start(config(&[origin.url()], CHUNK)).await;
            let url = edge.url("/odd.bin");
            for (a, b) in [
                (5000u64, 9999u64),
                (100, 150),
                (0, len as u64 - 1),
                (12_000, 20_000),
            ] {
                let range = format!("bytes={a}-{b}");
                let (status, h, got) = get_with(&client, &url, &[("range", &range)]).await;
                let b = b.min(len as u64 - 1);
                assert!(
                    status == 206 || status == 200,
                    "{what}, {cc}, {range}: {status}"
                );
                if status == 206 {
                    let cr = header(&h, "content-range");
                    let (span, total) = cr
                        .strip_prefix("bytes ")
                        .and_then(|s| s.split_once('/'))
                        .unwrap_or_else(|| panic!("{what}, {cc}, {range}: {cr}"));
                    assert_eq!(total, len.to_string());
                    let (x, y) = span.split_once('-').expect("span");
                    let (x, y): (usize, usize) = (x.parse().expect("x"), y.parse().expect("y"));
                    assert!(
                        x as u64 == a && y as u64 <= b,
                        "{what}, {cc}, {range}: {cr}"
                    );
                    assert!(
                        got[..] == body[x..=y],
                        "{what}, {cc}, {range}: bytes differ"
                    );
                } else {
                    assert!(got == body, "{what}, {cc}, {range}: the 200 differs");
                }
            }
            // Whole, too.
            let (status, _, got) = get_with(&client, &url, &[]).await;
            assert_eq!(status, 200, "{what}, {cc}");
            assert!(got == body, "{what}, {cc}: the whole body differs");
            edge.shutdown().await;
        }
    }
}

// Defect 9: a request body that is not valid chunked encoding is the client's
// mistake: 400 with a JSON error, not a 502.
#[tokio::test]
async fn a_malformed_request_body_is_a_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = ScriptedOrigin::start(|_| Reply::new(201).body("made")).await;
    let edge = TestEdge::start(config(&[origin.url()], CHUNK)).await;
    let mut s = tokio::net::TcpStream::connect(edge.addr)
        .await
        .expect("connect");
    s.write_all(
        b"POST /upload HTTP/1.1\r\nhost: edge\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("\"code\""), "{text}");
    edge.shutdown().await;
}

// Defect 1, coalescing: clients that joined a miss whose answer was the leader's
// own (a 416 to its range past the end) fetch once more, together, not each on
// its own, and what they get is stored.
#[tokio::test]
async fn waiters_on_another_clients_own_answer_fetch_once_together() {
    let client = reqwest::Client::new();
    let body = Bytes::from(data(10_000, 6));
    let b = body.clone();
    let origin = ScriptedOrigin::start(move |req| {
        let len = b.len() as u64;
        let past_end = common::scripted::single_range(req, len).is_none()
            && req.header("range").starts_with("bytes=")
            && !req.header("range").starts_with("bytes=-");
        if past_end {
            return Reply::new(416)
                .header("content-range", &format!("bytes */{len}"))
                .delay(300);
        }
        ranged(
            &b,
            req,
            &[("cache-control", "max-age=60"), ("etag", "\"w\"")],
        )
        .delay(300)
    })
    .await;
    let mut cfg = config(&[origin.url()], CHUNK);
    // Nothing read ahead: the requests counted are the clients' own.
    cfg.read_ahead = 0;
    let edge = TestEdge::start(cfg).await;
    let url = edge.url("/w");
    let leader = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { get_with(&client, &url, &[("range", "bytes=20000-")]).await })
    };
    // The leader goes first; the others join its fetch while the origin thinks.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let waiters: Vec<_> = (0..6u64)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let a = i * 500;
                let r = format!("bytes={a}-{}", a + 99);
                (a as usize, get_with(&client, &url, &[("range", &r)]).await)
            })
        })
        .collect();
    let (status, h, _) = leader.await.expect("leader");
    assert_eq!(status, 416);
    assert_eq!(header(&h, "content-range"), "bytes */10000");
    for w in waiters {
        let (a, (status, _, got)) = w.await.expect("waiter");
        assert_eq!(status, 206);
        assert!(got[..] == body[a..a + 100], "bytes from {a}");
    }
    assert_eq!(origin.count(), 2, "{:?}", origin.seen());
    edge.shutdown().await;
}
