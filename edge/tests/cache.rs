//! The edge against a controllable origin: bytes, chunking, coalescing, failure,
//! RFC 9111 behaviour, purge, tokens and the disk tier.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{config, data, get, Obj, TestEdge, TestOrigin};
use rand::{Rng, SeedableRng};

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn random_ranges_equal_the_origin_cold_and_warm_for_several_chunk_sizes() {
    let client = reqwest::Client::new();
    for (i, chunk) in [4096u64, 65536, 1 << 20].into_iter().enumerate() {
        let origin = TestOrigin::start().await;
        let len = 3 * chunk as usize + 1234;
        let bytes = data(len, i as u64);
        origin.put("/v1/objects/a.mp4", Obj::cacheable(bytes.clone(), 3600));
        let mut cfg = config(&[origin.url()], chunk);
        // The 64 KiB case runs with sendfile off (the default): chunks are written
        // as plain bytes; the others send them with sendfile.
        cfg.sendfile = chunk != 65536;
        let edge = TestEdge::start(cfg).await;
        let url = edge.url("/v1/objects/a.mp4");
        let mut rng = rand::rngs::StdRng::seed_from_u64(42 + i as u64);
        for round in 0..2 {
            for _ in 0..40 {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..len);
                let (status, h, body) = get(&client, &url, Some(&format!("bytes={a}-{b}"))).await;
                assert_eq!(status, 206, "chunk {chunk} round {round}");
                assert_eq!(header(&h, "content-range"), format!("bytes {a}-{b}/{len}"));
                let body = body.expect("body");
                assert!(
                    body[..] == bytes[a..=b],
                    "chunk {chunk}: bytes {a}-{b} differ"
                );
            }
            let (status, h, body) = get(&client, &url, None).await;
            assert_eq!(status, 200);
            assert_eq!(header(&h, "content-length"), len.to_string());
            assert!(body.expect("body")[..] == bytes[..]);
            // Suffix ranges and ranges past the end.
            let (status, _, body) = get(&client, &url, Some("bytes=-100")).await;
            assert_eq!(status, 206);
            assert!(body.expect("body")[..] == bytes[len - 100..]);
            let (status, h, _) = get(&client, &url, Some(&format!("bytes={len}-"))).await;
            assert_eq!(status, 416);
            assert_eq!(header(&h, "content-range"), format!("bytes */{len}"));
        }
        if chunk > 65536 {
            // Warm chunks of 64 KiB or more go out with sendfile, not copied.
            let before = keyframe_http::zerocopy::sent_bytes();
            let (status, _, body) = get(&client, &url, None).await;
            assert_eq!(status, 200);
            assert!(body.expect("body")[..] == bytes[..]);
            let sent = keyframe_http::zerocopy::sent_bytes() - before;
            assert!(
                sent >= 3 * chunk,
                "chunk {chunk}: only {sent} bytes went out with sendfile"
            );
        }
        let gets = origin.gets();
        // Warm round fetched nothing new: every chunk was fetched at most once.
        let chunks = len.div_ceil(chunk as usize);
        assert!(
            gets <= chunks + 1,
            "chunk {chunk}: {gets} upstream GETs for {chunks} chunks"
        );
        edge.shutdown().await;
    }
}

#[tokio::test]
async fn hits_say_so_and_carry_age() {
    let origin = TestOrigin::start().await;
    origin.put("/o", Obj::cacheable(data(10_000, 1), 3600));
    let edge = TestEdge::start(config(&[origin.url()], 4096)).await;
    let client = reqwest::Client::new();
    let (_, h, _) = get(&client, &edge.url("/o"), None).await;
    let first = header(&h, "cache-status").to_string();
    assert!(
        first.contains("fwd=uri-miss") && first.contains("stored"),
        "{first}"
    );
    let (status, h, _) = get(&client, &edge.url("/o"), None).await;
    assert_eq!(status, 200);
    let second = header(&h, "cache-status").to_string();
    assert!(second.starts_with("keyframe; hit"), "{second}");
    assert!(header(&h, "age").parse::<u64>().is_ok());
    assert_eq!(header(&h, "accept-ranges"), "bytes");
    assert!(header(&h, "via").contains("keyframe"));
}

#[tokio::test]
async fn sixty_four_concurrent_cold_requests_cause_one_upstream_fetch() {
    let origin = TestOrigin::start().await;
    origin.put("/big.mp4", Obj::cacheable(data(1 << 20, 2), 3600));
    origin.state.delay_ms.store(200, Ordering::SeqCst);
    let edge = TestEdge::start(config(&[origin.url()], 1 << 20)).await;
    let client = reqwest::Client::new();
    let url = edge.url("/big.mp4");
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let a = i * 1000;
            get(&client, &url, Some(&format!("bytes={a}-{}", a + 999))).await
        }));
    }
    let expected = data(1 << 20, 2);
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, _, body) = t.await.expect("join");
        assert_eq!(status, 206);
        let a = i * 1000;
        assert!(body.expect("body")[..] == expected[a..a + 1000]);
    }
    assert_eq!(
        origin.gets(),
        1,
        "64 cold requests for one chunk must cause one upstream fetch"
    );
}

#[tokio::test]
async fn a_cold_64_kib_range_fetches_one_chunk_and_no_more() {
    let origin = TestOrigin::start().await;
    let len = 8usize << 20;
    let bytes = data(len, 5);
    origin.put("/v1/objects/m.mp4", Obj::cacheable(bytes.clone(), 3600));
    let edge = TestEdge::start(config(&[origin.url()], 1 << 20)).await;
    let client = reqwest::Client::new();
    let url = edge.url("/v1/objects/m.mp4");
    // Chunks in an order where no request follows on from the one before, so
    // read-ahead has no reason to fetch more.
    for (n, chunk) in [5usize, 2, 7, 0, 3, 6, 1, 4].into_iter().enumerate() {
        let a = (chunk << 20) + 300_000;
        let b = a + (64 << 10) - 1;
        let (status, _, body) = get(&client, &url, Some(&format!("bytes={a}-{b}"))).await;
        assert_eq!(status, 206);
        assert!(body.expect("body")[..] == bytes[a..=b], "bytes {a}-{b}");
        assert_eq!(origin.gets(), n + 1, "request {n} (chunk {chunk})");
    }
    for (_, h) in origin.state.requests.lock().expect("lock").iter() {
        let range = h
            .get("range")
            .and_then(|v| v.to_str().ok())
            .expect("chunk fetches are range requests");
        let (a, b) = range
            .strip_prefix("bytes=")
            .and_then(|r| r.split_once('-'))
            .map(|(a, b)| (a.parse::<u64>().expect("a"), b.parse::<u64>().expect("b")))
            .expect("bytes=a-b");
        assert_eq!(a % (1 << 20), 0, "aligned: {range}");
        assert_eq!(b - a + 1, 1 << 20, "one chunk: {range}");
    }
}

#[tokio::test]
async fn objects_larger_than_the_memory_tier_stream_with_each_chunk_fetched_once() {
    // 160 MiB through a 64 MiB tier, once as one GET and once as a player reads
    // (sequential 512 KiB ranges): read-ahead fetches chunks before they are read,
    // and TinyLFU may refuse them a place; none may be fetched twice.
    let origin = TestOrigin::start().await;
    let len = 160usize << 20;
    let bytes = data(len, 9);
    origin.put("/v1/objects/long.mp4", Obj::cacheable(bytes.clone(), 3600));
    origin.put("/v1/objects/long2.mp4", Obj::cacheable(bytes.clone(), 3600));
    let edge = TestEdge::start(config(&[origin.url()], 1 << 20)).await;
    let client = reqwest::Client::new();
    let (status, _, body) = get(&client, &edge.url("/v1/objects/long.mp4"), None).await;
    assert_eq!(status, 200);
    assert!(body.expect("body")[..] == bytes[..]);
    {
        let reqs = origin.state.requests.lock().expect("lock");
        let mut seen = std::collections::HashMap::new();
        for (_, h) in reqs.iter() {
            *seen.entry(format!("{:?}", h.get("range"))).or_insert(0) += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "fetched twice: {twice:?}");
    }
    // One GET for the whole object: its answer fills the first chunks (as far as
    // read-ahead goes), the rest come one GET per chunk as the client reads.
    assert_eq!(
        origin.gets(),
        1 + 157,
        "one GET per chunk for the whole object"
    );
    let url = edge.url("/v1/objects/long2.mp4");
    let step = 512 << 10;
    for a in (0..len).step_by(step) {
        let b = a + step - 1;
        let (status, _, body) = get(&client, &url, Some(&format!("bytes={a}-{b}"))).await;
        assert_eq!(status, 206);
        assert!(body.expect("body")[..] == bytes[a..=b], "bytes {a}-{b}");
    }
    assert_eq!(
        origin.gets(),
        158 + 160,
        "one GET per chunk for the player too"
    );
}

#[tokio::test]
async fn an_upstream_dying_mid_chunk_fails_every_waiter_and_the_next_request_recovers() {
    let mut bad = TestOrigin::start().await;
    let good = TestOrigin::start().await;
    let bytes = data(1 << 20, 3);
    for o in [&bad, &good] {
        o.put("/v.mp4", Obj::cacheable(bytes.clone(), 3600));
    }
    bad.state.fail_mid_body.store(true, Ordering::SeqCst);
    bad.state.delay_ms.store(100, Ordering::SeqCst);
    // Find a key whose first choice is the bad origin: try paths until one is.
    let edge = TestEdge::start(config(&[bad.url(), good.url()], 1 << 20)).await;
    let client = reqwest::Client::new();
    let mut path = String::new();
    for i in 0..64 {
        let p = format!("/v.mp4?k={i}");
        let before = bad.gets();
        let (status, _, body) = get(&client, &edge.url(&p), Some("bytes=0-")).await;
        if bad.gets() > before {
            // Served by the bad origin: the response must not look complete.
            assert!(
                body.is_err() || status >= 500,
                "a cut-short body was passed off as complete (status {status})"
            );
            path = p;
            break;
        }
    }
    assert!(!path.is_empty(), "no key hashed to the failing origin");
    // Several waiters at once on a fresh key that goes to the bad origin.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url) = (client.clone(), edge.url(&format!("{path}&again=1")));
        tasks.push(tokio::spawn(async move {
            get(&client, &url, Some("bytes=0-")).await
        }));
    }
    for t in tasks {
        let (status, _, body) = t.await.expect("join");
        if status == 206 {
            if let Ok(b) = body {
                assert!(
                    b[..] == bytes[..],
                    "a waiter got wrong or short bytes marked complete"
                );
            }
        }
    }
    // The bad origin goes away entirely; the next request fails over.
    bad.stop();
    drop(bad);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, _, body) = get(&client, &edge.url(&path), Some("bytes=0-")).await;
    assert_eq!(status, 206);
    assert!(body.expect("body")[..] == bytes[..]);
}

#[tokio::test]
async fn no_store_private_and_cookies_are_never_served_from_cache() {
    let origin = TestOrigin::start().await;
    let objects = [
        ("/ns", vec![("cache-control", "no-store")]),
        ("/pv", vec![("cache-control", "private, max-age=600")]),
        (
            "/sc",
            vec![
                ("cache-control", "public, max-age=600"),
                ("set-cookie", "session=alice"),
            ],
        ),
    ];
    for (path, headers) in &objects {
        origin.put(
            path,
            Obj {
                data: bytes::Bytes::from(data(5000, 4)),
                headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
                ranges: true,
            },
        );
    }
    let edge = TestEdge::start(config(&[origin.url()], 4096)).await;
    let client = reqwest::Client::new();
    for (path, _) in &objects {
        for _ in 0..3 {
            let (status, h, body) = get(&client, &edge.url(path), None).await;
            assert_eq!(status, 200);
            assert_eq!(body.expect("body").len(), 5000);
            assert!(
                !header(&h, "cache-status").contains("hit"),
                "{path}: {:?}",
                h
            );
        }
    }
    // Each first miss's answer, not storable, serves its client (one request, not a
    // probe and then the request again); later requests pass straight through.
    assert_eq!(origin.gets(), 9, "every request went upstream, once");
}

#[tokio::test]
async fn stale_entries_revalidate_once_with_the_stored_validator() {
    let origin = TestOrigin::start().await;
    origin.put("/r", Obj::cacheable(data(8192, 5), 0));
    let edge = TestEdge::start(config(&[origin.url()], 4096)).await;
    let client = reqwest::Client::new();
    let (_, _, body) = get(&client, &edge.url("/r"), None).await;
    assert_eq!(body.expect("body").len(), 8192);
    let before = origin.gets();
    let (status, h, body) = get(&client, &edge.url("/r"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body.expect("body").len(), 8192);
    let cs = header(&h, "cache-status").to_string();
    assert!(
        cs.contains("fwd=stale") && cs.contains("fwd-status=304"),
        "{cs}"
    );
    assert_eq!(
        origin.gets(),
        before + 1,
        "one revalidation, no chunk refetch"
    );
    let reqs = origin.state.requests.lock().expect("lock");
    let last = &reqs.last().expect("a request").1;
    assert!(
        last.contains_key("if-none-match"),
        "revalidation without a validator"
    );
}

#[tokio::test]
async fn client_conditionals_are_answered_from_the_cache() {
    let origin = TestOrigin::start().await;
    let obj = Obj::cacheable(data(3000, 6), 3600);
    let etag = obj
        .headers
        .iter()
        .find(|(n, _)| *n == "etag")
        .map(|(_, v)| v.clone())
        .expect("etag");
    origin.put("/c", obj);
    let edge = TestEdge::start(config(&[origin.url()], 4096)).await;
    let client = reqwest::Client::new();
    let _ = get(&client, &edge.url("/c"), None).await;
    let r = client
        .get(edge.url("/c"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 304);
    let r = client
        .get(edge.url("/c"))
        .header("if-match", "\"other\"")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 412);
    let r = client
        .get(edge.url("/c"))
        .header("range", "bytes=0-9")
        .header("if-range", "\"other\"")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "If-Range mismatch serves the whole object");
}

#[tokio::test]
async fn upstream_errors_pass_through_and_unknown_paths_404() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::start(config(&[origin.url()], 4096)).await;
    let client = reqwest::Client::new();
    let (status, _, _) = get(&client, &edge.url("/missing"), None).await;
    assert_eq!(status, 404);
    let (status, _, body) = get(&client, &edge.url("/_keyframe/nothing"), None).await;
    assert_eq!(status, 404);
    assert!(body.expect("body").starts_with(b"{"));
    origin.state.down.store(true, Ordering::SeqCst);
    let (status, _, _) = get(&client, &edge.url("/x"), None).await;
    assert_eq!(
        status, 503,
        "an upstream 5xx passes through when no other upstream exists"
    );
}

#[tokio::test]
async fn a_fresh_404_is_stored_served_whole_and_purged_when_the_object_appears() {
    let origin = TestOrigin::start().await;
    let mut cfg = config(&[origin.url()], 4096);
    cfg.admin_token = Some("s3cret-admin".into());
    let edge = TestEdge::start(cfg).await;
    let client = reqwest::Client::new();
    let url = edge.url("/v1/objects/later.mp4");
    // The test origin answers 404 with `max-age=60` and the body "nope".
    let (status, h, body) = get(&client, &url, None).await;
    assert_eq!(status, 404);
    assert!(header(&h, "cache-status").contains("stored"), "{h:?}");
    assert_eq!(&body.expect("body")[..], b"nope");
    let (status, h, body) = get(&client, &url, Some("bytes=1-2")).await;
    assert_eq!(status, 404, "a range of a stored 404 is the 404 whole");
    assert!(header(&h, "cache-status").contains("hit"), "{h:?}");
    assert!(h.get("content-range").is_none() && h.get("accept-ranges").is_none());
    assert_eq!(&body.expect("body")[..], b"nope");
    let r = client
        .get(&url)
        .header("if-none-match", "*")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404, "preconditions do not apply to a 404");
    let r = client.head(&url).send().await.expect("head");
    assert_eq!(r.status(), 404);
    assert_eq!(header(r.headers(), "content-length"), "4");
    assert_eq!(origin.gets(), 1, "one upstream GET for all of them");
    // The object is published: the stored 404 goes with a purge.
    let bytes = data(10_000, 8);
    origin.put("/v1/objects/later.mp4", Obj::cacheable(bytes.clone(), 3600));
    let (status, _, _) = get(&client, &url, None).await;
    assert_eq!(status, 404, "still fresh");
    let r = edge
        .purge(
            &client,
            "s3cret-admin",
            r#"{"url":"/v1/objects/later.mp4"}"#,
        )
        .await;
    assert_eq!(r.status(), 200);
    let (status, _, body) = get(&client, &url, Some("bytes=100-199")).await;
    assert_eq!(status, 206);
    assert!(body.expect("body")[..] == bytes[100..200]);
}

#[tokio::test]
async fn a_request_with_credentials_does_not_make_the_url_uncacheable_for_others() {
    let origin = TestOrigin::start().await;
    origin.put("/v1/objects/hot.mp4", Obj::cacheable(data(20_000, 3), 3600));
    let edge = TestEdge::start(config(&[origin.url()], 4096)).await;
    let client = reqwest::Client::new();
    let url = edge.url("/v1/objects/hot.mp4");
    let r = client
        .get(&url)
        .header("authorization", "Bearer someone")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(
        !header(r.headers(), "cache-status").contains("stored"),
        "a response to credentials is not stored (no public, s-maxage or must-revalidate)"
    );
    let (_, h, _) = get(&client, &url, None).await;
    assert!(header(&h, "cache-status").contains("stored"), "{h:?}");
    let (_, h, body) = get(&client, &url, None).await;
    assert!(header(&h, "cache-status").contains("hit"), "{h:?}");
    assert_eq!(body.expect("body").len(), 20_000);
}

#[tokio::test]
async fn concurrent_first_requests_for_other_variants_each_get_their_own() {
    let origin = TestOrigin::start().await;
    let mut obj = Obj::cacheable(data(5000, 6), 3600);
    obj.headers.push(("vary", "accept-encoding".into()));
    origin.put("/v1/objects/page.txt", obj);
    // Slow answers, so all three requests arrive while the first fetch runs.
    origin.state.delay_ms.store(300, Ordering::SeqCst);
    let edge = TestEdge::start(config(&[origin.url()], 4096)).await;
    let client = reqwest::Client::new();
    let url = edge.url("/v1/objects/page.txt");
    let tasks: Vec<_> = ["gzip", "br", "identity"]
        .into_iter()
        .map(|ae| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                client
                    .get(&url)
                    .header("accept-encoding", ae)
                    .send()
                    .await
                    .expect("send")
                    .status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("join"), 200);
    }
    let mut seen: Vec<String> = origin
        .state
        .requests
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, h)| header(h, "accept-encoding").to_string())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        ["br", "gzip", "identity"],
        "each variant is fetched with its own Accept-Encoding"
    );
    origin.state.delay_ms.store(0, Ordering::SeqCst);
    let before = origin.gets();
    for ae in ["gzip", "br", "identity"] {
        let r = client
            .get(&url)
            .header("accept-encoding", ae)
            .send()
            .await
            .expect("send");
        assert!(header(r.headers(), "cache-status").contains("hit"), "{ae}");
    }
    assert_eq!(origin.gets(), before, "every variant is stored");
}

#[tokio::test]
async fn a_hard_purge_lets_a_url_marked_pass_be_cached_again() {
    let origin = TestOrigin::start().await;
    let mut private = Obj::cacheable(data(3000, 2), 3600);
    private.headers[0] = ("cache-control", "private, max-age=60".into());
    origin.put("/v1/objects/was-private.mp4", private);
    let mut cfg = config(&[origin.url()], 4096);
    cfg.admin_token = Some("s3cret-admin".into());
    let edge = TestEdge::start(cfg).await;
    let client = reqwest::Client::new();
    let url = edge.url("/v1/objects/was-private.mp4");
    let _ = get(&client, &url, None).await;
    origin.put(
        "/v1/objects/was-private.mp4",
        Obj::cacheable(data(3000, 2), 3600),
    );
    let (_, h, _) = get(&client, &url, None).await;
    assert!(header(&h, "cache-status").contains("fwd=bypass"), "{h:?}");
    let r = edge
        .purge(&client, "s3cret-admin", r#"{"prefix":"/v1/objects/was-"}"#)
        .await;
    assert_eq!(r.status(), 200);
    let (_, h, _) = get(&client, &url, None).await;
    assert!(header(&h, "cache-status").contains("stored"), "{h:?}");
    let (_, h, _) = get(&client, &url, None).await;
    assert!(header(&h, "cache-status").contains("hit"), "{h:?}");
}

#[tokio::test]
async fn answers_the_edge_makes_itself_carry_cache_status_too() {
    let edge = TestEdge::start(config(&["http://127.0.0.1:1".into()], 4096)).await;
    let client = reqwest::Client::new();
    let url = edge.url("/v1/objects/x.mp4");
    let (status, h, body) = get(&client, &url, None).await;
    assert_eq!(status, 502);
    assert!(body.expect("body").starts_with(b"{"));
    assert_eq!(
        header(&h, "cache-status"),
        "keyframe; fwd=uri-miss; detail=\"upstream_unavailable\""
    );
    let r = client
        .get(&url)
        .header("cache-control", "only-if-cached")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 504);
    assert_eq!(
        header(r.headers(), "cache-status"),
        "keyframe; detail=\"504\""
    );
}

#[tokio::test]
async fn purge_exact_prefix_and_soft() {
    let origin = TestOrigin::start().await;
    for p in ["/p/a", "/p/b", "/q/c"] {
        origin.put(p, Obj::cacheable(data(2000, 7), 3600));
    }
    let mut cfg = config(&[origin.url()], 4096);
    cfg.admin_token = Some("s3cret-admin".into());
    let edge = TestEdge::start(cfg).await;
    let client = reqwest::Client::new();
    for p in ["/p/a", "/p/b", "/q/c"] {
        let _ = get(&client, &edge.url(p), None).await;
    }
    let purge = |body: &'static str, token: &'static str| edge.purge(&client, token, body);
    assert_eq!(purge(r#"{"url":"/p/a"}"#, "wrong").await.status(), 403);
    // The codes every server uses for these (the edge said `bad_json` and
    // `too_large`, the catalog `malformed_json` and `payload_too_large`).
    let r = purge("not json", "s3cret-admin").await;
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["code"], "malformed_json", "{v}");
    let r = edge
        .purge(&client, "s3cret-admin", &" ".repeat(65 * 1024))
        .await;
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["code"], "payload_too_large", "{v}");
    // A wrong token of another length is refused like one of the same length.
    assert_eq!(
        purge(r#"{"url":"/p/a"}"#, "s3cret-admiN").await.status(),
        403
    );
    assert_eq!(purge(r#"{"url":"/p/a"}"#, "").await.status(), 403);
    let r = purge(r#"{"prefix":"/p/"}"#, "s3cret-admin").await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["purged"], 2);
    let before = origin.gets();
    let (_, h, _) = get(&client, &edge.url("/p/a"), None).await;
    assert!(header(&h, "cache-status").contains("fwd=uri-miss"));
    assert!(origin.gets() > before);
    let (_, h, _) = get(&client, &edge.url("/q/c"), None).await;
    assert!(header(&h, "cache-status").contains("hit"));
    // Soft purge: the next request revalidates (304), keeping the chunks.
    let r = purge(r#"{"url":"/q/c","soft":true}"#, "s3cret-admin").await;
    assert_eq!(r.status(), 200);
    let (_, h, _) = get(&client, &edge.url("/q/c"), None).await;
    let cs = header(&h, "cache-status").to_string();
    assert!(
        cs.contains("fwd=stale") && cs.contains("fwd-status=304"),
        "{cs}"
    );
}

#[tokio::test]
async fn a_region_header_counts_only_from_a_trusted_proxy() {
    use keyframe_core::token::{sign, TokenClaims, TokenKey};
    let origin = TestOrigin::start().await;
    origin.put("/v1/objects/t.mp4", Obj::cacheable(data(5000, 8), 3600));
    let key_hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let key = TokenKey::from_config(key_hex).expect("key");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        + 60;
    let eu_only = sign(
        &key,
        &TokenClaims {
            start: None,
            exp,
            acl: "/v1/objects/*".into(),
            data: Some("regions:eu".into()),
        },
    )
    .expect("sign");
    let client = reqwest::Client::new();
    for (trusted, spoofed_status) in [(vec![], 403), (vec!["127.0.0.0/8".to_string()], 200)] {
        let mut cfg = config(&[origin.url()], 4096);
        cfg.token_key = Some(key_hex.into());
        cfg.region_networks = vec!["127.0.0.0/8=us".into()];
        cfg.trusted_proxies = trusted.clone();
        let edge = TestEdge::start(cfg).await;
        let url = edge.url(&format!("/v1/objects/t.mp4?__token__={eu_only}"));
        let r = client
            .get(&url)
            .header("x-keyframe-region", "eu")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), spoofed_status, "trusted proxies {trusted:?}");
        let r = client.get(&url).send().await.expect("send");
        assert_eq!(r.status(), 403, "the address places the client in us");
    }
}

#[tokio::test]
async fn tokens_guard_hits_and_misses_and_never_reach_the_key_or_upstream() {
    use keyframe_core::token::{sign, TokenClaims, TokenKey};
    let origin = TestOrigin::start().await;
    origin.put("/v1/objects/t.mp4", Obj::cacheable(data(5000, 8), 3600));
    let key_hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let mut cfg = config(&[origin.url()], 4096);
    cfg.token_key = Some(key_hex.into());
    // The test client stands in for the load balancer that sets the region header.
    cfg.trusted_proxies = vec!["127.0.0.1".into()];
    let edge = TestEdge::start(cfg).await;
    let key = TokenKey::from_config(key_hex).expect("key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let tok = |exp: u64, acl: &str, data: Option<&str>| {
        sign(
            &key,
            &TokenClaims {
                start: None,
                exp,
                acl: acl.into(),
                data: data.map(String::from),
            },
        )
        .expect("sign")
    };
    let client = reqwest::Client::new();
    let url = |t: &str| edge.url(&format!("/v1/objects/t.mp4?__token__={t}"));
    let code = |b: &Result<bytes::Bytes, String>| -> String {
        serde_json::from_slice::<serde_json::Value>(b.as_ref().expect("body"))
            .map(|v| v["code"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let good = tok(now + 60, "/v1/objects/t.mp4", None);
    let (s, _, _) = get(&client, &url(&good), None).await;
    assert_eq!(s, 200);
    let (s, _, _) = get(&client, &url(&good), None).await;
    assert_eq!(s, 200, "hit with a valid token");
    let (s, _, b) = get(&client, &edge.url("/v1/objects/t.mp4"), None).await;
    assert_eq!((s, code(&b).as_str()), (403, "token_missing"));
    let (s, _, b) = get(
        &client,
        &url(&tok(now - 1, "/v1/objects/t.mp4", None)),
        None,
    )
    .await;
    assert_eq!((s, code(&b).as_str()), (403, "token_expired"));
    let forged = good.replace(&good[good.len() - 4..], "0000");
    let (s, _, _) = get(&client, &url(&forged), None).await;
    assert_eq!(s, 403);
    let (s, _, _) = get(
        &client,
        &url(&tok(now + 60, "/v1/objects/other.mp4", None)),
        None,
    )
    .await;
    assert_eq!(s, 403);
    let eu_only = tok(now + 60, "/v1/objects/*", Some("regions:eu"));
    let r = client
        .get(url(&eu_only))
        .header("x-keyframe-region", "us")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["code"], "region");
    let r = client
        .get(url(&eu_only))
        .header("x-keyframe-region", "eu")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    // The cookie works too.
    let r = client
        .get(edge.url("/v1/objects/t.mp4"))
        .header("cookie", format!("__token__={good}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    for (path, headers) in origin.state.requests.lock().expect("lock").iter() {
        assert!(!path.contains("__token__"), "token sent upstream in {path}");
        let cookie = headers
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(!cookie.contains("__token__"), "token cookie sent upstream");
    }
    assert_eq!(
        origin.gets(),
        1,
        "one fetch of the whole object: tokens share a cache key"
    );
}

#[tokio::test]
async fn the_disk_tier_serves_after_a_restart_without_the_origin() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut origin = TestOrigin::start().await;
    let bytes = data(300_000, 9);
    origin.put("/d.mp4", Obj::cacheable(bytes.clone(), 3600));
    let mut cfg = config(&[origin.url()], 65536);
    // A memory tier too small to hold the object: chunks spill to disk.
    cfg.cache_memory = keyframe_core::size::ByteSize(1 << 20);
    cfg.cache_disk = Some(tmp.path().to_path_buf());
    let edge = TestEdge::start(cfg.clone()).await;
    let client = reqwest::Client::new();
    let (_, _, body) = get(&client, &edge.url("/d.mp4"), None).await;
    assert!(body.expect("body")[..] == bytes[..]);
    edge.shutdown().await;
    origin.stop();
    drop(origin);
    // Let the write-behind thread finish, then restart: memory is empty, the
    // disk must have every chunk.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let edge = TestEdge::start(cfg).await;
    let mut spilled = false;
    for _ in 0..50 {
        let (status, _, body) =
            get(&client, &edge.url("/d.mp4"), Some("bytes=100000-200000")).await;
        if status == 206 {
            assert!(body.expect("body")[..] == bytes[100_000..=200_000]);
            spilled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        spilled,
        "the restarted edge could not serve from its disk tier"
    );
}
